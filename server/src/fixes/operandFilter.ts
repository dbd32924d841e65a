// Which functional-op operands may carry an activation quantizer. The model index finds residual adds and
// matmuls by their shape in the source; this asks what the rules' dtype inference (rules/dtype.ts) knows of
// the values, and keeps quantizers off what is not a float activation: Python ints and sizes
// (`x.shape[1] + 1`, `arange(n) + past_seen_tokens`), bools and integer tensors, tuples, and additive masks
// and biases (`scores + attention_mask`, `logits + self.bias`), which are not residuals: TensorRT adds them
// in float, and quantizing a -inf mask to INT8 destroys it.
import type { SyntaxNode, Tree } from '../analysis';
import type { ModelIndex, Op, Span } from '../analysis/types';
import { RuleContext } from '../rules/context';
import { inferDtype } from '../rules/dtype';

/**
 * The names an operand is made of once views, casts and indexing are looked through:
 * `causal_mask.to(x)[..., :n]` -> causal_mask, `self.get_rel_pos_bias()` -> get_rel_pos_bias,
 * `(1.0 - to_mask) * penalty` -> to_mask, penalty. A module call's arguments are not looked into
 * (`self.attn(x, attn_mask=m)` is the attention branch, named attn).
 */
function baseNames(n: SyntaxNode, out: string[] = [], depth = 0): string[] {
  if (depth > 12) return out;
  switch (n.type) {
    case 'parenthesized_expression':
      if (n.namedChildren[0]) baseNames(n.namedChildren[0], out, depth + 1);
      break;
    case 'subscript':
      baseNames(n.childForFieldName('value') ?? n, out, depth + 1);
      break;
    case 'binary_operator': {
      const op = n.childForFieldName('operator')?.text ?? '';
      if (op === '*' || op === '-' || op === '/') {
        for (const side of [n.childForFieldName('left'), n.childForFieldName('right')])
          if (side) baseNames(side, out, depth + 1);
      }
      break;
    }
    case 'call': {
      const f = n.childForFieldName('function');
      const method = f?.type === 'attribute' ? (f.childForFieldName('attribute')?.text ?? '') : '';
      if (f?.type === 'attribute' && VIEW_METHODS.test(method))
        baseNames(f.childForFieldName('object') ?? f, out, depth + 1);
      else if (method) out.push(method);
      else if (f?.type === 'identifier') out.push(f.text);
      break;
    }
    case 'identifier':
      out.push(n.text);
      break;
    case 'attribute':
      out.push(n.childForFieldName('attribute')?.text ?? '');
      break;
  }
  return out;
}

const VIEW_METHODS =
  /^(to|type|type_as|float|half|bfloat16|view|reshape|expand|expand_as|unsqueeze|squeeze|permute|transpose|contiguous|clone|detach|repeat|flatten|narrow|masked_fill)$/;
/** Additive masks and biases, position terms: added to activations, not a second activation path. */
const MASK_OR_BIAS = /mask|bias|(^|_)(pos|rel)(_|$)|position|alibi|relative/i;
const SEQUENCE_TYPES = new Set(['tuple', 'list', 'list_comprehension', 'generator_expression', 'dictionary']);

export interface OperandFilter {
  /** The document version it answers for. */
  readonly tree: Tree;
  readonly text: string;
  /** Why op's operands must stay unquantized, or null when they may be quantized (worked out once per op). */
  skipReason(op: Op): string | null;
  /** Counts by reason of the ops left alone (each op once), for the corpus report. */
  readonly skipped: Map<string, number>;
}

function nodeAt(tree: Tree, span: Span): SyntaxNode | null {
  let n: SyntaxNode | null = tree.rootNode.descendantForIndex(span.start, span.end);
  while (n && (n.startIndex > span.start || n.endIndex < span.end)) n = n.parent;
  return n && n.startIndex === span.start && n.endIndex === span.end ? n : null;
}

/**
 * The operand filter of the document version `index` was built from (`tree`, `text`: the document's own text).
 * Made once per version and kept in the document's IndexCaches, so that the code actions, fileHasWork and the
 * fix engine, which all ask through quantizableSites, share one filter and one dtype inference per version.
 */
export function operandFilterFor(index: ModelIndex, tree: Tree, text: string): OperandFilter {
  const caches = index.lineage?.caches;
  const kept = caches?.operandFilter;
  if (kept && kept.tree === tree && kept.text === text) return kept;
  const filter = operandFilter(tree, text);
  if (caches) caches.operandFilter = filter;
  return filter;
}

export function operandFilter(tree: Tree, text: string): OperandFilter {
  let ctx: RuleContext | undefined;
  const context = (): RuleContext => (ctx ??= new RuleContext(tree, text));
  const skipped = new Map<string, number>();
  const answers = new Map<string, string | null>();
  const why = (op: Op, sides: SyntaxNode[]): string | null => {
    for (const side of sides) {
      if (SEQUENCE_TYPES.has(side.type)) return 'a tuple or list';
      const d = inferDtype(context(), side);
      if (d.kind === 'int' || d.kind === 'bool' || d.kind === 'uint8')
        if (d.certain || d.tensor !== true) return `${d.kind} values (${d.why})`;
      if (d.tensor === false && d.kind !== 'unknown') return 'a Python scalar';
    }
    if (op.kind === 'add' || op.kind === 'iadd') {
      for (const side of sides)
        for (const name of baseNames(side))
          if (MASK_OR_BIAS.test(name)) return `an additive mask or bias (\`${name}\`)`;
    }
    return null;
  };
  return {
    tree,
    text,
    skipped,
    skipReason(op: Op): string | null {
      const key = `${op.kind}:${op.span.start}:${op.span.end}`;
      const known = answers.get(key);
      if (known !== undefined) return known;
      const node = nodeAt(tree, op.span);
      let sides: SyntaxNode[] = [];
      if (node && (node.type === 'binary_operator' || node.type === 'augmented_assignment')) {
        const l = node.childForFieldName('left');
        const r = node.childForFieldName('right');
        sides = [l, r].filter((x): x is SyntaxNode => !!x);
      } else {
        sides = op.operandSpans.map((s) => nodeAt(tree, s)).filter((x): x is SyntaxNode => !!x);
      }
      const reason = why(op, sides);
      answers.set(key, reason);
      if (reason) {
        const count = reason.replace(/ \(.*$/, '');
        skipped.set(count, (skipped.get(count) ?? 0) + 1);
      }
      return reason;
    },
  };
}
