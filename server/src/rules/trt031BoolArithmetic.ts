// TRT031: arithmetic and max/min on bool tensors.
import { inferDtype } from './dtype';
import { quoteSrc, trtScope } from './common';
import { boolSites, operandParent } from './boolProducers';
import type { RuleContext } from './context';
import type { QdqDiagnostic, QdqFix, Rule, SyntaxNode } from './types';

const why = (ctx: RuleContext) =>
  `TensorRT elementwise layers reject BOOL for Add/Sub/Mul/Div/Max/Min/Greater/Less ("Elementwise layer does not support operator ... with type BOOL"), ${trtScope(ctx)}`;
const ARITH = new Set(['+', '-', '*', '/', '//', '%', '**']);

function boolTensor(ctx: RuleContext, node: SyntaxNode | null): boolean {
  const d = inferDtype(ctx, node);
  return d.kind === 'bool' && d.certain && d.tensor === true;
}

export const trt031BoolArithmetic: Rule = {
  code: 'TRT031',
  title: 'Arithmetic on bool tensors',
  defaultSeverity: 'error',
  traced: true,
  docs: '**TRT031 bool arithmetic.** `mask_a + mask_b`, `mask * mask`, `mask.max()` on bool tensors export as Add/Mul/Max on BOOL, which TensorRT rejects. For bool tensors `+` is a logical or and `*` a logical and, so `torch.logical_or`/`torch.logical_and` give the same result with supported Or/And ops.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const seen = new Set<number>();
    const sites = boolSites(ctx);
    for (const n of [...sites.exprs, ...sites.reads]) {
      const { parent } = operandParent(n);
      if (!parent || seen.has(parent.id)) continue;
      if (parent.type === 'binary_operator') {
        const op = ctx.src(parent.childForFieldName('operator')!);
        if (!ARITH.has(op)) continue;
        const l = parent.childForFieldName('left')!;
        const r = parent.childForFieldName('right')!;
        if (!boolTensor(ctx, l) || !boolTensor(ctx, r)) continue;
        seen.add(parent.id);
        out.push(
          ctx.diag(
            'TRT031',
            'error',
            parent,
            `\`${op}\` on two bool tensors ${quoteSrc(ctx, l)} and ${quoteSrc(ctx, r)}: ${why(ctx)}.${op === '+' || op === '*' ? ` Use torch.logical_${op === '+' ? 'or' : 'and'} (same result on bool).` : ' Cast to int or float first.'}`,
            logicalFix(ctx, parent, op, l, r),
          ),
        );
      } else if (parent.type === 'augmented_assignment') {
        const op = ctx.src(parent.childForFieldName('operator')!);
        if (op !== '+=' && op !== '*=' && op !== '-=') continue;
        if (!boolTensor(ctx, parent.childForFieldName('left')) || !boolTensor(ctx, parent.childForFieldName('right')))
          continue;
        seen.add(parent.id);
        out.push(
          ctx.diag(
            'TRT031',
            'error',
            parent,
            `\`${op}\` on bool tensors: ${why(ctx)}. Use torch.logical_or / torch.logical_and.`,
          ),
        );
      } else if (parent.type === 'attribute' && parent.parent?.type === 'call') {
        const method = ctx.src(parent.childForFieldName('attribute')!);
        if (!['max', 'min', 'amax', 'amin'].includes(method) || !boolTensor(ctx, n)) continue;
        seen.add(parent.id);
        out.push(
          ctx.diag(
            'TRT031',
            'error',
            parent.parent,
            `\`.${method}()\` on the bool tensor ${quoteSrc(ctx, n)}: ${why(ctx)}. Use .any()/.all() or cast to int first.`,
          ),
        );
      }
    }
    return out;
  },
};

function logicalFix(ctx: RuleContext, b: SyntaxNode, op: string, l: SyntaxNode, r: SyntaxNode): QdqFix | undefined {
  if (op !== '+' && op !== '*') return undefined;
  const fn = op === '+' ? 'logical_or' : 'logical_and';
  const torch = [...ctx.aliases].find(([, v]) => v === 'torch')?.[0] ?? 'torch';
  return {
    title: `Use ${torch}.${fn} (same result on bool tensors)`,
    safety: 'safe',
    edits: [ctx.replace(b, `${torch}.${fn}(${ctx.src(l)}, ${ctx.src(r)})`)],
  };
}
