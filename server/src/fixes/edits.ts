// Text edits on UTF-16 offsets, converted to LSP TextEdits (0-based lines, UTF-16 characters).
import { LineIndex } from '../analysis/parser';
import type { Range } from '../analysis/types';

export interface TextEdit {
  range: Range;
  newText: string;
}

/** A replacement of [start, end) by `text`; inserts have start === end. */
export interface OffsetEdit {
  start: number;
  end: number;
  text: string;
  /** Among inserts at the same offset, lower `order` goes first. */
  order?: number;
}

/** Merge inserts at the same offset (in order), drop duplicates and overlaps, sort by position. */
export function normalizeEdits(edits: OffsetEdit[]): OffsetEdit[] {
  const sorted = edits
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.start - b.e.start || a.e.end - b.e.end || (a.e.order ?? 0) - (b.e.order ?? 0) || a.i - b.i)
    .map((x) => x.e);
  const out: OffsetEdit[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last && last.start === e.start && last.end === e.start && e.start === e.end) {
      last.text += e.text; // two inserts at one offset
      continue;
    }
    if (last && e.start < last.end) continue; // overlapping: keep the first
    if (last && last.start === e.start && last.end === last.start && e.end > e.start) {
      // insert followed by a replacement at the same offset: fold into one replacement
      last.end = e.end;
      last.text += e.text;
      continue;
    }
    out.push({ ...e });
  }
  return out;
}

export function applyOffsetEdits(text: string, edits: OffsetEdit[]): string {
  const parts: string[] = [];
  let pos = 0;
  for (const e of edits) {
    parts.push(text.slice(pos, e.start), e.text);
    pos = e.end;
  }
  parts.push(text.slice(pos));
  return parts.join('');
}

export function toTextEdits(text: string, edits: OffsetEdit[], lines?: LineIndex): TextEdit[] {
  const idx = lines ?? new LineIndex(text);
  return edits.map((e) => ({ range: { start: idx.positionAt(e.start), end: idx.positionAt(e.end) }, newText: e.text }));
}

/** Offset of the start of the line after the one holding `offset` (text.length at the last line). */
export function nextLineStart(text: string, offset: number): number {
  const nl = text.indexOf('\n', offset);
  return nl < 0 ? text.length : nl + 1;
}

export function lineStartOf(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}
