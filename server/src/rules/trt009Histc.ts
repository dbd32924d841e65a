// TRT009: histc (not exportable to ONNX).
import { simpleCallRule } from './simpleCallRule';

export const trt009Histc = simpleCallRule({
  code: 'TRT009',
  title: 'histc',
  defaultSeverity: 'error',
  names: ['histc'],
  modules: ['torch'],
  methods: true,
  traced: true,
  docs: '**TRT009 histc.** `aten::histc` cannot be exported to ONNX (pytorch#74032), so it never reaches TensorRT. Compare against the bin edges in float and sum.',
  message: () =>
    '`histc` cannot be exported to ONNX (pytorch#74032), so no TensorRT version can run it. Compare against the bin edges in float and sum instead.',
});
