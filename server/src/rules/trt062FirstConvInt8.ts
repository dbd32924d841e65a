// TRT062: an INT8 convolution with <= 3 input channels (the stem conv on the RGB/grey image).
import { intArg, keepFloatFix, quantizedLayers } from './quantizedLayers';
import type { QdqDiagnostic, Rule } from './types';

export const trt062FirstConvInt8: Rule = {
  code: 'TRT062',
  title: 'INT8 convolution with <= 3 input channels',
  defaultSeverity: 'warning',
  scope: 'file',
  docs: '**TRT062 INT8 first convolution.** A convolution with 3 (or fewer) input channels is almost always the stem on the raw image. Quantizing it puts the image itself on 256 levels and gains TensorRT little: INT8 convolution kernels work on channel groups (inputs are padded to 4 or 32 channels), so a 3-channel conv is memory-bound either way. Deployment recipes keep the stem in float; the quick fix wraps it in `qdq_quant.keep_float(...)` instead of `qdq_quant.quant(...)`.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    for (const l of quantizedLayers(ctx)) {
      if (l.kind !== 'conv') continue;
      const cin = intArg(ctx, l.call, 0, 'in_channels');
      if (cin === null || cin > 3) continue;
      out.push(
        ctx.diag(
          'TRT062',
          'warning',
          l.call,
          `\`${ctx.src(l.call.childForFieldName('function')!)}\` with ${cin} input channel${cin === 1 ? '' : 's'} is quantized: INT8 on the raw image input costs accuracy and gains TensorRT little (INT8 conv kernels pad the input to 4/32 channels). Keep the first convolution in float.`,
          keepFloatFix(ctx, l),
        ),
      );
    }
    return out;
  },
};
