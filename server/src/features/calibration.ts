// Calibration results the pipeline saved, indexed by source site, and the range checks on them
// (amax 0, never reached, extreme outliers against the histogram) that become diagnostics.
import { MAX_RESULTS_BYTES, readWorkspaceFileOrLog } from './workspaceFiles';
import * as path from 'path';
import { lsp } from './lsp';
import type { Diagnostic, DiagnosticSeverity } from './lsp';
import type { Layer, ModelIndex, ModuleClass, Range } from '../analysis';
import { DIAGNOSTIC_SOURCE } from '../protocol/lsp_ext';
import { ruleDocHref } from './diagnostics';
import { amaxNumbers, deadChannels, quoteNonFiniteTokens } from '../rules/calibrationChecks';

/** One quantizer as the backend reports it (docs/backend-protocol.md, `Quantizer`). */
export interface CalibratedQuantizer {
  name: string;
  site: { file: string; cls: string; attr: string } | null;
  axis: number | null;
  /** Non-finite values arrive as "NaN"/"Infinity" strings (report.json) or bare tokens (parseQuantizers quotes them). */
  amax: number | string | (number | string)[] | null;
  method: string | null;
  num_bits?: number;
  hist?: { bins: number[]; edges_max: number };
}

export interface CalibrationRun {
  /** Project directory the run was for (absolute). */
  projectDir: string;
  quantizers: CalibratedQuantizer[];
  /** Where the results were read from, when they came from disk. */
  source?: string;
}

/** All instances of one source site (a layer or quantizer attribute used by several module instances). */
export interface SiteCalibration {
  file: string;
  cls: string;
  attr: string;
  quantizers: CalibratedQuantizer[];
}

function siteKey(file: string, cls: string, attr: string): string {
  return `${path.resolve(file)}\u0000${cls}\u0000${attr}`;
}

/** Calibration results per project, looked up by (file, class, attribute). */
export class CalibrationStore {
  private runs = new Map<string, CalibrationRun>();
  private bySite = new Map<string, SiteCalibration>();
  private byFile = new Map<string, SiteCalibration[]>();

  set(run: CalibrationRun): void {
    this.runs.set(path.resolve(run.projectDir), run);
    this.reindex();
  }

  /** Forgets a project's results (its calibration.json was removed). */
  clear(projectDir: string): void {
    if (this.runs.delete(path.resolve(projectDir))) this.reindex();
  }

  /** Reads results the pipeline saved in `outDir` (absolute, or relative to the project) when present. */
  async loadFromDisk(
    projectDir: string,
    outDir: string,
    log: (line: string) => void,
  ): Promise<CalibrationRun | undefined> {
    for (const candidate of calibrationFileCandidates(projectDir, outDir)) {
      const raw = await readWorkspaceFileOrLog(candidate, MAX_RESULTS_BYTES, log);
      if (raw === undefined) continue;
      const quantizers = parseQuantizers(raw);
      if (!quantizers) continue;
      const run: CalibrationRun = { projectDir: path.resolve(projectDir), quantizers, source: candidate };
      this.set(run);
      return run;
    }
    return undefined;
  }

  forSite(file: string, cls: string, attr: string): SiteCalibration | undefined {
    return this.bySite.get(siteKey(file, cls, attr));
  }

  /** Sites of one layer or quantizer: `conv1` gathers `conv1.input_quantizer` and `conv1.weight_quantizer`. */
  forPath(file: string, cls: string, p: string): SiteCalibration[] {
    return this.forFile(file).filter((s) => s.cls === cls && (s.attr === p || sitePath(s.attr) === p));
  }

  forFile(file: string): SiteCalibration[] {
    return this.byFile.get(path.resolve(file)) ?? [];
  }

  files(): string[] {
    return [...this.byFile.keys()];
  }

  private reindex(): void {
    this.bySite.clear();
    this.byFile.clear();
    for (const run of this.runs.values()) {
      for (const q of run.quantizers) {
        if (!q.site || !q.site.file) continue;
        const file = path.isAbsolute(q.site.file) ? q.site.file : path.join(run.projectDir, q.site.file);
        const key = siteKey(file, q.site.cls, q.site.attr);
        let entry = this.bySite.get(key);
        if (!entry) {
          entry = { file: path.resolve(file), cls: q.site.cls, attr: q.site.attr, quantizers: [] };
          this.bySite.set(key, entry);
          const list = this.byFile.get(entry.file) ?? [];
          list.push(entry);
          this.byFile.set(entry.file, list);
        }
        entry.quantizers.push(q);
      }
    }
  }
}

function calibrationFileCandidates(projectDir: string, outDir: string): string[] {
  const dir = path.resolve(projectDir, outDir);
  return [path.join(dir, 'calibration.json'), path.join(dir, 'report.json')];
}

/** Accepts `{quantizers: [...]}`, `{calibration: {quantizers}}` or a bare list; undefined when it is none of these. */
export function parseQuantizers(raw: string): CalibratedQuantizer[] | undefined {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    try {
      json = JSON.parse(quoteNonFiniteTokens(raw)); // a writer that put NaN/Infinity in the JSON
    } catch {
      return undefined;
    }
  }
  const pick = (v: unknown): unknown => {
    if (Array.isArray(v)) return v;
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (Array.isArray(o.quantizers)) return o.quantizers;
      if (o.calibration) return pick(o.calibration);
    }
    return undefined;
  };
  const list = pick(json);
  if (!Array.isArray(list)) return undefined;
  return list.filter(
    (q): q is CalibratedQuantizer =>
      !!q && typeof q === 'object' && typeof (q as CalibratedQuantizer).name === 'string',
  );
}

/** Largest |amax| of a quantizer (per-channel: the largest channel), null when it has none. */
export function amaxValues(q: CalibratedQuantizer): number[] | null {
  return amaxNumbers(q.amax);
}

export function formatAmax(q: CalibratedQuantizer): string {
  const values = amaxValues(q);
  if (!values || values.length === 0) return 'not calibrated';
  if (values.length === 1) return `amax ${fmt(values[0])}, scale ${fmt(values[0] / 127)}`;
  const min = Math.min(...values);
  const max = Math.max(...values);
  return `per-channel (axis ${q.axis}, ${values.length} channels): amax ${fmt(min)} .. ${fmt(max)}, scale ${fmt(min / 127)} .. ${fmt(max / 127)}`;
}

export function fmt(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e4 || a < 1e-3 ? x.toExponential(3) : Number(x.toPrecision(4)).toString();
}

/** Upper edge of the histogram bucket where `fraction` of the mass is reached (histograms are of |x|). */
export function histogramQuantile(hist: { bins: number[]; edges_max: number }, fraction: number): number | undefined {
  const total = hist.bins.reduce((a, b) => a + b, 0);
  if (!(total > 0) || hist.bins.length === 0) return undefined;
  const width = hist.edges_max / hist.bins.length;
  let seen = 0;
  for (let i = 0; i < hist.bins.length; i++) {
    seen += hist.bins[i];
    if (seen >= fraction * total) return (i + 1) * width;
  }
  return hist.edges_max;
}

/** amax above this multiple of the 99.99th percentile wastes most of the 256 INT8 levels on outliers. */
export const OUTLIER_RATIO = 8;

export interface RangeProblem {
  code: 'QDQ-CAL001' | 'QDQ-CAL002' | 'QDQ-CAL003';
  severity: DiagnosticSeverity;
  message: string;
}

/** Range checks of one calibrated quantizer. */
export function rangeProblems(q: CalibratedQuantizer): RangeProblem[] {
  const values = amaxValues(q);
  const problems: RangeProblem[] = [];
  const histTotal = q.hist ? q.hist.bins.reduce((a, b) => a + b, 0) : undefined;
  if (values === null || values.length === 0 || histTotal === 0) {
    problems.push({
      code: 'QDQ-CAL002',
      severity: lsp.DiagnosticSeverity.Warning,
      message:
        `${q.name} was never reached by the calibration data, so it has no range and stays in float at export. ` +
        'Check that forward() goes through this layer for the calibration inputs, or remove its quantizer.',
    });
    return problems;
  }
  const { zero: zeros, nonFinite } = deadChannels(values);
  if (nonFinite > 0) {
    const all = nonFinite + zeros === values.length;
    problems.push({
      code: 'QDQ-CAL001',
      severity: all ? lsp.DiagnosticSeverity.Error : lsp.DiagnosticSeverity.Warning,
      message:
        (values.length === 1
          ? `${q.name} has amax ${values[0]}: a dead quantizer, its scale is not a number and the layer's output is garbage. `
          : `${q.name} has a NaN or infinite amax on ${nonFinite} of ${values.length} channels: those channels are dead (their scale is not a number). `) +
        'NaN/inf came out of the model during calibration (an overflow, a division by zero): fix it at its source, or remove the quantizer.',
    });
    return problems;
  }
  if (zeros === values.length) {
    problems.push({
      code: 'QDQ-CAL001',
      severity: lsp.DiagnosticSeverity.Error,
      message: `${q.name} has amax 0: every value quantizes to 0 (the calibration data only produced zeros here). Use calibration data that exercises this layer.`,
    });
  } else if (zeros > 0) {
    problems.push({
      code: 'QDQ-CAL001',
      severity: lsp.DiagnosticSeverity.Warning,
      message: `${q.name} has amax 0 on ${zeros} of ${values.length} channels: those channels quantize to 0 (dead filters or unused outputs).`,
    });
  }
  if (q.hist && values.length === 1) {
    const p9999 = histogramQuantile(q.hist, 0.9999);
    const amax = values[0];
    if (p9999 !== undefined && p9999 > 0 && amax / p9999 > OUTLIER_RATIO) {
      problems.push({
        code: 'QDQ-CAL003',
        severity: lsp.DiagnosticSeverity.Information,
        message:
          `${q.name}: amax ${fmt(amax)} is ${Math.round(amax / p9999)}x the 99.99th percentile of the calibration data (${fmt(p9999)}), ` +
          'so a few outliers leave most values only a handful of the 256 INT8 levels. Percentile or entropy calibration usually fits better.',
      });
    }
  }
  return problems;
}

const MODULE_QUANTIZER_SUFFIX = /\.(input|weight|output)_quantizer$/;

/**
 * The layer path a site attribute names: `conv1.input_quantizer` -> `conv1`, `stem.0.weight_quantizer` ->
 * `stem.0`; attributes of declared quantizers (`add0_residual_quantizer`) stay as they are.
 */
export function sitePath(attr: string): string {
  return attr.replace(MODULE_QUANTIZER_SUFFIX, '');
}

/**
 * Source ranges of everything in a class that calibration can name: layers by attribute (`conv1`), layers in a
 * container assigned to an attribute by position (`stem.0`, as nn.Sequential numbers its children), declared
 * quantizers by name, and quantized operands by their quantizer's name.
 */
export function classSitePaths(klass: ModuleClass, text: string): Map<string, Range> {
  const paths = new Map<string, Range>();
  const assign = /^[ \t]*self\.(\w+)\s*(?::[^=\n]+)?=/gm;
  const assignments: { name: string; offset: number }[] = [];
  const body = text.slice(klass.span.start, klass.span.end);
  for (let m = assign.exec(body); m; m = assign.exec(body))
    assignments.push({ name: m[1], offset: klass.span.start + m.index });
  const childCount = new Map<string, number>();
  const layers = [...klass.layers].sort((a, b) => a.callSpan.start - b.callSpan.start);
  for (const layer of layers) {
    if (layer.attr) {
      if (!paths.has(layer.attr)) paths.set(layer.attr, layer.callRange);
      continue;
    }
    if (!layer.container) continue;
    let owner: string | undefined;
    for (const a of assignments) if (a.offset < layer.callSpan.start) owner = a.name;
    if (!owner) continue;
    const i = childCount.get(owner) ?? 0;
    childCount.set(owner, i + 1);
    paths.set(`${owner}.${i}`, layer.callRange);
  }
  for (const q of klass.quantizers) if (!paths.has(q.name)) paths.set(q.name, q.range);
  for (const op of klass.ops)
    op.operandQuantizers.forEach((name, i) => {
      if (name && !paths.has(name)) paths.set(name, op.operands[i]);
    });
  return paths;
}

/** The calibration path of a layer of `klass` (its attribute, or `<container attr>.<index>`). */
export function layerPath(klass: ModuleClass, layer: Layer, text: string): string | undefined {
  if (layer.attr) return layer.attr;
  for (const [p, r] of classSitePaths(klass, text))
    if (r.start.line === layer.callRange.start.line && r.start.character === layer.callRange.start.character) return p;
  return undefined;
}

/** Where a calibrated site is in the source. */
export function siteRange(index: ModelIndex, text: string, cls: string, attr: string): Range | undefined {
  const klass = index.classes.find((c) => c.name === cls);
  if (!klass) return undefined;
  const paths = classSitePaths(klass, text);
  return paths.get(sitePath(attr)) ?? paths.get(attr);
}

/** Range diagnostics for one file from the stored calibration results (one per site and problem). */
export function calibrationDiagnostics(
  store: CalibrationStore,
  file: string,
  index: ModelIndex,
  text: string,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const pathsByClass = new Map<string, Map<string, Range>>();
  for (const site of store.forFile(file)) {
    let paths = pathsByClass.get(site.cls);
    if (!paths) {
      const klass = index.classes.find((c) => c.name === site.cls);
      if (!klass) continue;
      paths = classSitePaths(klass, text);
      pathsByClass.set(site.cls, paths);
    }
    const range = paths.get(sitePath(site.attr)) ?? paths.get(site.attr);
    if (!range) continue;
    const seen = new Set<string>();
    for (const q of site.quantizers) {
      for (const p of rangeProblems(q)) {
        if (seen.has(p.code)) continue;
        seen.add(p.code);
        const instances =
          site.quantizers.length > 1
            ? ` (this line builds ${site.quantizers.length} module instances; the first one with the problem is named)`
            : '';
        out.push({
          range,
          severity: p.severity,
          code: p.code,
          codeDescription: { href: ruleDocHref(p.code) },
          source: DIAGNOSTIC_SOURCE,
          message: p.message + instances,
        });
      }
    }
  }
  return out;
}
