// `qdq qat [DIR]`: quantization-aware training. The pipeline's own load -> calibrate -> export -> verify (run.ts)
// with the backend's `qat` request between calibrate and export, so the model exported and verified is the
// fine-tuned one; `<out-dir>/qat.json` holds FP32 / PTQ / QAT top-1 (fractions, on eval-data), epochs,
// processes and timings. The algorithm and the torchrun launch are Python (backend/qdq_backend/qat*.py).
import * as fs from 'fs';
import * as path from 'path';
import { runPipeline, AfterCalibrate, PipelineProgress, Report } from './run';
import { CancelToken, QdqError, asQdqError } from './errors';
import { writeFileAtomic } from '../onnx/atomic';
import { backendTarget } from './libraryLoad';
import { ProgressPrinter } from './cli';
import type { QatResult } from './backendProtocol.generated';
import type { ConfigOverrides } from './config';

export interface QatOptions {
  projectDir: string;
  python?: string;
  /** [tool.qdq] values replaced for this run (the editor settings: out-dir, method, batches, ...). */
  overrides?: ConfigOverrides;
  /** Processes per node (torchrun's --nproc_per_node); 1 trains inside the backend. */
  nproc: number;
  resume: boolean;
  epochs?: number;
  lr?: number;
  learnAmax?: boolean;
  trainData?: string;
  trainStep?: string;
  /** torchrun rendezvous flags for several nodes (docs/qat.md); empty: `--standalone`. */
  torchrunArgs: string[];
  onLog?: (line: string) => void;
}

/** The backend's `qat` result (declared in backend/qdq_backend/protocol.schema.json). */
export type { QatResult };

export interface QatReport extends QatResult {
  version: 1;
  model: string;
  /** The exported INT8 model (of the fine-tuned weights), checked with onnxruntime like `qdq run`. */
  onnx: { int8: string | null; accuracy: { fp32: number; int8: number } | null; cosine_min: number | null };
  seconds: QatResult['seconds'] & { pipeline: number };
  report: string;
}

/** Stop grace: the processes finish their step, rank 0 saves it (qat_launch.STOP_GRACE_S is 60 s). */
const CANCEL_GRACE_MS = 70_000;

export async function runQat(
  opts: QatOptions,
  onProgress: (p: PipelineProgress) => void = () => undefined,
  cancel: CancelToken = new CancelToken(),
): Promise<{ qat: QatReport; path: string; report: Report }> {
  const started = Date.now();
  let result: QatResult | null = null;
  const fineTune = async (step: AfterCalibrate) => {
    const cfg = step.config;
    const trainData = opts.trainData ?? cfg.trainData;
    if (!trainData)
      throw new QdqError(
        'config',
        `qdq qat needs training data: [tool.qdq] has no train-data`,
        'add train-data = "data.py:train_data" (a function yielding (inputs, labels) batches), or pass --train-data',
      );
    result = await step.backend.qat(
      {
        out_dir: step.outDir,
        train_data: trainData,
        train_step: opts.trainStep ?? cfg.trainStep,
        epochs: opts.epochs ?? cfg.epochs ?? 1,
        lr: opts.lr ?? cfg.lr ?? 1e-4,
        learn_amax: opts.learnAmax ?? cfg.learnAmax ?? false,
        nproc: opts.nproc,
        resume: opts.resume,
        torchrun_args: opts.torchrunArgs,
        // step.load carries the patched library modules, so each torchrun process runs the same model
        load: step.load,
        target: backendTarget(cfg.target),
      },
      {
        cancel: step.cancel,
        onProgress: (p) =>
          // PipelineProgress has no QAT step of its own (the editor's bridge maps each one): QAT reports as calibrate.
          onProgress({ step: 'calibrate', done: p.done, total: p.total, message: `QAT: ${p.message}` }),
      },
    );
    step.notes.push(
      `exported after QAT (${result.epochs} epochs, ${result.processes} processes): ${result.checkpoint}`,
    );
  };
  const run = await runPipeline(
    {
      projectDir: opts.projectDir,
      steps: ['calibrate', 'export', 'verify'],
      python: opts.python,
      overrides: opts.overrides,
      onLog: opts.onLog,
      afterCalibrate: fineTune,
      cancelGraceMs: CANCEL_GRACE_MS,
    },
    onProgress,
    cancel,
  );
  const done = result as QatResult | null;
  if (!done) throw new QdqError('internal', 'the pipeline finished without running QAT', 'report this bug');
  const qat: QatReport = {
    version: 1,
    model: run.report.model,
    ...done,
    onnx: {
      int8: run.report.files.int8_onnx ?? null,
      accuracy: run.report.accuracy,
      cosine_min: run.report.cosine_min,
    },
    seconds: { ...done.seconds, pipeline: Math.round(Date.now() - started) / 1000 },
    report: run.reportPath,
  };
  const file = path.join(run.outDir, 'qat.json');
  writeFileAtomic(file, JSON.stringify(qat, null, 1) + '\n');
  return { qat, path: file, report: run.report };
}

// -- command line ----------------------------------------------------------------------------------------

export const QAT_USAGE =
  'qdq qat [DIR] [--nproc N] [--epochs N] [--lr X] [--learn-amax] [--resume] [--train-data F:fn] [--train-step F:fn] ' +
  '[--python P] [--nnodes N --node-rank R --rdzv-endpoint HOST:PORT [--rdzv-id ID]] [--verbose]';

const RENDEZVOUS: Record<string, string> = {
  nnodes: '--nnodes',
  'node-rank': '--node_rank',
  'rdzv-endpoint': '--rdzv_endpoint',
  'rdzv-id': '--rdzv_id',
};

class Usage extends Error {}

export function parseQatArgs(argv: string[]): QatOptions & { dir?: string; verbose: boolean } {
  const o: QatOptions & { dir?: string; verbose: boolean } = {
    projectDir: '',
    nproc: 1,
    resume: false,
    torchrunArgs: [],
    verbose: false,
  };
  const rendezvous: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) {
      if (o.dir !== undefined) throw new Usage(`one project folder only (got "${o.dir}" and "${arg}")`);
      o.dir = arg;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    const value = (): string => {
      const v = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Usage(`--${name} needs a value`);
      return v;
    };
    const positive = (v: string, what: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Usage(`--${what} must be a positive integer (got "${v}")`);
      return n;
    };
    if (name === 'nproc') o.nproc = positive(value(), name);
    else if (name === 'epochs') o.epochs = positive(value(), name);
    else if (name === 'lr') {
      const v = value();
      o.lr = Number(v);
      if (!(o.lr > 0 && o.lr <= 10)) throw new Usage(`--lr must be a number in (0, 10] (got "${v}")`);
    } else if (name === 'learn-amax') o.learnAmax = true;
    else if (name === 'resume') o.resume = true;
    else if (name === 'verbose') o.verbose = true;
    else if (name === 'python') o.python = value();
    else if (name === 'train-data') o.trainData = value();
    else if (name === 'train-step') o.trainStep = value();
    else if (name in RENDEZVOUS) rendezvous.push(`${RENDEZVOUS[name]}=${value()}`);
    else throw new Usage(`unknown option "--${name}" for "qdq qat"`);
  }
  if (rendezvous.length) {
    if (!rendezvous.some((a) => a.startsWith('--rdzv_endpoint=')))
      throw new Usage('several nodes need --rdzv-endpoint HOST:PORT (the same on every node)');
    o.torchrunArgs = ['--rdzv_backend=c10d', ...rendezvous];
  }
  return o;
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${(100 * v).toFixed(2)}%`);

export function formatQat(q: QatReport): string {
  const lines = [
    `QAT ${q.model}: ${q.epochs} epochs, lr ${q.lr}, ${q.processes} process${q.processes === 1 ? '' : 'es'}, ` +
      `${q.steps} steps${q.learn_amax ? ', learned amax' : ''}${q.resumed_from_step !== null ? `, resumed at step ${q.resumed_from_step}` : ''}`,
    `top-1 on ${q.eval_samples ?? 0} eval-data samples: FP32 ${pct(q.fp32)}  PTQ ${pct(q.ptq)}  QAT ${pct(q.qat)}`,
  ];
  if (q.onnx.accuracy)
    lines.push(
      `onnxruntime on the exported model (the fine-tuned weights): float ${pct(q.onnx.accuracy.fp32)}  INT8 ${pct(q.onnx.accuracy.int8)}`,
    );
  lines.push(`time: training ${q.seconds.train.toFixed(1)} s, whole run ${q.seconds.pipeline.toFixed(1)} s`);
  return lines.join('\n');
}

export async function runQatCommand(
  argv: string[],
  io: { out: (s: string) => void; err: { write(s: string): boolean; isTTY?: boolean } } = {
    out: (s) => process.stdout.write(s),
    err: process.stderr,
  },
): Promise<number> {
  let parsed: ReturnType<typeof parseQatArgs>;
  try {
    parsed = parseQatArgs(argv);
  } catch (e) {
    if (!(e instanceof Usage)) throw e;
    io.err.write(`qdq qat: ${e.message}\nusage: ${QAT_USAGE}\n`);
    return 2;
  }
  const projectDir = path.resolve(parsed.dir ?? '.');
  if (!fs.existsSync(path.join(projectDir, 'pyproject.toml'))) {
    io.err.write(
      `qdq qat: ${projectDir} has no pyproject.toml\n  hint: pass a project folder with a [tool.qdq] table\n`,
    );
    return 1;
  }
  const cancel = new CancelToken();
  const onSigint = () => {
    io.err.write('\ncancelling: the current step finishes and is saved...\n');
    cancel.cancel();
  };
  process.on('SIGINT', onSigint);
  const progress = new ProgressPrinter(io.err);
  try {
    const r = await runQat(
      { ...parsed, projectDir, onLog: parsed.verbose ? (l) => io.err.write(`[backend] ${l}\n`) : undefined },
      (p) => progress.update(p),
      cancel,
    );
    progress.finishStep();
    io.out(formatQat(r.qat) + `\n\nqat.json: ${r.path}\n`);
    return 0;
  } catch (e) {
    progress.finishStep();
    const err = asQdqError(e);
    io.err.write(`qdq qat: ${err.message}\n`);
    if (err.detail && (parsed.verbose || err.kind === 'user_code'))
      io.err.write(
        err.detail
          .split('\n')
          .slice(-15)
          .map((l) => `  | ${l}`)
          .join('\n') + '\n',
      );
    if (err.hint) io.err.write(`  hint: ${err.hint}\n`);
    return err.kind === 'internal' ? 2 : 1;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
