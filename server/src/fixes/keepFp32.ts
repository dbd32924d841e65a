// "Keep in FP32": mark the weighted layer at an offset `qdq_quant.keep_float(C(...), "fp32")`, so TensorRT 11's
// strongly typed export (onnx/strongTyping.ts) keeps its ops FP32 instead of the low float precision. A layer not yet
// kept in float goes through keepFloat first (the same edit as "Keep in float"), then gains the precision argument.
import { LineIndex, parsePython } from '../analysis/parser';
import { buildModelIndex } from '../analysis/model';
import type { Layer } from '../analysis/types';
import { keepFloat, FixResult } from './quantize';
import { normalizeEdits, toTextEdits, OffsetEdit, TextEdit } from './edits';

const FP32_ARG = ', "fp32"';

function layerAt(text: string, offset: number): Layer | undefined {
  const index = buildModelIndex(parsePython(text), text);
  const all = [
    ...index.classes.flatMap((c) => c.layers),
    ...index.functions.flatMap((f) => f.layers),
    ...index.topLevelLayers,
  ];
  const outer = (l: Layer) => l.wrapperSpan ?? l.callSpan;
  return all
    .filter((l) => outer(l).start <= offset && offset <= outer(l).end)
    .sort((x, y) => outer(y).start - outer(x).start)[0];
}

/** Where `offset` of the original text lands after `edits` (inserts at `offset` itself go before it). */
function shifted(text: string, edits: TextEdit[], offset: number): number {
  const lines = new LineIndex(text);
  let at = offset;
  for (const e of edits) {
    const start = lines.offsetAt(e.range.start);
    const end = lines.offsetAt(e.range.end);
    if (start <= offset) at += e.newText.length - (end - start);
  }
  return at;
}

/**
 * `edits` (on the original text) plus one insert at `at` of the text they produce, as edits on the original text:
 * an insert that lands in text an edit inserted joins that edit, otherwise it maps back past the edits before it.
 */
function withInsert(text: string, edits: TextEdit[], at: number, insert: string): TextEdit[] {
  const lines = new LineIndex(text);
  const offs: OffsetEdit[] = edits
    .map((e) => ({ start: lines.offsetAt(e.range.start), end: lines.offsetAt(e.range.end), text: e.newText }))
    .sort((x, y) => x.start - y.start);
  let delta = 0;
  for (const e of offs) {
    const cs = e.start + delta;
    if (at < cs) break;
    if (at <= cs + e.text.length) {
      e.text = e.text.slice(0, at - cs) + insert + e.text.slice(at - cs);
      return toTextEdits(text, offs);
    }
    delta += e.text.length - (e.end - e.start);
  }
  const orig = at - delta;
  return toTextEdits(text, normalizeEdits([...offs, { start: orig, end: orig, text: insert }]));
}

export function keepFp32(text: string, offset: number): FixResult {
  let layer = layerAt(text, offset);
  if (!layer || layer.keepFp32) return { text, edits: [] };
  let current = text;
  let at = offset;
  let edits: TextEdit[] = [];
  if (layer.wrapped !== 'keep_float') {
    const r = keepFloat(text, layer.callSpan.start);
    if (r.text === text) return { text, edits: [] };
    current = r.text;
    edits = r.edits;
    at = shifted(text, r.edits, layer.callSpan.start);
    layer = layerAt(current, at);
    if (!layer || layer.wrapped !== 'keep_float') return { text, edits: [] };
  }
  const end = layer.wrapperSpan!.end;
  if (current[end - 1] !== ')') return { text, edits: [] };
  const out = current.slice(0, end - 1) + FP32_ARG + current.slice(end - 1);
  return { text: out, edits: withInsert(text, edits, end - 1, FP32_ARG) };
}
