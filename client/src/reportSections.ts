// The report page's decision sections: FP32 and every INT8 form side by side (report.compare), the per-layer
// error (SQNR per quantizer, worst first, linked to the source), the calibration explorer (each quantizer's
// histogram with the amax every method would pick) and QAT / tune results next to them. Pure HTML and SVG:
// the page runs no script.
import { DASH, escapeHtml, fmt, isObject, Json, ms, num, pct, pts, ratio, size, xAxis } from './reportFormat';
import { sourceLink } from './reportLinks';

const FORM_TITLE: Record<string, string> = {
  tensorrt: 'INT8 tensorrt',
  tensorrt10: 'INT8 tensorrt10',
  'ort-cpu': 'INT8 ort-cpu',
  dynamic: 'INT8 dynamic',
};

const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v.filter(isObject) as Json[]) : []);

/** The headline and the side-by-side table from report.compare; undefined for a report without it. */
export function formsSection(r: Json): string | undefined {
  const c = isObject(r.compare) ? r.compare : undefined;
  if (!c) return undefined;
  const forms = arr(c.forms);
  const fp32 = isObject(c.fp32) ? c.fp32 : {};
  const measured = isObject(c.measured_on) ? c.measured_on : {};
  const headline = isObject(c.headline) ? c.headline : {};
  const fastest = typeof headline.fastest === 'string' ? headline.fastest : '';
  const head = ['', 'FP32', ...forms.map((f) => FORM_TITLE[String(f.name)] ?? escapeHtml(String(f.name)))];
  const cos = (f: Json, k: string) => (isObject(f.cosine) ? fmt(f.cosine[k], 5) : DASH);
  const delta = (f: Json) => (isObject(f.delta) ? f.delta : {});
  const rows: [string, string, (f: Json) => string][] = [
    ['Meant for', 'PyTorch / any runtime', (f) => `<span class="muted">${escapeHtml(String(f.runtime ?? ''))}</span>`],
    [
      'Top-1 accuracy',
      fp32.accuracy === null || fp32.accuracy === undefined
        ? '<span class="muted">no labels</span>'
        : pct(fp32.accuracy),
      (f) => (f.accuracy === null || f.accuracy === undefined ? DASH : `${pct(f.accuracy)} ${pts(delta(f).accuracy)}`),
    ],
    ['Top-1 agreement with FP32', '', (f) => pct(f.top1_agreement)],
    ['Cosine vs FP32, pooled', '', (f) => cos(f, 'pooled')],
    ['Cosine, worst batch', '', (f) => cos(f, 'worst_batch')],
    ['Cosine, worst sample', '', (f) => cos(f, 'worst_sample')],
    ['Max |diff|', '', (f) => fmt(f.max_abs_diff, 3)],
    [
      'Latency (median, ONNX Runtime CPU)',
      ms(fp32.latency_ms),
      (f) =>
        `${ms(f.latency_ms)} ${ratio(delta(f).latency_ratio)}${f.name === fastest ? ' <b class="tag">fastest</b>' : ''}`,
    ],
    ['File size', size(fp32.size_bytes), (f) => `${size(f.size_bytes)} ${ratio(delta(f).size_ratio)}`],
  ];
  const table =
    `<table class="forms"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>` +
    rows
      .map(
        ([label, a, per]) =>
          `<tr><th>${label}</th><td>${a}</td>${forms.map((f) => `<td>${per(f)}</td>`).join('')}</tr>`,
      )
      .join('') +
    '</tbody></table>';
  const heldOut = measured.held_out === false ? ' class="warn"' : '';
  return (
    `<p class="headline">${escapeHtml(String(headline.text ?? ''))}</p>` +
    `<p${heldOut}>Accuracy and similarity ${escapeHtml(String(measured.text ?? 'measured on unknown data'))}.</p>` +
    table +
    latencyChartSvg(num(fp32.latency_ms), forms, fastest) +
    (isObject(c.latency) && Array.isArray(c.latency.batch_shape)
      ? `<p class="muted">Latency: median of ${fmt(c.latency.runs)} runs per model on input ${escapeHtml(JSON.stringify(c.latency.batch_shape))}, all models timed in the same alternating blocks.</p>`
      : '')
  );
}

/** Horizontal bars of median latency, FP32 first, linear scale with round ticks. */
export function latencyChartSvg(fp32: number | undefined, forms: Json[], fastest: string): string {
  const rows = [
    { name: 'FP32', ms: fp32, cls: 'bar fp32' },
    ...forms.map((f) => ({
      name: FORM_TITLE[String(f.name)] ?? String(f.name),
      ms: num(f.latency_ms),
      cls: f.name === fastest ? 'bar best' : 'bar act',
    })),
  ].filter((r): r is { name: string; ms: number; cls: string } => r.ms !== undefined);
  if (!rows.length) return '';
  const max = Math.max(...rows.map((r) => r.ms)) * 1.08;
  const x0 = 150,
    width = 420,
    h = 22;
  const bars = rows
    .map((r, i) => {
      const w = Math.max(1, (r.ms / max) * width);
      return (
        `<text x="${x0 - 8}" y="${i * h + 15}" text-anchor="end" class="label">${escapeHtml(r.name)}</text>` +
        `<rect x="${x0}" y="${i * h + 4}" width="${w.toFixed(1)}" height="${h - 8}" class="${r.cls}"><title>${escapeHtml(r.name)}: ${r.ms.toFixed(3)} ms</title></rect>` +
        `<text x="${(x0 + w + 4).toFixed(1)}" y="${i * h + 15}" class="value">${r.ms.toFixed(2)} ms</text>`
      );
    })
    .join('');
  const bottom = rows.length * h + 2;
  return (
    `<svg class="chart" role="img" aria-label="Median latency per model, linear scale" width="${x0 + width + 80}" height="${bottom + 18}" xmlns="http://www.w3.org/2000/svg">` +
    xAxis(x0, width, 0, bottom, max, ' ms') +
    bars +
    '</svg>'
  );
}

/** Per-layer error: each quantizer's SQNR (dB) from calibration, worst first, each linked to its source line. */
export function errorSection(quantizers: Json[], projectDir?: string): string {
  const rows = quantizers
    .map((q) => ({ q, db: num(q.sqnr_db) }))
    .filter((r): r is { q: Json; db: number } => r.db !== undefined)
    .sort((a, b) => a.db - b.db);
  if (!rows.length)
    return '<p class="muted">No per-quantizer error in this report (it comes with calibration; run QDQ: Calibrate and Export).</p>';
  const shown = Math.min(...rows.map((r) => r.db), 0);
  const max = Math.max(...rows.map((r) => Math.min(r.db, 80))) * 1.05;
  const width = 260;
  const bar = (db: number, weak: boolean) => {
    const w = Math.max(1, ((Math.min(db, 80) - shown) / (max - shown || 1)) * width);
    return `<svg class="inline" width="${width + 4}" height="12" xmlns="http://www.w3.org/2000/svg"><rect x="0" y="1" width="${w.toFixed(1)}" height="10" class="bar ${weak ? 'zero' : 'act'}"/></svg>`;
  };
  const body = rows
    .map(({ q, db }, i) => {
      const weak = db < 20;
      return (
        `<tr><td>${i + 1}</td><td>${sourceLink(q, projectDir, String(q.name ?? '?'))}</td>` +
        `<td>${escapeHtml(String(q.role ?? ''))}</td><td class="num">${db >= 300 ? 'exact' : `${db.toFixed(1)} dB`}</td>` +
        `<td>${bar(db, weak)}</td><td>${sourceLink(q, projectDir)}</td></tr>`
      );
    })
    .join('');
  return (
    '<p class="muted">SQNR of each quantizer\'s fake-quantized values against the float ones seen in calibration ' +
    '(activations: from the calibration histogram, weights: exact). Lower is more error; under 20 dB in red. ' +
    'Each name opens the line where the quantizer acts.</p>' +
    `<table class="error"><thead><tr><th>#</th><th>Quantizer</th><th>Role</th><th>SQNR</th><th>0 … ${Math.round(max)} dB</th><th>Source</th></tr></thead><tbody>${body}</tbody></table>`
  );
}

const METHOD_CLASS: Record<string, string> = {
  max: 'm-max',
  entropy: 'm-entropy',
  percentile: 'm-percentile',
  mse: 'm-mse',
};

/** One quantizer's histogram (64 buckets of |x|, counts on a square-root scale) with each method's amax. */
export function histogramSvg(q: Json): string {
  const hist = isObject(q.hist) ? q.hist : undefined;
  const bins = hist && Array.isArray(hist.bins) ? hist.bins.map((b) => num(b) ?? 0) : [];
  const edgesMax = hist ? num(hist.edges_max) : undefined;
  if (!bins.length || !edgesMax) return '<p class="muted">No histogram.</p>';
  const x0 = 10,
    width = 512,
    height = 90;
  const top = Math.sqrt(Math.max(...bins)) || 1;
  const bw = width / bins.length;
  const bars = bins
    .map((b, i) => {
      const h = (Math.sqrt(b) / top) * height;
      return `<rect x="${(x0 + i * bw).toFixed(1)}" y="${(height - h).toFixed(1)}" width="${Math.max(0.5, bw - 1).toFixed(1)}" height="${h.toFixed(1)}" class="bar hist"/>`;
    })
    .join('');
  const lines = arr(q.methods)
    .map((m, k) => {
      const a = num(m.amax);
      if (a === undefined) return '';
      const x = x0 + Math.min(1, a / edgesMax) * width;
      const cls = METHOD_CLASS[String(m.method)] ?? 'm-max';
      return (
        `<line x1="${x.toFixed(1)}" y1="0" x2="${x.toFixed(1)}" y2="${height}" class="amax ${cls}"><title>${escapeHtml(String(m.method))}: amax ${fmt(a)}</title></line>` +
        `<text x="${(x + 2).toFixed(1)}" y="${10 + 11 * k}" class="value ${cls}">${escapeHtml(String(m.method))}</text>`
      );
    })
    .join('');
  return (
    `<svg class="chart" role="img" aria-label="Histogram of |x| with each method's amax" width="${x0 + width + 60}" height="${height + 20}" xmlns="http://www.w3.org/2000/svg">` +
    xAxis(x0, width, 0, height, edgesMax, '') +
    bars +
    lines +
    '</svg>'
  );
}

/** `command:` URI of qdq.useCalibrationMethod for the project: amax by `method` from the saved histograms. */
export function useMethodUri(projectDir: string, method: string): string {
  const uri = 'file://' + projectDir.split(/[\\/]/).map(encodeURIComponent).join('/') + '/pyproject.toml';
  return `command:qdq.useCalibrationMethod?${encodeURIComponent(JSON.stringify([{ uri, method }]))}`;
}

/** Links that re-export with each other method from the saved histograms (no new pass over the data). */
function switchLinks(method: unknown, projectDir: string): string {
  const links = ['max', 'entropy', 'percentile', 'mse']
    .filter((m) => m !== method)
    .map((m) => `<a href="${escapeHtml(useMethodUri(projectDir, m))}">${m}</a>`);
  return `<p class="switch">Export and verify again with ${links.join(' · ')} <span class="muted">(amax from the saved histograms: no new pass over the calibration data; this report then refreshes)</span></p>`;
}

/** Calibration explorer: per activation quantizer, what it saw and what every method would pick. */
export function explorerSection(
  quantizers: Json[],
  method: unknown,
  projectDir?: string,
  histogramsSaved = false,
): string {
  const withHist = quantizers.filter((q) => isObject(q.hist) && Array.isArray(q.methods));
  if (!withHist.length) return '<p class="muted">No calibration histograms in this report.</p>';
  const items = withHist
    .slice()
    .sort((a, b) => (num(a.sqnr_db) ?? Infinity) - (num(b.sqnr_db) ?? Infinity))
    .map((q) => {
      const methods = arr(q.methods);
      const best = methods.reduce<Json | undefined>(
        (a, m) => ((num(m.sqnr_db) ?? -Infinity) > (num(a?.sqnr_db) ?? -Infinity) ? m : a),
        undefined,
      );
      const rows = methods
        .map(
          (m) =>
            `<tr${m.method === q.method ? ' class="chosen"' : ''}><td><span class="swatch ${METHOD_CLASS[String(m.method)] ?? ''}">■</span> ${escapeHtml(String(m.method))}${m.method === q.method ? ' <b class="tag">used</b>' : ''}${m === best ? ' <b class="tag">least error</b>' : ''}</td>` +
            `<td class="num">${fmt(m.amax)}</td><td class="num">${num(m.sqnr_db) === undefined ? DASH : `${(m.sqnr_db as number).toFixed(1)} dB`}</td><td class="num">${pct(m.clipped, 3)}</td></tr>`,
        )
        .join('');
      const fallback = isObject(q.fallback) ? `<p class="warn">${escapeHtml(String(q.fallback.reason ?? ''))}</p>` : '';
      return (
        `<details><summary><b>${escapeHtml(String(q.name))}</b> · ${escapeHtml(String(q.method ?? '?'))} amax ${fmt(q.amax)} · ${num(q.sqnr_db) === undefined ? '' : `${(q.sqnr_db as number).toFixed(1)} dB`}` +
        `${best && best.method !== q.method && (num(best.sqnr_db) ?? 0) - (num(q.sqnr_db) ?? 0) >= 0.5 ? ` · <span class="warn">${escapeHtml(String(best.method))} would add less error</span>` : ''}</summary>` +
        `<div class="explorer">${histogramSvg(q)}<table><thead><tr><th>Method</th><th>amax</th><th>SQNR</th><th>Clipped</th></tr></thead><tbody>${rows}</tbody></table>` +
        `${fallback}<p>${sourceLink(q, projectDir)}</p></div></details>`
      );
    })
    .join('');
  return (
    `<p class="muted">Each activation quantizer's calibration histogram of |x| (counts on a square-root scale) with the amax ` +
    `max, entropy, percentile and mse pick from the same data; this run used <b>${escapeHtml(String(method ?? '?'))}</b>. ` +
    `Worst SQNR first. On the command line: <code>qdq run &lt;project&gt; --method mse --reuse-histograms</code>.</p>` +
    (histogramsSaved && projectDir ? switchLinks(method, projectDir) : '') +
    items
  );
}

/** qat.json and tune.json of the same out-dir, when present, as FP32 / INT8 variants side by side. */
export function trainingSection(qat: unknown, tune: unknown): string {
  const parts: string[] = [];
  if (isObject(qat)) {
    const acc = (v: unknown) => (num(v) === undefined ? DASH : pct(v));
    const d = (v: unknown) =>
      num(v) !== undefined && num(qat.fp32) !== undefined ? pts((v as number) - (qat.fp32 as number)) : '';
    parts.push(
      '<h3>Quantization-aware training (qat.json)</h3>' +
        `<table><thead><tr><th></th><th>FP32</th><th>PTQ (calibrated)</th><th>QAT (fine-tuned)</th></tr></thead><tbody>` +
        `<tr><th>Top-1 accuracy</th><td>${acc(qat.fp32)}</td><td>${acc(qat.ptq)} ${d(qat.ptq)}</td><td>${acc(qat.qat)} ${d(qat.qat)}</td></tr>` +
        `</tbody></table><p class="muted">In PyTorch with fake quantization on ${fmt(qat.eval_samples)} eval-data samples; ${fmt(qat.epochs)} epochs at lr ${fmt(qat.lr)} on ${fmt(qat.processes)} process(es).</p>`,
    );
  }
  if (isObject(tune)) {
    const v = (k: string) => (isObject(tune[k]) ? (tune[k] as Json) : {});
    const metric = String(tune.metric ?? 'top1');
    const show = (x: unknown) => (metric === 'top1' ? pct(x) : `${fmt(x)} ${escapeHtml(metric)}`);
    const fp = num(v('fp32').accuracy);
    const dd = (x: unknown) =>
      metric === 'top1' && fp !== undefined && num(x) !== undefined ? pts((x as number) - fp) : '';
    const floats = Array.isArray(v('mixed').float_groups) ? (v('mixed').float_groups as unknown[]).map(String) : [];
    parts.push(
      '<h3>Mixed precision (tune.json)</h3>' +
        `<table><thead><tr><th></th><th>FP32</th><th>All INT8</th><th>Mixed</th></tr></thead><tbody>` +
        `<tr><th>${metric === 'top1' ? 'Top-1 accuracy' : escapeHtml(metric)}</th><td>${show(v('fp32').accuracy)}</td><td>${show(v('all_int8').accuracy)} ${dd(v('all_int8').accuracy)}</td><td>${show(v('mixed').accuracy)} ${dd(v('mixed').accuracy)}</td></tr>` +
        `<tr><th>Kept in float</th><td></td><td>none</td><td>${floats.length ? escapeHtml(floats.join(', ')) : 'none'}</td></tr>` +
        `</tbody></table><p class="muted">${tune.within_budget ? 'Within' : '<span class="warn">Not within</span>'} the budget; measured in PyTorch on ${fmt(tune.samples)} samples.</p>`,
    );
  }
  return parts.join('');
}
