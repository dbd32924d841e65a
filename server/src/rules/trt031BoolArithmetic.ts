// TRT031: arithmetic / ordering comparisons / max-min on bool tensors.
import { inferDtype } from './dtype';
import { quoteSrc } from './common';
import { isPrimary, type RuleContext } from './context';
import type { QdqDiagnostic, QdqFix, Rule, SyntaxNode } from './types';

const WHY = 'TensorRT elementwise layers reject BOOL for Add/Sub/Mul/Div/Max/Min/Greater/Less ("Elementwise layer does not support operator ... with type BOOL"), all versions up to 10.15';
const BOOL_HINT = /\.(?:ne|eq|gt|lt|ge|le|bool|logical_\w+|isnan|isinf|isfinite|isin)\s*\(|torch\.(?:eq|ne|gt|lt|ge|le|logical_\w+|isnan|isinf|isfinite|isin)\s*\(|torch\.bool\b|BoolTensor|^[ \t]*\w+[ \t]*=[^=\n]*[^<>=!\n](?:[<>]=?|==|!=)[^=\n]/gm;

function boolTensor(ctx: RuleContext, node: SyntaxNode | null): boolean {
  const d = inferDtype(ctx, node);
  return d.kind === 'bool' && d.certain && d.tensor === true;
}

export const trt031BoolArithmetic: Rule = {
  code: 'TRT031',
  title: 'Arithmetic on bool tensors',
  defaultSeverity: 'error',
  docs: '**TRT031 bool arithmetic.** `mask_a + mask_b`, `mask * mask`, `mask.max()`, `mask > x` on bool tensors export as Add/Mul/Max/Greater on BOOL, which TensorRT rejects. For bool tensors `+` is a logical or and `*` a logical and, so `torch.logical_or`/`torch.logical_and` give the same result with supported Or/And ops.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const scopes = new Set<number>();
    BOOL_HINT.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = BOOL_HINT.exec(ctx.text))) {
      const at = m.index + (m[0].length - m[0].trimStart().length);
      const node = ctx.root.descendantForIndex(at, at + 1);
      if (node.type === 'comment' || node.type === 'string_content') continue;
      const scope = ctx.scope(node);
      if (scopes.has(scope.node.id)) continue;
      scopes.add(scope.node.id);
      for (const b of scope.binaries) {
        const op = ctx.src(b.childForFieldName('operator')!);
        if (!['+', '-', '*', '/', '//', '%', '**'].includes(op)) continue;
        const l = b.childForFieldName('left')!;
        const r = b.childForFieldName('right')!;
        if (!boolTensor(ctx, l) || !boolTensor(ctx, r)) continue;
        out.push(ctx.diag('TRT031', 'error', b, `\`${op}\` on two bool tensors ${quoteSrc(ctx, l)} and ${quoteSrc(ctx, r)}: ${WHY}.${op === '+' || op === '*' ? ` Use torch.logical_${op === '+' ? 'or' : 'and'} (same result on bool).` : ' Cast to int or float first.'}`, logicalFix(ctx, b, op, l, r)));
      }
      for (const a of scope.augmented) {
        const op = ctx.src(a.childForFieldName('operator')!);
        if (op !== '+=' && op !== '*=' && op !== '-=') continue;
        const l = a.childForFieldName('left')!;
        const r = a.childForFieldName('right')!;
        if (!boolTensor(ctx, l) || !boolTensor(ctx, r)) continue;
        out.push(ctx.diag('TRT031', 'error', a, `\`${op}\` on bool tensors: ${WHY}. Use torch.logical_or / torch.logical_and.`));
      }
    }
    for (const site of ctx.calls('max', 'min', 'amax', 'amin')) {
      if (!site.receiver || !boolTensor(ctx, site.receiver)) continue;
      out.push(ctx.diag('TRT031', 'error', site.node, `\`.${site.name}()\` on the bool tensor ${quoteSrc(ctx, site.receiver)}: ${WHY}. Use .any()/.all() or cast to int first.`));
    }
    return out;
  },
};

function logicalFix(ctx: RuleContext, b: SyntaxNode, op: string, l: SyntaxNode, r: SyntaxNode): QdqFix | undefined {
  if (op !== '+' && op !== '*') return undefined;
  const fn = op === '+' ? 'logical_or' : 'logical_and';
  const torch = [...ctx.aliases].find(([, v]) => v === 'torch')?.[0] ?? 'torch';
  void isPrimary;
  return { title: `Use ${torch}.${fn} (same result on bool tensors)`, safety: 'safe', edits: [ctx.replace(b, `${torch}.${fn}(${ctx.src(l)}, ${ctx.src(r)})`)] };
}
