// HTML for the QDQ report webview, built from the report.json of the last pipeline run.
// Pure (no vscode import) so the rendering is tested under plain node. The page runs no script at all:
// the chart is inline SVG, links back to the source are command URIs, and the CSP allows only styles
// from the page itself (by nonce) and images from the webview's own origin.

/** Where a finding came from in the user's source, as far as the pipeline could trace it. */
export interface SourceRef {
  file?: string;
  line?: number; // 1-based
  cls?: string;
  attr?: string;
}

export interface ReportHtmlOptions {
  /** `webview.cspSource` */
  cspSource: string;
  /** Random nonce for the one <style> element. */
  nonce: string;
  /** Absolute path of report.json, shown in the header. */
  reportPath?: string;
  /** Project directory, to resolve relative source file names. */
  projectDir?: string;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function fmt(v: unknown, digits = 4): string {
  const n = num(v);
  if (n !== undefined) return Number.isInteger(n) ? String(n) : n.toPrecision(digits);
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string') return escapeHtml(v);
  return escapeHtml(JSON.stringify(v));
}

/** A source reference from the shapes the pipeline uses: {site:{file,cls,attr,line}}, {file,line}, "file:line". */
export function sourceRefOf(entry: unknown): SourceRef | undefined {
  if (typeof entry === 'string') {
    const m = /^(.*\.py):(\d+)/.exec(entry);
    return m ? { file: m[1], line: Number(m[2]) } : undefined;
  }
  if (!isObject(entry)) return undefined;
  const inner = isObject(entry.site) ? entry.site : isObject(entry.source) ? entry.source : entry;
  const file = typeof inner.file === 'string' ? inner.file : typeof inner.path === 'string' ? inner.path : undefined;
  if (!file) return typeof entry.site === 'string' ? sourceRefOf(entry.site) : undefined;
  const line = num(inner.line) ?? num(entry.line);
  return {
    file,
    line,
    cls: typeof inner.cls === 'string' ? inner.cls : undefined,
    attr: typeof inner.attr === 'string' ? inner.attr : undefined,
  };
}

/** `command:` URI that opens `ref` at its line through the extension's qdq.openSource command. */
export function openSourceUri(ref: SourceRef, projectDir?: string): string {
  const args = [{ file: ref.file, line: ref.line, cls: ref.cls, attr: ref.attr, projectDir }];
  return `command:qdq.openSource?${encodeURIComponent(JSON.stringify(args))}`;
}

function sourceLink(entry: unknown, projectDir?: string): string {
  const ref = sourceRefOf(entry);
  if (!ref || !ref.file) return '<span class="muted">source not traced</span>';
  const base = ref.file.split(/[\\/]/).pop() ?? ref.file;
  const where = ref.line
    ? `${base}:${ref.line}`
    : ref.cls
      ? `${base} (${ref.cls}${ref.attr ? '.' + ref.attr : ''})`
      : base;
  return `<a href="${escapeHtml(openSourceUri(ref, projectDir))}" title="${escapeHtml(ref.file)}">${escapeHtml(where)}</a>`;
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

/** Horizontal bar chart of per-quantizer amax, log-scaled, as inline SVG. */
export function rangeChartSvg(quantizers: Json[]): string {
  const rows = quantizers
    .map((q) => ({ name: String(q.name ?? q.site ?? '?'), amax: amaxOf(q), axis: q.axis }))
    .filter((r) => r.amax !== undefined) as { name: string; amax: number; axis: unknown }[];
  if (rows.length === 0) return '<p class="muted">No calibrated ranges in this report.</p>';
  const rowHeight = 18;
  const labelWidth = 320;
  const barWidth = 360;
  const positive = rows.map((r) => r.amax).filter((a) => a > 0);
  const lo = positive.length ? Math.log10(Math.min(...positive)) - 0.5 : -1;
  const hi = positive.length ? Math.log10(Math.max(...positive)) + 0.1 : 1;
  const scale = (a: number) => (a > 0 ? Math.max(2, ((Math.log10(a) - lo) / (hi - lo || 1)) * barWidth) : 0);
  const height = rows.length * rowHeight + 24;
  const bars = rows
    .map((r, i) => {
      const y = i * rowHeight;
      const w = scale(r.amax);
      const cls = r.amax <= 0 ? 'bar zero' : r.axis === null || r.axis === undefined ? 'bar act' : 'bar weight';
      return (
        `<text x="${labelWidth - 6}" y="${y + 13}" text-anchor="end" class="label">${escapeHtml(r.name)}</text>` +
        `<rect x="${labelWidth}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowHeight - 6}" class="${cls}"><title>${escapeHtml(r.name)}: amax ${fmt(r.amax)}</title></rect>` +
        `<text x="${labelWidth + w + 4}" y="${y + 13}" class="value">${fmt(r.amax, 3)}</text>`
      );
    })
    .join('');
  const axisY = rows.length * rowHeight + 14;
  return (
    `<svg class="chart" role="img" aria-label="Calibrated amax per quantizer (log scale)" width="${labelWidth + barWidth + 80}" height="${height}" xmlns="http://www.w3.org/2000/svg">` +
    bars +
    `<text x="${labelWidth}" y="${axisY}" class="value">10^${lo.toFixed(1)}</text>` +
    `<text x="${labelWidth + barWidth}" y="${axisY}" text-anchor="end" class="value">10^${hi.toFixed(1)} (log scale)</text>` +
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

  const accRow = (label: string, v: unknown, unit = '') =>
    `<tr><th>${label}</th><td>${fmt(pair(v, 'fp32'))}${unit}</td><td>${fmt(pair(v, 'int8'))}${unit}</td></tr>`;
  const summary =
    `<table class="summary"><thead><tr><th></th><th>FP32</th><th>INT8</th></tr></thead><tbody>` +
    (r.accuracy !== undefined && r.accuracy !== null
      ? accRow('Top-1 accuracy', r.accuracy)
      : '<tr><th>Top-1 accuracy</th><td colspan="2" class="muted">no labelled eval data</td></tr>') +
    accRow('Latency (median)', r.latency_ms, ' ms') +
    (r.size_bytes !== undefined ? accRow('Model size', r.size_bytes, ' bytes') : '') +
    `</tbody></table>` +
    `<ul class="facts">` +
    `<li>QDQ pairs: <b>${fmt(r.qdq_pairs)}</b></li>` +
    `<li>Quantizers: <b>${fmt(quantizerCount)}</b></li>` +
    `<li>Lowest cosine similarity (INT8 vs FP32): <b>${fmt(r.cosine_min)}</b></li>` +
    `<li>Max absolute difference: <b>${fmt(r.max_abs_diff)}</b></li>` +
    (r.top1_agreement !== undefined ? `<li>Top-1 agreement (INT8 vs FP32): <b>${fmt(r.top1_agreement)}</b></li>` : '') +
    (typeof r.model === 'string'
      ? `<li>Model: <b>${fmt(r.model)}</b>${typeof r.exporter === 'string' ? `, exported with the ${fmt(r.exporter)} exporter` : ''}${r.opset !== undefined ? `, opset ${fmt(r.opset)}` : ''}</li>`
      : '') +
    (isObject(r.python) ? `<li>Python: ${fmt(r.python.path)} (torch ${fmt(r.python.torch_version)})</li>` : '') +
    (typeof r.calibration_method === 'string' || typeof r.method === 'string'
      ? `<li>Calibration: <b>${fmt(r.calibration_method ?? r.method)}</b></li>`
      : '') +
    `</ul>`;

  const outputRows = outputs.map((o) => [
    fmt(o.name),
    fmt(o.cosine ?? o.cosine_similarity),
    fmt(o.max_abs_diff),
    fmt(o.top1_agreement),
  ]);
  const unquantizedRows = unquantized.map((op) => [opName(op), sourceLink(op, projectDir)]);
  const unsupportedRows = unsupported.map((op) => [opName(op), sourceLink(op, projectDir)]);
  const quantizerRows = quantizers.map((q) => [
    fmt(q.name),
    fmt(q.method),
    fmt(amaxOf(q)),
    q.axis === null || q.axis === undefined ? 'per tensor' : `per channel (axis ${fmt(q.axis)})`,
    sourceLink(q, projectDir),
  ]);

  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>QDQ report</title>
<style nonce="${opts.nonce}">
body { font-family: var(--vscode-font-family); color: var(--vscode-foreground); padding: 0 1rem 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid var(--vscode-panel-border, #8884); padding: 2px 10px; text-align: left; }
.muted { opacity: .7; }
.chart .label, .chart .value { font-size: 11px; fill: var(--vscode-foreground); }
.bar.act { fill: var(--vscode-charts-blue, #3794ff); }
.bar.weight { fill: var(--vscode-charts-green, #89d185); }
.bar.zero { fill: var(--vscode-charts-red, #f14c4c); }
a { color: var(--vscode-textLink-foreground); }
</style></head><body>
<h1>QDQ report</h1>
${opts.reportPath ? `<p class="muted">${escapeHtml(opts.reportPath)}</p>` : ''}
<h2>FP32 vs INT8</h2>
${summary}
${Array.isArray(r.notes) && r.notes.length ? `<h2>Notes</h2><ul>${r.notes.map((n) => `<li>${fmt(n)}</li>`).join('')}</ul>` : ''}
${isObject(r.dynamic) ? `<h2>Dynamic INT8 (onnxruntime CPU)</h2><ul class="facts"><li>Quantized ops: <b>${fmt(r.dynamic.quantized_ops)}</b></li><li>Lowest cosine: <b>${fmt(r.dynamic.cosine_min)}</b></li><li>Top-1 agreement: <b>${fmt(r.dynamic.top1_agreement)}</b></li></ul>` : ''}
<h2>Per-output similarity</h2>
${table(['Output', 'Cosine', 'Max |diff|', 'Top-1 agreement'], outputRows)}
<h2>Weighted ops left in float (${unquantized.length})</h2>
${table(['Op', 'Source'], unquantizedRows)}
<h2>TensorRT-unsupported ops (${unsupported.length})</h2>
${table(['Op', 'Source'], unsupportedRows)}
<h2>Quantizer ranges</h2>
<p class="muted">Blue: activations (per tensor), green: weights (largest channel amax), red: amax 0.</p>
${rangeChartSvg(quantizers)}
${table(['Quantizer', 'Method', 'amax', 'Granularity', 'Source'], quantizerRows)}
</body></html>`;
}
