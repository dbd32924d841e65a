// Formatting for the report page: percentages, points, sizes, times and ratios as a reader expects them, and the
// small SVG pieces (axes with enough ticks) the charts share. Pure, like reportHtml.ts.

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
export const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export const DASH = '<span class="muted">–</span>';

/** A fraction as a percentage: 0.9556 -> "95.56%". */
export function pct(v: unknown, digits = 2): string {
  const n = num(v);
  return n === undefined ? DASH : `${(100 * n).toFixed(digits)}%`;
}

/** A difference of fractions in percentage points, signed: +0.28 pts. */
export function pts(v: unknown): string {
  const n = num(v);
  if (n === undefined) return '';
  const p = 100 * n;
  const cls = p < -0.005 ? 'worse' : p > 0.005 ? 'better' : 'same';
  return `<span class="delta ${cls}">${p >= 0 ? '+' : '−'}${Math.abs(p).toFixed(2)} pts</span>`;
}

/** Bytes as kB / MB (powers of 1000, as the CLI prints them). */
export function size(v: unknown): string {
  const n = num(v);
  if (n === undefined) return DASH;
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

export function ms(v: unknown): string {
  const n = num(v);
  return n === undefined ? DASH : `${n.toFixed(n < 10 ? 2 : 1)} ms`;
}

/** A ratio against FP32 (latency, size): lower is better. */
export function ratio(v: unknown, lowerIsBetter = true): string {
  const n = num(v);
  if (n === undefined) return '';
  const better = lowerIsBetter ? n < 0.995 : n > 1.005;
  const worse = lowerIsBetter ? n > 1.005 : n < 0.995;
  return `<span class="delta ${better ? 'better' : worse ? 'worse' : 'same'}">${n.toFixed(2)}× FP32</span>`;
}

/** A plain number: integers as they are, others to `digits` significant digits. */
export function fmt(v: unknown, digits = 4): string {
  const n = num(v);
  if (n !== undefined) return Number.isInteger(n) ? String(n) : n.toPrecision(digits);
  if (v === null || v === undefined) return DASH;
  if (typeof v === 'string') return escapeHtml(v);
  return escapeHtml(JSON.stringify(v));
}

/** Round tick positions covering [0, max]: 4 to 8 ticks at 1, 2 or 5 times a power of ten. */
export function ticks(max: number): number[] {
  if (!(max > 0)) return [0];
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => max / s <= 8) ?? 10 * mag;
  const out: number[] = [];
  for (let t = 0; t <= max * 1.0001; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

/** A linear x axis with grid lines and labels under a chart, `width` px from `x0`. */
export function xAxis(x0: number, width: number, top: number, bottom: number, max: number, unit: string): string {
  return ticks(max)
    .map((t) => {
      const x = x0 + (t / max) * width;
      return (
        `<line x1="${x.toFixed(1)}" y1="${top}" x2="${x.toFixed(1)}" y2="${bottom}" class="grid"/>` +
        `<text x="${x.toFixed(1)}" y="${bottom + 12}" text-anchor="middle" class="value">${Number(t.toPrecision(6))}${unit}</text>`
      );
    })
    .join('');
}
