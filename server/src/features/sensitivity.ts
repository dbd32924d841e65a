// Sensitivity results in the editor: <out-dir>/sensitivity.json (`qdq sensitivity`) and tune.json's precision
// plan (`qdq tune`), read as untrusted workspace files, validated, and turned into per-layer code lenses, hover
// lines and the rows of the sensitivity view. Everything here reads files or is pure; the LSP handlers
// (features/methods/codeLens.ts, sensitivity.ts, hover.ts) stay thin over it.
import * as path from 'path';
import type { CodeLens, Range } from './lsp';
import type { ModelIndex } from '../analysis';
import { siteRange } from './calibration';
import { readWorkspaceFileOrLog } from './workspaceFiles';
import { ShowSensitivityCommand, type SensitivityGroupView, type SourceLocation } from '../protocol/lsp_ext';

/** qdq writes a few kB; far above that is not ours (a hostile project could put anything there). */
export const MAX_SENSITIVITY_BYTES = 8 * 1024 * 1024;
const MAX_GROUPS = 10_000;
const MAX_SITES = 100_000;

export interface SensitivityGroup {
  label: string;
  sites: string[];
  quantizers: string[];
  only_int8: number;
  only_float: number;
}

export interface SensitivityData {
  /** 'top1' (points of top-1), 'sqnr_db' (output SQNR), or the `[tool.qdq] metric` function's spec. */
  metric: string;
  samples: number;
  fp32: number;
  all_int8: number;
  groups: SensitivityGroup[];
}

export interface PrecisionPlan {
  floatSites: string[];
  accuracy: number;
  withinBudget: boolean;
}

const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStringArray = (v: unknown, max: number): v is string[] =>
  Array.isArray(v) && v.length <= max && v.every((s) => typeof s === 'string' && s.length <= 4096);

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

/** sensitivity.json as `qdq sensitivity` writes it, or undefined for anything else (named by the caller's log). */
export function parseSensitivity(raw: string): SensitivityData | undefined {
  const v = parseJson(raw);
  if (!isRecord(v) || typeof v.metric !== 'string' || !v.metric || v.metric.length > 500) return undefined;
  if (![v.samples, v.fp32, v.all_int8].every(isNumber) || !Array.isArray(v.groups) || v.groups.length > MAX_GROUPS)
    return undefined;
  const groups: SensitivityGroup[] = [];
  for (const g of v.groups) {
    if (!isRecord(g) || typeof g.label !== 'string' || !isNumber(g.only_int8) || !isNumber(g.only_float))
      return undefined;
    if (!isStringArray(g.sites, MAX_SITES) || !isStringArray(g.quantizers ?? [], MAX_SITES)) return undefined;
    groups.push({
      label: g.label.slice(0, 200),
      sites: g.sites,
      quantizers: (g.quantizers ?? []) as string[],
      only_int8: g.only_int8,
      only_float: g.only_float,
    });
  }
  return {
    metric: v.metric,
    samples: v.samples as number,
    fp32: v.fp32 as number,
    all_int8: v.all_int8 as number,
    groups,
  };
}

/** tune.json's plan: the sites `mixed` keeps in float, or undefined when the file is not a tune result. */
export function parsePrecisionPlan(raw: string): PrecisionPlan | undefined {
  const v = parseJson(raw);
  if (!isRecord(v) || !isRecord(v.mixed)) return undefined;
  const { float_sites: floatSites, accuracy } = v.mixed;
  if (!isStringArray(floatSites, MAX_SITES) || !isNumber(accuracy)) return undefined;
  return { floatSites, accuracy, withinBudget: v.within_budget === true };
}

/** "file::Class.attr" -> its parts (file resolved against the project); undefined when not of that form. */
export function parseSite(site: string, projectDir: string): { file: string; cls: string; attr: string } | undefined {
  const sep = site.lastIndexOf('::');
  if (sep <= 0) return undefined;
  const rest = site.slice(sep + 2);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) return undefined;
  return { file: path.resolve(projectDir, site.slice(0, sep)), cls: rest.slice(0, dot), attr: rest.slice(dot + 1) };
}

export interface PrecisionResults {
  sensitivity?: { data: SensitivityData; path: string };
  plan?: { data: PrecisionPlan; path: string };
}

/** Both result files of a project's out-dir, each only when present and well-formed (a bad one is logged). */
export async function readPrecisionResults(outDir: string, log: (line: string) => void): Promise<PrecisionResults> {
  const out: PrecisionResults = {};
  const sensitivityPath = path.join(outDir, 'sensitivity.json');
  const rawSensitivity = await readWorkspaceFileOrLog(sensitivityPath, MAX_SENSITIVITY_BYTES, log);
  if (rawSensitivity !== undefined) {
    const data = parseSensitivity(rawSensitivity);
    if (data) out.sensitivity = { data, path: sensitivityPath };
    else log(`qdq: ${sensitivityPath} is not a sensitivity result (run "QDQ: Sensitivity Analysis" again): ignored`);
  }
  const planPath = path.join(outDir, 'tune.json');
  const rawPlan = await readWorkspaceFileOrLog(planPath, MAX_SENSITIVITY_BYTES, log);
  if (rawPlan !== undefined) {
    const data = parsePrecisionPlan(rawPlan);
    if (data) out.plan = { data, path: planPath };
    else log(`qdq: ${planPath} is not a tune result (run "QDQ: Tune Precision" again): ignored`);
  }
  return out;
}

/** "-0.42 pt" (points of top-1), "-1.30 dB" (SQNR), or the bare change of the user's own metric. */
export function formatDelta(metric: string, value: number): string {
  const sign = value > 0 ? '+' : value < 0 ? '-' : '±';
  const unit = metric === 'top1' ? ' pt' : metric === 'sqnr_db' ? ' dB' : '';
  return `${sign}${Math.abs(value).toFixed(2)}${unit}`;
}

/** What the numbers were measured as, for hovers and the view. */
export function metricDescription(metric: string, samples: number): string {
  if (metric === 'top1') return `top-1 on ${samples} eval-data samples`;
  if (metric === 'sqnr_db') return `output SQNR vs FP32 on ${samples} held-out samples`;
  return `${metric} ([tool.qdq] metric, higher is better)`;
}

/** Groups worst first: the largest loss when only that group is INT8, then the largest gain when only it is float. */
export function rankGroups(data: SensitivityData): SensitivityGroup[] {
  return [...data.groups].sort(
    (a, b) => a.only_int8 - b.only_int8 || b.only_float - a.only_float || a.label.localeCompare(b.label),
  );
}

/** One layer (or declared quantizer) of a file that a sensitivity group covers, where it is, and its numbers. */
export interface LayerSensitivity {
  range: Range;
  group: SensitivityGroup;
  rank: number;
  int8Delta: number;
  floatDelta: number;
  inPlan: boolean;
}

/** Every located site of `file`, one entry per source range (input and weight quantizers share their layer's). */
export function layerSensitivities(
  results: PrecisionResults,
  projectDir: string,
  file: string,
  index: ModelIndex,
  text: string,
): LayerSensitivity[] {
  const data = results.sensitivity?.data;
  if (!data) return [];
  const planned = new Set(results.plan?.data.floatSites ?? []);
  const target = path.resolve(file);
  const out: LayerSensitivity[] = [];
  const seen = new Set<string>();
  rankGroups(data).forEach((group, rank) => {
    for (const site of group.sites) {
      const parsed = parseSite(site, projectDir);
      if (!parsed || parsed.file !== target) continue;
      const range = siteRange(index, text, parsed.cls, parsed.attr);
      if (!range) continue;
      const key = `${range.start.line}:${range.start.character}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        range,
        group,
        rank,
        int8Delta: group.only_int8 - data.fp32,
        floatDelta: group.only_float - data.all_int8,
        inPlan: group.sites.some((s) => planned.has(s)),
      });
    }
  });
  return out.sort(
    (a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character,
  );
}

/** A code lens per located layer: "INT8: -0.42 pt", opening the sensitivity view. */
export function sensitivityLenses(layers: LayerSensitivity[], metric: string, uri: string): CodeLens[] {
  return layers.map((l) => ({
    range: { start: l.range.start, end: l.range.start },
    command: {
      title: `INT8: ${formatDelta(metric, l.int8Delta)}${l.inPlan ? ' (plan: keep float)' : ''}`,
      command: ShowSensitivityCommand,
      arguments: [{ uri }],
    },
  }));
}

/** Hover lines for the layer at a position: both numbers, the rank and what they were measured on. */
export function sensitivityHoverMarkdown(layer: LayerSensitivity, data: SensitivityData): string {
  const metric = metricDescription(data.metric, data.samples);
  const groupNote = layer.group.sites.length > 1 ? ` (group \`${layer.group.label}\`, measured together)` : '';
  return [
    `**Sensitivity** #${layer.rank + 1} of ${data.groups.length}${groupNote}`,
    '',
    `- only this INT8 (rest FP32): ${formatDelta(data.metric, layer.int8Delta)} vs all FP32`,
    `- only this float (rest INT8): ${formatDelta(data.metric, layer.floatDelta)} vs all INT8`,
    ...(layer.inPlan ? ['- the last tune run keeps it in float ("QDQ: Apply Precision Plan")'] : []),
    '',
    `_${metric}; FP32 ${data.fp32.toFixed(2)}, all INT8 ${data.all_int8.toFixed(2)}_`,
  ].join('\n');
}

const contains = (r: Range, line: number, character: number) =>
  (line > r.start.line || (line === r.start.line && character >= r.start.character)) &&
  (line < r.end.line || (line === r.end.line && character <= r.end.character));

export function layerAt(layers: LayerSensitivity[], line: number, character: number): LayerSensitivity | undefined {
  return layers.find((l) => contains(l.range, line, character));
}

/** The view's rows, worst first, each with the places its sites are (files parsed by `locate`). */
export function viewGroups(
  results: PrecisionResults,
  projectDir: string,
  locate: (file: string, cls: string, attr: string) => SourceLocation | undefined,
): SensitivityGroupView[] {
  const data = results.sensitivity?.data;
  if (!data) return [];
  const planned = new Set(results.plan?.data.floatSites ?? []);
  return rankGroups(data).map((group) => {
    const locations: SourceLocation[] = [];
    for (const site of group.sites) {
      const parsed = parseSite(site, projectDir);
      const at = parsed && locate(parsed.file, parsed.cls, parsed.attr);
      if (at && !locations.some((l) => l.uri === at.uri && l.line === at.line)) locations.push(at);
    }
    return {
      label: group.label,
      sites: group.sites,
      instances: group.quantizers.length,
      int8Delta: group.only_int8 - data.fp32,
      floatDelta: group.only_float - data.all_int8,
      locations,
      inPlan: group.sites.some((s) => planned.has(s)),
    };
  });
}
