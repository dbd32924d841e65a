// TRT007: torch.unique / unique_consecutive (ONNX Unique, unsupported by TensorRT).
import { simpleCallRule } from './simpleCallRule';

export const trt007Unique = simpleCallRule({
  code: 'TRT007',
  title: 'unique',
  defaultSeverity: 'error',
  names: ['unique', 'unique_consecutive'],
  modules: ['torch'],
  methods: true,
  docs: '**TRT007 unique.** `torch.unique`/`unique_consecutive` export as ONNX `Unique`, which no TensorRT version supports (unsupported in 10.15; NVIDIA/TensorRT#3019). Compute it outside the engine, or use a fixed-size one-hot/bucket formulation.',
  message: (_ctx, s) =>
    `\`${s.name}\` exports as ONNX Unique, which no TensorRT version imports (unsupported up to 10.15). Compute it outside the engine or use a fixed-size one-hot/bucket formulation.`,
});
