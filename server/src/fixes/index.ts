// Public fixes API (see docs/DESIGN.md "Engine APIs"). TensorRT patches (applyTrtFixes) live in trt*.ts,
// owned by the rules; they are re-exported from here once present.
export { quantizeFile, unquantizeFile, keepFloat, quantizableSites, MARKER } from './quantize';
export { keepFp32 } from './keepFp32';
export type { QuantizeOptions, QuantizeResult, QuantizeScope, FixResult, QuantizableSites } from './quantize';
export { helperFileText, helperFileEdit, helperSourcePath } from './helperFile';
export type { TextEdit, OffsetEdit } from './edits';
export { applyOffsetEdits, normalizeEdits, toTextEdits } from './edits';
export { applyTrtFixes } from './trtFixes';
export type { TrtFixResult, TrtFixOptions } from './trtFixes';
