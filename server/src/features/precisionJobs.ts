// The editor's sensitivity, tune and QAT commands: the CLI's own runners (pipeline/sensitivity.ts, tune.ts,
// qat.ts) with the LSP's cancellation as a CancelToken and their progress as work-done percentages.
import * as path from 'path';
import type { CommandArgs } from '../protocol/lsp_ext';
import { commandSpec } from '../protocol/commands';
import { CancelToken } from '../pipeline/errors';
import type { RunOptions, RunResult } from './pipelineBridge';
import { overridesFrom } from './pipelineBridge';
import { MAX_RESULTS_BYTES, readWorkspaceFileOrLog } from './workspaceFiles';
import { parseQuantizers } from './calibration';
// Types only: the runners themselves load on first use (below), not with the server.
import type { SessionOptions } from '../pipeline/sensitivity';
import type { runTune as runTuneType } from '../pipeline/tune';
import type { QatOptions } from '../pipeline/qat';

// Share of the bar per step. Sensitivity/tune: one load and calibration, then the per-group evaluations. QAT reports
// its training as the pipeline's calibrate step (pipeline/qat.ts), so that step gets most of the bar.
const SPANS: Record<string, [number, number]> = {
  interpreter: [0, 3],
  quantize: [3, 5],
  load: [5, 10],
  calibrate: [10, 35],
  sensitivity: [35, 100],
  tune: [35, 85],
  // qdq tune then exports and times the FP32, all-INT8 and mixed models
  latency: [85, 100],
  histogram: [80, 82],
  export: [82, 90],
  fold: [90, 92],
  dynamic: [92, 94],
  verify: [94, 99],
  report: [99, 100],
};
const QAT_SPANS: Record<string, [number, number]> = { ...SPANS, calibrate: [10, 80] };

function progress(
  spans: Record<string, [number, number]>,
  onProgress: RunOptions['onProgress'],
): (p: { step: string; done: number; total: number | null; message: string }) => void {
  return (p) => {
    const [lo, hi] = spans[p.step] ?? [0, 100];
    const frac = p.total ? Math.min(1, p.done / p.total) : 0;
    onProgress({ percent: Math.round(lo + (hi - lo) * frac), message: p.message });
  };
}

function cancelOf(signal: AbortSignal): { cancel: CancelToken; dispose: () => void } {
  const cancel = new CancelToken();
  const onAbort = () => cancel.cancel();
  if (signal.aborted) cancel.cancel();
  signal.addEventListener('abort', onAbort);
  return { cancel, dispose: () => signal.removeEventListener('abort', onAbort) };
}

export interface JobOptions {
  sensitivity: SessionOptions;
  tune: Parameters<typeof runTuneType>[0];
  qat: QatOptions;
}

/**
 * The three runners' options from the editor settings and the command's arguments, in one place: the fields the
 * CLI fills from its flags (pipeline/sensitivityCli.ts, qat.ts parseQatArgs), with the settings as [tool.qdq]
 * overrides (overridesFrom, the same as the editor's run/export) for every runner, QAT included. What neither
 * has a flag or setting for (metric, eval batches, QAT epochs/lr/learn-amax, train data) comes from [tool.qdq]
 * in both, so an editor job and a CLI run of the same project with the same settings do the same thing.
 */
export function jobOptions(
  args: CommandArgs,
  opts: Pick<RunOptions, 'projectDir' | 'python' | 'settings' | 'log'>,
): JobOptions {
  const common = {
    projectDir: opts.projectDir,
    python: opts.python,
    overrides: overridesFrom(opts.settings),
    onLog: (line: string) => opts.log(`[backend] ${line}`),
  };
  return {
    sensitivity: { ...common, nproc: args.nproc },
    // The editor never rewrites the model file: the plan goes into a copy, applied later as a workspace edit.
    tune: { ...common, nproc: args.nproc, maxDrop: args.maxDrop, write: false },
    qat: { ...common, nproc: args.nproc ?? 1, resume: !!args.resume, torchrunArgs: [] },
  };
}

/** Runs the registry's `job` of `command`; the summary is what the command answers the client. */
export async function runJob(command: string, args: CommandArgs, opts: RunOptions): Promise<RunResult> {
  const kind = commandSpec(command)?.job?.kind;
  if (!kind) throw new Error(`not a job command: ${command}`);
  const { cancel, dispose } = cancelOf(opts.signal);
  const options = jobOptions(args, opts);
  try {
    if (kind === 'sensitivity') {
      const { runSensitivity } = await import('../pipeline/sensitivity');
      const r = await runSensitivity(options.sensitivity, progress(SPANS, opts.onProgress), cancel);
      return { summary: { reportPath: r.path, outDir: path.dirname(r.path), report: r.result } };
    }
    if (kind === 'tune') {
      const { runTune } = await import('../pipeline/tune');
      const r = await runTune(options.tune, progress(SPANS, opts.onProgress), cancel);
      return { summary: { reportPath: r.path, outDir: path.dirname(r.path), report: { ...r.report, notes: r.notes } } };
    }
    const { runQat } = await import('../pipeline/qat');
    const r = await runQat(options.qat, progress(QAT_SPANS, opts.onProgress), cancel);
    const calibrationFile = r.report.files?.calibration;
    const text = calibrationFile
      ? await readWorkspaceFileOrLog(calibrationFile, MAX_RESULTS_BYTES, opts.log)
      : undefined;
    return {
      summary: { reportPath: r.path, outDir: path.dirname(r.path), report: r.qat },
      quantizers: text === undefined ? undefined : parseQuantizers(text),
      python: r.report.python?.path,
      torchVersion: r.report.python?.torch_version,
    };
  } finally {
    dispose();
  }
}
