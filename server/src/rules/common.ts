// Helpers shared by the rules: integer-ness verdicts and version phrasing.
import type { RuleContext } from './context';
import { describeKind, inferDtype, isIntegerLike, type DInfo } from './dtype';
import type { Severity, SyntaxNode } from './types';

export type IntVerdict =
  | { level: 'known'; info: DInfo } // the source shows an int/bool/uint8 tensor
  | { level: 'maybe'; info: DInfo } // only the name suggests it (input_ids)
  | { level: 'unknown'; info: DInfo } // cannot be determined
  | { level: 'no'; info: DInfo }; // known floating point or a Python scalar

export function intVerdict(ctx: RuleContext, node: SyntaxNode | null): IntVerdict {
  const info = inferDtype(ctx, node);
  if (info.kind === 'float') return { level: 'no', info };
  if (isIntegerLike(info)) {
    if (info.tensor === false) return { level: 'no', info };
    return { level: info.certain ? 'known' : 'maybe', info };
  }
  return { level: 'unknown', info };
}

/** The most integer-like verdict over several operands (known > maybe > unknown > no). */
export function worstVerdict(vs: IntVerdict[]): IntVerdict | null {
  const order = ['known', 'maybe', 'unknown', 'no'];
  let best: IntVerdict | null = null;
  for (const v of vs) if (!best || order.indexOf(v.level) < order.indexOf(best.level)) best = v;
  return best;
}

export function kindText(v: IntVerdict): string {
  return describeKind(v.info);
}

/** One lower severity, for "may be integer" / "could not determine" reports. */
export function lower(s: Severity): Severity {
  return s === 'error' ? 'warning' : s === 'warning' ? 'information' : 'hint';
}

export function quoteSrc(ctx: RuleContext, node: SyntaxNode, max = 60): string {
  // Only the start is shown: whitespace is folded in a bounded prefix, so quoting each of thousands of nested
  // calls does not read all of each (issue 14 D2). The folded prefix starts the folded whole; when it is too
  // short to be cut (mostly whitespace), the whole is folded.
  const raw = ctx.src(node);
  let t = (raw.length > 4 * max ? raw.slice(0, 4 * max) : raw).replace(/\s+/g, ' ');
  if (raw.length > 4 * max && t.length <= max) t = raw.replace(/\s+/g, ' ');
  return '`' + (t.length > max ? t.slice(0, max - 1) + '…' : t) + '`';
}

/**
 * The versions a documented TensorRT limit is stated for, phrased for the target: the 11.x line for the default
 * target, "every version up to 10.15" for a 10.x target (the 10.15 matrix is the newest 10.x one qdq has), the
 * target itself for older ones. Messages never cite 10.x facts to an 11.x user (test/rules/trt11.test.ts).
 */
export function trtScope(ctx: RuleContext): string {
  if (ctx.trtAtLeast(11)) return `in TensorRT ${ctx.trt.major}.x, target ${ctx.trt.text}`;
  if (ctx.trtAtLeast(10)) return 'in every TensorRT version up to 10.15';
  return `in TensorRT ${ctx.trt.text}`;
}
