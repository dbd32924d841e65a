// TRT029: torch.fft.* (ONNX DFT, unsupported by TensorRT).
import { simpleCallRule } from './simpleCallRule';
import { trtScope } from './common';

export const trt029Fft = simpleCallRule({
  code: 'TRT029',
  title: 'FFT',
  defaultSeverity: 'error',
  names: [
    'fft',
    'ifft',
    'rfft',
    'irfft',
    'fft2',
    'ifft2',
    'rfft2',
    'irfft2',
    'fftn',
    'ifftn',
    'rfftn',
    'irfftn',
    'hfft',
    'ihfft',
  ],
  modules: ['torch.fft', 'torch'],
  methods: false,
  traced: true,
  docs: '**TRT029 FFT.** `torch.fft.*` exports as ONNX `DFT` (opset 17+) or not at all; TensorRT does not support DFT (unsupported through 11.x). Multiply by a precomputed DFT matrix instead.',
  message: (ctx, s) =>
    `\`${s.qualified}\` exports as ONNX DFT (or fails to export); TensorRT does not support DFT (${trtScope(ctx)}). Use a matmul with a precomputed DFT matrix.`,
});
