// TRT030: bitwise operators / torch.bitwise_* on integer tensors (BitwiseAnd/Or/Xor/Not, BitShift).
import { intVerdict, quoteSrc, trtScope, worstVerdict } from './common';
import type { RuleContext } from './context';
import type { QdqDiagnostic, Rule, SyntaxNode } from './types';

const TYPE_NAMES = new Set([
  'int',
  'float',
  'str',
  'bool',
  'bytes',
  'list',
  'dict',
  'tuple',
  'set',
  'type',
  'object',
  'None',
  'Tensor',
  'Any',
]);
const why = (ctx: RuleContext) => `ONNX BitwiseAnd/Or/Xor/Not and BitShift are unsupported ${trtScope(ctx)}`;

export const trt030Bitwise: Rule = {
  code: 'TRT030',
  title: 'Bitwise ops on integers',
  defaultSeverity: 'error',
  traced: true,
  docs: '**TRT030 bitwise ops.** `&`, `|`, `^`, `~`, `<<`, `>>` and `torch.bitwise_*` on integer tensors export as BitwiseAnd/Or/Xor/Not and BitShift, which TensorRT does not support. On bool tensors they export as And/Or/Xor/Not, which are fine: keep masks as bool and use `torch.logical_*`. In-place `&=` on tensors does not even export (aten::__iand_).',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const judge = (node: SyntaxNode, what: string, operands: SyntaxNode[], unknownToo: boolean) => {
      // Python type unions and flag arithmetic on builtins are not tensor ops.
      if (
        operands.some(
          (o) =>
            o.type === 'none' ||
            (o.type === 'identifier' && TYPE_NAMES.has(ctx.src(o))) ||
            (o.type === 'subscript' &&
              /^(?:Optional|Union|list|dict|tuple|List|Dict|Tuple|type|Type)\b/.test(ctx.src(o))),
        )
      )
        return;
      if (node.parent?.type === 'type') return;
      const v = worstVerdict(operands.map((o) => intVerdict(ctx, o)));
      if (!v) return;
      const idx = operands.findIndex((o) => intVerdict(ctx, o) === v);
      const culprit = operands[idx >= 0 ? idx : 0];
      if (v.level === 'known' && v.info.kind !== 'bool') {
        out.push(
          ctx.diag(
            'TRT030',
            'error',
            node,
            `${what} on the integer tensor ${quoteSrc(ctx, culprit)} (${v.info.why}): ${why(ctx)}. Use bool masks with torch.logical_* or integer arithmetic.`,
          ),
        );
      } else if (v.level === 'maybe' && v.info.kind !== 'bool') {
        out.push(
          ctx.diag(
            'TRT030',
            'hint',
            node,
            `${what} on ${quoteSrc(ctx, culprit)}, which may be an integer tensor (${v.info.why}); if so: ${why(ctx)}.`,
          ),
        );
      } else if (v.level === 'unknown' && unknownToo) {
        out.push(
          ctx.diag(
            'TRT030',
            'hint',
            node,
            `Could not determine whether ${quoteSrc(ctx, culprit)} is a bool or an integer tensor. On integers, ${what} fails: ${why(ctx)}; on bool it exports as a supported logical op.`,
          ),
        );
      }
    };
    for (const op of ctx.operators()) {
      const opText = ctx.src(op.childForFieldName('operator')!);
      if (opText === '@' || opText === '@=') continue;
      if (op.type === 'unary_operator') {
        if (opText !== '~') continue;
        judge(op, '`~`', [op.childForFieldName('argument')!], false);
      } else if (op.type === 'binary_operator') {
        judge(op, `\`${opText}\``, [op.childForFieldName('left')!, op.childForFieldName('right')!], false);
      } else {
        judge(op, `\`${opText}\``, [op.childForFieldName('left')!, op.childForFieldName('right')!], false);
      }
    }
    for (const site of ctx.calls(
      'bitwise_and',
      'bitwise_or',
      'bitwise_xor',
      'bitwise_not',
      'bitwise_left_shift',
      'bitwise_right_shift',
      'bitwise_and_',
      'bitwise_or_',
      'bitwise_xor_',
      'bitwise_not_',
    )) {
      if (site.receiver ? ctx.src(site.receiver) === 'self' : !ctx.isTorch(site)) continue;
      const operands = site.receiver ? [site.receiver, ...site.args.slice(0, 1)] : site.args.slice(0, 2);
      judge(site.node, `\`${site.name}\``, operands, true);
    }
    return out;
  },
};
