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

/** Runs the registry's `job` of `command`; the summary is what the command answers the client. */
export async function runJob(command: string, args: CommandArgs, opts: RunOptions): Promise<RunResult> {
  const kind = commandSpec(command)?.job?.kind;
  if (!kind) throw new Error(`not a job command: ${command}`);
  const { cancel, dispose } = cancelOf(opts.signal);
  const base = {
    projectDir: opts.projectDir,
    python: opts.python,
    overrides: overridesFrom(opts.settings),
    nproc: args.nproc,
    onLog: (line: string) => opts.log(`[backend] ${line}`),
  };
  try {
    if (kind === 'sensitivity') {
      const { runSensitivity } = await import('../pipeline/sensitivity');
      const r = await runSensitivity(base, progress(SPANS, opts.onProgress), cancel);
      return { summary: { reportPath: r.path, outDir: path.dirname(r.path), report: r.result } };
    }
    if (kind === 'tune') {
      const { runTune } = await import('../pipeline/tune');
      const r = await runTune(
        { ...base, maxDrop: args.maxDrop, write: false },
        progress(SPANS, opts.onProgress),
        cancel,
      );
      return { summary: { reportPath: r.path, outDir: path.dirname(r.path), report: { ...r.report, notes: r.notes } } };
    }
    const { runQat } = await import('../pipeline/qat');
    const r = await runQat(
      {
        projectDir: opts.projectDir,
        python: opts.python,
        nproc: args.nproc ?? 1,
        resume: !!args.resume,
        torchrunArgs: [],
        onLog: base.onLog,
      },
      progress(QAT_SPANS, opts.onProgress),
      cancel,
    );
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
