// HTML for the QDQ report webview, built from the report.json of the last pipeline run.
// Pure (no vscode import) so the rendering is tested under plain node. The page runs no script at all:
// the charts are inline SVG, links back to the source are command URIs, and the CSP allows only styles
// from the page itself (by nonce) and images from the webview's own origin.
import { escapeHtml, fmt, isObject, Json, ms, num, pct, size, xAxis } from './reportFormat';
import { sourceLink } from './reportLinks';
import { errorSection, explorerSection, formsSection, trainingSection } from './reportSections';

export { escapeHtml } from './reportFormat';
export { openSourceUri, sourceRefOf, type SourceRef } from './reportLinks';

export interface ReportHtmlOptions {
  /** `webview.cspSource` */
  cspSource: string;
  /** Random nonce for the one <style> element. */
  nonce: string;
  /** Absolute path of report.json, shown in the header. */
  reportPath?: string;
  /** Project directory, to resolve relative source file names. */
  projectDir?: string;
  /** qat.json and tune.json of the same out-dir, shown beside the run's figures when present. */
  qat?: unknown;
  tune?: unknown;
}

function opName(entry: unknown): string {
  if (typeof entry === 'string') return escapeHtml(entry);
  if (!isObject(entry)) return fmt(entry);
  const op = entry.op_type ?? entry.opType ?? entry.op;
  const node = entry.node ?? entry.name;
  const parts = [op, node].filter((x) => typeof x === 'string') as string[];
  const reason =
    typeof entry.reason === 'string' ? entry.reason : typeof entry.message === 'string' ? entry.message : '';
  return (
    escapeHtml(parts.join(' ') || JSON.stringify(entry)) +
    (reason ? ` <span class="muted">${escapeHtml(reason)}</span>` : '')
  );
}

/** amax of a quantizer as one number (the max over channels for per-channel quantizers). */
export function amaxOf(q: Json): number | undefined {
  if (Array.isArray(q.amax)) {
    const values = q.amax.map(num).filter((x): x is number => x !== undefined);
    return values.length ? Math.max(...values) : undefined;
  }
  return num(q.amax);
}

/** Horizontal bar chart of per-quantizer amax, on a linear scale with round ticks, as inline SVG. */
export function rangeChartSvg(quantizers: Json[]): string {
  const rows = quantizers
    .map((q) => ({ name: String(q.name ?? q.site ?? '?'), amax: amaxOf(q), axis: q.axis }))
    .filter((r) => r.amax !== undefined) as { name: string; amax: number; axis: unknown }[];
  if (rows.length === 0) return '<p class="muted">No calibrated ranges in this report.</p>';
  const rowHeight = 18;
  const labelWidth = 320;
  const barWidth = 360;
  const max = Math.max(...rows.map((r) => r.amax), 0) * 1.05 || 1;
  const bars = rows
    .map((r, i) => {
      const y = i * rowHeight;
      const w = r.amax > 0 ? Math.max(1, (r.amax / max) * barWidth) : 0;
      const cls = r.amax <= 0 ? 'bar zero' : r.axis === null || r.axis === undefined ? 'bar act' : 'bar weight';
      return (
        `<text x="${labelWidth - 6}" y="${y + 13}" text-anchor="end" class="label">${escapeHtml(r.name)}</text>` +
        `<rect x="${labelWidth}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowHeight - 6}" class="${cls}"><title>${escapeHtml(r.name)}: amax ${fmt(r.amax)}</title></rect>` +
        `<text x="${(labelWidth + w + 4).toFixed(1)}" y="${y + 13}" class="value">${fmt(r.amax, 3)}</text>`
      );
    })
    .join('');
  const bottom = rows.length * rowHeight + 2;
  return (
    `<svg class="chart" role="img" aria-label="Calibrated amax per quantizer (linear scale)" width="${labelWidth + barWidth + 80}" height="${bottom + 18}" xmlns="http://www.w3.org/2000/svg">` +
    xAxis(labelWidth, barWidth, 0, bottom, max, '') +
    bars +
    `</svg>`
  );
}

function table(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return '<p class="muted">None.</p>';
  return (
    `<table><thead><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('') +
    '</tbody></table>'
  );
}

function pair(v: unknown, key: 'fp32' | 'int8'): unknown {
  return isObject(v) ? v[key] : undefined;
}

/** A report written before report.compare existed: FP32 vs the target's INT8 and the dynamic INT8, formatted. */
function legacySummary(r: Json): string {
  const dyn = isObject(r.dynamic) ? r.dynamic : undefined;
  const cols = [`INT8 (${escapeHtml(String(r.target ?? 'static'))})`, ...(dyn ? ['INT8 dynamic'] : [])];
  const row = (label: string, fp32: string, stat: string, dynamic: string) =>
    `<tr><th>${label}</th><td>${fp32}</td><td>${stat}</td>${dyn ? `<td>${dynamic}</td>` : ''}</tr>`;
  const acc =
    r.accuracy !== undefined && r.accuracy !== null
      ? row(
          'Top-1 accuracy',
          pct(pair(r.accuracy, 'fp32')),
          pct(pair(r.accuracy, 'int8')),
          pct(pair(dyn?.accuracy, 'int8')),
        )
      : `<tr><th>Top-1 accuracy</th><td colspan="${cols.length + 1}" class="muted">no labelled eval data</td></tr>`;
  return (
    `<table class="summary"><thead><tr><th></th><th>FP32</th>${cols.map((c) => `<th>${c}</th>`).join('')}</tr></thead><tbody>` +
    acc +
    row('Top-1 agreement with FP32', '', pct(r.top1_agreement), pct(dyn?.top1_agreement)) +
    row('Cosine vs FP32 (pooled)', '', fmt(r.cosine_min, 5), fmt(dyn?.cosine_min, 5)) +
    row(
      'Latency (median)',
      ms(pair(r.latency_ms, 'fp32')),
      ms(pair(r.latency_ms, 'int8')),
      ms(pair(dyn?.latency_ms, 'int8')),
    ) +
    (r.size_bytes !== undefined
      ? row(
          'Model size',
          size(pair(r.size_bytes, 'fp32')),
          size(pair(r.size_bytes, 'int8')),
          size(pair(dyn?.size_bytes, 'int8')),
        )
      : '') +
    `</tbody></table>`
  );
}

const STYLE = `
body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size, 13px); color: var(--vscode-foreground); padding: 0 1rem 2rem; max-width: 1100px; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid var(--vscode-panel-border, #8884); }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid var(--vscode-panel-border, #8884); padding: 3px 10px; text-align: left; vertical-align: top; }
table.forms td, table.summary td, td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.forms th { white-space: nowrap; }
.muted { opacity: .7; }
.headline { font-size: 1.15em; font-weight: 600; }
.warn { color: var(--vscode-editorWarning-foreground, #cca700); }
.delta { font-size: .85em; margin-left: .3em; white-space: nowrap; }
.delta.better { color: var(--vscode-charts-green, #388a34); } .delta.worse { color: var(--vscode-charts-red, #e51400); } .delta.same { opacity: .7; }
.tag { font-size: .75em; padding: 0 .35em; border-radius: 3px; background: var(--vscode-badge-background, #4d4d4d); color: var(--vscode-badge-foreground, #fff); }
.chart .label, .chart .value { font-size: 11px; fill: var(--vscode-foreground); }
.chart .grid { stroke: var(--vscode-panel-border, #8886); stroke-width: 1; }
.bar.act { fill: var(--vscode-charts-blue, #3794ff); }
.bar.weight { fill: var(--vscode-charts-green, #89d185); }
.bar.zero { fill: var(--vscode-charts-red, #f14c4c); }
.bar.fp32 { fill: var(--vscode-charts-foreground, #888); }
.bar.best { fill: var(--vscode-charts-green, #89d185); }
.bar.hist { fill: var(--vscode-charts-blue, #3794ff); opacity: .75; }
.amax { stroke-width: 2; }
.m-max { stroke: var(--vscode-charts-red, #f14c4c); fill: var(--vscode-charts-red, #f14c4c); color: var(--vscode-charts-red, #f14c4c); }
.m-entropy { stroke: var(--vscode-charts-purple, #b180d7); fill: var(--vscode-charts-purple, #b180d7); color: var(--vscode-charts-purple, #b180d7); }
.m-percentile { stroke: var(--vscode-charts-orange, #d18616); fill: var(--vscode-charts-orange, #d18616); color: var(--vscode-charts-orange, #d18616); }
.m-mse { stroke: var(--vscode-charts-green, #89d185); fill: var(--vscode-charts-green, #89d185); color: var(--vscode-charts-green, #89d185); }
svg.inline { vertical-align: middle; }
details { margin: .2rem 0; } summary { cursor: pointer; } .explorer { margin: .3rem 0 1rem 1.2rem; }
tr.chosen td { font-weight: 600; }
a { color: var(--vscode-textLink-foreground); }
`;

/** The whole report page. `report` is report.json as written by the pipeline (unknown fields are ignored). */
export function renderReportHtml(report: unknown, opts: ReportHtmlOptions): string {
  const r: Json = isObject(report) ? report : {};
  const csp = `default-src 'none'; img-src ${opts.cspSource} data:; style-src 'nonce-${opts.nonce}'; script-src 'none';`;
  const quantizers = Array.isArray(r.quantizers) ? (r.quantizers.filter(isObject) as Json[]) : [];
  const quantizerCount = Array.isArray(r.quantizers) ? r.quantizers.length : num(r.quantizers);
  const unquantized = Array.isArray(r.unquantized_weighted_ops) ? r.unquantized_weighted_ops : [];
  const unsupported = Array.isArray(r.tensorrt_unsupported_ops) ? r.tensorrt_unsupported_ops : [];
  const outputs = Array.isArray(r.outputs) ? (r.outputs.filter(isObject) as Json[]) : [];
  const projectDir = typeof r.project_dir === 'string' ? r.project_dir : opts.projectDir;

  const facts =
    `<ul class="facts">` +
    `<li>QDQ pairs: <b>${fmt(r.qdq_pairs)}</b>, quantizers: <b>${fmt(quantizerCount)}</b></li>` +
    (typeof r.model === 'string'
      ? `<li>Model: <b>${fmt(r.model)}</b>${typeof r.exporter === 'string' ? `, exported with the ${fmt(r.exporter)} exporter` : ''}${r.opset !== undefined ? `, opset ${fmt(r.opset)}` : ''}</li>`
      : '') +
    (isObject(r.python) ? `<li>Python: ${fmt(r.python.path)} (torch ${fmt(r.python.torch_version)})</li>` : '') +
    (typeof r.calibration_method === 'string' || typeof r.method === 'string'
      ? `<li>Calibration: <b>${fmt(r.calibration_method ?? r.method)}</b>${num(r.batches_seen) !== undefined ? ` on ${fmt(r.batches_seen)} batches of ${fmt(r.calibration_data_kind)} data` : ''}</li>`
      : '') +
    `</ul>`;
  const forms = formsSection(r);
  const summary = forms ?? legacySummary(r);
  const training = trainingSection(opts.qat, opts.tune);

  const outputRows = outputs.map((o) => [fmt(o.name), fmt(o.cosine ?? o.cosine_similarity, 5), fmt(o.max_abs_diff, 3)]);
  const unquantizedRows = unquantized.map((op) => [opName(op), sourceLink(op, projectDir)]);
  const unsupportedRows = unsupported.map((op) => [opName(op), sourceLink(op, projectDir)]);
  const quantizerRows = quantizers.map((q) => [
    fmt(q.name),
    fmt(q.method),
    fmt(amaxOf(q)),
    q.axis === null || q.axis === undefined ? 'per tensor' : `per channel (axis ${fmt(q.axis)})`,
    num(q.sqnr_db) === undefined
      ? ''
      : `${(q.sqnr_db as number) >= 300 ? 'exact' : `${(q.sqnr_db as number).toFixed(1)} dB`}`,
    sourceLink(q, projectDir),
  ]);

  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>QDQ report</title>
<style nonce="${opts.nonce}">${STYLE}</style></head><body>
<h1>QDQ report</h1>
${opts.reportPath ? `<p class="muted">${escapeHtml(opts.reportPath)}</p>` : ''}
<h2>FP32 and INT8 side by side</h2>
${summary}
${facts}
${training ? `<h2>Training and tuning</h2>${training}` : ''}
${Array.isArray(r.notes) && r.notes.length ? `<h2>Notes</h2><ul>${r.notes.map((n) => `<li>${fmt(n)}</li>`).join('')}</ul>` : ''}
<h2>Per-layer error</h2>
${errorSection(quantizers, projectDir)}
<h2>Calibration explorer</h2>
${explorerSection(quantizers, r.method, projectDir, isObject(r.files) && typeof r.files.histograms === 'string')}
<h2>Per-output similarity (${escapeHtml(String(r.target ?? 'INT8'))})</h2>
${table(['Output', 'Cosine (pooled)', 'Max |diff|'], outputRows)}
<h2>Weighted ops left in float (${unquantized.length})</h2>
${table(['Op', 'Source'], unquantizedRows)}
<h2>TensorRT-unsupported ops (${unsupported.length})</h2>
${table(['Op', 'Source'], unsupportedRows)}
<h2>Quantizer ranges</h2>
<p class="muted">Blue: activations (per tensor), green: weights (largest channel amax), red: amax 0. Linear scale.</p>
${rangeChartSvg(quantizers)}
${table(['Quantizer', 'Method', 'amax', 'Granularity', 'SQNR', 'Source'], quantizerRows)}
</body></html>`;
}
