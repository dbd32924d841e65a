// `qdq sensitivity` and `qdq tune`: one load + one calibration (the pipeline's), then the backend's per-group
// measurements (backend/qdq_backend/sensitivity.py). This file owns the session and sensitivity.json; tune.ts owns
// the precision plan, its keep_float edits and tune.json.
import * as fs from 'fs';
import * as path from 'path';
import { MAX_RESULTS_BYTES, readRegularFile } from '../common/files';
import { loadConfigAsync, ConfigError, QdqConfig } from './config';
import { findInterpreter } from './interpreter';
import { spawn } from 'child_process';
import * as readline from 'readline';
import { BackendClient, ProgressEvent } from './backendClient';
import { withBackendOnPath } from '../common/paths';
import { findViolation } from './backendProtocol';
import {
  CalibrateParams,
  ERROR_KINDS,
  LoadParams,
  PROTOCOL_SCHEMA,
  SensitivityParams,
  SensitivityResult,
  SiteGroup,
  TuneParams,
  TuneResult,
} from './backendProtocol.generated';
import { QdqError, CancelToken } from './errors';
import { quantizeModelSource, PipelineOptions } from './run';
import { writeFileAtomic } from '../onnx/atomic';
import { backendTarget, baseLoadParams, LibraryLoad, loadPatched } from './libraryLoad';

export interface SensitivityProgress {
  step: 'interpreter' | 'load' | 'calibrate' | 'sensitivity' | 'tune' | 'latency';
  done: number;
  total: number | null;
  message: string;
}

/** A group of sites that switch precision together; the backend's SiteGroup (protocol.schema.json). */
export type GroupInfo = SiteGroup;
export type { SensitivityResult, TuneResult };

/** A loaded, calibrated model, measured in one backend or (--nproc N) in N torch.distributed workers. */
export interface Session {
  projectDir: string;
  cfg: QdqConfig;
  outDir: string;
  modelPath: string;
  /** Installed library modules patched in memory for the load (libraryLoad.ts); empty for a user's own model. */
  patchedModules: string[];
  /** What the load changed (the patch note, the backend's notes). */
  notes: string[];
  /** The backend's `sensitivity` request (or its N-process form) on the calibrated model. */
  sensitivity(params: SensitivityParams): Promise<SensitivityResult>;
  /** The backend's `tune` request (or its N-process form) on the calibrated model. */
  tune(params: TuneParams): Promise<TuneResult>;
  close(): Promise<void>;
}

export type SessionOptions = Pick<PipelineOptions, 'projectDir' | 'python' | 'overrides' | 'onLog'> & {
  /** Processes for the per-group evaluations (sensitivity_dist.py); 1 runs them in the ordinary backend. */
  nproc?: number;
};

export async function configOf(projectDir: string, opts: SessionOptions): Promise<QdqConfig> {
  if (!fs.existsSync(projectDir) || !fs.statSync(projectDir).isDirectory())
    throw new QdqError('config', `project folder ${projectDir} does not exist`, 'pass a folder with pyproject.toml');
  try {
    return await loadConfigAsync(projectDir, opts.overrides);
  } catch (e) {
    if (e instanceof ConfigError) throw new QdqError('config', e.message, e.hint);
    throw e;
  }
}

interface Prepared {
  projectDir: string;
  cfg: QdqConfig;
  outDir: string;
  modelPath: string;
  python: string;
  load: LoadParams;
  calibrate: CalibrateParams;
}

/** Config, interpreter, the quantized copy, and the load/calibrate parameters `qdq run` uses. */
async function prepare(
  opts: SessionOptions,
  onProgress: (p: SensitivityProgress) => void,
  cancel: CancelToken,
): Promise<Prepared> {
  const projectDir = path.resolve(opts.projectDir);
  const cfg = await configOf(projectDir, opts);
  const outDir = path.resolve(projectDir, cfg.outDir);
  fs.mkdirSync(outDir, { recursive: true });
  onProgress({ step: 'interpreter', done: 0, total: null, message: 'looking for a Python with torch' });
  const py = await findInterpreter({ explicit: opts.python, cwd: projectDir });
  cancel.throwIfCancelled();
  const quantized = await quantizeModelSource(projectDir, cfg, outDir, false, []);
  return {
    projectDir,
    cfg,
    outDir,
    modelPath: path.resolve(projectDir, cfg.model.slice(0, cfg.model.lastIndexOf(':'))),
    python: py.executable && fs.existsSync(py.executable) ? py.executable : py.path,
    load: baseLoadParams(projectDir, cfg, quantized.override),
    calibrate: { method: cfg.method, percentile: cfg.percentile, batches: cfg.batches, out_dir: outDir },
  };
}

const STEPS = ['calibrate', 'sensitivity', 'tune'];
const asStep = (step: string) => (STEPS.includes(step) ? step : 'load') as SensitivityProgress['step'];

/**
 * Start the backend, load (library modules patched: libraryLoad.ts) and calibrate once; or, for nproc > 1, hand
 * the same parameters to the workers. Their load params need the patched modules, and only a load of the model
 * says which library modules it is made of, so the N-process form loads it once here first.
 */
export async function openSession(
  opts: SessionOptions,
  onProgress: (p: SensitivityProgress) => void,
  cancel: CancelToken,
): Promise<Session> {
  const p = await prepare(opts, onProgress, cancel);
  const backend = BackendClient.start({ python: p.python, projectDir: p.projectDir, onLog: opts.onLog });
  const forward = (e: ProgressEvent) =>
    onProgress({ step: asStep(e.step), done: e.done, total: e.total, message: e.message });
  const rpc = { onProgress: forward, cancel };
  const distributed = (opts.nproc ?? 1) > 1;
  let library: LibraryLoad;
  try {
    await backend.initialize(rpc);
    library = await loadPatched(backend, p.cfg, p.load, rpc, (message) =>
      onProgress({ step: 'load', done: 0, total: null, message }),
    );
    if (!distributed) await backend.calibrate(p.calibrate, rpc);
  } catch (e) {
    await backend.shutdown().catch(() => undefined);
    throw e;
  }
  const base = {
    projectDir: p.projectDir,
    cfg: p.cfg,
    outDir: p.outDir,
    modelPath: p.modelPath,
    patchedModules: library.patchedModules,
    notes: library.notes,
  };
  if (distributed) {
    await backend.shutdown().catch(() => undefined);
    const job = { ...p, load: library.params, nproc: opts.nproc ?? 1, onLog: opts.onLog };
    return {
      ...base,
      sensitivity: (params) => runDistributed(job, { command: 'sensitivity', params }, onProgress, cancel),
      tune: (params) => runDistributed(job, { command: 'tune', params }, onProgress, cancel),
      close: async () => undefined,
    };
  }
  return {
    ...base,
    sensitivity: (params) => backend.sensitivity(params, rpc),
    tune: (params) => backend.tune(params, rpc),
    close: () => backend.shutdown(),
  };
}

/** What the N-process form measures: one of the backend's requests, with the params the schema declares for it. */
type DistributedCommand =
  { command: 'sensitivity'; params: SensitivityParams } | { command: 'tune'; params: TuneParams };
type DistributedResult<C extends DistributedCommand> = C extends { command: 'sensitivity' }
  ? SensitivityResult
  : TuneResult;

/** The workers' result file, checked like a backend reply: the request's result, or the backend's error data. */
async function readDistributedResult<C extends DistributedCommand>(
  file: string,
  command: C['command'],
): Promise<DistributedResult<C>> {
  // The workers' result file in the out-dir: read as a regular file of bounded size (the out-dir is the project's).
  const text = await readRegularFile(file, MAX_RESULTS_BYTES);
  const out = JSON.parse(text ?? '') as { result?: unknown; error?: unknown };
  const bad = (problem: string) =>
    new QdqError(
      'protocol',
      `malformed result from the sensitivity workers: ${problem}`,
      'the qdq pipeline and its Python backend disagree on the protocol (a bug in qdq); reinstall qdq',
    );
  if (out.error !== undefined) {
    const problem = findViolation(PROTOCOL_SCHEMA, 'ErrorData', out.error, 'error');
    if (problem) throw bad(problem);
    const e = out.error as { kind: string; message: string; hint: string; detail?: string };
    const kind = (ERROR_KINDS as readonly string[]).includes(e.kind) ? (e.kind as QdqError['kind']) : 'internal';
    throw new QdqError(kind, e.message, e.hint, e.detail);
  }
  const shape = PROTOCOL_SCHEMA['x-methods'][command].result;
  const problem = findViolation(PROTOCOL_SCHEMA, shape, out.result, `${command} result`);
  if (problem) throw bad(problem);
  return out.result as DistributedResult<C>;
}

/** N workers of backend/qdq_backend/sensitivity_dist.py: a request file in, a result file out, progress on stderr. */
async function runDistributed<C extends DistributedCommand>(
  job: Prepared & { nproc: number; onLog?: (line: string) => void },
  what: C,
  onProgress: (p: SensitivityProgress) => void,
  cancel: CancelToken,
): Promise<DistributedResult<C>> {
  const work = fs.mkdtempSync(path.join(job.outDir, '.dist-'));
  const request = path.join(work, 'request.json');
  const result = path.join(work, 'result.json');
  const body = { command: what.command, load: job.load, calibrate: job.calibrate, params: what.params };
  fs.writeFileSync(request, JSON.stringify(body));
  const env = withBackendOnPath(process.env);
  const args = ['-m', 'qdq_backend.sensitivity_dist', '--nproc', String(job.nproc), request, result];
  onProgress({ step: 'load', done: 0, total: null, message: `starting ${job.nproc} processes` });
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(job.python, args, { cwd: job.projectDir, env, stdio: ['ignore', 'ignore', 'pipe'] });
      const stop = cancel.onCancel(() => child.kill('SIGTERM'));
      let tail = '';
      readline.createInterface({ input: child.stderr }).on('line', (line) => {
        if (line.startsWith('qdq-progress ')) {
          const e = JSON.parse(line.slice('qdq-progress '.length)) as ProgressEvent;
          onProgress({ step: asStep(e.step), done: e.done, total: e.total, message: e.message });
        } else {
          tail = (tail + line + '\n').slice(-4000);
          job.onLog?.(line);
        }
      });
      child.on('error', reject);
      child.on('close', (c) => {
        stop();
        if (cancel.cancelled)
          reject(new QdqError('cancelled', 'cancelled', 'run the command again when you are ready'));
        else if (c !== 0 || !fs.existsSync(result))
          reject(
            new QdqError(
              'backend_died',
              `the ${job.nproc} worker processes failed (exit ${c})`,
              'run with --verbose, or without --nproc',
              tail,
            ),
          );
        else resolve(c);
      });
    });
    void code;
    return await readDistributedResult<C>(result, what.command);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Held-out data for the metric: eval-data, else calibration batches past the ones calibrated on. */
export function metricParams(cfg: QdqConfig): SensitivityParams {
  return {
    calibration_batches: cfg.batches,
    // measured in the graph form the target exports (residual_fusion.left_off)
    target: backendTarget(cfg.target),
    ...(cfg.metric ? { metric: cfg.metric } : {}),
  };
}

/** sensitivity.json: the backend's result, with the target its form was measured in and how the model was loaded. */
export interface SensitivityFile extends SensitivityResult {
  version: 1;
  project_dir: string;
  target: string;
  /** Library modules patched in memory: their sites are in those modules, not in the project's files. */
  patched_modules: string[];
  notes: string[];
}

export async function runSensitivity(
  opts: SessionOptions,
  onProgress: (p: SensitivityProgress) => void = () => undefined,
  cancel: CancelToken = new CancelToken(),
): Promise<{ result: SensitivityResult; path: string; notes: string[] }> {
  const session = await openSession(opts, onProgress, cancel);
  try {
    const result = await session.sensitivity(metricParams(session.cfg));
    const out = path.join(session.outDir, 'sensitivity.json');
    const file: SensitivityFile = {
      version: 1,
      project_dir: session.projectDir,
      target: session.cfg.target,
      patched_modules: session.patchedModules,
      notes: session.notes,
      ...result,
    };
    writeFileAtomic(out, JSON.stringify(file, null, 2) + '\n');
    return { result, path: out, notes: session.notes };
  } finally {
    await session.close().catch(() => undefined);
  }
}

export const metricUnit = (m: string) => (m === 'top1' ? '%' : m === 'sqnr_db' ? ' dB' : '');

/** How the terminal names the metric: the default ones in words, the user's function by its spec. */
export function metricName(m: string, samples: number): string {
  if (m === 'top1') return `top-1 on eval-data (${samples} held-out samples)`;
  if (m === 'sqnr_db') return `output SQNR vs FP32 on held-out batches (${samples} samples)`;
  return `${m} ([tool.qdq] metric, higher is better)`;
}

/** Groups worst first (largest loss when only that group is INT8), as a table for the terminal. */
export function formatSensitivity(r: SensitivityResult): string {
  const unit = metricUnit(r.metric);
  const rows = [...r.groups].sort((a, b) => a.only_int8 - b.only_int8);
  const width = Math.max(5, ...rows.map((g) => g.label.length));
  const lines = [
    `metric: ${metricName(r.metric, r.samples)}; FP32 ${r.fp32.toFixed(2)}${unit}, all INT8 ${r.all_int8.toFixed(2)}${unit}`,
    '',
    `${'group'.padEnd(width)}  ${'only this INT8'.padStart(15)}  ${'only this float'.padStart(15)}`,
    `${'-'.repeat(width)}  ${'-'.repeat(15)}  ${'-'.repeat(15)}`,
  ];
  const delta = (v: number, base: number) => `${(v - base >= 0 ? '+' : '') + (v - base).toFixed(2)}`;
  for (const g of rows)
    lines.push(
      `${g.label.padEnd(width)}  ${delta(g.only_int8, r.fp32).padStart(15)}  ${delta(g.only_float, r.all_int8).padStart(15)}`,
    );
  lines.push('', '(only this INT8: change vs all FP32; only this float: change vs all INT8)');
  return lines.join('\n');
}
