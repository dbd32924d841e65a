// QDQ004: per-channel weight quantizer on the wrong axis.
import { axisValue, quantFacts } from './quantizers';
import type { QdqDiagnostic, Rule } from './types';

export const qdq004WeightAxis: Rule = {
  code: 'QDQ004',
  title: 'Weight quantizer axis',
  defaultSeverity: 'error',
  scope: 'file',
  docs: '**QDQ004 weight axis.** Per-channel weight scales must run along the output-channel axis; the number of scales must equal the output channels ("The number of scales is not equal to the number of output channels"). nn.Linear and nn.ConvNd weights: axis 0 (Gemm weights from PyTorch use axis 0). nn.ConvTransposeNd weights are (C_in, C_out/groups, ...): output channels are axis 1 (inferred from the layout; pytorch-quantization shipped both 0 and 1, check your toolkit).',
  check(ctx) {
    if (!quantFacts(ctx)) return [];
    const out: QdqDiagnostic[] = [];
    for (const site of ctx.calls('QuantDescriptor', 'ScaledQuantDescriptor')) {
      const axis = site.kwargs.get('axis');
      if (!axis) continue;
      const v = axisValue(ctx, axis);
      if (v === null) continue;
      // Which layer is it for? quant_desc_weight=QuantDescriptor(...) inside QuantLinear/QuantConv(...).
      const kw = site.node.parent;
      if (kw?.type !== 'keyword_argument' || ctx.src(kw.childForFieldName('name')!) !== 'quant_desc_weight') continue;
      const layerCall = kw.parent?.parent;
      if (layerCall?.type !== 'call') continue;
      const layer = ctx.callSite(layerCall)?.name ?? '';
      const transpose = /Transpose/.test(layer);
      if (!transpose && v !== 0) {
        out.push(
          ctx.diag(
            'QDQ004',
            'error',
            axis,
            `Weight quantizer axis ${v} on ${layer}: TensorRT needs per-channel weight scales along the output channels, axis 0 for Linear/Conv weights ("number of scales is not equal to the number of output channels").`,
            { title: 'Use axis=(0,)', safety: 'unsafe', edits: [ctx.replace(axis, '(0,)')] },
          ),
        );
      } else if (transpose && v !== 1) {
        out.push(
          ctx.diag(
            'QDQ004',
            'warning',
            axis,
            `Weight quantizer axis ${v} on ${layer}: ConvTranspose weights are (C_in, C_out/groups, ...), so output channels are axis 1 (inferred from the layout); with axis ${v} the scale count may not match TensorRT's output channels.`,
          ),
        );
      }
    }
    for (const site of ctx.calls('fake_quantize_per_channel_affine')) {
      const w = site.args[0];
      const axis = site.kwargs.get('axis') ?? site.args[3];
      if (!w || !axis || !/(?:^|\.)weight$/.test(ctx.src(w))) continue;
      const v = axisValue(ctx, axis);
      if (v !== null && v !== 0 && !/transpose/i.test(ctx.src(w))) {
        out.push(
          ctx.diag(
            'QDQ004',
            'error',
            axis,
            `Per-channel weight quantization on axis ${v}: TensorRT needs the output-channel axis (0 for Linear/Conv weights).`,
          ),
        );
      }
    }
    return out;
  },
};
