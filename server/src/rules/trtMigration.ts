// Shared by the TensorRT 11 migration rules (TRT060 Python API, TRT061 trtexec flags): TensorRT 11 builds only
// strongly typed networks, so the weak-typing API and flags that TensorRT 10 still takes are gone.
import type { RuleContext } from './context';
import type { Range, SyntaxNode } from './types';

export const REMOVED_IN = '11.0';

/** Severity and tense for the target: an error from 11.0, a deprecation warning before. */
export function migrationSeverity(ctx: RuleContext): 'error' | 'warning' {
  return ctx.trtAtLeast(11) ? 'error' : 'warning';
}

export function removedText(ctx: RuleContext): string {
  return ctx.trtAtLeast(11)
    ? `removed in TensorRT 11 (target ${ctx.trt.text})`
    : `deprecated, and removed in TensorRT 11 (target ${ctx.trt.text})`;
}

/** Offsets of every regex match in code (not in strings or comments). */
export function codeMatches(ctx: RuleContext, re: RegExp): RegExpExecArray[] {
  const out: RegExpExecArray[] = [];
  const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
  for (let m = g.exec(ctx.text); m; m = g.exec(ctx.text)) {
    if (ctx.isCode(m.index)) out.push(m);
  }
  return out;
}

/**
 * The range that deletes `stmt` with its whole line(s), when the statement stands alone on them and is not the only
 * statement of its block (deleting that would leave an empty block); otherwise null.
 */
export function wholeLineDeletion(ctx: RuleContext, stmt: SyntaxNode): Range | null {
  const parent = stmt.parent;
  if (!parent || (parent.type !== 'block' && parent.type !== 'module')) return null;
  if (parent.type === 'block' && parent.namedChildren.filter((c) => c.type !== 'comment').length < 2) return null;
  const lineStart = ctx.text.lastIndexOf('\n', stmt.startIndex - 1) + 1;
  if (ctx.text.slice(lineStart, stmt.startIndex).trim() !== '') return null;
  const nl = ctx.text.indexOf('\n', stmt.endIndex);
  if (nl < 0 || ctx.text.slice(stmt.endIndex, nl).trim() !== '') return null;
  const start = stmt.startPosition.row;
  const end = stmt.endPosition.row + 1;
  return { start: { line: start, character: 0 }, end: { line: end, character: 0 } };
}

/** The expression statement `node` is the whole expression of (through an attribute or call chain), or null. */
export function statementOfExpression(node: SyntaxNode): SyntaxNode | null {
  let n: SyntaxNode | null = node;
  while (n && n.type !== 'expression_statement') {
    const p: SyntaxNode | null = n.parent;
    if (!p || !['call', 'argument_list', 'attribute', 'assignment', 'expression_statement'].includes(p.type))
      return null;
    n = p;
  }
  return n;
}
