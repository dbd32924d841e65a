// TRT017: matmul / @ / mm / bmm / F.linear on integer tensors.
import { intVerdict, quoteSrc, trtScope, worstVerdict, type IntVerdict } from './common';
import type { RuleContext } from './context';
import type { QdqDiagnostic, Rule, SyntaxNode } from './types';

const why = (ctx: RuleContext) =>
  `TensorRT MatMul/Gemm accept FP32/FP16/BF16 only and reject INT32/INT64 inputs ("Found unsupported input type") ${trtScope(ctx)}`;

export const trt017IntMatmul: Rule = {
  code: 'TRT017',
  title: 'Integer matmul',
  defaultSeverity: 'error',
  traced: true,
  docs: '**TRT017 integer matmul.** `torch.matmul`, `@`, `torch.mm`, `torch.bmm` and `F.linear` on integer tensors export as MatMul/Gemm with INT inputs, which the TensorRT importer rejects ("Found unsupported input type of INT32"). Cast the operands to float, or use Q/DQ quantizers for INT8 math.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const report = (node: SyntaxNode, what: string, operands: SyntaxNode[]) => {
      const verdicts = operands.map((o) => ({ o, v: intVerdict(ctx, o) }));
      const worst = worstVerdict(verdicts.map((x) => x.v));
      if (!worst) return;
      const culprit = verdicts.find((x) => x.v === worst)!;
      const desc = (v: IntVerdict) => `${quoteSrc(ctx, culprit.o)} (${v.info.why})`;
      if (worst.level === 'known')
        out.push(
          ctx.diag(
            'TRT017',
            'error',
            node,
            `${what} on an integer operand ${desc(worst)}: ${why(ctx)}. Cast the operands to float.`,
          ),
        );
      else if (worst.level === 'maybe')
        out.push(
          ctx.diag(
            'TRT017',
            'hint',
            node,
            `${what} operand ${desc(worst)} may be an integer tensor; if so: ${why(ctx)}.`,
          ),
        );
    };
    for (const site of ctx.calls('matmul', 'mm', 'bmm', 'linear')) {
      if (site.receiver) {
        if (site.name === 'linear' || ctx.src(site.receiver) === 'self') continue;
        report(site.node, `\`.${site.name}\``, [site.receiver, ...site.args.slice(0, 1)]);
      } else if (site.name === 'linear' ? ctx.isTorch(site, 'torch.nn.functional') : ctx.isTorch(site)) {
        report(site.node, `\`${site.qualified}\``, site.args.slice(0, 2));
      }
    }
    for (const op of ctx.operators()) {
      if (op.type !== 'binary_operator' || ctx.src(op.childForFieldName('operator')!) !== '@') continue;
      report(op, '`@`', [op.childForFieldName('left')!, op.childForFieldName('right')!]);
    }
    return out;
  },
};

export type { RuleContext };
