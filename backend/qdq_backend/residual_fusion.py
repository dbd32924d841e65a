"""Which residual-add quantizers the TensorRT form keeps: those on an add that follows a convolution.

A quantizer on the identity input of a residual add exists for TensorRT's Conv + Add fusion: with both
inputs of ``conv(x) + identity`` in INT8, the add runs inside the convolution's kernel (ResNet,
EfficientNet, RegNet blocks). An add whose other input is a Linear, attention or MLP branch (a
transformer's residual stream) has no such fusion: the quantizer only rounds the stream to one
per-tensor INT8 grid. That grid is set by the largest tokens, and the stream carries tokens of very
different sizes: in a ViT the class token, the only one the head reads, starts ~40x smaller than the
patch tokens and is rounded to a few steps in every block (random-weight vit_tiny: cosine 0.97 with
these quantizers, 0.997 without them). TensorRT's own transformer recipes (ModelOpt's INT8 configuration)
quantize the Linear inputs and weights and the attention BMM inputs, and keep the residual stream in
float; the tensorrt form does the same.

The decision follows the model as it runs, not the source text: one forward pass on the example inputs
records which module produced each tensor (a convolution, or a BatchNorm over one, since the exporter
folds BatchNorm into the convolution) and, for every add that takes a residual quantizer's output, what
its other input was.
"""

from __future__ import annotations

import operator
import re
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

import torch
from torch.overrides import TorchFunctionMode

from .loader import Project, QuantizerInfo

# add0_residual_quantizer, iadd1_local_quantizer: what the quantize pass names an add's operand quantizers
_ADD_OPERAND = re.compile(r"(^|\.)i?add\d+_(residual|local)_quantizer$")
_CONV = (torch.nn.modules.conv._ConvNd,)
_NORM = (torch.nn.modules.batchnorm._BatchNorm,)
_ADDS: Set[Callable[..., Any]] = {
    torch.add,
    torch.Tensor.add,
    torch.Tensor.add_,
    torch.Tensor.__add__,
    torch.Tensor.__radd__,
    torch.Tensor.__iadd__,
    operator.add,
    operator.iadd,
}


def residual_quantizers(project: Project) -> List[QuantizerInfo]:
    return [q for q in project.quantizers if _ADD_OPERAND.search(q.name)]


class _Recorder(TorchFunctionMode):
    """Sees every add; asks whether one of its inputs came out of a residual quantizer."""

    def __init__(self, quantized: Dict[int, str], conv_fed: Set[int], keep: Set[str], seen: Set[str]) -> None:
        super().__init__()
        self.quantized, self.conv_fed, self.keep, self.seen = quantized, conv_fed, keep, seen

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _ADDS:
            operands = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
            names = [self.quantized[id(a)] for a in operands if id(a) in self.quantized]
            if names:
                self.seen.update(names)
                if any(id(a) in self.conv_fed for a in operands):
                    self.keep.update(names)
        return func(*args, **kwargs)


def float_residuals(project: Project) -> List[str]:
    """Residual-add quantizers whose adds never follow a convolution: the tensorrt form leaves them off."""
    candidates = residual_quantizers(project)
    if not candidates:
        return []
    by_module = {id(q.module): q.name for q in candidates}
    quantizer_ids = {id(q.module) for q in project.quantizers}
    alive: List[torch.Tensor] = []  # keeps every recorded tensor alive, so no id is reused during the pass
    quantized: Dict[int, str] = {}
    conv_fed: Set[int] = set()
    keep: Set[str] = set()
    seen: Set[str] = set()

    def module_hook(module: Any, inputs: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or id(module) in quantizer_ids:
            return
        alive.append(output)
        x = inputs[0] if inputs else None
        if isinstance(module, _CONV) or (
            isinstance(module, _NORM) and isinstance(x, torch.Tensor) and id(x) in conv_fed
        ):
            conv_fed.add(id(output))

    def quantizer_hook(module: Any, inputs: Any, output: Any) -> None:
        x = inputs[0] if inputs else None
        if not isinstance(output, torch.Tensor) or not isinstance(x, torch.Tensor):
            return
        alive.append(output)
        if id(x) in conv_fed:  # a quantizer on a conv output (an add's local operand) passes that on
            conv_fed.add(id(output))
        name = by_module.get(id(module))
        if name is not None:
            quantized[id(output)] = name

    handles = [
        m.register_forward_hook(quantizer_hook if id(m) in quantizer_ids else module_hook)
        for m in project.model.modules()
    ]
    # eval: a recording pass in training mode would move BatchNorm's running statistics (QAT calls this first)
    training = project.model.training
    project.model.eval()
    try:
        with torch.no_grad(), _Recorder(quantized, conv_fed, keep, seen):
            project.model(*project.example_inputs)
    except Exception:  # noqa: BLE001 (a forward that fails under the mode: keep every quantizer, as before)
        return []
    finally:
        for h in handles:
            h.remove()
        project.model.train(training)
    # A quantizer the pass never saw at an add (a branch the example does not take) keeps its place.
    return sorted(seen - keep)


def left_off(project: Project, target: Optional[str]) -> List[str]:
    """The quantizers the `target` export leaves off: tensorrt's residual adds that follow no convolution.

    The export, and every measurement meant to predict it (sensitivity, tune, QAT), take their form from here,
    so what is measured is the graph that is exported. No target: nothing left off (the calibrated model as is).
    """
    return float_residuals(project) if target == "tensorrt" else []


@contextmanager
def target_form(project: Project, target: Optional[str]) -> Iterator[List[str]]:
    """Disables what `target` leaves off for the duration (the names are yielded); the flags are restored after."""
    off = set(left_off(project, target))
    saved = [(q.module, q.module.enabled) for q in project.quantizers if q.name in off]
    for module, _ in saved:
        module.enabled = False
    try:
        yield sorted(off)
    finally:
        for module, enabled in saved:
            module.enabled = enabled
