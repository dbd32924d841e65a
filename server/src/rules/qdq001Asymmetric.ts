// QDQ001: asymmetric / unsigned fake quantization (zero point != 0).
import { quantFacts } from './quantizers';
import { trtScope } from './common';
import type { CallSite, RuleContext } from './context';
import type { QdqDiagnostic, Rule } from './types';

const why = (ctx: RuleContext) =>
  `TensorRT only supports symmetric quantization: QuantizeLinear/DequantizeLinear zero points must be all zeros (${trtScope(ctx)}; a UINT8 zero point falls back to INT8 with a warning)`;

function num(ctx: RuleContext, site: CallSite, kw: string, index: number): number | null {
  const n = site.kwargs.get(kw) ?? site.args[index];
  if (!n) return null;
  const t = ctx.src(n).replace(/\s+/g, '');
  return /^-?\d+$/.test(t) ? Number(t) : null;
}

export const qdq001Asymmetric: Rule = {
  code: 'QDQ001',
  title: 'Asymmetric quantization',
  defaultSeverity: 'error',
  scope: 'file',
  docs: '**QDQ001 asymmetric quantization.** TensorRT requires zero point 0 (symmetric INT8, range [-128, 127]). `unsigned=True` quantizers, `torch.quint8`, affine qschemes, `quant_min=0, quant_max=255` and non-zero zero points fail to import. Use qint8, a symmetric qscheme and zero_point=0 (what qdq quantizers, pytorch-quantization and ModelOpt emit).',
  check(ctx) {
    if (!quantFacts(ctx)) return [];
    const out: QdqDiagnostic[] = [];
    for (const site of ctx.calls('TensorQuantizer', 'QuantDescriptor', 'ScaledQuantDescriptor')) {
      const u = site.kwargs.get('unsigned');
      if (u && ctx.src(u) === 'True')
        out.push(
          ctx.diag(
            'QDQ001',
            'error',
            u,
            `unsigned=True quantizes to UINT8 with a non-zero range offset: ${why(ctx)}. Use unsigned=False.`,
            { title: 'Use unsigned=False (signed INT8)', safety: 'unsafe', edits: [ctx.replace(u, 'False')] },
          ),
        );
    }
    for (const site of ctx.calls(
      'FakeQuantize',
      'FusedMovingAvgObsFakeQuantize',
      'MinMaxObserver',
      'MovingAverageMinMaxObserver',
      'PerChannelMinMaxObserver',
      'MovingAveragePerChannelMinMaxObserver',
      'HistogramObserver',
    )) {
      const dtype = site.kwargs.get('dtype');
      const qscheme = site.kwargs.get('qscheme');
      const qmin = num(ctx, site, 'quant_min', -1);
      const qmax = num(ctx, site, 'quant_max', -1);
      const problems: string[] = [];
      if (dtype && /quint8/.test(ctx.src(dtype))) problems.push('dtype=torch.quint8');
      if (qscheme && /affine/.test(ctx.src(qscheme))) problems.push(`qscheme=${ctx.src(qscheme)}`);
      if (qmin === 0 && qmax !== null && qmax > 0) problems.push(`quant_min=0, quant_max=${qmax}`);
      if (
        !dtype &&
        !qscheme &&
        /FakeQuantize$/.test(site.name) &&
        site.name === 'FakeQuantize' &&
        !site.args.length &&
        !site.kwargs.has('observer')
      ) {
        problems.push('FakeQuantize() defaults to quint8 with an affine observer');
      }
      if (problems.length)
        out.push(
          ctx.diag(
            'QDQ001',
            'error',
            site.node,
            `${problems.join('; ')}: ${why(ctx)}. Use dtype=torch.qint8, qscheme=torch.per_tensor_symmetric (or per_channel_symmetric), quant_min=-128, quant_max=127.`,
          ),
        );
    }
    for (const site of ctx.calls('fake_quantize_per_tensor_affine', 'fake_quantize_per_channel_affine')) {
      const perChannel = site.name.includes('channel');
      const zp = site.kwargs.get('zero_point') ?? site.args[2];
      const qmin = num(ctx, site, 'quant_min', perChannel ? 4 : 3);
      const qmax = num(ctx, site, 'quant_max', perChannel ? 5 : 4);
      const zpText = zp ? ctx.src(zp).replace(/\s+/g, '') : '';
      if (/^-?\d+$/.test(zpText) && Number(zpText) !== 0)
        out.push(ctx.diag('QDQ001', 'error', zp!, `zero_point=${zpText}: ${why(ctx)}. Use zero_point=0.`));
      else if (qmin === 0 && qmax !== null && qmax > 0)
        out.push(
          ctx.diag(
            'QDQ001',
            'error',
            site.node,
            `quant range [0, ${qmax}] is unsigned/asymmetric: ${why(ctx)}. Use [-128, 127] with zero_point=0.`,
          ),
        );
    }
    return out;
  },
};
