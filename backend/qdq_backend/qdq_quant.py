"""INT8 fake quantization for PyTorch models, written into your project by qdq.

This file is yours: qdq copied it here the first time you quantized a layer, and it
never changes it again. It depends only on torch.

What it provides (the lines qdq inserts into your model use exactly these):

    layer = qdq_quant.quant(nn.Conv2d(3, 16, 3))   # a QuantConv2d, still an nn.Conv2d
    head = qdq_quant.keep_float(nn.Linear(64, 10))  # stays float, quant() skips it
    self.matmul0_a_quantizer = qdq_quant.TensorQuantizer()  # for torch.matmul, @, +, ...

Quantization is symmetric INT8: scale = amax / 127, zero point 0, integers in [-128, 127],
weights per output channel, activations per tensor. A quantizer with no `amax` yet (not
calibrated) passes its input through unchanged, so a freshly quantized model computes
exactly what the float model computed. Fake quantization goes through PyTorch's own
`torch.fake_quantize_per_tensor_affine` / `torch.fake_quantize_per_channel_affine`, which
`torch.onnx.export` (opset 13 or later) turns into QuantizeLinear/DequantizeLinear pairs,
the form TensorRT and ONNX Runtime read; their gradients are straight-through (zero only
where a value was clipped), so quantization-aware fine-tuning works as well.
"""

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "TensorQuantizer",
    "quant",
    "keep_float",
    "QuantLinear",
    "QuantConv1d",
    "QuantConv2d",
    "QuantConv3d",
    "QuantConvTranspose1d",
    "QuantConvTranspose2d",
    "QuantConvTranspose3d",
]

# amax at or below this (the smallest FP16 subnormal) counts as zero: the tensor was all
# zeros. The scale is never allowed below _ZERO_AMAX / 127, as QuantizeLinear divides by it.
_ZERO_AMAX = 2.0**-24


class TensorQuantizer(nn.Module):
    """Fake-quantizes one tensor (per tensor, or per channel along `axis`).

    State:
      amax        buffer, None until calibrated; then a 0-d tensor (per tensor) or a
                  1-d tensor with one value per channel of `axis`. Saved in state_dict.
      enabled     False makes the quantizer a pass-through.
      calibrator  None, or a callable that receives every input (detached) instead of
                  it being quantized; qdq sets it while calibrating.
      qdq_site    "Class.attr" of the source line that created it, when known.
    """

    def __init__(self, num_bits=8, axis=None, unsigned=False, qdq_site=None):
        super().__init__()
        self.num_bits = num_bits
        self.axis = axis
        self.unsigned = unsigned
        self.enabled = True
        self.calibrator = None
        self.qdq_site = qdq_site
        # A None buffer is not in state_dict, so a float checkpoint (which has no amax)
        # still loads strictly into a model whose quantizers are not calibrated yet.
        self.register_buffer("amax", None)

    @property
    def quant_min(self):
        return 0 if self.unsigned else -(2 ** (self.num_bits - 1))

    @property
    def quant_max(self):
        return 2**self.num_bits - 1 if self.unsigned else 2 ** (self.num_bits - 1) - 1

    def set_amax(self, amax):
        """Sets (or with None, clears) the calibrated range."""
        if amax is None:
            self.amax = None
            return
        amax = torch.as_tensor(amax, dtype=torch.float32).detach().clone()
        if self.axis is None and amax.numel() == 1:
            amax = amax.reshape(())
        elif self.axis is not None:
            amax = amax.reshape(-1)
        device = self.amax.device if self.amax is not None else amax.device
        self.amax = amax.to(device)

    def forward(self, x):
        if self.calibrator is not None:
            # detach only when there is a graph: under no_grad it would be one more op per call
            self.calibrator(x.detach() if x.requires_grad else x)
            return x
        if not self.enabled or self.amax is None or not x.is_floating_point():
            return x
        if x.dtype != torch.float32:
            # PyTorch's fake-quant kernels take float32 only (FP16/BF16 models).
            return self._fake_quant(x.float()).to(x.dtype)
        return self._fake_quant(x)

    def _fake_quant(self, x):
        # Symmetric: the scale maps amax onto the largest positive integer (127). An amax
        # of ~0 (an all-zero tensor) gets a tiny scale, so everything quantizes to ~0.
        scale = self.amax.detach().float().clamp(min=_ZERO_AMAX) / self.quant_max
        if torch.jit.is_tracing():
            # torch.onnx.export (TorchScript) would record the arithmetic above as graph
            # nodes; TensorRT wants scales to be constants, so pass the values instead.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scale = torch.tensor(scale.tolist(), dtype=torch.float32)
        scale = scale.to(x.device)
        tracing = torch.jit.is_tracing()  # shapes are fixed there; skip the checks
        if self.axis is None:
            if not tracing and scale.numel() != 1:
                raise ValueError(
                    f"{self._name()}: per-tensor quantizer got {scale.numel()} amax values; "
                    "set axis=<channel dim> for per-channel quantization or recalibrate."
                )
            zero_point = torch.zeros((), dtype=torch.int32, device=x.device)
            return torch.fake_quantize_per_tensor_affine(
                x, scale.reshape(()), zero_point, self.quant_min, self.quant_max
            )
        axis = self.axis % x.dim()
        if not tracing and scale.numel() != x.shape[axis]:
            raise ValueError(
                f"{self._name()}: amax has {scale.numel()} values but the input has "
                f"{x.shape[axis]} channels on axis {self.axis}; recalibrate this model."
            )
        # int32: the per-channel op rejects int64 zero points (torch 1.13 and 2.x alike).
        zero_point = torch.zeros(scale.numel(), dtype=torch.int32, device=x.device)
        return torch.fake_quantize_per_channel_affine(
            x, scale.reshape(-1), zero_point, axis, self.quant_min, self.quant_max
        )

    def _name(self):
        return f"TensorQuantizer({self.qdq_site})" if self.qdq_site else "TensorQuantizer"

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # amax has no fixed shape before calibration: take the checkpoint's shape, then let
        # the normal loading copy the values (and report missing/unexpected keys).
        key = prefix + "amax"
        if key in state_dict and torch.is_tensor(state_dict[key]):
            device = self.amax.device if self.amax is not None else state_dict[key].device
            self.amax = torch.empty_like(state_dict[key], dtype=torch.float32, device=device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self):
        parts = [f"num_bits={self.num_bits}", f"axis={self.axis}"]
        if self.unsigned:
            parts.append("unsigned=True")
        if self.amax is None:
            parts.append("amax=None")
        elif self.amax.dim() == 0:
            parts.append(f"amax={self.amax.item():.4g}")
        else:
            parts.append(f"amax=[{self.amax.min().item():.4g}..{self.amax.max().item():.4g}]x{self.amax.numel()}")
        if not self.enabled:
            parts.append("enabled=False")
        if self.calibrator is not None:
            parts.append("calibrating")
        return ", ".join(parts)


class _QuantMixin:
    """Adds the quantizers; the float layer's parameters, hooks and state are kept."""

    # Output channels of the weight: dim 0 for Linear/Conv, dim 1 for ConvTranspose
    # (its weight is [in, out/groups, *kernel]).
    _weight_axis = 0

    def _add_quantizers(self):
        self.input_quantizer = TensorQuantizer()
        self.weight_quantizer = TensorQuantizer(axis=self._weight_axis)
        # Off unless enabled: ONNX Runtime's CPU provider only runs integer kernels when
        # the output of a MatMul/Conv is quantized too; TensorRT prefers it float.
        self.output_quantizer = TensorQuantizer()
        self.output_quantizer.enabled = False

    def _quantized_weight(self):
        return self.weight_quantizer(self.weight)


class QuantLinear(_QuantMixin, nn.Linear):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_quantizers()

    def forward(self, input):
        out = F.linear(self.input_quantizer(input), self._quantized_weight(), self.bias)
        return self.output_quantizer(out)


class _QuantConvNd(_QuantMixin):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_quantizers()

    def forward(self, input):
        # _conv_forward handles padding modes other than zeros (reflect, circular, ...).
        out = self._conv_forward(self.input_quantizer(input), self._quantized_weight(), self.bias)
        return self.output_quantizer(out)


class QuantConv1d(_QuantConvNd, nn.Conv1d):
    pass


class QuantConv2d(_QuantConvNd, nn.Conv2d):
    pass


class QuantConv3d(_QuantConvNd, nn.Conv3d):
    pass


class _QuantConvTransposeNd(_QuantMixin):
    _weight_axis = 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_quantizers()

    def forward(self, input, output_size=None):
        if self.padding_mode != "zeros":
            raise ValueError(f"Only `zeros` padding mode is supported for {type(self).__name__}")
        dims = len(self.kernel_size)
        output_padding = self._output_padding(
            input, output_size, self.stride, self.padding, self.kernel_size, dims, self.dilation
        )
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
        out = conv(
            self.input_quantizer(input),
            self._quantized_weight(),
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )
        return self.output_quantizer(out)


class QuantConvTranspose1d(_QuantConvTransposeNd, nn.ConvTranspose1d):
    pass


class QuantConvTranspose2d(_QuantConvTransposeNd, nn.ConvTranspose2d):
    pass


class QuantConvTranspose3d(_QuantConvTransposeNd, nn.ConvTranspose3d):
    pass


# Exact float class -> drop-in subclass. Exact: a subclass of nn.Conv2d has a forward of its
# own, which these drop-ins would replace; it gets one from _subclass_drop_in instead.
_QUANT_CLASSES = {
    nn.Linear: QuantLinear,
    nn.Conv1d: QuantConv1d,
    nn.Conv2d: QuantConv2d,
    nn.Conv3d: QuantConv3d,
    nn.ConvTranspose1d: QuantConvTranspose1d,
    nn.ConvTranspose2d: QuantConvTranspose2d,
    nn.ConvTranspose3d: QuantConvTranspose3d,
}


class _QuantSubclassMixin(_QuantMixin):
    """Drop-in for a subclass of a weighted layer (timm's Linear, Conv2dSame, HF's Conv1D).

    Its own forward runs unchanged: the input is quantized on the way in, and for the
    duration of the call `self.weight` reads the fake-quantized weight, so whatever the
    subclass does with its weight sees the INT8 values.
    """

    def forward(self, input, *args, **kwargs):
        params = self._parameters
        weight = params["weight"]
        params["weight"] = self._quantized_weight()
        try:
            out = super().forward(self.input_quantizer(input), *args, **kwargs)
        finally:
            params["weight"] = weight
        return self.output_quantizer(out)


_SUBCLASS_DROP_INS = {}


def _weight_axis_of(module):
    """Output-channel axis of the weight, or None when `module` is no weighted layer quant() knows."""
    if isinstance(module, (_QuantMixin, TensorQuantizer)):
        return None
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return 1
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        return 0
    # Hugging Face's Conv1D (GPT-2 and relatives): a linear layer with its weight stored transposed,
    # [in, out], so the output channels are axis 1.
    weight = getattr(module, "_parameters", {}).get("weight")
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf") and weight is not None and weight.dim() == 2:
        return 1
    return None


def _subclass_drop_in(cls, axis):
    """The quantized drop-in for a weighted layer class outside torch.nn (made once per class)."""
    drop_in = _SUBCLASS_DROP_INS.get(cls)
    if drop_in is None:
        # A module-level name of its own (QuantLinear_1 when two libraries both have a Linear), so that
        # pickle (torch.save of a whole model) finds the class here by name.
        name = "Quant" + cls.__name__
        if name in globals():
            name = next(f"{name}_{i}" for i in range(1, 10_000) if f"{name}_{i}" not in globals())
        drop_in = type(
            name, (_QuantSubclassMixin, cls), {"_weight_axis": axis, "__module__": __name__, "__qualname__": name}
        )
        globals()[name] = drop_in
        _SUBCLASS_DROP_INS[cls] = drop_in
    return drop_in


def quant(module):
    """Returns `module` turned into its quantized drop-in (same object, same weights).

    nn.Linear / Conv1d-3d / ConvTranspose1d-3d become QuantLinear / QuantConv2d / ...,
    which are still instances of the float class. A subclass of one of them from another
    library (timm's Linear, Conv2dSame) or Hugging Face's Conv1D gets a drop-in subclass
    of its own class that keeps its forward. Anything else, a module marked with
    keep_float(), or one already quantized, is returned unchanged.

    A tuple or list (what a factory such as timm's create_classifier returns: pool, fc) comes
    back as the same kind of sequence with each element passed through quant().
    """
    if isinstance(module, (tuple, list)):
        items = [quant(m) for m in module]
        # A namedtuple takes its fields as arguments, a tuple or list the items as one iterable.
        return type(module)(*items) if hasattr(module, "_fields") else type(module)(items)
    if getattr(module, "_qdq_keep_float", False):
        return module
    quant_class = _QUANT_CLASSES.get(type(module))
    if quant_class is None:
        axis = _weight_axis_of(module)
        if axis is None:
            return module
        quant_class = _subclass_drop_in(type(module), axis)
    # Changing the class in place keeps parameters, hooks, device and any attribute the
    # user set; only forward() and the quantizer submodules are new.
    module.__class__ = quant_class
    module._add_quantizers()
    return module


_FLOAT_PRECISIONS = (None, "low", "fp16", "bf16", "fp32")


def keep_float(module, precision=None):
    """Marks `module` to stay in floating point (quant() and qdq leave it alone).

    `precision` None (the default) means the export's low float precision (FP16 or BF16 on
    TensorRT 11's strongly typed target); "fp32" keeps the module's ops in FP32 there (the
    exporter reports it, and qdq's typing pass leaves those ops FP32).

    A module that quant() already converted (a quantized helper such as conv3x3 called from a
    keep_float site) keeps its class but has its quantizers switched off, so it runs in float.
    """
    if precision not in _FLOAT_PRECISIONS:
        raise ValueError(f'keep_float precision must be None or "fp32", not {precision!r}')
    module._qdq_keep_float = True
    if precision == "fp32":
        module._qdq_float_precision = "fp32"
    for child in module.children():
        if isinstance(child, TensorQuantizer):
            child.enabled = False
    return module
