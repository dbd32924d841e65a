// TRT007: torch.unique / unique_consecutive (ONNX Unique, unsupported by TensorRT).
import { simpleCallRule } from './simpleCallRule';
import { trtScope } from './common';

export const trt007Unique = simpleCallRule({
  code: 'TRT007',
  title: 'unique',
  defaultSeverity: 'error',
  names: ['unique', 'unique_consecutive'],
  modules: ['torch'],
  methods: true,
  traced: true,
  docs: '**TRT007 unique.** `torch.unique`/`unique_consecutive` export as ONNX `Unique`, which no TensorRT version supports (unsupported through 11.x; NVIDIA/TensorRT#3019). Compute it outside the engine, or use a fixed-size one-hot/bucket formulation.',
  message: (ctx, s) =>
    `\`${s.name}\` exports as ONNX Unique, which no TensorRT version imports (unsupported ${trtScope(ctx)}). Compute it outside the engine or use a fixed-size one-hot/bucket formulation.`,
});
