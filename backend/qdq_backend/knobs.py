# Generated from server/src/common/knobs.ts (the one home of the knobs) by server/src/pipeline/backendProtocolGen.ts:
# edit knobs.ts, then regenerate (npx tsc -p . && node out/server/src/pipeline/backendProtocolGen.js).
"""Defaults and ranges of the calibration and export knobs, as the TypeScript side declares them."""

METHOD_DEFAULT = "max"
PERCENTILE_DEFAULT = 99.99
PERCENTILE_MIN_EXCLUSIVE = 0
PERCENTILE_MAX = 100
BATCHES_DEFAULT = 16
BATCHES_MIN = 1
OPSET_DEFAULT = 13
OPSET_MIN = 13
EVAL_BATCHES_DEFAULT = 50
OUT_DIR_DEFAULT = "qdq-out"
