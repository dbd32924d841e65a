// The calibration and export knobs, declared once. Every surface that lists one reads it from here:
// - the editor settings (server/src/settings.ts, and package.json `contributes.configuration` generated from it
//   by client/src/syncManifest.ts),
// - `[tool.qdq]` validation and defaults (server/src/pipeline/config.ts),
// - the CLI flags (common/commandLine.ts),
// - the Python backend's defaults for a param the client left out: backend/qdq_backend/knobs.py, generated from
//   this file (pythonKnobsSource(); written with the protocol types by pipeline/backendProtocolGen.ts).
// test/pipeline/generated.test.ts fails while package.json or knobs.py disagree with this file.
export const CALIBRATION_METHODS = ['max', 'entropy', 'percentile', 'mse'] as const;
export type Method = (typeof CALIBRATION_METHODS)[number];

/** How activation ranges are chosen: max is the cheapest and needs no histogram. */
export const METHOD = { values: CALIBRATION_METHODS, default: 'max' } as const;

export const TARGETS = ['tensorrt', 'tensorrt10', 'ort-cpu'] as const;
export type Target = (typeof TARGETS)[number];
export const TARGET = { values: TARGETS, default: 'tensorrt' } as const;

/** Percentile of |x| kept by method = "percentile": in (0, 100]. */
export const PERCENTILE = { min: 0, minExclusive: true, max: 100, default: 99.99 } as const;

/** Calibration batches: a positive integer. */
export const BATCHES = { min: 1, max: 100000, default: 16 } as const;

/** ONNX opset of the export: QuantizeLinear with a per-channel axis needs 13. */
export const OPSET = { min: 13, max: 23, default: 13 } as const;

/** Batches of eval-data written for verification (export) and measured on (sensitivity, tune). */
export const EVAL_BATCHES = { min: 1, default: 50 } as const;

/** The output folder, relative to the project. */
export const OUT_DIR = { default: 'qdq-out' } as const;

/** The TensorRT version the diagnostics check against when none is given. */
export const DEFAULT_TRT_VERSION = '11.5';

/** `lo <= n <= hi`, or `lo < n` when the range is open at its low end. */
export function inRange(n: number, r: { min: number; max: number; minExclusive?: boolean }): boolean {
  return (r.minExclusive ? n > r.min : n >= r.min) && n <= r.max;
}

/** "(0, 100]" / "[13, 23]": how a range reads in a message. */
export function describeRange(r: { min: number; max: number; minExclusive?: boolean }): string {
  return `${r.minExclusive ? '(' : '['}${r.min}, ${r.max}]`;
}

/** The text of backend/qdq_backend/knobs.py: the defaults the backend applies to a param the client left out. */
export function pythonKnobsSource(): string {
  const py = (v: string | number) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  return [
    '# Generated from server/src/common/knobs.ts (the one home of the knobs) by server/src/pipeline/backendProtocolGen.ts:',
    '# edit knobs.ts, then regenerate (npx tsc -p . && node out/server/src/pipeline/backendProtocolGen.js).',
    '"""Defaults and ranges of the calibration and export knobs, as the TypeScript side declares them."""',
    '',
    `METHOD_DEFAULT = ${py(METHOD.default)}`,
    `PERCENTILE_DEFAULT = ${py(PERCENTILE.default)}`,
    `PERCENTILE_MIN_EXCLUSIVE = ${py(PERCENTILE.min)}`,
    `PERCENTILE_MAX = ${py(PERCENTILE.max)}`,
    `BATCHES_DEFAULT = ${py(BATCHES.default)}`,
    `BATCHES_MIN = ${py(BATCHES.min)}`,
    `OPSET_DEFAULT = ${py(OPSET.default)}`,
    `OPSET_MIN = ${py(OPSET.min)}`,
    `EVAL_BATCHES_DEFAULT = ${py(EVAL_BATCHES.default)}`,
    `OUT_DIR_DEFAULT = ${py(OUT_DIR.default)}`,
    '',
  ].join('\n');
}
