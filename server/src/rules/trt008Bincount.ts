// TRT008: bincount (not exportable to ONNX).
import { simpleCallRule } from './simpleCallRule';

export const trt008Bincount = simpleCallRule({
  code: 'TRT008',
  title: 'bincount',
  defaultSeverity: 'error',
  names: ['bincount'],
  modules: ['torch'],
  methods: true,
  traced: true,
  docs: '**TRT008 bincount.** `aten::bincount` has no ONNX symbolic: `torch.onnx.export` fails before TensorRT is reached (any TensorRT version). Use `F.one_hot(x, n).sum(0)` or `torch.zeros(n).scatter_add_(0, x, ones)` with a fixed `n`.',
  message: () =>
    '`bincount` cannot be exported to ONNX (aten::bincount has no symbolic), so no TensorRT version can run it. Use `F.one_hot(x, n).sum(0)` with a fixed n.',
});
