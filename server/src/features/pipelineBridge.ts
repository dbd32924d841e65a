// The language server's view of the pipeline (server/src/pipeline): one call per backend command, with an
// AbortSignal for cancellation and a progress callback that feeds LSP work-done progress.
import * as path from 'path';
import type { QdqSettings } from '../settings';
import { defaultSettings } from '../settings';
import type { CalibratedQuantizer } from './calibration';
import { parseQuantizers } from './calibration';
import { InterpreterInfo, ReportResult } from '../protocol/lsp_ext';
import { commandSpec } from '../protocol/commands';
import type { PipelineProgress } from '../pipeline/run';
import { validateConfigText, ConfigOverrides } from '../pipeline/config';
import type { Method } from '../common/knobs';
import { MAX_CONFIG_BYTES, MAX_RESULTS_BYTES, readWorkspaceFileOrLog } from './workspaceFiles';
import { CancelToken, asQdqError } from '../pipeline/errors';

// The orchestrator pulls in onnxruntime and protobuf: loaded on the first backend command, not at server start.
function pipelineRun(): typeof import('../pipeline/run') {
  return require('../pipeline/run');
}
function interpreters(): typeof import('../pipeline/interpreter') {
  return require('../pipeline/interpreter');
}

export interface RunOptions {
  projectDir: string;
  modelFile: string;
  settings: QdqSettings;
  python?: string;
  signal: AbortSignal;
  /** qdq.useCalibrationMethod: the method to compute amax with (from the saved histograms). */
  method?: Method;
  onProgress(p: { percent?: number; message: string }): void;
  log(msg: string): void;
}

export interface RunResult {
  /** What the command returns to the client: the report and where it was written. */
  summary: { reportPath: string; outDir: string; report: unknown };
  /** New calibration results (with histograms), when the command calibrated. */
  quantizers?: CalibratedQuantizer[];
  python?: string;
  torchVersion?: string;
}

export interface ErrorInfo {
  kind: string;
  message: string;
  hint?: string;
  detail?: string;
}

// Share of the progress bar each pipeline step fills, in the order they run.
const STEP_SPAN: Record<PipelineProgress['step'], [number, number]> = {
  interpreter: [0, 5],
  quantize: [5, 8],
  load: [8, 15],
  calibrate: [15, 55],
  histogram: [55, 60],
  export: [60, 78],
  fold: [78, 82],
  dynamic: [82, 86],
  verify: [86, 99],
  report: [99, 100],
};

/**
 * Editor settings override [tool.qdq] only where the user changed them from their defaults, so a project's
 * pyproject.toml stays in charge unless the editor says otherwise.
 */
export function overridesFrom(settings: QdqSettings): ConfigOverrides {
  const d = defaultSettings();
  const o: ConfigOverrides = {};
  if (settings.calibrationMethod !== d.calibrationMethod) o.method = settings.calibrationMethod;
  if (settings.percentile !== d.percentile) o.percentile = settings.percentile;
  if (settings.calibrationBatches !== d.calibrationBatches) o.batches = settings.calibrationBatches;
  if (settings.opset !== d.opset) o.opset = settings.opset;
  if (settings.outDir !== d.outDir) o.outDir = settings.outDir;
  if (settings.target !== d.target) o.target = settings.target;
  return o;
}

export async function run(command: string, opts: RunOptions): Promise<RunResult> {
  const plan = commandSpec(command)?.pipeline;
  if (!plan) throw new Error(`not a pipeline command: ${command}`);
  const cancel = new CancelToken();
  const onAbort = () => cancel.cancel();
  if (opts.signal.aborted) cancel.cancel();
  opts.signal.addEventListener('abort', onAbort);
  try {
    const result = await pipelineRun().runPipeline(
      {
        projectDir: opts.projectDir,
        steps: [...plan.steps],
        python: opts.python,
        overrides: { ...overridesFrom(opts.settings), ...(opts.method ? { method: opts.method } : {}) },
        dynamicOnly: plan.dynamicOnly,
        reuseHistograms: plan.reuseHistograms,
        onLog: (line) => opts.log(`[backend] ${line}`),
      },
      (p) => {
        const [lo, hi] = STEP_SPAN[p.step] ?? [0, 100];
        const frac = p.total ? Math.min(1, p.done / p.total) : 0;
        opts.onProgress({ percent: Math.round(lo + (hi - lo) * frac), message: p.message });
      },
      cancel,
    );
    const calibrationFile = result.report.files?.calibration;
    let quantizers: CalibratedQuantizer[] | undefined;
    if (calibrationFile) {
      const text = await readWorkspaceFileOrLog(calibrationFile, MAX_RESULTS_BYTES, opts.log);
      quantizers = text === undefined ? undefined : parseQuantizers(text);
    }
    quantizers ??= result.report.quantizers.length
      ? (result.report.quantizers as unknown as CalibratedQuantizer[])
      : undefined;
    return {
      summary: { reportPath: result.reportPath, outDir: result.outDir, report: result.report },
      quantizers,
      python: result.report.python?.path,
      torchVersion: result.report.python?.torch_version,
    };
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
  }
}

export async function probeInterpreter(python: string | undefined, projectDir: string): Promise<InterpreterInfo> {
  try {
    const py = await interpreters().findInterpreter({ explicit: python || undefined, cwd: projectDir });
    return { python: py.path, pythonVersion: py.pythonVersion, torchVersion: py.torchVersion };
  } catch (err) {
    const e = asQdqError(err);
    return { python: python ?? '', problem: e.hint ? `${e.message}\n${e.hint}` : e.message };
  }
}

/**
 * Output folder of a project: [tool.qdq] out-dir (with the editor override), else the editor setting.
 * pyproject.toml is read as an untrusted workspace file (regular, size-capped, asynchronous).
 */
export async function outDirOf(
  projectDir: string,
  settings: QdqSettings,
  log: (line: string) => void,
): Promise<string> {
  const overrides = overridesFrom(settings);
  if (overrides.outDir) return path.resolve(projectDir, overrides.outDir);
  const text = await readWorkspaceFileOrLog(path.join(projectDir, 'pyproject.toml'), MAX_CONFIG_BYTES, log);
  let outDir: string | undefined;
  try {
    const r = text === undefined ? undefined : validateConfigText(text);
    if (r?.config && !r.diagnostics.some((d) => d.severity === 'error')) outDir = r.config.outDir;
  } catch {
    outDir = undefined; // a config the validator cannot read: the editor setting, as when there is none
  }
  return path.resolve(projectDir, outDir ?? settings.outDir);
}

/** The saved report of the last run (what QDQ: Show Report displays), or null when nothing ran yet. */
export async function readReport(
  projectDir: string,
  settings: QdqSettings,
  log: (line: string) => void,
): Promise<ReportResult | null> {
  const outDir = await outDirOf(projectDir, settings, log);
  const file = path.join(outDir, 'report.json');
  const report = await readJsonObject(file, log);
  if (!report) return null;
  const result: ReportResult = { reportPath: file, report, projectDir };
  // QAT and tune results of the same out-dir sit beside the run's figures in the report view.
  const qat = await readJsonObject(path.join(outDir, 'qat.json'), log, true);
  const tune = await readJsonObject(path.join(outDir, 'tune.json'), log, true);
  if (qat) result.qat = qat;
  if (tune) result.tune = tune;
  return result;
}

async function readJsonObject(
  file: string,
  log: (line: string) => void,
  optional = false,
): Promise<Record<string, unknown> | null> {
  const text = await readWorkspaceFileOrLog(file, MAX_RESULTS_BYTES, optional ? () => undefined : log);
  if (text === undefined) return null;
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    log(`qdq: ${file} is not valid JSON: ignored`);
    return null;
  }
}

export function describeError(err: unknown): ErrorInfo {
  const e = asQdqError(err);
  return { kind: e.kind, message: e.message, hint: e.hint || undefined, detail: e.detail };
}
