// QDQ010: torch.cat of inputs with different quantizers.
import { appliedQuantizer, quantFacts } from './quantizers';
import type { QdqDiagnostic, Rule } from './types';

export const qdq010ConcatScales: Rule = {
  code: 'QDQ010',
  title: 'Concat inputs with different scales',
  defaultSeverity: 'warning',
  scope: 'file',
  docs: '**QDQ010 concat scales.** Concat can stay in INT8 only when all its inputs share one scale (ModelOpt groups Concat inputs onto one quantizer); with different quantizers, or a mix of quantized and float inputs, TensorRT inserts requantization or runs the concat in float. Apply one shared quantizer to all inputs.',
  check(ctx) {
    const facts = quantFacts(ctx);
    if (!facts) return [];
    const out: QdqDiagnostic[] = [];
    for (const site of ctx.calls('cat', 'concat', 'concatenate')) {
      if (!ctx.isTorch(site)) continue;
      const list = site.args[0] ?? site.kwargs.get('tensors');
      if (!list || (list.type !== 'list' && list.type !== 'tuple') || list.namedChildCount < 2) continue;
      const names = list.namedChildren.map((e) => appliedQuantizer(ctx, facts, e));
      const quantized = names.filter((n): n is string => n !== null);
      if (!quantized.length) continue;
      const distinct = new Set(quantized);
      if (distinct.size > 1) {
        out.push(
          ctx.diag(
            'QDQ010',
            'warning',
            list,
            `The inputs of \`${site.qualified}\` use different quantizers (${[...distinct].map((n) => 'self.' + n).join(', ')}): Concat inputs should share one scale, otherwise TensorRT requantizes or runs the concat in float. Use one quantizer for all inputs.`,
          ),
        );
      } else if (quantized.length < names.length) {
        out.push(
          ctx.diag(
            'QDQ010',
            'warning',
            list,
            `Only some inputs of \`${site.qualified}\` are quantized: Concat inputs should share one scale. Quantize all inputs with \`self.${quantized[0]}\` or none.`,
          ),
        );
      }
    }
    return out;
  },
};
