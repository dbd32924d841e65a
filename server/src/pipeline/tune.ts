// `qdq tune`: the fewest source groups kept in float so the metric stays within the budget (the search runs in the
// backend, sensitivity.py), written as keep_float edits (server/src/fixes) into a copy of the model or, with
// --write, into the file itself; and tune.json.
import * as fs from 'fs';
import * as path from 'path';
import { MAX_SOURCE_BYTES, readRegularFile } from '../common/files';
import { QdqError, CancelToken } from './errors';
import {
  openSession,
  metricParams,
  SensitivityProgress,
  SessionOptions,
  configOf,
  metricUnit,
  metricName,
  TuneResult,
} from './sensitivity';
import type { TuneParams } from './backendProtocol.generated';
import { PipelineOptions, PipelineResult, runPipeline } from './run';
import { keepFloat, quantizeFile } from '../fixes';
import { writeFileAtomic } from '../onnx/atomic';

export interface Budget {
  maxDrop: number;
  relative: boolean;
}

/** The backend's `tune` result (declared in backend/qdq_backend/protocol.schema.json). */
export type TuneBackendResult = TuneResult;

export interface TuneReport {
  version: 1;
  project_dir: string;
  metric: string;
  samples: number;
  /** The export target the latencies were measured for (tensorrt, tensorrt10 or ort-cpu: [tool.qdq] target). */
  target: string;
  budget: { max_drop: number; relative: boolean; target: number };
  /**
   * accuracy: the metric in PyTorch fake-quant on the held-out data (what the search optimizes). latency_ms:
   * ONNX Runtime on this machine's CPU, median, on the exported FP32 / all-INT8 / mixed models of `target`
   * (measured like qdq run; null when the pipeline could not measure it).
   */
  fp32: { accuracy: number; latency_ms: number | null };
  all_int8: { accuracy: number; latency_ms: number | null };
  mixed: {
    accuracy: number;
    latency_ms: number | null;
    /** Why latency_ms is null when the plan has float groups (a library model's plan: no source to export). */
    latency_note?: string;
    float_sites: string[];
    float_groups: string[];
  };
  /** Top-1 in percent of the exported models in ONNX Runtime on eval-data (null without labels). */
  onnxruntime_top1: { fp32: number | null; all_int8: number | null; mixed: number | null };
  within_budget: boolean;
  evaluations: number;
  groups: number;
  model_file: string | null;
  steps: { float: string[]; value: number }[];
}

/** "0.5" points or "1%" of FP32, from the flag or `[tool.qdq] max-accuracy-drop`. */
export function parseBudget(value: string | number | undefined): Budget | null {
  if (value === undefined) return null;
  const text = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)\s*(%?)$/.exec(text);
  if (!m) return null;
  return { maxDrop: Number(m[1]), relative: m[2] === '%' };
}

/** Offset of the layer a site's attribute path names inside `class cls`, in `text`; -1 when not found. */
export function siteOffset(text: string, cls: string, attr: string): number {
  const classAt = new RegExp(`^class\\s+${cls}\\b`, 'm').exec(text);
  if (!classAt) return -1;
  const nextClass = /^class\s/m.exec(text.slice(classAt.index + 1));
  const end = nextClass ? classAt.index + 1 + nextClass.index : text.length;
  const body = text.slice(classAt.index, end);
  const parts = attr.split('.');
  const last = parts[parts.length - 1].replace(/^_+/, '');
  if (!['input_quantizer', 'weight_quantizer', 'output_quantizer'].includes(last)) {
    // An op's quantizer (add0_residual_quantizer): where forward uses it.
    const use = body.indexOf(`self.${parts.join('.')}(`);
    return use < 0 ? -1 : classAt.index + use;
  }
  const layer = parts.slice(0, -1);
  const assign = new RegExp(`self\\.${layer[0]}\\s*=`).exec(body);
  if (!assign) return -1;
  let at = classAt.index + assign.index;
  for (const index of layer.slice(1)) {
    if (!/^\d+$/.test(index)) return at; // a submodule of the layer: the layer's own line
    const argStart = nthArgument(text, text.indexOf('(', at), Number(index));
    if (argStart < 0) return -1;
    at = argStart;
  }
  return at;
}

/** Start offset of the n-th top-level argument of the call whose '(' is at `open`. */
function nthArgument(text: string, open: number, n: number): number {
  if (open < 0) return -1;
  let depth = 0;
  let arg = 0;
  let start = open + 1;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) return -1;
    } else if (c === ',' && depth === 1) {
      if (arg === n) break;
      arg++;
      start = i + 1;
    }
    if (depth === 1 && arg === n && i >= start && !/\s/.test(c) && c !== ',' && c !== '(') return i;
  }
  return -1;
}

/** Operand suffixes of the operation quantizers qdq writes (backend sensitivity.py's _OPERAND, plus _quantizer). */
const OPERAND = /_(a|b|residual|local|left|right|\d+)_quantizer$/;

/** Quantized source with keep_float on every float site of `file`; sites it cannot place are returned. */
export function applyKeepFloat(
  quantizedText: string,
  file: string,
  floatSites: string[],
): { text: string; missing: string[] } {
  let text = quantizedText;
  const missing: string[] = [];
  const done = new Set<string>();
  for (const site of floatSites) {
    const [siteFile, rest] = site.split('::');
    if (path.resolve(siteFile) !== path.resolve(file)) {
      missing.push(site);
      continue;
    }
    const dot = rest.indexOf('.');
    const cls = rest.slice(0, dot);
    const attr = rest.slice(dot + 1);
    // One key per layer (its input and weight quantizers) and per operation (add0's residual and local operands):
    // keep_float on an operation removes all its operand quantizers at once.
    const layerKey = `${cls}.${attr.replace(/\.(input|weight|output)_quantizer$/, '').replace(OPERAND, '')}`;
    if (done.has(layerKey)) continue;
    const offset = siteOffset(text, cls, attr);
    const next = offset < 0 ? null : keepFloat(text, offset);
    if (!next || next.text === text) {
      missing.push(site);
      continue;
    }
    text = next.text;
    done.add(layerKey);
  }
  return { text, missing };
}

const percent = (fraction: number | undefined) => (fraction === undefined ? null : 100 * fraction);

type TuneOptions = SessionOptions & Pick<PipelineOptions, 'write'> & { maxDrop?: string };

/** The budget from the flag or `[tool.qdq] max-accuracy-drop`, checked before any work starts. */
function budgetOf(raw: string | number | undefined): Budget {
  const budget = parseBudget(raw);
  if (!budget)
    throw new QdqError(
      'config',
      raw === undefined
        ? 'qdq tune needs an accuracy budget'
        : `max-accuracy-drop "${raw}" is not points or a percentage`,
      'pass --max-drop 0.5 (points of top-1) or --max-drop 1% (of FP32), or set max-accuracy-drop in [tool.qdq]',
    );
  return budget;
}

const PIPELINE_STEPS: Record<string, SensitivityProgress['step']> = {
  interpreter: 'interpreter',
  quantize: 'load',
  load: 'load',
  calibrate: 'calibrate',
  histogram: 'calibrate',
  tune: 'tune',
};

/**
 * The search plus the all-INT8 latency in one `qdq run` pipeline: the tune request runs on that pipeline's backend
 * right after its calibration (afterCalibrate), so load and calibration happen once and the exported, verified
 * model is the all-INT8 one. With --nproc N the search runs in N workers first, then the pipeline.
 */
async function searchAndRunAllInt8(
  opts: TuneOptions,
  params: TuneParams,
  onProgress: (p: SensitivityProgress) => void,
  cancel: CancelToken,
): Promise<{ r: TuneBackendResult; run: PipelineResult }> {
  const forward = (p: { step: string; done: number; total: number | null; message: string }) =>
    onProgress({ step: PIPELINE_STEPS[p.step] ?? 'latency', done: p.done, total: p.total, message: p.message });
  const pipeline: PipelineOptions = {
    projectDir: opts.projectDir,
    python: opts.python,
    overrides: opts.overrides,
    onLog: opts.onLog,
    steps: ['verify'],
    targetFormOnly: true,
  };
  let r: TuneBackendResult | undefined;
  if ((opts.nproc ?? 1) > 1) {
    const session = await openSession(opts, onProgress, cancel);
    try {
      r = await session.tune(params);
    } finally {
      await session.close().catch(() => undefined);
    }
  } else {
    pipeline.afterCalibrate = async (step) => {
      r = await step.backend.tune(params, { onProgress: forward, cancel: step.cancel });
    };
  }
  const run = await runPipeline(pipeline, forward, cancel);
  if (!r) throw new QdqError('internal', 'the tune search returned nothing', 'report this as a bug');
  return { r, run };
}

const LIBRARY_LATENCY =
  'not measured: the float sites are in library modules patched in memory, so there is no mixed source to export';

/**
 * A library model's plan (its float sites in modules patched in memory, not in the user's files) cannot be
 * written as keep_float, nor exported: the note saying so, or null for a plan in the user's own source.
 */
function libraryPlan(r: TuneBackendResult, run: PipelineResult, modelPath: string): string | null {
  const modules = run.report.patched_modules ?? [];
  const elsewhere = r.float_sites.filter((site) => path.resolve(site.split('::')[0]) !== path.resolve(modelPath));
  if (!modules.length || !elsewhere.length) return null;
  return (
    `the quantization sites are in library modules patched in memory (${modules.join(', ')}), not in your source, ` +
    `so no keep_float can be written: the mixed row (${r.float_groups.length} group(s) in float) is measured in ` +
    `PyTorch fake quantization only, and its latency is left empty`
  );
}

/**
 * Gives the mixed run the all-INT8 run's calibration histograms: its quantizers are a subset of those (keep_float
 * only removes some), so it gets the very ranges the search measured with, and no second pass over the data.
 */
function shareCalibration(run: PipelineResult, tunedDir: string): boolean {
  const saved = run.report.files.histograms;
  if (!saved) return false;
  fs.mkdirSync(tunedDir, { recursive: true });
  fs.copyFileSync(saved, path.join(tunedDir, path.basename(saved)));
  return true;
}

export async function runTune(
  opts: TuneOptions,
  onProgress: (p: SensitivityProgress) => void = () => undefined,
  cancel: CancelToken = new CancelToken(),
): Promise<{ report: TuneReport; path: string; notes: string[] }> {
  const projectDir = path.resolve(opts.projectDir);
  const cfg = await configOf(projectDir, opts);
  const budget = budgetOf(opts.maxDrop ?? cfg.maxAccuracyDrop);
  const params: TuneParams = { ...metricParams(cfg), max_drop: budget.maxDrop, relative: budget.relative };
  const { r, run } = await searchAndRunAllInt8(opts, params, onProgress, cancel);
  const outDir = run.outDir;
  const modelPath = path.resolve(projectDir, cfg.model.slice(0, cfg.model.lastIndexOf(':')));
  const notes: string[] = [];
  let modelFile: string | null = null;
  let mixedRun: PipelineResult | null = null;
  const inLibrary = libraryPlan(r, run, modelPath);
  if (inLibrary) {
    notes.push(inLibrary);
  } else if (r.float_sites.length) {
    const original = await readRegularFile(modelPath, MAX_SOURCE_BYTES);
    if (original === undefined)
      throw new QdqError('config', `${modelPath} disappeared during the run`, 'run qdq tune again');
    const relativeImport = /^\s*from\s+\.+[\w.]*\s+import\s/m.test(original);
    const quantized = quantizeFile(original, { scope: { kind: 'file' }, relativeImport }).text;
    const edited = applyKeepFloat(quantized, modelPath, r.float_sites);
    if (edited.missing.length) notes.push(`could not place keep_float for: ${edited.missing.join(', ')}`);
    modelFile = opts.write ? modelPath : path.join(outDir, 'tuned', path.basename(modelPath));
    writeFileAtomic(modelFile, edited.text);
    notes.push(
      opts.write
        ? `wrote keep_float for ${r.float_groups.length} group(s) into ${path.relative(projectDir, modelFile)}`
        : `wrote the plan into a copy, ${path.relative(projectDir, modelFile)}; your file is unchanged (use --write to change it)`,
    );
    // The mixed model's latency: the same pipeline on the edited source, its outputs in <out-dir>/tuned.
    const tunedDir = path.join(outDir, 'tuned');
    mixedRun = await runPipeline(
      {
        projectDir,
        python: opts.python ?? run.report.python.path, // the interpreter the first run found
        overrides: { ...opts.overrides, outDir: tunedDir },
        onLog: opts.onLog,
        steps: ['verify'],
        modelSource: edited.text,
        targetFormOnly: true,
        reuseHistograms: shareCalibration(run, tunedDir),
      },
      (p) => onProgress({ step: 'latency', done: p.done, total: p.total, message: `mixed: ${p.message}` }),
      cancel,
    );
  } else if (r.within_budget) {
    notes.push('all INT8 is already within the budget: nothing kept in float');
  }
  if (!r.within_budget) notes.push('the budget cannot be met even with every group in float');
  const lat = run.report.latency_ms;
  if (lat && run.config.target !== 'ort-cpu' && lat.int8 > lat.fp32)
    notes.push(
      `the latencies are ONNX Runtime's CPU provider, which does not fuse the ${run.config.target} QDQ form (TensorRT does); set target = "ort-cpu" for CPU latencies`,
    );
  const report: TuneReport = {
    version: 1,
    project_dir: projectDir,
    metric: r.metric,
    samples: r.samples,
    target: run.config.target,
    budget: { max_drop: budget.maxDrop, relative: budget.relative, target: r.target },
    fp32: { accuracy: r.fp32, latency_ms: lat?.fp32 ?? null },
    all_int8: { accuracy: r.all_int8, latency_ms: lat?.int8 ?? null },
    mixed: {
      accuracy: r.mixed,
      latency_ms: mixedRun ? (mixedRun.report.latency_ms?.int8 ?? null) : inLibrary ? null : (lat?.int8 ?? null),
      ...(inLibrary ? { latency_note: LIBRARY_LATENCY } : {}),
      float_sites: r.float_sites,
      float_groups: r.float_groups.map((g) => g.label),
    },
    onnxruntime_top1: {
      fp32: percent(run.report.accuracy?.fp32),
      all_int8: percent(run.report.accuracy?.int8),
      mixed: inLibrary ? null : percent((mixedRun ?? run).report.accuracy?.int8),
    },
    within_budget: r.within_budget,
    evaluations: r.evaluations,
    groups: r.groups,
    model_file: modelFile,
    steps: r.steps,
  };
  const out = path.join(outDir, 'tune.json');
  writeFileAtomic(out, JSON.stringify(report, null, 2) + '\n');
  return { report, path: out, notes };
}

export function formatTune(r: TuneReport): string {
  const unit = metricUnit(r.metric);
  const row = (name: string, v: { accuracy: number; latency_ms: number | null }, extra = '') =>
    `${name.padEnd(10)}  ${(v.accuracy.toFixed(2) + unit).padStart(10)}  ${(v.latency_ms === null ? '-' : v.latency_ms.toFixed(2)).padStart(12)}  ${extra}`;
  return [
    `metric: ${metricName(r.metric, r.samples)}; budget: ${r.budget.relative ? `${r.budget.max_drop}% of FP32` : `${r.budget.max_drop} points`} (target ${r.budget.target.toFixed(2)}${unit})`,
    '',
    `${'precision'.padEnd(10)}  ${(r.metric === 'top1' ? 'top-1' : r.metric === 'sqnr_db' ? 'SQNR' : 'metric').padStart(10)}  ${'latency ms'.padStart(12)}  float groups`,
    `${'-'.repeat(10)}  ${'-'.repeat(10)}  ${'-'.repeat(12)}  ${'-'.repeat(12)}`,
    row('all FP32', r.fp32, `all ${r.groups}`),
    row('mixed', r.mixed, r.mixed.float_groups.length ? r.mixed.float_groups.join(', ') : 'none'),
    row('all INT8', r.all_int8, 'none'),
    '',
    `(${r.evaluations} evaluations in PyTorch fake-quant; latency: ONNX Runtime on this CPU, median, ${r.target} export)`,
  ].join('\n');
}
