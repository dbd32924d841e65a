// QDQ002: non-positive or shape-dependent quantization scales.
import { quantFacts } from './quantizers';
import type { QdqDiagnostic, Rule } from './types';

export const qdq002Scale: Rule = {
  code: 'QDQ002',
  title: 'Invalid quantization scale',
  defaultSeverity: 'error',
  scope: 'file',
  docs: '**QDQ002 scale.** TensorRT rejects Q/DQ scales that are not positive ("Scale coefficients must all be positive") and scales whose shape is dynamic ("Dynamic shape for scale tensor is not supported"). Keep amax > 0 (clamp to a small epsilon) and compute scales from calibrated constants, not from tensor shapes.',
  check(ctx) {
    if (!quantFacts(ctx)) return [];
    const out: QdqDiagnostic[] = [];
    for (const site of ctx.calls('fake_quantize_per_tensor_affine', 'fake_quantize_per_channel_affine')) {
      const scale = site.kwargs.get('scale') ?? site.args[1];
      if (!scale) continue;
      const t = ctx.src(scale).replace(/\s+/g, '');
      if (/^-?\d*\.?\d+(?:e-?\d+)?$/i.test(t) && Number(t) <= 0) {
        out.push(
          ctx.diag(
            'QDQ002',
            'error',
            scale,
            `scale=${t}: TensorRT requires positive Q/DQ scales ("Scale coefficients must all be positive"). Clamp amax to a small positive value.`,
          ),
        );
      } else if (/\.shape\b|\.size\(/.test(t)) {
        out.push(
          ctx.diag(
            'QDQ002',
            'error',
            scale,
            'The scale depends on a tensor shape: TensorRT does not support a dynamic-shape scale tensor ("Dynamic shape for scale tensor is not supported"). Use calibrated constant scales.',
          ),
        );
      }
    }
    for (const site of ctx.calls('TensorQuantizer', 'QuantDescriptor', 'ScaledQuantDescriptor')) {
      const amax = site.kwargs.get('amax');
      if (!amax) continue;
      const t = ctx.src(amax).replace(/\s+/g, '');
      if (/^-?\d*\.?\d+(?:e-?\d+)?$/i.test(t) && Number(t) <= 0) {
        out.push(
          ctx.diag(
            'QDQ002',
            'error',
            amax,
            `amax=${t} gives a scale <= 0: TensorRT requires positive Q/DQ scales ("Scale coefficients must all be positive").`,
          ),
        );
      }
    }
    return out;
  },
};
