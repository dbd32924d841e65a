// TRT049: torch.ao converted / dynamically quantized models (QOperator ONNX, unsupported by TensorRT).
import { simpleCallRule } from './simpleCallRule';
import { trtScope } from './common';

export const trt049TorchAo = simpleCallRule({
  code: 'TRT049',
  title: 'torch.ao converted / dynamically quantized model',
  defaultSeverity: 'error',
  names: ['convert', 'quantize_dynamic', 'convert_fx', 'quantize', 'quantize_qat', 'convert_pt2e'],
  modules: [
    'torch.ao.quantization',
    'torch.quantization',
    'torch.ao.quantization.quantize_fx',
    'torch.quantization.quantize_fx',
    'torch.ao.quantization.quantize_pt2e',
  ],
  methods: false,
  docs: '**TRT049 torch.ao quantized model.** `torch.ao.quantization.convert`/`quantize_dynamic` produce real quantized ops that export as QOperator ONNX (QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger, DynamicQuantizeLinear); TensorRT imports none of them (through 11.x). TensorRT needs fake-quant Q/DQ pairs: keep the model in float with fake quantizers (qdq quantizers, pytorch-quantization, ModelOpt) and export that.',
  message: (ctx, s) =>
    `\`${s.qualified}\` builds a model with real quantized ops; its ONNX export uses QLinearConv/QLinearMatMul/ConvInteger/MatMulInteger/DynamicQuantizeLinear, which TensorRT does not import (${trtScope(ctx)}). Export fake-quant Q/DQ instead (qdq quantizers).`,
});
