// TRT010: searchsorted (not exportable to ONNX).
import { simpleCallRule } from './simpleCallRule';

export const trt010Searchsorted = simpleCallRule({
  code: 'TRT010',
  title: 'searchsorted',
  defaultSeverity: 'error',
  names: ['searchsorted'],
  modules: ['torch'],
  methods: false,
  traced: true,
  docs: '**TRT010 searchsorted.** `aten::searchsorted` cannot be exported to ONNX (pytorch#151648), so it never reaches TensorRT. Rewrite as `(values[..., None] >= sorted_seq[..., None, :]).float().sum(-1)`.',
  message: () =>
    '`torch.searchsorted` cannot be exported to ONNX (pytorch#151648), so no TensorRT version can run it. Use `(values[..., None] >= seq[..., None, :]).float().sum(-1)`.',
});
