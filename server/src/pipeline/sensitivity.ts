// `qdq sensitivity` and `qdq tune`: one load + one calibration (the pipeline's), then the backend's per-group
// measurements (backend/qdq_backend/sensitivity.py). This file owns the session and sensitivity.json; tune.ts owns
// the precision plan, its keep_float edits and tune.json.
import * as fs from 'fs';
import * as path from 'path';
import { loadConfig, ConfigError, QdqConfig } from './config';
import { findInterpreter } from './interpreter';
import { BackendClient, ProgressEvent } from './backendClient';
import { QdqError, CancelToken } from './errors';
import { quantizeModelSource, PipelineOptions } from './run';
import { writeFileAtomic } from '../onnx/atomic';

export interface SensitivityProgress {
  step: 'interpreter' | 'load' | 'calibrate' | 'sensitivity' | 'tune';
  done: number;
  total: number | null;
  message: string;
}

export interface GroupInfo {
  label: string;
  /** Source sites "file::Class.attr", the key a keep_float edit is made from. */
  sites: string[];
  quantizers: string[];
}

export interface SensitivityResult {
  metric: 'top1' | 'sqnr_db';
  samples: number;
  fp32: number;
  all_int8: number;
  evaluations: number;
  groups: (GroupInfo & { only_int8: number; only_float: number })[];
}

/** A loaded, calibrated model in a running backend. */
export interface Session {
  projectDir: string;
  cfg: QdqConfig;
  outDir: string;
  modelPath: string;
  call<T>(method: string, params: Record<string, unknown>): Promise<T>;
  close(): Promise<void>;
}

type SessionOptions = Pick<PipelineOptions, 'projectDir' | 'python' | 'overrides' | 'onLog'>;

function configOf(projectDir: string, opts: SessionOptions): QdqConfig {
  if (!fs.existsSync(projectDir) || !fs.statSync(projectDir).isDirectory())
    throw new QdqError('config', `project folder ${projectDir} does not exist`, 'pass a folder with pyproject.toml');
  try {
    return loadConfig(projectDir, opts.overrides);
  } catch (e) {
    if (e instanceof ConfigError) throw new QdqError('config', e.message, e.hint);
    throw e;
  }
}

/** Quantize a copy, start the backend, load and calibrate: the same steps and parameters `qdq run` uses. */
export async function openSession(
  opts: SessionOptions,
  onProgress: (p: SensitivityProgress) => void,
  cancel: CancelToken,
): Promise<Session> {
  const projectDir = path.resolve(opts.projectDir);
  const cfg = configOf(projectDir, opts);
  const outDir = path.resolve(projectDir, cfg.outDir);
  fs.mkdirSync(outDir, { recursive: true });
  onProgress({ step: 'interpreter', done: 0, total: null, message: 'looking for a Python with torch' });
  const py = await findInterpreter({ explicit: opts.python, cwd: projectDir });
  cancel.throwIfCancelled();
  const quantized = quantizeModelSource(projectDir, cfg, outDir, false, []);
  const pythonExe = py.executable && fs.existsSync(py.executable) ? py.executable : py.path;
  const backend = BackendClient.start({ python: pythonExe, projectDir, onLog: opts.onLog });
  const forward = (p: ProgressEvent) =>
    onProgress({
      step: (['calibrate', 'sensitivity', 'tune'].includes(p.step) ? p.step : 'load') as SensitivityProgress['step'],
      done: p.done,
      total: p.total,
      message: p.message,
    });
  const call = <T>(method: string, params: Record<string, unknown>) =>
    backend.request<T>(method, params, { onProgress: forward, cancel });
  try {
    await call('initialize', {});
    onProgress({ step: 'load', done: 0, total: null, message: `loading ${cfg.model}` });
    await call('load', {
      project_dir: projectDir,
      model: cfg.model,
      example_inputs: cfg.exampleInputs,
      input_shapes: cfg.inputShapes,
      calibration_data: cfg.calibrationData,
      eval_data: cfg.evalData,
      model_source_override: quantized.override,
    });
    await call('calibrate', {
      method: cfg.method,
      percentile: cfg.percentile,
      batches: cfg.batches,
      out_dir: outDir,
    });
  } catch (e) {
    await backend.shutdown().catch(() => undefined);
    throw e;
  }
  const modelPath = path.resolve(projectDir, cfg.model.slice(0, cfg.model.lastIndexOf(':')));
  return { projectDir, cfg, outDir, modelPath, call, close: () => backend.shutdown() };
}

/** Held-out data for the metric: eval-data, else calibration batches past the ones calibrated on. */
export function metricParams(cfg: QdqConfig): Record<string, unknown> {
  return { calibration_batches: cfg.batches };
}

export async function runSensitivity(
  opts: SessionOptions,
  onProgress: (p: SensitivityProgress) => void = () => undefined,
  cancel: CancelToken = new CancelToken(),
): Promise<{ result: SensitivityResult; path: string }> {
  const session = await openSession(opts, onProgress, cancel);
  try {
    const result = await session.call<SensitivityResult>('sensitivity', metricParams(session.cfg));
    const out = path.join(session.outDir, 'sensitivity.json');
    writeFileAtomic(out, JSON.stringify({ version: 1, project_dir: session.projectDir, ...result }, null, 2) + '\n');
    return { result, path: out };
  } finally {
    await session.close().catch(() => undefined);
  }
}

const metricUnit = (m: string) => (m === 'top1' ? '%' : ' dB');

/** Groups worst first (largest loss when only that group is INT8), as a table for the terminal. */
export function formatSensitivity(r: SensitivityResult): string {
  const unit = metricUnit(r.metric);
  const rows = [...r.groups].sort((a, b) => a.only_int8 - b.only_int8);
  const width = Math.max(5, ...rows.map((g) => g.label.length));
  const lines = [
    `metric: ${r.metric === 'top1' ? 'top-1 on eval-data' : 'output SQNR vs FP32 on held-out batches'} (${r.samples} samples); FP32 ${r.fp32.toFixed(2)}${unit}, all INT8 ${r.all_int8.toFixed(2)}${unit}`,
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
