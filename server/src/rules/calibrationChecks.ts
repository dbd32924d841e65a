// The checks on calibration results (features/calibration.ts runs them on the pipeline's calibration.json and
// shows them as diagnostics and in hovers). Their codes and docs live here, next to the source rules, so that
// docs/rules.md documents them too (cli/rulesDoc.ts); what counts as a dead range is decided here as well.
import type { Severity } from './types';

export interface CalibrationCheck {
  code: 'QDQ-CAL001' | 'QDQ-CAL002' | 'QDQ-CAL003';
  title: string;
  defaultSeverity: Severity;
  docs: string;
}

export const CALIBRATION_CHECKS: readonly CalibrationCheck[] = [
  {
    code: 'QDQ-CAL001',
    title: 'Dead quantizer (amax 0 or NaN)',
    defaultSeverity: 'error',
    docs: "**QDQ-CAL001 dead quantizer.** After calibration the quantizer's amax is 0, NaN or infinite (for per-channel weights: on some channels). With amax 0 the scale is 0 and every value quantizes to 0; with NaN or inf the scale is NaN/inf and the layer's output is garbage (TensorRT also rejects non-positive or non-finite Q/DQ scales). It means the calibration data only produced zeros there, or NaN/inf came out of the model (an overflow, a division by zero, an uninitialised buffer). Calibrate with data that exercises the layer, fix the NaN at its source, or remove the quantizer. Reported on the layer or quantizer line once a calibration run's results are in the project's out-dir.",
  },
  {
    code: 'QDQ-CAL002',
    title: 'Quantizer never reached by calibration',
    defaultSeverity: 'warning',
    docs: '**QDQ-CAL002 never reached.** The calibration data never went through this quantizer (a branch the inputs do not take, a module built but unused), so it has no range and stays in float at export. Check that forward() reaches it for the calibration inputs, or remove it.',
  },
  {
    code: 'QDQ-CAL003',
    title: 'Range dominated by outliers',
    defaultSeverity: 'information',
    docs: '**QDQ-CAL003 outliers.** The calibrated amax is far above the 99.99th percentile of the values seen (more than 8x), so most values use only a few of the 256 INT8 levels. Percentile or entropy calibration usually fits better.',
  },
];

/**
 * amax values as numbers: report.json writes non-finite numbers as the strings "NaN", "Infinity", "-Infinity"
 * (JSON has no such numbers), other writers may too; anything else unreadable is NaN.
 */
export function amaxNumbers(amax: unknown): number[] | null {
  if (amax === null || amax === undefined) return null;
  const list = Array.isArray(amax) ? amax : [amax];
  return list.map((v) => (typeof v === 'number' ? v : typeof v === 'string' ? Number(v.trim()) : NaN));
}

/** Channels whose range is dead: amax 0, NaN or infinite. */
export function deadChannels(values: number[]): { zero: number; nonFinite: number } {
  let zero = 0;
  let nonFinite = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) nonFinite++;
    else if (v === 0) zero++;
  }
  return { zero, nonFinite };
}

/**
 * Bare NaN/Infinity tokens (Python's json.dumps writes them by default) as strings, so JSON.parse reads the file;
 * tokens inside strings are left alone.
 */
export function quoteNonFiniteTokens(raw: string): string {
  return raw.replace(/("(?:[^"\\]|\\.)*")|(-?Infinity|NaN)(?=\s*[,\]}])/g, (m, str: string | undefined) =>
    str !== undefined ? m : `"${m}"`,
  );
}
