// Values of the calibration and export knobs that more than one surface lists (CLI flags, [tool.qdq],
// editor settings): declared here once.
export const CALIBRATION_METHODS = ['max', 'entropy', 'percentile', 'mse'] as const;
export type Method = (typeof CALIBRATION_METHODS)[number];

export const TARGETS = ['tensorrt', 'tensorrt10', 'ort-cpu'] as const;
export type Target = (typeof TARGETS)[number];

/** Percentile of |x| kept by method = "percentile": in (0, 100]. */
export const PERCENTILE = { min: 0, minExclusive: true, max: 100, default: 99.99 } as const;

/** Calibration batches: a positive integer. */
export const BATCHES = { min: 1, max: 100000 } as const;
