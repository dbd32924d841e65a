// TRT025: scatter_add / scatter_reduce / index_add / scatter(reduce=...): ScatterElements with a reduction.
import type { QdqDiagnostic, Rule } from './types';

export const trt025ScatterReduce: Rule = {
  code: 'TRT025',
  title: 'Scatter with reduction',
  defaultSeverity: 'warning',
  traced: true,
  docs: "**TRT025 scatter reductions.** `scatter_add`, `scatter_reduce`, `index_add` and `scatter(..., reduce=...)` export (opset 16+) as ScatterElements with a `reduction` attribute: unsupported before TensorRT 10.0 and reported silently wrong on 8.6 (NVIDIA/TensorRT#3750). Validate the engine's numerics on 10.x and 11.x, or use a one-hot matmul (`F.one_hot(idx, n).float().T @ src`).",
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const modern = ctx.trtAtLeast(10);
    for (const site of ctx.calls(
      'scatter_add',
      'scatter_add_',
      'scatter_reduce',
      'scatter_reduce_',
      'index_add',
      'index_add_',
      'scatter',
      'scatter_',
    )) {
      if (site.receiver ? ctx.src(site.receiver) === 'self' : !ctx.isTorch(site)) continue;
      if ((site.name === 'scatter' || site.name === 'scatter_') && !site.kwargs.has('reduce')) continue;
      const msg = ctx.trtAtLeast(11)
        ? `\`${site.name}\` exports (opset 16+) as ScatterElements with a reduction: TensorRT ${ctx.trt.major}.x accepts it (target ${ctx.trt.text}), but it was silently wrong on older versions (NVIDIA/TensorRT#3750). Validate the engine's numerics, or use a one-hot matmul.`
        : modern
          ? `\`${site.name}\` exports (opset 16+) as ScatterElements with a reduction: supported only from TensorRT 10.0 (target ${ctx.trt.text}); it was silently wrong on 8.6 (NVIDIA/TensorRT#3750). Validate the engine's numerics, or use a one-hot matmul.`
          : `\`${site.name}\` exports (opset 16+) as ScatterElements with a reduction, which TensorRT ${ctx.trt.text} does not support (added in 10.0; silently wrong on 8.6, NVIDIA/TensorRT#3750). Use a one-hot matmul or export at opset <= 15.`;
      out.push(ctx.diag('TRT025', modern ? 'warning' : 'error', site.node, msg));
    }
    return out;
  },
};
