// Which functional-op operands may carry an activation quantizer. The model index finds residual adds and
// matmuls by their shape in the source; this asks what the rules' dtype inference (rules/dtype.ts) knows of
// the values, and keeps quantizers off what is not a float activation: Python ints and sizes
// (`x.shape[1] + 1`, `arange(n) + past_seen_tokens`), bools and integer tensors, tuples, and additive masks
// and biases (`scores + attention_mask`, `logits + self.bias`), which are not residuals: TensorRT adds them
// in float, and quantizing a -inf mask to INT8 destroys it.
import type { SyntaxNode, Tree } from '../analysis';
import type { Op, Span } from '../analysis/types';
import { RuleContext } from '../rules/context';
import { inferDtype } from '../rules/dtype';

/** The base name of an operand once views, casts and indexing are looked through: `causal_mask.to(x)[..., :n]`. */
function baseName(n: SyntaxNode): string {
  for (let depth = 0; depth < 12; depth++) {
    if (n.type === 'parenthesized_expression' && n.namedChildren[0]) n = n.namedChildren[0];
    else if (n.type === 'subscript') n = n.childForFieldName('value') ?? n;
    else if (n.type === 'call') {
      const f = n.childForFieldName('function');
      if (f?.type !== 'attribute' || !VIEW_METHODS.test(f.childForFieldName('attribute')?.text ?? '')) break;
      n = f.childForFieldName('object') ?? n;
    } else break;
  }
  if (n.type === 'identifier') return n.text;
  if (n.type === 'attribute') return n.childForFieldName('attribute')?.text ?? '';
  return '';
}

const VIEW_METHODS =
  /^(to|type|type_as|float|half|bfloat16|view|reshape|expand|expand_as|unsqueeze|squeeze|permute|transpose|contiguous|clone|detach|repeat|flatten|narrow|masked_fill)$/;
/** Additive masks and biases, position terms: added to activations, not a second activation path. */
const MASK_OR_BIAS = /mask|bias|(^|_)pos(_|$)|position|alibi|rel_|relative/i;
const SEQUENCE_TYPES = new Set(['tuple', 'list', 'list_comprehension', 'generator_expression', 'dictionary']);

export interface OperandFilter {
  /** Why op's operands must stay unquantized, or null when they may be quantized. */
  skipReason(op: Op): string | null;
  /** Counts by reason of ops left alone, for the corpus report. */
  readonly skipped: Map<string, number>;
}

function nodeAt(tree: Tree, span: Span): SyntaxNode | null {
  let n: SyntaxNode | null = tree.rootNode.descendantForIndex(span.start, span.end);
  while (n && (n.startIndex > span.start || n.endIndex < span.end)) n = n.parent;
  return n && n.startIndex === span.start && n.endIndex === span.end ? n : null;
}

export function operandFilter(tree: Tree, text: string): OperandFilter {
  let ctx: RuleContext | undefined;
  const context = (): RuleContext => (ctx ??= new RuleContext(tree, text));
  const skipped = new Map<string, number>();
  const why = (op: Op, sides: SyntaxNode[]): string | null => {
    for (const side of sides) {
      if (SEQUENCE_TYPES.has(side.type)) return 'a tuple or list';
      const d = inferDtype(context(), side);
      if (d.kind === 'int' || d.kind === 'bool' || d.kind === 'uint8')
        if (d.certain || d.tensor !== true) return `${d.kind} values (${d.why})`;
      if (d.tensor === false && d.kind !== 'unknown') return 'a Python scalar';
    }
    if (op.kind === 'add' || op.kind === 'iadd') {
      for (const side of sides) {
        const name = baseName(side);
        if (name && MASK_OR_BIAS.test(name)) return `an additive mask or bias (\`${name}\`)`;
      }
    }
    return null;
  };
  return {
    skipped,
    skipReason(op: Op): string | null {
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
      if (reason) {
        const key = reason.replace(/ \(.*$/, '');
        skipped.set(key, (skipped.get(key) ?? 0) + 1);
      }
      return reason;
    },
  };
}
