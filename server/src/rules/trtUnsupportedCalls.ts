// TRT007-010, TRT029, TRT049: calls TensorRT cannot run at all (or torch.onnx cannot export).
import { simpleCallRule } from './simpleCallRule';

export const trt007Unique = simpleCallRule({
  code: 'TRT007', title: 'unique', defaultSeverity: 'error', names: ['unique', 'unique_consecutive'], modules: ['torch'], methods: true,
  docs: '**TRT007 unique.** `torch.unique`/`unique_consecutive` export as ONNX `Unique`, which no TensorRT version supports (unsupported in 10.15; NVIDIA/TensorRT#3019). Compute it outside the engine, or use a fixed-size one-hot/bucket formulation.',
  message: (_ctx, s) => `\`${s.name}\` exports as ONNX Unique, which no TensorRT version imports (unsupported up to 10.15). Compute it outside the engine or use a fixed-size one-hot/bucket formulation.`,
});

export const trt008Bincount = simpleCallRule({
  code: 'TRT008', title: 'bincount', defaultSeverity: 'error', names: ['bincount'], modules: ['torch'], methods: true,
  docs: '**TRT008 bincount.** `aten::bincount` has no ONNX symbolic: `torch.onnx.export` fails before TensorRT is reached (any TensorRT version). Use `F.one_hot(x, n).sum(0)` or `torch.zeros(n).scatter_add_(0, x, ones)` with a fixed `n`.',
  message: () => '`bincount` cannot be exported to ONNX (aten::bincount has no symbolic), so no TensorRT version can run it. Use `F.one_hot(x, n).sum(0)` with a fixed n.',
});

export const trt009Histc = simpleCallRule({
  code: 'TRT009', title: 'histc', defaultSeverity: 'error', names: ['histc'], modules: ['torch'], methods: true,
  docs: '**TRT009 histc.** `aten::histc` cannot be exported to ONNX (pytorch#74032), so it never reaches TensorRT. Compare against the bin edges in float and sum.',
  message: () => '`histc` cannot be exported to ONNX (pytorch#74032), so no TensorRT version can run it. Compare against the bin edges in float and sum instead.',
});

export const trt010Searchsorted = simpleCallRule({
  code: 'TRT010', title: 'searchsorted', defaultSeverity: 'error', names: ['searchsorted'], modules: ['torch'], methods: false,
  docs: '**TRT010 searchsorted.** `aten::searchsorted` cannot be exported to ONNX (pytorch#151648), so it never reaches TensorRT. Rewrite as `(values[..., None] >= sorted_seq[..., None, :]).float().sum(-1)`.',
  message: () => '`torch.searchsorted` cannot be exported to ONNX (pytorch#151648), so no TensorRT version can run it. Use `(values[..., None] >= seq[..., None, :]).float().sum(-1)`.',
});

export const trt029Fft = simpleCallRule({
  code: 'TRT029', title: 'FFT', defaultSeverity: 'error',
  names: ['fft', 'ifft', 'rfft', 'irfft', 'fft2', 'ifft2', 'rfft2', 'irfft2', 'fftn', 'ifftn', 'rfftn', 'irfftn', 'hfft', 'ihfft'],
  modules: ['torch.fft', 'torch'], methods: false,
  docs: '**TRT029 FFT.** `torch.fft.*` exports as ONNX `DFT` (opset 17+) or not at all; TensorRT does not support DFT (unsupported up to 10.15). Multiply by a precomputed DFT matrix instead.',
  message: (_ctx, s) => `\`${s.qualified}\` exports as ONNX DFT (or fails to export); TensorRT does not support DFT in any version up to 10.15. Use a matmul with a precomputed DFT matrix.`,
});

export const trt049TorchAo = simpleCallRule({
  code: 'TRT049', title: 'torch.ao converted / dynamically quantized model', defaultSeverity: 'error',
  names: ['convert', 'quantize_dynamic', 'convert_fx', 'quantize', 'quantize_qat', 'convert_pt2e'],
  modules: ['torch.ao.quantization', 'torch.quantization', 'torch.ao.quantization.quantize_fx', 'torch.quantization.quantize_fx', 'torch.ao.quantization.quantize_pt2e'],
  methods: false,
  docs: '**TRT049 torch.ao quantized model.** `torch.ao.quantization.convert`/`quantize_dynamic` produce real quantized ops that export as QOperator ONNX (QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger, DynamicQuantizeLinear); TensorRT imports none of them (up to 10.15). TensorRT needs fake-quant Q/DQ pairs: keep the model in float with fake quantizers (qdq quantizers, pytorch-quantization, ModelOpt) and export that.',
  message: (_ctx, s) => `\`${s.qualified}\` builds a model with real quantized ops; its ONNX export uses QLinearConv/QLinearMatMul/ConvInteger/MatMulInteger/DynamicQuantizeLinear, which TensorRT does not import (any version up to 10.15). Export fake-quant Q/DQ instead (qdq quantizers).`,
});
