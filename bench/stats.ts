// Timing and reporting helpers shared by the bench sections.
import * as fs from 'fs';
import * as path from 'path';

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Milliseconds since an arbitrary origin, sub-millisecond resolution. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * Times several variants side by side: `rounds` rounds, each running every variant `perRound` times after
 * `warmup` untimed calls, in turn, so that machine noise (other processes on the 2 cores) hits all alike.
 * Returns every variant's per-call samples in ms.
 */
export async function interleaved(
  variants: Record<string, () => unknown | Promise<unknown>>,
  opts: { rounds: number; perRound: number; warmup: number },
): Promise<Record<string, number[]>> {
  const samples: Record<string, number[]> = {};
  for (const name of Object.keys(variants)) samples[name] = [];
  for (let r = 0; r < opts.rounds; r++) {
    for (const [name, fn] of Object.entries(variants)) {
      for (let w = 0; w < (r === 0 ? opts.warmup : 1); w++) await fn();
      for (let i = 0; i < opts.perRound; i++) {
        const t0 = nowMs();
        await fn();
        samples[name].push(nowMs() - t0);
      }
    }
  }
  return samples;
}

export interface TargetCheck {
  section: string;
  target: string;
  value: string;
  met: boolean | null;
  note?: string;
}

/** A plain-text table with right-aligned numeric columns. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toPrecision(digits);
}

export function writeJsonAtomic(file: string, data: unknown): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

/** Progress on stderr (the table goes to stdout). */
const benchStart = Date.now();
export function progress(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - benchStart) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
}

/** A section that could not run says why, instead of failing silently. */
export class Skip extends Error {}
