"""Quantization primitives with NVIDIA pytorch-quantization's semantics.

    tensor_quant(x, amax)       -> (integers as float tensor, scale)   x ~= integers / scale
    fake_tensor_quant(x, amax)  -> integers / scale                    (float, same shape as x)

scale = max_bound / amax with max_bound = 2^(num_bits-1+unsigned) - 1 (127 for signed INT8);
values are rounded half to even and clamped to [min_bound, max_bound] where min_bound is 0
when unsigned, -max_bound with narrow_range (the default of these functions, as in
pytorch-quantization) and -max_bound-1 otherwise. Note the scale here is the reciprocal of
the ONNX/PyTorch "scale" (amax / 127). An amax at or below 2^-24 counts as zero: those
values quantize to 0 and their scale is reported as 1. Arithmetic is done in float32 and
the result cast back to the input's dtype.

Gradients are straight-through, clipped: the gradient passes unchanged where |x| <= amax
and is zero elsewhere; amax gets no gradient.

Per channel: `amax` may be any shape that broadcasts against `inputs`, or a 1-d tensor with
`axis=` naming the dimension of `inputs` it runs along.
"""

import torch

__all__ = ["tensor_quant", "fake_tensor_quant", "quant_bounds"]

_ZERO_AMAX = 1.0 / (1 << 24)


def quant_bounds(num_bits=8, unsigned=False, narrow_range=True):
    """(min_bound, max_bound) of the integer grid."""
    max_bound = 2.0 ** (num_bits - 1 + int(unsigned)) - 1.0
    if unsigned:
        return 0.0, max_bound
    return (-max_bound if narrow_range else -max_bound - 1.0), max_bound


def _prepare_amax(inputs, amax, axis):
    amax = torch.as_tensor(amax, device=inputs.device).detach().float()
    if axis is not None and amax.dim() == 1 and inputs.dim() > 1:
        axis = axis % inputs.dim()
        if amax.numel() != inputs.shape[axis]:
            raise ValueError(
                f"amax has {amax.numel()} values but inputs have {inputs.shape[axis]} channels on axis {axis}"
            )
        shape = [1] * inputs.dim()
        shape[axis] = -1
        amax = amax.reshape(shape)
    if amax.numel() and amax.min() < 0:
        raise ValueError("amax must not be negative")
    return amax


def _quantize(inputs, amax, num_bits, unsigned, narrow_range):
    if unsigned and inputs.numel() and inputs.min() < 0:
        raise TypeError("Negative values encountered in unsigned quantization.")
    x = inputs.float()
    min_bound, max_bound = quant_bounds(num_bits, unsigned, narrow_range)
    zero_amax = amax <= _ZERO_AMAX
    # scale 0 makes every value of an all-zero channel quantize to 0 ...
    scale = torch.where(zero_amax, torch.zeros_like(amax), max_bound / amax.clamp(min=_ZERO_AMAX))
    integers = torch.clamp(torch.round(x * scale), min_bound, max_bound)
    # ... and reporting it as 1 keeps integers / scale finite.
    scale = torch.where(zero_amax, torch.ones_like(scale), scale)
    return integers, scale


class _TensorQuantFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, amax, num_bits, unsigned, narrow_range):
        ctx.save_for_backward(inputs, amax)
        integers, scale = _quantize(inputs, amax, num_bits, unsigned, narrow_range)
        return integers.to(inputs.dtype), scale

    @staticmethod
    def backward(ctx, grad_integers, grad_scale):
        inputs, amax = ctx.saved_tensors
        # Straight-through within the representable range, zero where clipped.
        grad = torch.where(inputs.abs() <= amax, grad_integers, torch.zeros_like(grad_integers))
        return grad, None, None, None, None


class _FakeTensorQuantFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, amax, num_bits, unsigned, narrow_range):
        ctx.save_for_backward(inputs, amax)
        integers, scale = _quantize(inputs, amax, num_bits, unsigned, narrow_range)
        return (integers / scale).to(inputs.dtype)

    @staticmethod
    def backward(ctx, grad_outputs):
        inputs, amax = ctx.saved_tensors
        grad = torch.where(inputs.abs() <= amax, grad_outputs, torch.zeros_like(grad_outputs))
        return grad, None, None, None, None


def tensor_quant(inputs, amax, num_bits=8, unsigned=False, *, narrow_range=True, axis=None):
    """Quantizes `inputs` with range `amax`; returns (integer-valued tensor, scale)."""
    amax = _prepare_amax(inputs, amax, axis)
    return _TensorQuantFunction.apply(inputs, amax, num_bits, unsigned, narrow_range)


def fake_tensor_quant(inputs, amax, num_bits=8, unsigned=False, *, narrow_range=True, axis=None):
    """Quantizes and dequantizes `inputs` with range `amax` (same shape and dtype)."""
    amax = _prepare_amax(inputs, amax, axis)
    return _FakeTensorQuantFunction.apply(inputs, amax, num_bits, unsigned, narrow_range)
