// Where bool tensors come from (comparisons, .ne/.eq/..., .bool(), dtype=torch.bool): shared by TRT005 and
// TRT031. Found by a text scan, then each producer is followed to the names it is assigned to and their reads.
import { BOOL_PRODUCER_WORDS, unparen, type RuleContext } from './context';
import { inferDtype } from './dtype';
import type { SyntaxNode } from './types';

// Method/dtype producers anywhere; comparisons only where their value is kept: on an assignment line or
// inside brackets (`if a > b:` is Python control flow, not a tensor). The text scans are ctx.scan's (scan.ts).
function producerOffsets(ctx: RuleContext): number[] {
  const text = ctx.text;
  const out: number[] = [];
  for (const w of BOOL_PRODUCER_WORDS)
    for (const at of ctx.wordOffsets(w)) if (text.charCodeAt(at - 1) === 46 /* . */) out.push(at);
  for (const at of ctx.scan.boolLiterals) out.push(at);
  for (const at of ctx.scan.comparisons) out.push(at);
  return out.sort((a, b) => a - b);
}

export interface BoolSites {
  /** Expressions whose value the source shows is a bool tensor (or a bool of unknown tensor-ness). */
  exprs: SyntaxNode[];
  /** Reads of names assigned a bool value. */
  reads: SyntaxNode[];
}

const cache = new WeakMap<RuleContext, BoolSites>();

/** The outermost expression starting at a producer that still is the producer's value: `x.ne(p)`, `a > b`. */
function producerExpr(node: SyntaxNode): SyntaxNode | null {
  let n: SyntaxNode | null = node;
  while (
    n &&
    n.type !== 'call' &&
    n.type !== 'comparison_operator' &&
    n.type !== 'attribute' &&
    n.type !== 'keyword_argument'
  ) {
    if (n.type === 'block' || n.type === 'module' || n.type.endsWith('statement') || n.type === 'function_definition')
      return null;
    n = n.parent;
  }
  if (!n) return null;
  if (n.type === 'attribute' && n.parent?.type === 'call' && n.parent.childForFieldName('function')?.id === n.id)
    n = n.parent;
  if (n.type === 'keyword_argument') n = n.parent?.parent ?? null; // dtype=torch.bool -> the factory call
  return n;
}

export function boolSites(ctx: RuleContext): BoolSites {
  const cached = cache.get(ctx);
  if (cached) return cached;
  const sites: BoolSites = { exprs: [], reads: [] };
  cache.set(ctx, sites);
  const seenExpr = new Set<number>();
  const seenName = new Set<string>();
  for (const at of producerOffsets(ctx)) {
    if (!ctx.isCode(at)) continue;
    const tok = ctx.root.descendantForIndex(at, at + 1);
    if (tok.type === 'comment' || tok.type === 'string_content' || tok.type === 'string_start' || tok.type === 'string')
      continue;
    const expr = producerExpr(tok);
    if (!expr || seenExpr.has(expr.id)) continue;
    seenExpr.add(expr.id);
    const d = inferDtype(ctx, expr);
    if (d.kind !== 'bool' || d.tensor === false) continue;
    sites.exprs.push(expr);
    // Follow `name = <producer>` (possibly wrapped: `name = (a > b)`), to the reads of name.
    let top = expr;
    while (top.parent && top.parent.type === 'parenthesized_expression') top = top.parent;
    const assign = top.parent;
    if (assign?.type === 'assignment' && assign.childForFieldName('right')?.id === top.id) {
      const target = assign.childForFieldName('left');
      if (target?.type === 'identifier') {
        const name = ctx.src(target);
        const scope = ctx.scope(assign);
        const key = `${scope.node.id}:${name}`;
        if (seenName.has(key)) continue;
        seenName.add(key);
        for (const r of ctx.readsOf(scope, name)) if (r.startIndex > assign.endIndex) sites.reads.push(r);
      }
    }
  }
  return sites;
}

/** The expression a read or producer sits in as an operand: skips parentheses. */
export function operandParent(node: SyntaxNode): { parent: SyntaxNode | null; child: SyntaxNode } {
  let child = node;
  while (child.parent && child.parent.type === 'parenthesized_expression') child = child.parent;
  return { parent: child.parent, child };
}

export { unparen };
