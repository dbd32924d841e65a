// `qdq tune`: the fewest source groups kept in float so the metric stays within the budget (the search runs in the
// backend, sensitivity.py), written as keep_float edits (server/src/fixes) into a copy of the model or, with
// --write, into the file itself; and tune.json.
import * as path from 'path';
import { MAX_SOURCE_BYTES, readRegularFileSync } from '../common/files';
import { QdqError, CancelToken } from './errors';
import { openSession, metricParams, SensitivityProgress, GroupInfo, SessionOptions } from './sensitivity';
import { PipelineOptions } from './run';
import { keepFloat, quantizeFile } from '../fixes';
import { writeFileAtomic } from '../onnx/atomic';

export interface Budget {
  maxDrop: number;
  relative: boolean;
}

export interface TuneBackendResult {
  metric: 'top1' | 'sqnr_db';
  samples: number;
  fp32: number;
  all_int8: number;
  target: number;
  mixed: number;
  within_budget: boolean;
  evaluations: number;
  groups: number;
  float_groups: GroupInfo[];
  float_sites: string[];
  steps: { float: string[]; value: number }[];
}

export interface TuneReport {
  version: 1;
  project_dir: string;
  metric: string;
  samples: number;
  budget: { max_drop: number; relative: boolean; target: number };
  /** latency_ms is null: tune measures in PyTorch fake-quant and exports nothing (qdq run measures latency). */
  fp32: { accuracy: number; latency_ms: number | null };
  all_int8: { accuracy: number; latency_ms: number | null };
  mixed: { accuracy: number; latency_ms: number | null; float_sites: string[]; float_groups: string[] };
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
    const layerKey = `${cls}.${attr.replace(/\.(input|weight|output)_quantizer$/, '')}`;
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

export async function runTune(
  opts: SessionOptions & Pick<PipelineOptions, 'write'> & { maxDrop?: string },
  onProgress: (p: SensitivityProgress) => void = () => undefined,
  cancel: CancelToken = new CancelToken(),
): Promise<{ report: TuneReport; path: string; notes: string[] }> {
  const session = await openSession(opts, onProgress, cancel);
  const notes: string[] = [];
  try {
    const raw = opts.maxDrop ?? session.cfg.maxAccuracyDrop;
    const budget = parseBudget(raw);
    if (!budget)
      throw new QdqError(
        'config',
        raw === undefined
          ? 'qdq tune needs an accuracy budget'
          : `max-accuracy-drop "${raw}" is not points or a percentage`,
        'pass --max-drop 0.5 (points of top-1) or --max-drop 1% (of FP32), or set max-accuracy-drop in [tool.qdq]',
      );
    const r = await session.measure<TuneBackendResult>('tune', {
      ...metricParams(session.cfg),
      max_drop: budget.maxDrop,
      relative: budget.relative,
    });
    let modelFile: string | null = null;
    if (r.float_sites.length) {
      const original = readRegularFileSync(session.modelPath, MAX_SOURCE_BYTES);
      if (original === undefined)
        throw new QdqError('config', `${session.modelPath} disappeared during the run`, 'run qdq tune again');
      const relativeImport = /^\s*from\s+\.+[\w.]*\s+import\s/m.test(original);
      const quantized = quantizeFile(original, { scope: { kind: 'file' }, relativeImport }).text;
      const edited = applyKeepFloat(quantized, session.modelPath, r.float_sites);
      if (edited.missing.length) notes.push(`could not place keep_float for: ${edited.missing.join(', ')}`);
      modelFile = opts.write ? session.modelPath : path.join(session.outDir, 'tuned', path.basename(session.modelPath));
      writeFileAtomic(modelFile, edited.text);
      notes.push(
        opts.write
          ? `wrote keep_float for ${r.float_groups.length} group(s) into ${path.relative(session.projectDir, modelFile)}`
          : `wrote the plan into a copy, ${path.relative(session.projectDir, modelFile)}; your file is unchanged (use --write to change it)`,
      );
    } else if (r.within_budget) {
      notes.push('all INT8 is already within the budget: nothing kept in float');
    }
    if (!r.within_budget) notes.push('the budget cannot be met even with every group in float');
    const report: TuneReport = {
      version: 1,
      project_dir: session.projectDir,
      metric: r.metric,
      samples: r.samples,
      budget: { max_drop: budget.maxDrop, relative: budget.relative, target: r.target },
      fp32: { accuracy: r.fp32, latency_ms: null },
      all_int8: { accuracy: r.all_int8, latency_ms: null },
      mixed: {
        accuracy: r.mixed,
        latency_ms: null,
        float_sites: r.float_sites,
        float_groups: r.float_groups.map((g) => g.label),
      },
      within_budget: r.within_budget,
      evaluations: r.evaluations,
      groups: r.groups,
      model_file: modelFile,
      steps: r.steps,
    };
    const out = path.join(session.outDir, 'tune.json');
    writeFileAtomic(out, JSON.stringify(report, null, 2) + '\n');
    return { report, path: out, notes };
  } finally {
    await session.close().catch(() => undefined);
  }
}

export function formatTune(r: TuneReport): string {
  const unit = r.metric === 'top1' ? '%' : ' dB';
  const row = (name: string, v: { accuracy: number; latency_ms: number | null }, extra = '') =>
    `${name.padEnd(10)}  ${(v.accuracy.toFixed(2) + unit).padStart(10)}  ${(v.latency_ms === null ? '-' : v.latency_ms.toFixed(2)).padStart(12)}  ${extra}`;
  return [
    `metric: ${r.metric === 'top1' ? 'top-1 on eval-data' : 'output SQNR vs FP32'} (${r.samples} held-out samples); budget: ${r.budget.relative ? `${r.budget.max_drop}% of FP32` : `${r.budget.max_drop} points`} (target ${r.budget.target.toFixed(2)}${unit})`,
    '',
    `${'precision'.padEnd(10)}  ${(r.metric === 'top1' ? 'top-1' : 'SQNR').padStart(10)}  ${'latency ms'.padStart(12)}  float groups`,
    `${'-'.repeat(10)}  ${'-'.repeat(10)}  ${'-'.repeat(12)}  ${'-'.repeat(12)}`,
    row('all FP32', r.fp32, `all ${r.groups}`),
    row('mixed', r.mixed, r.mixed.float_groups.length ? r.mixed.float_groups.join(', ') : 'none'),
    row('all INT8', r.all_int8, 'none'),
    '',
    `(${r.evaluations} evaluations; latency: see qdq run, tune measures in PyTorch fake-quant)`,
  ].join('\n');
}
