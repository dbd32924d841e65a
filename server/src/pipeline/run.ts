// The calibrate -> export -> verify orchestrator that both the CLI and the language server call.
// It owns the order of the steps and the report; the Python backend owns torch, the onnx/ layer owns the graphs.
import * as fs from 'fs';
import * as path from 'path';
import { loadConfigAsync, ConfigOverrides, QdqConfig, ConfigError } from './config';
import { findInterpreter, Interpreter } from '../common/interpreter';
import { BackendClient, ProgressEvent, RequestOptions } from './backendClient';
import type { CalibrateResult, ExportResult, LoadParams, LoadResult } from './backendProtocol.generated';
import { helperTemplatePath } from '../common/paths';
import { QdqError, CancelToken, asQdqError } from '../common/errors';
import {
  FileWriteError,
  MAX_MODEL_BYTES,
  MAX_RESULTS_BYTES,
  MAX_SOURCE_BYTES,
  newFileMode,
  readRegularBytes,
  readRegularFile,
  requireRegular,
  writeInPlace,
  writeNewFile as writeFileAtomic,
} from '../common/files';
import { quantizeFile } from '../fixes';
import { floatWeightedLayers } from '../fixes/floatLayers';
import { importedWeightedLayers } from '../fixes/importedLayers';
import { decodeModel, loadModel, Model, opsetVersion, writeModel } from '../onnx/model';
import { graphHazards, hazardNotes, type GraphHazard } from '../onnx/deploymentHazards';
import { foldWeights } from '../onnx/foldWeights';
import { typeForTensorrt, PrecisionReport } from '../onnx/tensorrtExport';
import { quantizeDynamic } from '../onnx/dynamic';
import { probeU8S8Saturation, SATURATION_NOTE } from '../onnx/cpuInt8';
import { qdqStats, QuantizerInfo, QdqStats } from '../onnx/qdqStats';
import { trtCheck } from '../onnx/trtCheck';
import { optimizeForOrtCpu, ortCpuRewriteChanged, OrtCpuResult } from '../onnx/ortCpu';
import { loadEvalFile, EvalBatch } from '../onnx/verify';
import { verifyForms, FormToVerify, FormsVerification } from '../onnx/verifyForms';
import { EvalMeta, formsReport, FormsReport, loadEvalMeta } from './report';
import { exportOrtCpuForm, measureOrtCpuStep, removeStaleOrtCpuForm } from './forms';
import type { OrtCpuMeasured } from '../onnx/ortCpuMeasured';
import { addQuantizerLines } from './sourceLines';
import { backendTarget, baseLoadParams, loadPatched } from './libraryLoad';

export type PipelineStep = 'calibrate' | 'export' | 'verify';

export interface PipelineOptions {
  projectDir: string;
  /** Steps wanted; earlier ones they depend on run too (export needs calibrate, verify needs export). */
  steps: PipelineStep[];
  /** Quantize the model file in place (and copy qdq_quant.py beside it) instead of on a copy. */
  write?: boolean;
  /** Interpreter path (`--python`, the editor setting); otherwise discovered. */
  python?: string;
  overrides?: ConfigOverrides;
  /** Also write the dynamic-quantization model (no calibration needed), verified when verify runs. */
  dynamic?: boolean;
  /** Only dynamic quantization: export FP32, rewrite it in TypeScript, skip the static INT8 model. */
  dynamicOnly?: boolean;
  onLog?: (line: string) => void;
  latencyRuns?: number;
  /** Runs between calibrate and export on the same backend (QAT fine-tunes there: server/src/pipeline/qat.ts). */
  afterCalibrate?: (step: AfterCalibrate) => Promise<void>;
  /** Already quantized text of the model file to run instead of quantizing the file (qdq tune's mixed plan). */
  modelSource?: string;
  /** amax from the histograms the last calibration saved in the out-dir (another method, no pass over the data). */
  reuseHistograms?: boolean;
  /** How long a cancelled request may take to stop before the backend is killed (BackendClient's default: 5 s). */
  cancelGraceMs?: number;
  /**
   * Only the target's INT8 form: no second (ort-cpu) form when no target is chosen, no dynamic model. qdq tune's
   * latency rows read only the target's form, so the others would be export and verification time for nothing.
   */
  targetFormOnly?: boolean;
}

/** What an afterCalibrate step gets: the backend, the `load` params it was loaded with, the output folder. */
export interface AfterCalibrate {
  backend: BackendClient;
  load: LoadParams;
  config: QdqConfig;
  outDir: string;
  cancel: CancelToken;
  notes: string[];
}

export interface PipelineProgress {
  step:
    | 'interpreter'
    | 'quantize'
    | 'load'
    | 'calibrate'
    | 'histogram'
    | 'export'
    | 'fold'
    | 'dynamic'
    | 'verify'
    | 'report';
  done: number;
  total: number | null;
  message: string;
}

export interface Report {
  version: 1;
  project_dir: string;
  model: string;
  model_class: string | null;
  python: { path: string; python_version: string; torch_version: string };
  method: string;
  percentile: number | null;
  batches_seen: number | null;
  calibration_data_kind: string | null;
  target: string;
  exporter: string | null;
  opset: number;
  files: Record<string, string>;
  quantizers: Record<string, unknown>[];
  qdq_pairs: number | null;
  weighted_ops: number | null;
  unquantized_weighted_ops: QdqStats['unquantized_weighted_ops'];
  tensorrt_unsupported_ops: { op: string; count: number; nodes: string[]; note?: string }[];
  tensorrt_checked: boolean;
  outputs: { name: string; cosine: number; max_abs_diff: number }[];
  cosine_min: number | null;
  max_abs_diff: number | null;
  top1_agreement: number | null;
  accuracy: { fp32: number; int8: number } | null;
  latency_ms: { fp32: number; int8: number } | null;
  /** Shape of the input the latencies were measured on (the first evaluation batch). */
  latency_input_shape: number[] | null;
  size_bytes: { fp32: number; int8: number } | null;
  eval_samples: number | null;
  /** target ort-cpu: what the ORT-specific rewrite changed. */
  ort_cpu_rewrite?: OrtCpuResult;
  /** The ort-cpu form timed against FP32, and what was left float for it (onnx/ortCpuMeasured.ts). */
  ort_cpu_measured?: OrtCpuMeasured;
  /** target tensorrt: each layer's precision in the strongly typed graph, and why. */
  precision?: PrecisionReport;
  /** TRT062-TRT065 found on the exported graph (targets tensorrt/tensorrt10), with the source sites (onnx/deploymentHazards.ts). */
  deployment_hazards?: GraphHazard[];
  dynamic?: {
    file: string;
    quantized_ops: number;
    skipped_ops: { node: string; op: string; reason: string }[];
    cosine_min?: number;
    max_abs_diff?: number;
    top1_agreement?: number | null;
    accuracy?: { fp32: number; int8: number } | null;
    latency_ms?: { fp32: number; int8: number };
    size_bytes?: { fp32: number; int8: number };
  };
  /** FP32 and every INT8 form side by side, where they were measured, and the headline (pipeline/report.ts). */
  compare?: FormsReport;
  /** Installed library modules patched in memory (automatically found or from patch-modules). */
  patched_modules?: string[];
  notes: string[];
}

export interface PipelineResult {
  report: Report;
  reportPath: string;
  config: QdqConfig;
  outDir: string;
}

function splitSpec(spec: string): { file: string; fn: string } {
  const i = spec.lastIndexOf(':');
  return { file: spec.slice(0, i), fn: spec.slice(i + 1) };
}

const BACKEND_TO_STEP: Record<string, PipelineProgress['step']> = {
  load: 'load',
  calibrate: 'calibrate',
  histogram: 'histogram',
  export: 'export',
};

/**
 * The model file [tool.qdq] names: a regular file of bounded size, read without blocking the event loop (the
 * pipeline runs inside the language server too).
 */
export async function readModelSource(
  projectDir: string,
  cfg: QdqConfig,
): Promise<{ file: string; modelPath: string; original: string }> {
  const { file } = splitSpec(cfg.model);
  const modelPath = path.resolve(projectDir, file);
  let original: string | undefined;
  try {
    original = await readRegularFile(modelPath, MAX_SOURCE_BYTES);
  } catch (err) {
    throw new QdqError('config', (err as Error).message, 'make the model file a regular Python file');
  }
  if (original === undefined) {
    throw new QdqError(
      'config',
      `[tool.qdq] model names ${file}, which does not exist in ${projectDir}`,
      'set model = "path/to/file.py:factory" relative to pyproject.toml',
    );
  }
  return { file, modelPath, original };
}

/** Source of the model file, quantized (on a copy unless `write`), as the backend should run it. */
export async function quantizeModelSource(
  projectDir: string,
  cfg: QdqConfig,
  outDir: string,
  write: boolean,
  notes: string[],
): Promise<{
  override?: { file: string; source: string };
  files: Record<string, string>;
  /** The model file before and after quantizing (for the quantizers' source lines). */
  texts?: { file: string; original: string; quantized: string };
}> {
  const { file, modelPath, original } = await readModelSource(projectDir, cfg);
  const relativeImport = /^\s*from\s+\.+[\w.]*\s+import\s/m.test(original);
  let q: { text: string };
  // Layer classes and factories the model file imports from modules on disk (timm's Linear, create_conv2d).
  const externalLayers = await importedWeightedLayers(modelPath, original);
  try {
    q = quantizeFile(original, { scope: { kind: 'file' }, relativeImport, externalLayers });
  } catch (e) {
    throw new QdqError(
      'config',
      `cannot quantize ${file}: ${(e as Error).message}`,
      'fix the problem named above (a syntax error in the file, for one), or insert the quantizers in the editor',
    );
  }
  for (const f of floatWeightedLayers(q.text, externalLayers))
    notes.push(
      `left in float: ${file}:${f.line} ${f.cls ? f.cls + '.' : ''}${f.attr ?? ''} = ${f.callee}(...): ${f.reason}`,
    );
  const files: Record<string, string> = {};
  const helperSrc = helperTemplatePath();
  if (write) {
    if (q.text !== original) {
      writeInPlaceOrConfigError(modelPath, q.text, file);
      notes.push(`quantized ${file} in place (--write)`);
    }
    const helper = path.join(path.dirname(modelPath), 'qdq_quant.py');
    if (!fs.existsSync(helper) && fs.existsSync(helperSrc)) {
      writeFileAtomic(helper, fs.readFileSync(helperSrc));
      files.helper = helper;
    }
    files.model_source = modelPath;
    return { files, texts: { file: modelPath, original: q.text, quantized: q.text } };
  }
  // On a copy: the user's file stays untouched; the quantized text goes to the backend and, for reading,
  // into <out-dir>/quantized/ next to its own qdq_quant.py.
  const copyDir = path.join(outDir, 'quantized');
  const copy = path.join(copyDir, path.basename(modelPath));
  writeFileAtomic(copy, q.text);
  if (fs.existsSync(helperSrc)) writeFileAtomic(path.join(copyDir, 'qdq_quant.py'), fs.readFileSync(helperSrc));
  files.model_source = copy;
  if (q.text === original)
    notes.push(`quantizing ${file} changed nothing (already quantized, or no layers of its own); ran it as written`);
  else
    notes.push(
      `quantized a copy of ${file} (${path.relative(projectDir, copy)}); your file is unchanged (use --write to change it)`,
    );
  return {
    override: { file: modelPath, source: q.text },
    files,
    texts: { file: modelPath, original, quantized: q.text },
  };
}

function writeInPlaceOrConfigError(file: string, text: string, shown: string): void {
  try {
    writeInPlace(file, text, shown);
  } catch (e) {
    if (e instanceof FileWriteError)
      throw new QdqError('config', e.message, 'or run without --write: the quantized copy goes to the out-dir');
    throw e;
  }
}

/**
 * The output folder, created. The project file may only name a folder inside the project (a cloned repository
 * must not make qdq write elsewhere); one given on the command line or in the editor settings may be anywhere
 * but the file system root or a folder that holds the project.
 */
function prepareOutDir(projectDir: string, outDirSetting: string, explicit: boolean): string {
  const outDir = path.resolve(projectDir, outDirSetting);
  const rel = path.relative(projectDir, outDir);
  const inside = rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  const holdsProject = !path.relative(outDir, projectDir).startsWith('..');
  if (!inside && !explicit)
    throw new QdqError(
      'config',
      `[tool.qdq] out-dir = "${outDirSetting}" is ${rel === '' ? 'the project folder itself' : `outside the project (${outDir})`}; qdq writes only inside the project unless told to`,
      'name a folder inside the project, e.g. out-dir = "qdq-out", or pass --out-dir on the command line to write elsewhere',
    );
  if (holdsProject)
    throw new QdqError(
      'config',
      `out-dir ${outDir} is ${outDir === path.parse(outDir).root ? 'the file system root' : 'a folder that holds the project'}; qdq will not write its outputs there`,
      'use a folder of its own, e.g. qdq-out inside the project',
    );
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(outDir);
  } catch {
    st = undefined;
  }
  if (st && !st.isDirectory())
    throw new QdqError(
      'config',
      `out-dir ${outDir} is a file, not a folder`,
      'point out-dir at a folder (it is created when missing), or move that file away',
    );
  try {
    fs.mkdirSync(outDir, { recursive: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new QdqError(
      'config',
      `cannot create out-dir ${outDir}: ${err.code === 'ENOTDIR' ? 'a part of that path is a file' : err.code === 'EACCES' ? 'permission denied' : err.message}`,
      'point out-dir at a folder you can write',
    );
  }
  return outDir;
}

/**
 * The backend ending with an exit code and no Python error, while it runs the user's code (load, calibrate,
 * export), is that code leaving the process (os._exit, a native crash): say so instead of "report it".
 */
function explainBackendExit(err: QdqError): QdqError {
  const m = /exited with code (-?\d+) during (load|calibrate|export)\b/.exec(err.message);
  if (err.kind !== 'backend_died' || !m) return err;
  return new QdqError(
    'backend_died',
    `the Python backend stopped with exit code ${m[1]} while running your model's code (${m[2]}), without a Python error`,
    'something in the model or its data functions ended the process: look for os._exit() or sys.exit() in them, ' +
      'or a native extension that crashed; its last output is above',
    err.detail,
  );
}

/** The backend writes its outputs 0600 (Python's temp files); every output gets the mode the rest of qdq uses. */
function sameModeAsOurFiles(outDir: string, files: Record<string, string>): void {
  const mode = newFileMode();
  const inside = (f: string) => !path.relative(outDir, f).startsWith('..');
  for (const f of Object.values(files)) {
    if (!f || !inside(f)) continue;
    for (const file of [f, f.replace(/\.json$/, '.bin')]) {
      try {
        if ((fs.statSync(file).mode & 0o777) !== mode) fs.chmodSync(file, mode);
      } catch {
        /* not written by this run */
      }
    }
  }
}

/** The quantizer records as report.json keeps them: the 64-bucket histogram stays, for the calibration explorer. */
function summarizeQuantizer(q: Record<string, unknown>): Record<string, unknown> {
  return { ...q };
}

/** The project folder and its [tool.qdq] config, or a `config` error saying what to fix. */
async function projectConfig(opts: PipelineOptions): Promise<{ projectDir: string; cfg: QdqConfig }> {
  const projectDir = path.resolve(opts.projectDir);
  if (!fs.existsSync(projectDir) || !fs.statSync(projectDir).isDirectory()) {
    throw new QdqError(
      'config',
      `project folder ${opts.projectDir} does not exist`,
      'pass a folder that holds pyproject.toml with a [tool.qdq] table',
    );
  }
  try {
    return { projectDir, cfg: await loadConfigAsync(projectDir, opts.overrides) };
  } catch (e) {
    if (e instanceof ConfigError) throw new QdqError('config', e.message, e.hint);
    throw e;
  }
}

/** What the steps of one run share: the config, the backend and its request options, the report being filled. */
interface Run {
  opts: PipelineOptions;
  cfg: QdqConfig;
  projectDir: string;
  outDir: string;
  /** Where the backend writes: outDir, or a work folder for a dynamic-only run (removed afterwards). */
  workDir: string;
  backend: BackendClient;
  rpc: RequestOptions;
  /** No target chosen: the TensorRT form and the ort-cpu form, both exported and timed, from one calibration. */
  bothForms: boolean;
  /** Library modules patched in memory, set by the load step. */
  patchedModules?: string[];
  notes: string[];
  onProgress: (p: PipelineProgress) => void;
  cancel: CancelToken;
}

export async function runPipeline(
  opts: PipelineOptions,
  onProgress: (p: PipelineProgress) => void = () => undefined,
  cancel: CancelToken = new CancelToken(),
): Promise<PipelineResult> {
  const { projectDir, cfg } = await projectConfig(opts);
  const wantVerify = opts.steps.includes('verify');
  const wantExport = wantVerify || opts.steps.includes('export') || !!opts.dynamicOnly;
  // No target chosen: the TensorRT form and the one ONNX Runtime's CPU provider fuses, both exported and timed,
  // from one calibration pass (which then covers the ort-cpu output quantizers too).
  const bothForms =
    !cfg.targetGiven && cfg.target === 'tensorrt' && wantExport && !opts.dynamicOnly && !opts.targetFormOnly;
  const outDir = prepareOutDir(projectDir, cfg.outDir, opts.overrides?.outDir !== undefined);
  const notes: string[] = [];

  onProgress({ step: 'interpreter', done: 0, total: null, message: 'looking for a Python with torch' });
  const py: Interpreter = await findInterpreter({ explicit: opts.python, cwd: projectDir });
  cancel.throwIfCancelled();

  onProgress({ step: 'quantize', done: 0, total: 1, message: `quantizing ${splitSpec(cfg.model).file}` });
  const quantized =
    opts.modelSource === undefined
      ? await quantizeModelSource(projectDir, cfg, outDir, !!opts.write, notes)
      : {
          override: { file: path.resolve(projectDir, splitSpec(cfg.model).file), source: opts.modelSource },
          files: {} as Record<string, string>,
        };
  onProgress({ step: 'quantize', done: 1, total: 1, message: 'quantized' });

  onProgress({
    step: 'load',
    done: 0,
    total: null,
    message: `starting the backend (${py.executable || py.path}, torch ${py.torchVersion})`,
  });
  // sys.executable rather than the name probed: skips launcher shims (pyenv) and shows the real interpreter.
  const pythonExe = py.executable && fs.existsSync(py.executable) ? py.executable : py.path;
  const backend = BackendClient.start({
    python: pythonExe,
    projectDir,
    onLog: opts.onLog,
    cancelGraceMs: opts.cancelGraceMs,
  });
  const forward = (p: ProgressEvent) =>
    onProgress({ step: BACKEND_TO_STEP[p.step] ?? 'load', done: p.done, total: p.total, message: p.message });
  // Dynamic-only export still needs the FP32 file from the backend, whose export wants calibrated quantizers:
  // one `max` batch satisfies it cheaply, in a work folder so the real calibration and INT8 model stay as they are.
  const workDir = opts.dynamicOnly ? path.join(outDir, '.dynamic-work') : outDir;
  const run: Run = {
    opts,
    cfg,
    projectDir,
    outDir,
    workDir,
    backend,
    rpc: { onProgress: forward, cancel },
    bothForms,
    notes,
    onProgress,
    cancel,
  };
  try {
    await backend.initialize(run.rpc);
    const { loadParams, loaded, calib } = await loadAndCalibrate(run, quantized.override);
    const texts = quantized.texts;
    if (texts)
      addQuantizerLines(
        calib.quantizers as unknown as Record<string, unknown>[],
        texts.file,
        texts.original,
        texts.quantized,
      );
    const report = initialReport(run, { path: pythonExe, py }, quantized.files, loaded, calib);
    if (opts.afterCalibrate)
      await opts.afterCalibrate({ backend, load: loadParams, config: cfg, outDir, cancel, notes });
    if (wantExport) await exportAndVerify(run, report, calib.quantizers as unknown as QuantizerInfo[], wantVerify);
    else await backend.shutdown();
    cancel.throwIfCancelled();
    const reportPath = await writeReport(run, report);
    onProgress({ step: 'report', done: 1, total: 1, message: `wrote ${reportPath}` });
    return { report, reportPath, config: cfg, outDir };
  } catch (e) {
    backend.kill();
    if (opts.dynamicOnly) fs.rmSync(path.join(outDir, '.dynamic-work'), { recursive: true, force: true });
    throw explainBackendExit(asQdqError(e));
  } finally {
    if (backend.alive) backend.kill();
  }
}

/** The backend's `load` of the quantized source, then `calibrate` (one max batch for a dynamic-only run). */
async function loadAndCalibrate(
  run: Run,
  override: LoadParams['model_source_override'],
): Promise<{ loadParams: LoadParams; loaded: LoadResult; calib: CalibrateResult }> {
  const { cfg, opts, backend, rpc, notes } = run;
  const library = await loadPatched(backend, cfg, baseLoadParams(run.projectDir, cfg, override), rpc, (message) =>
    run.onProgress({ step: 'load', done: 0, total: null, message }),
  );
  const { params: loadParams, loaded } = library;
  notes.push(...library.notes);
  run.patchedModules = library.patchedModules;
  if (loaded.calibration_data_kind === 'random-normal') {
    notes.push(
      'calibrated on random normal batches of the input shapes (no calibration-data configured): ranges are only indicative',
    );
  }
  const calib = await backend.calibrate(
    {
      method: opts.dynamicOnly ? 'max' : cfg.method,
      percentile: cfg.percentile,
      batches: opts.dynamicOnly ? 1 : cfg.batches,
      out_dir: run.workDir,
      // With no target chosen, a calibrate-only run keeps the ort-cpu output ranges too (same pass), so that a
      // later export can reuse its histograms for both forms.
      outputs:
        run.bothForms || cfg.target === 'ort-cpu' || (!cfg.targetGiven && !opts.dynamicOnly && !opts.targetFormOnly),
      reuse_histograms: opts.reuseHistograms && !opts.dynamicOnly ? true : undefined,
    },
    rpc,
  );
  if (opts.reuseHistograms && !opts.dynamicOnly)
    notes.push(
      `amax by ${cfg.method} from the histograms saved by the last calibration (${calib.batches_seen} batches): no new pass over the data`,
    );
  const fallbacks = (calib.fallbacks as string[] | undefined) ?? [];
  if (fallbacks.length) {
    notes.push(
      `entropy fell back to percentile for ${fallbacks.join(', ')}: its amax clipped a large share of the values (reasons in report.quantizers[].fallback)`,
    );
  }
  return { loadParams, loaded, calib };
}

/** The report as it stands after calibration; the export and verify steps fill in the rest. */
function initialReport(
  run: Run,
  python: { path: string; py: Interpreter },
  files: Record<string, string>,
  loaded: LoadResult,
  calib: CalibrateResult,
): Report {
  const { cfg } = run;
  const quantizers = calib.quantizers as unknown as Record<string, unknown>[];
  return {
    version: 1,
    project_dir: run.projectDir,
    model: cfg.model,
    model_class: loaded.model_class ?? null,
    python: { path: python.path, python_version: python.py.pythonVersion, torch_version: python.py.torchVersion },
    method: cfg.method,
    percentile: cfg.method === 'percentile' ? cfg.percentile : null,
    batches_seen: calib.batches_seen ?? null,
    calibration_data_kind: loaded.calibration_data_kind ?? null,
    target: cfg.target,
    exporter: null,
    opset: cfg.opset,
    files: {
      ...files,
      calibration: calib.calibration_file,
      ...(fs.existsSync(path.join(run.workDir, 'histograms.json'))
        ? { histograms: path.join(run.workDir, 'histograms.json') }
        : {}),
    },
    quantizers: quantizers.map(summarizeQuantizer),
    qdq_pairs: null,
    weighted_ops: null,
    unquantized_weighted_ops: [],
    tensorrt_unsupported_ops: [],
    tensorrt_checked: false,
    outputs: [],
    cosine_min: null,
    max_abs_diff: null,
    top1_agreement: null,
    accuracy: null,
    latency_ms: null,
    latency_input_shape: null,
    size_bytes: null,
    eval_samples: null,
    patched_modules: run.patchedModules ?? [],
    notes: run.notes,
  };
}

/** Export, the INT8 model's TypeScript passes, dynamic quantization, the backend's shutdown, then verification. */
async function exportAndVerify(
  run: Run,
  report: Report,
  quantizers: QuantizerInfo[],
  wantVerify: boolean,
): Promise<void> {
  const { opts, cfg, backend, cancel, onProgress } = run;
  // Before any integer form is built: their weight range depends on this CPU's kernels.
  if (await probeU8S8Saturation()) run.notes.push(SATURATION_NOTE);
  const exp = await backend.export(
    {
      out_dir: run.workDir,
      opset: cfg.opset,
      dynamic_batch: cfg.dynamicBatch,
      // tensorrt10 exports the same Q/DQ placement; only the typing step differs.
      target: backendTarget(cfg.target),
      fold_weights: false,
    },
    run.rpc,
  );
  if (opts.dynamicOnly) keepDynamicOnlyFiles(run, report, exp);
  exportNotes(run, report, exp);
  report.exporter = exp.exporter ?? null;
  report.files.fp32_onnx = exp.fp32_onnx;
  report.files.eval = exp.eval_file;
  if (!opts.dynamicOnly) {
    report.files.int8_onnx = exp.int8_onnx;
    // The INT8 file as exported, read once: finishInt8Model rewrites a decoded copy, and on the ort-cpu target the
    // measured step below rewrites it again with op kinds in float.
    const exported = requireRegular(exp.int8_onnx, await readRegularBytes(exp.int8_onnx, MAX_MODEL_BYTES));
    const calibration = { batchNormOutputAmax: exp.batchnorm_output_amax };
    let ortCpu: Parameters<typeof measureOrtCpuStep>[0] | undefined =
      cfg.target === 'ort-cpu' && wantVerify ? { file: exp.int8_onnx, source: exported, calibration } : undefined;
    finishInt8Model(run, report, exp, quantizers, decodeModel(Buffer.from(exported)));
    if (!run.bothForms) removeStaleOrtCpuForm(run.outDir);
    else {
      onProgress({ step: 'export', done: 0, total: 1, message: 'exporting the ort-cpu form of the INT8 model' });
      const second = await exportOrtCpuForm(backend, run.rpc, run.outDir, cfg);
      report.files.int8_ort_cpu_onnx = second.file;
      report.ort_cpu_rewrite = second.rewrite;
      ortCpu = second;
    }
    if (ortCpu && wantVerify) {
      onProgress({ step: 'export', done: 0, total: 1, message: 'timing the ort-cpu form against FP32' });
      await measureOrtCpuStep(ortCpu, exp.fp32_onnx, exp.eval_file, report, run.notes);
      const m = report.ort_cpu_measured;
      // The target's own file changed: the QDQ figures describe the graph written, not the one first built.
      if (ortCpu.file === exp.int8_onnx && m && (m.fp32_fallback || m.float_kinds.length))
        setQdqStats(report, qdqStats(await loadModel(exp.int8_onnx), quantizers));
    }
  }
  cancel.throwIfCancelled();
  if (opts.dynamic || opts.dynamicOnly || (wantVerify && !opts.targetFormOnly)) {
    onProgress({ step: 'dynamic', done: 0, total: 1, message: 'dynamic quantization of the FP32 model' });
    const m = await loadModel(exp.fp32_onnx);
    if (opts.dynamicOnly) report.opset = opsetVersion(m);
    const dyn = quantizeDynamic(m);
    const file = path.join(run.outDir, 'model.dynamic.onnx');
    writeModel(m, file);
    report.files.dynamic_onnx = file;
    report.dynamic = { file, quantized_ops: dyn.quantized.length, skipped_ops: dyn.skipped };
    onProgress({
      step: 'dynamic',
      done: 1,
      total: 1,
      message: `${dyn.quantized.length} MatMul/Gemm quantized dynamically`,
    });
  }
  await backend.shutdown();
  if (wantVerify || opts.dynamicOnly) await verifyStep(run, report, exp);
}

/** What the export could not do as asked: unused quantizers, the exporter's fallback, the graph's real opset. */
function exportNotes(run: Run, report: Report, exp: ExportResult): void {
  const unused = exp.unused_quantizers ?? [];
  if (unused.length) {
    // A branch the model builds but its outputs never use (BERT's pooler under last_hidden_state).
    run.notes.push(
      `${unused.length} quantizers sit in code whose result the outputs do not use, so the exporter leaves them out: ${unused.slice(0, 6).join(', ')}${unused.length > 6 ? ', ...' : ''}`,
    );
  }
  const residual = exp.residual_float ?? [];
  if (residual.length) {
    // backend/qdq_backend/residual_fusion.py: TensorRT fuses a residual add into a convolution, never into a
    // Linear/attention branch; there the quantizer would only round the residual stream.
    run.notes.push(
      `tensorrt: ${residual.length} residual-add quantizers left off (their add follows no convolution, so there is no Conv+Add fusion; the residual stream stays float, as in TensorRT's transformer recipes): ${residual.slice(0, 4).join(', ')}${residual.length > 4 ? ', ...' : ''}`,
    );
  }
  if (exp.exporter_fallback)
    run.notes.push(`exported with the dynamo exporter because the TorchScript one failed: ${exp.exporter_fallback}`);
  // The graph's own opset: the dynamo exporter writes at least 18 whatever was asked.
  if (!run.opts.dynamicOnly && typeof exp.opset === 'number') report.opset = exp.opset;
}

/** A dynamic-only run keeps the FP32 model and the eval data from its work folder, and no calibration. */
function keepDynamicOnlyFiles(run: Run, report: Report, exp: ExportResult): void {
  for (const key of ['fp32_onnx', 'eval_file'] as const) {
    const dest = path.join(run.outDir, path.basename(exp[key]));
    fs.renameSync(exp[key], dest);
    if (key === 'eval_file') fs.renameSync(exp[key].replace(/\.json$/, '.bin'), dest.replace(/\.json$/, '.bin'));
    exp[key] = dest;
  }
  fs.rmSync(run.workDir, { recursive: true, force: true });
  report.files.calibration = '';
  report.quantizers = [];
  report.batches_seen = null;
  run.notes.push('dynamic quantization only: no calibration data used');
}

/** The QDQ figures of the INT8 file; ops ort-cpu leaves in float on purpose are not counted as missed. */
function setQdqStats(report: Report, stats: QdqStats): void {
  report.qdq_pairs = stats.qdq_pairs;
  report.weighted_ops = stats.weighted_ops;
  // ort-cpu's cost models leave ops too small (or measured slower) for integer kernels in float on purpose.
  const onPurpose = new Set((report.ort_cpu_rewrite?.linears.float ?? []).map((f) => f.node));
  report.unquantized_weighted_ops = stats.unquantized_weighted_ops.filter(
    (u) => !onPurpose.has(u.node.replace(/_float$/, '')),
  );
}

/** The INT8 model's TypeScript passes: weights folded, the target's rewrite or typing, QDQ stats, TensorRT check. */
function finishInt8Model(run: Run, report: Report, exp: ExportResult, quantizers: QuantizerInfo[], model: Model): void {
  const { cfg, notes, onProgress } = run;
  onProgress({ step: 'fold', done: 0, total: 1, message: 'folding weights into INT8 initializers' });
  const folded = foldWeights(model);
  let rewritten = folded.folded.length > 0;
  if (cfg.target === 'ort-cpu') {
    // The QDQ form ORT's CPU provider fuses into integer kernels (onnx/ortCpu.ts).
    const o = optimizeForOrtCpu(model, {}, { batchNormOutputAmax: exp.batchnorm_output_amax });
    rewritten ||= ortCpuRewriteChanged(o);
    report.ort_cpu_rewrite = o;
  }
  if (cfg.target !== 'ort-cpu') {
    // Before typing: the graph as exported (its opset tells whether LayerNorm came out decomposed).
    report.deployment_hazards = graphHazards(model, quantizers);
    notes.push(...hazardNotes(report.deployment_hazards));
  }
  if (cfg.target === 'tensorrt' && cfg.floatPrecision !== 'fp32') {
    // TensorRT 11 builds strongly typed: what is not INT8 runs in the graph's own float types (onnx/strongTyping.ts).
    report.precision = typeForTensorrt(model, cfg.floatPrecision, quantizers, exp.fp32_markers ?? []);
    rewritten = true;
    const p = report.precision;
    notes.push(
      `tensorrt (strongly typed, ${p.float_precision}): ${Math.round(p.low_share * 100)}% of ${p.float_compute_ops} float compute ops in INT8/${p.float_precision}, ` +
        `${p.layers.filter((l) => l.precision === 'FP32').length} kept FP32 (reasons in report.precision), ${p.casts} Casts, opset ${p.opset}`,
    );
  }
  if (rewritten) writeModel(model, exp.int8_onnx);
  // The opset actually written: typing raises it (19 for FP16 scales) and a dynamo fallback exports 18.
  report.opset = opsetVersion(model);
  onProgress({ step: 'fold', done: 1, total: 1, message: `folded ${folded.folded.length} weights` });
  setQdqStats(report, qdqStats(model, quantizers));
  const keptFloat = report.ort_cpu_rewrite?.linears.float ?? [];
  if (keptFloat.length) {
    notes.push(
      `ort-cpu: ${keptFloat.length} ops too small for integer kernels left in float (${keptFloat.map((f) => f.node).join(', ')}; reasons in report.ort_cpu_rewrite)`,
    );
  }
  const padded = report.ort_cpu_rewrite?.convInputsPadded ?? [];
  if (padded.length) {
    notes.push(
      `ort-cpu: input channels zero-padded for ONNX Runtime's faster integer convolution: ${padded.map((p) => `${p.node} ${p.from} -> ${p.to}`).join(', ')}`,
    );
  }
  if (cfg.target === 'ort-cpu') {
    // Its graph is for ONNX Runtime (com.microsoft integer kernels); TensorRT takes the tensorrt target's file.
    report.tensorrt_checked = false;
    report.tensorrt_unsupported_ops = [];
    notes.push(
      'TensorRT operator check not run: target ort-cpu writes a graph for ONNX Runtime (use --target tensorrt for TensorRT)',
    );
  } else {
    const trt = trtCheck(model);
    report.tensorrt_checked = trt.checked;
    report.tensorrt_unsupported_ops = trt.unsupported;
    if (!trt.checked)
      notes.push('TensorRT operator check skipped: the operator matrix (server/src/knowledge) is not built');
  }
}

/** FP32 against every INT8 form (target, ort-cpu beside it, dynamic) with onnxruntime-node, timed together. */
async function verifyStep(run: Run, report: Report, exp: ExportResult): Promise<void> {
  const { opts, cfg, onProgress } = run;
  const total = (opts.dynamicOnly ? 0 : 1) + (report.dynamic ? 1 : 0);
  const forms: FormToVerify[] = [];
  if (!opts.dynamicOnly) forms.push({ name: cfg.target, file: exp.int8_onnx });
  if (report.files.int8_ort_cpu_onnx) forms.push({ name: 'ort-cpu', file: report.files.int8_ort_cpu_onnx });
  if (report.dynamic) forms.push({ name: 'dynamic', file: report.dynamic.file });
  onProgress({
    step: 'verify',
    done: 0,
    total,
    message: `running FP32 and ${forms.map((f) => f.name).join(', ')} with onnxruntime`,
  });
  const batches: EvalBatch[] = await loadEvalFile(exp.eval_file);
  const v = await verifyFormsOrExplain(exp.fp32_onnx, forms, batches, opts.latencyRuns);
  applyVerification(report, v, await loadEvalMeta(exp.eval_file), !opts.dynamicOnly, run.notes);
  onProgress({ step: 'verify', done: total, total, message: 'verified' });
}

/** report.json, atomically; a dynamic-only run keeps the static run's results and replaces its dynamic section. */
async function writeReport(run: Run, report: Report): Promise<string> {
  sameModeAsOurFiles(run.outDir, report.files);
  const reportPath = path.join(run.outDir, 'report.json');
  let toWrite: unknown = report;
  if (run.opts.dynamicOnly && fs.existsSync(reportPath)) {
    // Keep the static run's results; only the dynamic section is new.
    try {
      const previous = JSON.parse((await readRegularFile(reportPath, MAX_RESULTS_BYTES)) ?? '');
      toWrite = {
        ...previous,
        dynamic: report.dynamic,
        files: { ...previous.files, dynamic_onnx: report.files.dynamic_onnx },
      };
    } catch {
      /* unreadable: replace it */
    }
  }
  writeFileAtomic(
    reportPath,
    JSON.stringify(toWrite, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 1) + '\n',
  );
  return reportPath;
}

async function verifyFormsOrExplain(
  fp32: string,
  forms: FormToVerify[],
  batches: EvalBatch[],
  latencyRuns?: number,
): Promise<FormsVerification> {
  try {
    return await verifyForms(fp32, forms, batches, { latencyRuns });
  } catch (e) {
    throw new QdqError(
      'verify',
      `onnxruntime could not run ${forms.map((f) => path.basename(f.file)).join(', ')} against ${path.basename(fp32)}: ${(e as Error).message}`,
      'the exported graph may use an operator or type this onnxruntime does not support; see the message above',
    );
  }
}

/**
 * The verification's figures into the report: the side-by-side section, and the older flat fields (accuracy,
 * cosine_min, latency_ms, ...) for the primary form (the target) and the dynamic one, which readers of report.json
 * written before the forms existed still use.
 */
function applyVerification(
  report: Report,
  v: FormsVerification,
  meta: EvalMeta,
  hasStatic: boolean,
  notes: string[],
): void {
  const compare = formsReport(v, meta);
  report.compare = compare;
  const pairOf = (f: (typeof v.forms)[number]) => ({
    cosine_min: f.cosine_pooled,
    max_abs_diff: f.max_abs_diff,
    top1_agreement: f.top1_agreement,
    accuracy: f.accuracy !== null && v.fp32.accuracy !== null ? { fp32: v.fp32.accuracy, int8: f.accuracy } : null,
    latency_ms: { fp32: v.fp32.latency_ms, int8: f.latency_ms },
    size_bytes: { fp32: v.fp32.size_bytes, int8: f.size_bytes },
  });
  if (hasStatic) {
    const primary = v.forms[0];
    Object.assign(report, pairOf(primary), {
      outputs: primary.outputs,
      latency_input_shape: v.latency_batch_shape,
      eval_samples: v.samples,
    });
    const ortCpu = v.forms.find((f) => f.name === 'ort-cpu');
    if (report.target !== 'ort-cpu' && primary.latency_ms > v.fp32.latency_ms) {
      // ONNX Runtime on the CPU runs most of the TensorRT form's QDQ pairs as separate ops: without this, the
      // table reads as "INT8 is slower" when TensorRT would fuse them.
      notes.push(
        `INT8 (${report.target}) ran slower than FP32 here because ONNX Runtime's CPU provider does not fuse that QDQ form; TensorRT does. ` +
          (ortCpu
            ? `The ort-cpu form, written beside it for ONNX Runtime CPU, took ${ortCpu.latency_ms.toFixed(2)} ms (FP32 ${v.fp32.latency_ms.toFixed(2)} ms)`
            : 'For an INT8 model that is faster on ONNX Runtime CPU, export with --target ort-cpu or use the dynamic INT8'),
      );
    }
  }
  const dyn = v.forms.find((f) => f.name === 'dynamic');
  if (dyn && report.dynamic) Object.assign(report.dynamic, pairOf(dyn));
  if (!compare.measured_on.held_out || compare.measured_on.source !== 'eval-data')
    notes.push(`accuracy and similarity ${compare.measured_on.text}`);
}
