// Whether a residual add's branch comes out of a convolution, read from the source: the static twin of
// backend/qdq_backend/residual_fusion.py. TensorRT fuses an add into a convolution's epilogue (Conv + Add, with a
// BatchNorm between folded into the conv), so only there does the skip input want a quantizer; the tensorrt
// export leaves the quantizer off every other add (a transformer's residual stream stays in float).
import type { ModuleClass, Op } from '../analysis/types';

/** How many assignments back a name is followed (`out = self.bn2(out)`, `out = self.conv2(out)`, ...). */
const MAX_DEPTH = 8;

/** `text[open]` is '(': the offset just past its matching ')', or -1. */
function closeParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return i + 1;
  }
  return -1;
}

/** The right-hand side of the last `name = ...` before `pos`'s line in the same method (and its offset), or null. */
function lastValue(text: string, cls: ModuleClass, name: string, pos: number): { value: string; at: number } | null {
  // lines wholly before the add's own line: in `out = out + x` the `out` read is the earlier one
  const before = text.slice(cls.span.start, Math.max(cls.span.start, text.lastIndexOf('\n', pos - 1) + 1));
  const assign = new RegExp(`^[ \\t]*${name}[ \\t]*=(?!=)[ \\t]*`, 'gm');
  let found: RegExpExecArray | null = null;
  for (let m = assign.exec(before); m; m = assign.exec(before)) found = m;
  if (!found || /^[ \t]*def\s/m.test(before.slice(found.index))) return null;
  const start = cls.span.start + found.index + found[0].length;
  const lineEnd = text.indexOf('\n', start);
  const line = text.slice(start, lineEnd < 0 ? text.length : lineEnd);
  const open = line.indexOf('(');
  if (open < 0 || line.slice(0, open).includes('#')) return { value: line.replace(/#.*$/, '').trim(), at: start };
  const end = closeParen(text, start + open);
  return end < 0 ? null : { value: text.slice(start, end), at: start };
}

/** Whether the expression `expr` (at `pos`) is a convolution's output, or a norm's over one. */
function fromConv(text: string, cls: ModuleClass, expr: string, pos: number, depth: number): boolean {
  let e = expr.trim();
  while (e.startsWith('(') && closeParen(e, 0) === e.length) e = e.slice(1, -1).trim();
  if (depth > MAX_DEPTH) return false;
  if (/^[A-Za-z_]\w*$/.test(e)) {
    const found = lastValue(text, cls, e, pos);
    return found !== null && fromConv(text, cls, found.value, found.at, depth + 1);
  }
  const call = /^self\.(\w+)\(/.exec(e);
  if (!call || closeParen(e, call[0].length - 1) !== e.length) return false;
  const layer = cls.layers.find((l) => l.attr === call[1]);
  if (!layer) return false;
  if (layer.kind === 'conv' || layer.kind === 'convtranspose' || /Conv/.test(layer.ctor)) return true;
  // BatchNorm over a convolution: the exporter folds it into the conv, so the add still follows the conv
  return (
    layer.kind === 'norm' &&
    /BatchNorm/.test(layer.ctor) &&
    fromConv(text, cls, e.slice(call[0].length, -1), pos, depth + 1)
  );
}

/** The add's branch (the operand that is not the skip input) as source text, or null when it cannot be told. */
function branchText(text: string, op: Op): string | null {
  const whole = text.slice(op.span.start, op.span.end);
  if (op.kind === 'iadd') return whole.slice(0, whole.indexOf('+=')).trim() || null;
  const roles = op.operandRoles;
  const local = roles ? roles.indexOf('local') : -1;
  if (local >= 0 && op.operandSpans[local]) return text.slice(op.operandSpans[local].start, op.operandSpans[local].end);
  if (op.operandSpans.length !== 1) return null;
  // `out + x` with the skip `x` alone recorded: the branch is the other side of the `+`
  const skip = op.operandSpans[0];
  const rest = text.slice(op.span.start, skip.start) + text.slice(skip.end, op.span.end);
  return rest.replace(/^\s*\+|\+\s*$/g, '').trim() || null;
}

/** True when the residual add `op` of `cls` follows a convolution (the adds TensorRT fuses and QDQ007 is about). */
export function addFollowsConv(text: string, cls: ModuleClass, op: Op): boolean {
  const branch = branchText(text, op);
  return branch !== null && fromConv(text, cls, branch, op.span.start, 0);
}
