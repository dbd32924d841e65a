// TRT065: a quantized nn.Linear whose K (in_features) or N (out_features) is below 16.
import { intArg, keepFloatFix, quantizedLayers } from './quantizedLayers';
import type { QdqDiagnostic, Rule } from './types';

const MIN = 16;

export const trt065SmallGemm: Rule = {
  code: 'TRT065',
  title: `Quantized GEMM with K or N < ${MIN}`,
  defaultSeverity: 'information',
  scope: 'file',
  docs: `**TRT065 small quantized GEMM.** TensorRT's INT8 GEMM kernels run on tensor-core tiles ${MIN} wide in K and N; an \`nn.Linear(in, out)\` with \`in\` (K) or \`out\` (N) below ${MIN} is padded to a tile or falls back to a non-tensor-core kernel, so its Q/DQ pair adds quantization error (and reformat layers) for no speed-up. Classification heads with a few classes and tiny gates are the usual cases. Keep them in float (\`qdq_quant.keep_float\`).`,
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    for (const l of quantizedLayers(ctx)) {
      if (l.kind !== 'linear') continue;
      const k = intArg(ctx, l.call, 0, 'in_features');
      const n = intArg(ctx, l.call, 1, 'out_features');
      const small = [
        k !== null && k < MIN ? `K=${k} (in_features)` : null,
        n !== null && n < MIN ? `N=${n} (out_features)` : null,
      ].filter((s): s is string => s !== null);
      if (!small.length) continue;
      out.push(
        ctx.diag(
          'TRT065',
          'information',
          l.call,
          `Quantized GEMM with ${small.join(' and ')} below ${MIN}: TensorRT's INT8 tensor-core kernels work on ${MIN}-wide tiles, so this layer gains nothing from INT8 and only adds quantization error. Keep it in float.`,
          keepFloatFix(ctx, l),
        ),
      );
    }
    return out;
  },
};
