"""ONNX export: the FP32 model (quantizers off) and the INT8 QDQ model (calibrated quantizers on).

TorchScript-based exporter first (the only one on torch 1.13; `dynamo=False` on 2.x), the dynamo-based
one as a fallback where the TorchScript one is missing or fails. Either way the INT8 file is checked
for one QuantizeLinear/DequantizeLinear pair per quantizer call before it is kept. Every file is written
to a temporary name in out_dir and renamed into place, so a failed export leaves no file behind.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import tempfile
import traceback
import warnings
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch

from . import artifacts, knobs
from .artifacts import prepare_out_dir
from .bn_ranges import batchnorm_output_amax
from .calibrate import ensure_outputs_calibrated, uncalibrated_error
from .errors import QdqError, describe
from .loader import Inputs, Project, QuantizerInfo, flatten_outputs
from .protocol_types import EXPORT_TARGETS, ExportParams, ExportResult, QdqNodeCounts
from .residual_fusion import left_off

Progress = Callable[[str, int, Optional[int], str], None]

FP32_FILE = "model.fp32.onnx"
INT8_FILE = "model.int8.onnx"
EVAL_FILE = artifacts.EVAL_FILE
EVAL_BIN = artifacts.EVAL_BIN
TARGETS = EXPORT_TARGETS
DEFAULT_EVAL_BATCHES = knobs.EVAL_BATCHES_DEFAULT
EVAL_BYTES_LIMIT = 64 * 1024 * 1024
EVAL_BATCHES_WITHOUT_LABELS = 4


def _onnx():
    try:
        import onnx  # noqa: WPS433 - optional

        return onnx
    except Exception:  # noqa: BLE001
        return None


def _params(params: ExportParams) -> Tuple[int, bool, str, bool, int]:
    opset = params.opset
    if opset is None:
        opset = knobs.OPSET_DEFAULT
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < knobs.OPSET_MIN:
        raise QdqError(
            "config",
            f"opset = {opset!r}: QDQ export needs opset 13 or higher",
            "set opset = 13 (or higher) in [tool.qdq]; per-channel QuantizeLinear needs 13",
        )
    target = params.target or "tensorrt"
    if target not in TARGETS:
        raise QdqError("config", f"target = {target!r} is not an export target", f"use one of {', '.join(TARGETS)}")
    eval_batches = params.eval_batches if params.eval_batches is not None else DEFAULT_EVAL_BATCHES
    if isinstance(eval_batches, bool) or not isinstance(eval_batches, int) or eval_batches < 1:
        raise QdqError(
            "config", f"eval_batches = {eval_batches!r} is not a positive integer", "pass a count such as 50"
        )
    return (
        opset,
        bool(params.dynamic_batch),
        target,
        bool(params.fold_weights),
        eval_batches,
    )


# -- counting Q/DQ nodes ------------------------------------------------------------------------------


def count_qdq(path: str) -> QdqNodeCounts:
    """QuantizeLinear / DequantizeLinear node counts, with onnx when installed, else from the protobuf bytes."""
    onnx = _onnx()
    if onnx is not None:
        model = onnx.load(path, load_external_data=False)
        ops = [n.op_type for n in model.graph.node]
        return {"quantize": ops.count("QuantizeLinear"), "dequantize": ops.count("DequantizeLinear")}
    with open(path, "rb") as handle:
        data = handle.read()
    # NodeProto.op_type is field 4, length-delimited: tag byte 0x22, then the length, then the name.
    return {"quantize": data.count(b"\x22\x0eQuantizeLinear"), "dequantize": data.count(b"\x22\x10DequantizeLinear")}


# -- exporting ---------------------------------------------------------------------------------------------


def _export_supports(name: str) -> bool:
    try:
        return name in inspect.signature(torch.onnx.export).parameters
    except (TypeError, ValueError):
        return False


def _diff_symbolic(g: Any, x: Any, n: Any, dim: Any, prepend: Any, append: Any) -> Any:
    """torch.diff(x, dim=d, prepend=p, append=a) as Slice(y, 1:) - Slice(y, :-1) of y = cat(p, x, a):
    transformers' mask code (packed-sequence detection) calls it; the TorchScript exporter has no symbolic."""
    from torch.onnx import symbolic_helper as sh  # noqa: WPS433

    if sh._maybe_get_const(n, "i") != 1:
        return sh._unimplemented("diff", "only n=1")
    d = sh._get_const(dim, "i", "dim")
    if not sh._is_none(prepend):
        x = g.op("Concat", prepend, x, axis_i=d)
    if not sh._is_none(append):
        x = g.op("Concat", x, append, axis_i=d)

    def const(v: int) -> Any:
        return g.op("Constant", value_t=torch.tensor([v], dtype=torch.long))

    high = g.op("Slice", x, const(1), const(2**62), const(d))
    low = g.op("Slice", x, const(0), const(-1), const(d))
    return g.op("Sub", high, low)


def _cumsum_symbolic(g: Any, x: Any, dim: Any, dtype: Any) -> Any:
    """torch.cumsum as CumSum, with a bool input cast to int64 first (torch promotes it, the stock symbolic
    does not, and ONNX's CumSum takes no bool): transformers' masks count `~mask` this way."""
    from torch.onnx import symbolic_helper as sh  # noqa: WPS433

    try:  # where torch 2.9+ keeps it; torch 1.13-2.8 had it at torch.onnx._type_utils
        from torch.onnx._internal.torchscript_exporter._type_utils import JitScalarType  # noqa: WPS433
    except ImportError:
        from torch.onnx._type_utils import JitScalarType  # type: ignore[import-not-found,no-redef,unused-ignore]  # noqa: WPS433

    if JitScalarType.from_value(x, JitScalarType.UNDEFINED) == JitScalarType.BOOL:
        x = g.op("Cast", x, to_i=JitScalarType.INT64.onnx_type())
    if dim.node().kind() == "onnx::Constant":
        axis = g.op("Constant", value_t=torch.tensor(sh._get_const(dim, "i", "dim"), dtype=torch.long))
    else:
        axis = sh._maybe_cast_to_type(g, dim, JitScalarType.INT64) if hasattr(sh, "_maybe_cast_to_type") else dim
    out = g.op("CumSum", x, axis)
    if not sh._is_none(dtype):
        out = g.op("Cast", out, to_i=JitScalarType(sh._get_const(dtype, "i", "dtype")).onnx_type())
    return out


_SYMBOLICS_REGISTERED = False


def _register_symbolics() -> None:
    global _SYMBOLICS_REGISTERED
    if _SYMBOLICS_REGISTERED:
        return
    _SYMBOLICS_REGISTERED = True
    try:
        torch.onnx.register_custom_op_symbolic("aten::diff", _diff_symbolic, 13)
        torch.onnx.register_custom_op_symbolic("aten::cumsum", _cumsum_symbolic, 13)
    except Exception:  # noqa: BLE001 - an exporter without custom symbolics: the fallback path stays
        pass


# file name -> the first line of the failure that made the export fall back to the dynamo exporter
_FALLBACKS: Dict[str, str] = {}


def _run_exporter(
    model: torch.nn.Module,
    args: Inputs,
    path: str,
    opset: int,
    dynamic_batch: bool,
    input_names: List[str],
    output_names: List[str],
    dynamo: bool,
) -> None:
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: "batch"} for name in list(input_names) + list(output_names)}
    kwargs: Dict[str, Any] = {
        # dynamo writes opset 18 and converts down on request, which leaves opset-18 attributes behind (Split's
        # num_outputs) in a graph that claims an older opset: ask for what it writes; the report gives it
        "opset_version": max(opset, 18) if dynamo else opset,
        "input_names": list(input_names),
        "output_names": list(output_names),
        "dynamic_axes": dynamic_axes,
        "do_constant_folding": True,
    }
    if _export_supports("dynamo"):
        kwargs["dynamo"] = dynamo
        if dynamo:
            kwargs["external_data"] = False
    elif dynamo:
        raise RuntimeError("this torch has no dynamo-based ONNX exporter")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings and deprecation notices: noise for the user
        # dynamo derives dynamic_shapes from forward's parameter names: it keeps the model's own forward
        if not dynamo:
            _register_symbolics()
        with torch.no_grad(), contextlib.nullcontext() if dynamo else _positional_tensor_forward(model):
            torch.onnx.export(model, args, path, **kwargs)


@contextlib.contextmanager
def _positional_tensor_forward(model: torch.nn.Module) -> Iterator[None]:
    """Export through ``forward(*inputs)`` returning only tensors.

    The TorchScript exporter fills every parameter of ``forward``'s signature that the inputs do not reach
    with its default, positionally: transformers 5's forward decorators then pass ``use_cache`` a second
    time ("got multiple values for argument 'use_cache'"). Outputs such as a DynamicCache are no tensors
    and neither exporter can write them. The instance attribute leaves module names (and so ONNX node
    names) as they are; the previous one (keyword inputs) is put back afterwards.
    """
    had = "forward" in model.__dict__
    previous = model.__dict__.get("forward")
    inner = model.forward

    def tensor_forward(*inputs: Any) -> Any:
        outputs = flatten_outputs(inner(*inputs))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    model.forward = tensor_forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        if had:
            model.forward = previous  # type: ignore[method-assign,assignment,unused-ignore]
        else:
            del model.forward


class _DecomposedQdq:
    """For the dynamo exporter: quantizers emit quantized_decomposed quantize/dequantize ops.

    torch.export cannot trace torch.fake_quantize_* (no fake-tensor kernels), but it traces the
    quantized_decomposed ops, which the ONNX translation turns into QuantizeLinear/DequantizeLinear.
    Scales are taken out of the buffers before tracing, so they are constants in the graph.
    """

    def __init__(self, quantizers: List[QuantizerInfo]) -> None:
        self.modules = [q.module for q in quantizers]

    def __enter__(self) -> "_DecomposedQdq":
        import torch.ao.quantization.fx._decomposed  # noqa: F401,WPS433 - registers the ops

        for module in self.modules:
            module.forward = _decomposed_forward(module)
        return self

    def __exit__(self, *exc: Any) -> None:
        for module in self.modules:
            module.__dict__.pop("forward", None)


def _decomposed_forward(module: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    ops = torch.ops.quantized_decomposed
    amax = getattr(module, "amax", None)
    if module.calibrator is not None or not module.enabled or amax is None:
        return lambda x: x
    qmin, qmax = int(module.quant_min), int(module.quant_max)
    dtype = torch.uint8 if getattr(module, "unsigned", False) else torch.int8
    scales = amax.detach().float().cpu().clamp(min=2.0**-24) / qmax
    axis = module.axis
    if axis is None:
        scale = float(scales.reshape(()))

        def per_tensor(x: torch.Tensor) -> torch.Tensor:
            q = ops.quantize_per_tensor(x.float(), scale, 0, qmin, qmax, dtype)
            return ops.dequantize_per_tensor(q, scale, 0, qmin, qmax, dtype).to(x.dtype)

        return per_tensor
    scales = scales.reshape(-1)
    zeros = torch.zeros(scales.numel(), dtype=torch.int64)

    def per_channel(x: torch.Tensor) -> torch.Tensor:
        dim = axis % x.dim()
        q = ops.quantize_per_channel(x.float(), scales, zeros, dim, qmin, qmax, dtype)
        return ops.dequantize_per_channel(q, scales, zeros, dim, qmin, qmax, dtype).to(x.dtype)

    return per_channel


def drop_noop_clips(path: str) -> int:
    """Remove Clip nodes between QuantizeLinear and DequantizeLinear that clip to the integer type's full range.

    The dynamo exporter's per-channel quantize emits Q -> Clip(-128, 127) -> DQ; the Clip changes nothing
    but breaks the Q -> DQ pair TensorRT and ORT look for. Needs the onnx package; returns the count removed.
    """
    onnx = _onnx()
    if onnx is None:
        return 0
    from onnx import numpy_helper  # noqa: WPS433

    model = onnx.load(path)
    graph = model.graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producer = {o: n for n in graph.node for o in n.output}
    consumers: Dict[str, List[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    removed = []
    for node in graph.node:
        if node.op_type != "Clip" or len(node.input) < 3:
            continue
        source = producer.get(node.input[0])
        lo, hi = values.get(node.input[1]), values.get(node.input[2])
        if source is None or source.op_type != "QuantizeLinear" or lo is None or hi is None:
            continue
        zero = values.get(source.input[2]) if len(source.input) > 2 else None
        if zero is None:
            continue
        import numpy as np  # noqa: WPS433

        info = np.iinfo(zero.dtype)
        if int(lo) > info.min or int(hi) < info.max:
            continue
        for consumer in consumers.get(node.output[0], []):
            for index, name in enumerate(consumer.input):
                if name == node.output[0]:
                    consumer.input[index] = node.input[0]
        removed.append(node)
    if not removed:
        return 0
    kept = [n for n in graph.node if n not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    onnx.save(model, path)
    return len(removed)


def _opset_of(path: str, requested: int) -> int:
    onnx = _onnx()
    if onnx is None:
        return requested
    model = onnx.load(path, load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return requested


def _export_to(
    out_dir: str,
    final_name: str,
    model: torch.nn.Module,
    args: Inputs,
    opset: int,
    dynamic_batch: bool,
    input_names: List[str],
    output_names: List[str],
    expected_pairs: int,
    fold_weights: bool,
    quantizers: List[QuantizerInfo],
) -> Tuple[str, str, QdqNodeCounts, bool, int]:
    """Export into a temp file, check it, rename into place. Returns (path, exporter, qdq counts, folded)."""
    final = os.path.join(out_dir, final_name)
    attempts = [False, True] if _export_supports("dynamo") else [False]
    failures: List[str] = []
    for dynamo in attempts:
        exporter = "dynamo" if dynamo else "torchscript"
        fd, tmp = tempfile.mkstemp(prefix="." + final_name + ".", suffix=".tmp", dir=out_dir)
        os.close(fd)
        try:
            if dynamo:
                with _DecomposedQdq(quantizers):
                    _run_exporter(model, args, tmp, opset, dynamic_batch, input_names, output_names, dynamo)
            else:
                _run_exporter(model, args, tmp, opset, dynamic_batch, input_names, output_names, dynamo)
            if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
                raise RuntimeError("the exporter wrote no file")
            if dynamo and expected_pairs:
                drop_noop_clips(tmp)
            counts = count_qdq(tmp)
            if counts["quantize"] < expected_pairs or counts["dequantize"] < expected_pairs:
                raise RuntimeError(
                    f"the {exporter} exporter produced {counts['quantize']} QuantizeLinear / {counts['dequantize']} "
                    f"DequantizeLinear nodes, expected at least {expected_pairs} pairs"
                )
            folded = False
            if fold_weights:
                folded = fold_weight_quantizers(tmp)
                if folded:
                    counts = count_qdq(tmp)
            actual_opset = _opset_of(tmp, opset)
            os.replace(tmp, final)
            # why the first exporter was not used: the report says so instead of switching silently
            _FALLBACKS[final_name] = failures[0].splitlines()[0] if failures else ""
            return final, exporter, counts, folded, actual_opset
        except Exception as exc:  # noqa: BLE001 - try the next exporter, report all
            failures.append(
                f"{exporter}: {describe(exc)}\n"
                + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:]
            )
        finally:
            for leftover in (tmp, tmp + ".data"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
    first_line = failures[0].splitlines()[0] if failures else "unknown failure"
    raise QdqError(
        "export",
        f"ONNX export of {final_name} failed: {first_line}",
        "the model uses an operation the ONNX exporter cannot express; see detail. Try another opset, or keep the "
        "offending layer in float (qdq_quant.keep_float). On torch 2.x the dynamo exporter needs `pip install onnxscript`.",
        detail="\n\n".join(failures),
    )


def fold_weight_quantizers(path: str) -> bool:
    """Replace FP32 weight -> QuantizeLinear with an INT8 initializer (needs the onnx package)."""
    onnx = _onnx()
    if onnx is None:
        return False
    import numpy as np  # noqa: WPS433 - onnx depends on numpy
    from onnx import numpy_helper  # noqa: WPS433

    model = onnx.load(path)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    constants = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t

    def value(name: str) -> Optional[Any]:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        if name in constants:
            return numpy_helper.to_array(constants[name])
        return None

    keep = []
    folded = 0
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and len(node.input) >= 3:
            x, scale, zero = value(node.input[0]), value(node.input[1]), value(node.input[2])
            if x is not None and scale is not None and zero is not None and x.dtype == np.float32:
                axis = 1
                for attr in node.attribute:
                    if attr.name == "axis":
                        axis = attr.i
                if scale.ndim == 1 and scale.size > 1:
                    shape = [1] * x.ndim
                    shape[axis % x.ndim] = -1
                    scale_b = scale.reshape(shape)
                    zero_b = zero.reshape(shape).astype(np.float32)
                else:
                    scale_b, zero_b = scale, zero.astype(np.float32)
                info = np.iinfo(zero.dtype)
                q = np.clip(np.rint(x / scale_b) + zero_b, info.min, info.max).astype(zero.dtype)
                graph.initializer.append(numpy_helper.from_array(q, node.output[0]))
                folded += 1
                continue
        keep.append(node)
    if not folded:
        return False
    del graph.node[:]
    graph.node.extend(keep)
    # drop initializers and constants nothing reads any more (the FP32 weights)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    alive = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(alive)
    nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] not in used)]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, path)
    return True


# -- quantizer switching -----------------------------------------------------------------------------------


class _QuantizerState:
    """Sets quantizers for one export and puts them back afterwards."""

    def __init__(self, project: Project) -> None:
        self.saved = [(q.module, q.module.enabled, q.module.calibrator) for q in project.quantizers]

    def restore(self) -> None:
        for module, enabled, calibrator in self.saved:
            module.enabled = enabled
            module.calibrator = calibrator


def _count_calls(
    project: Project, active: List[QuantizerInfo], uncalibrated: Optional[List[QuantizerInfo]] = None
) -> Tuple[int, List[str]]:
    """Quantizer calls in one forward on weights or on tensors computed from the inputs: each becomes one
    Q/DQ pair in the graph.

    The exporter folds Q/DQ of a constant away: torch.eye, but also a parameter looked up at constant
    indices (position embeddings at a buffer's position ids, Swin's relative position bias), so those calls
    do not count. Dependence on the inputs is tracked with autograd: float inputs require grad, parameters
    do not, and an embedding whose indices are an (integer) model input starts a dependent tensor.
    """
    calls: List[Tuple[Any, Any, torch.Tensor]] = []  # (input id, amax key, output)
    names = {id(q.module): q.name for q in active}
    called: List[Tuple[str, torch.Tensor]] = []

    def hook(module: Any, inputs: Any, output: Any) -> Any:
        x = inputs[0] if inputs else None
        if not isinstance(x, torch.Tensor) or not isinstance(output, torch.Tensor):
            return output
        if isinstance(x, torch.nn.Parameter) and not output.requires_grad:
            output = output.detach().requires_grad_(True)  # a weight: a leaf the outputs may reach
        if output.requires_grad:
            amax = module.amax
            calls.append((id(x), tuple(amax.reshape(-1).tolist()) if isinstance(amax, torch.Tensor) else None, output))
            called.append((names[id(module)], output))
        return output

    args = tuple(
        t.detach().clone().requires_grad_(True) if t.is_floating_point() else t for t in project.example_inputs
    )
    integer_inputs = {t.data_ptr() for t in args if not t.is_floating_point()}

    def embedding_hook(module: Any, inputs: Any, output: Any) -> Any:
        x = inputs[0] if inputs else None
        if isinstance(x, torch.Tensor) and x.data_ptr() in integer_inputs and isinstance(output, torch.Tensor):
            return output.detach().requires_grad_(True)
        return output

    reached: set = set()
    handles = [q.module.register_forward_hook(hook) for q in active]
    handles += [
        q.module.register_forward_hook(lambda m, i, o: reached.add(id(m)) if i and torch.is_tensor(i[0]) else None)
        for q in uncalibrated or []
    ]
    handles += [
        m.register_forward_hook(embedding_hook) for m in project.model.modules() if isinstance(m, torch.nn.Embedding)
    ]
    params = [p for p in project.model.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.enable_grad():
            outputs = flatten_outputs(project.model(*args))
    finally:
        for p in params:
            p.requires_grad_(True)
        for h in handles:
            h.remove()
    missed = [q for q in uncalibrated or [] if id(q.module) in reached and q.module.enabled]
    if missed:
        raise uncalibrated_error(missed)
    nodes, leaves = _autograd_reach(outputs)

    # A call whose result the outputs do not use (BERT's pooler under last_hidden_state) is dead code the
    # exporter drops; two quantizers with the same range on the same tensor may be merged: count once.
    def used(out: torch.Tensor) -> bool:
        return (out.grad_fn is not None and out.grad_fn in nodes) or (out.grad_fn is None and id(out) in leaves)

    live = {(x, amax) for x, amax, out in calls if used(out)}
    used_names = {name for name, out in called if used(out)}
    unused = sorted({name for name, _ in called} - used_names)
    return len(live), unused


def _autograd_reach(outputs: List[torch.Tensor]) -> Tuple[set, set]:
    """The autograd nodes the outputs depend on, and the ids of the leaf tensors among them."""
    nodes: set = set()
    leaves: set = set()
    stack = [t.grad_fn for t in outputs if isinstance(t, torch.Tensor) and t.grad_fn is not None]
    leaves.update(id(t) for t in outputs if isinstance(t, torch.Tensor) and t.grad_fn is None and t.requires_grad)
    while stack:
        node = stack.pop()
        if node is None or node in nodes:
            continue
        nodes.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad holds its leaf
        if isinstance(variable, torch.Tensor):
            leaves.add(id(variable))
        stack.extend(next_node for next_node, _ in node.next_functions if next_node is not None)
    return nodes, leaves


# -- evaluation inputs ---------------------------------------------------------------------------------------


def _eval_dtype(t: torch.Tensor) -> Tuple[torch.Tensor, str]:
    if t.is_floating_point():
        return t.detach().float().contiguous(), "float32"
    return t.detach().long().contiguous(), "int64"


def _labels_tensor(labels: Any) -> Optional[torch.Tensor]:
    if labels is None:
        return None
    labels = torch.as_tensor(labels).detach()
    if labels.is_floating_point() and labels.dim() == 2:
        labels = labels.argmax(dim=1)  # one-hot
    return labels.reshape(-1).long().contiguous()


def _rechunk(
    batches: List[Tuple[Inputs, Optional[torch.Tensor]]], size: int
) -> List[Tuple[Inputs, Optional[torch.Tensor]]]:
    """Fixed-batch ONNX files take exactly `size` rows: cut the eval data into batches of that size."""
    n_inputs = len(batches[0][0])
    cats = [torch.cat([b[0][i] for b in batches], dim=0) for i in range(n_inputs)]
    have_labels = all(b[1] is not None for b in batches)
    labels = torch.cat([b[1] for b in batches]) if have_labels else None  # type: ignore[misc]
    total = cats[0].shape[0]
    out = []
    for start in range(0, total - size + 1, size):
        out.append(
            (
                tuple(c[start : start + size] for c in cats),
                labels[start : start + size] if labels is not None and labels.numel() == total else None,
            )
        )
    return out


def _held_out_batches(project: Project, count: int) -> Tuple[List[Tuple[Inputs, Optional[torch.Tensor]]], bool]:
    """Without eval-data: the calibration data's batches after the ones calibration used (held out), when it has
    that many more; else its first batches, which calibration saw (the report then says so)."""
    used = int(project.calibration_state.get("batches_seen") or 0)
    first: List[Tuple[Inputs, Optional[torch.Tensor]]] = []
    later: List[Tuple[Inputs, Optional[torch.Tensor]]] = []
    for index, inputs in enumerate(project.calibration_batches(used + count)):
        if index >= used:
            later.append((inputs, None))
        elif index < count:
            first.append((inputs, None))  # kept only in case the data ends before any held-out batch
    if later:
        return later, True
    return (first or [(project.example_inputs, None)]), False


def _write_eval(
    project: Project,
    out_dir: str,
    dynamic_batch: bool,
    limit: int,
    progress: Progress,
    check_cancel: Callable[[], None],
) -> str:
    batches: List[Tuple[Inputs, Optional[torch.Tensor]]] = []
    held_out = True
    if project.eval_source is not None:
        size = 0
        for inputs, labels in project.eval_batches(limit):
            check_cancel()
            batches.append((inputs, _labels_tensor(labels)))
            size += sum(t.numel() * 8 for t in inputs)
            if size > EVAL_BYTES_LIMIT:
                break
        if not batches:
            raise QdqError(
                "no_data",
                f"eval-data {project.eval_spec} yielded no batches",
                "make it yield (inputs, labels) batches, or remove eval-data",
            )
    else:
        batches, held_out = _held_out_batches(project, min(limit, EVAL_BATCHES_WITHOUT_LABELS))
    example = project.example_inputs
    if not dynamic_batch:
        fixed = all(
            len(b[0]) == len(example) and all(t.shape == e.shape for t, e in zip(b[0], example)) for b in batches
        )
        if not fixed:
            try:
                batches = _rechunk(batches, example[0].shape[0]) or [(example, None)]
            except RuntimeError:
                batches = [(example, None)]
            batches = [b for b in batches if all(t.shape == e.shape for t, e in zip(b[0], example))] or [
                (example, None)
            ]
    meta: List[Dict[str, Any]] = []
    blob = bytearray()
    for inputs, labels in batches:
        entry: Dict[str, Any] = {"inputs": []}
        for name, t in zip(project.input_names, inputs):
            t, dtype = _eval_dtype(t)
            data = t.cpu().numpy().astype("<f4" if dtype == "float32" else "<i8").tobytes()
            entry["inputs"].append(
                {"name": name, "dtype": dtype, "shape": list(t.shape), "offset": len(blob), "length": len(data)}
            )
            blob.extend(data)
        if labels is not None:
            data = labels.cpu().numpy().astype("<i8").tobytes()
            entry["labels"] = {"offset": len(blob), "length": len(data), "dtype": "int64", "shape": list(labels.shape)}
            blob.extend(data)
        meta.append(entry)
    document = {
        "batches": meta,
        "labelled": project.eval_source is not None,
        "source": "eval-data" if project.eval_source is not None else project.calibration_data_kind,
        # without eval-data: whether these batches came after the ones calibration used (held out) or are them
        "held_out": project.eval_source is not None or held_out,
        "calibration_batches_used": int(project.calibration_state.get("batches_seen") or 0),
    }
    json_path = artifacts.write_eval(out_dir, document, bytes(blob))
    progress("export", 3, 3, f"wrote {len(meta)} evaluation batches")
    return json_path


def _int8_file_name(name: Optional[str]) -> str:
    if not name:
        return INT8_FILE
    if os.path.basename(name) != name or not name.endswith(".onnx"):
        raise QdqError("config", f"int8_file {name!r} is not a plain .onnx file name", "pass e.g. model.int8.onnx")
    return name


def export(
    project: Project,
    params: Union[ExportParams, Mapping[str, Any]],
    progress: Progress,
    check_cancel: Callable[[], None],
) -> ExportResult:
    if not isinstance(params, ExportParams):
        params = ExportParams.from_json(params)
    opset, dynamic_batch, target, fold_weights, eval_batches = _params(params)
    out_dir = prepare_out_dir(params.out_dir)
    quantizers = [q for q in project.quantizers if q.role != "output"]
    if not quantizers:
        raise QdqError(
            "config",
            f"{type(project.model).__name__} has no quantizers, so the INT8 model would be FP32",
            "quantize the model first (qdq quantize, or the editor's 'Quantize' code action)",
        )
    if all(q.module.amax is None for q in quantizers):
        raise QdqError("config", "the quantizers are not calibrated", "run calibrate before export")
    bn_ranges: Dict[str, float] = {}
    if target == "ort-cpu":
        ensure_outputs_calibrated(project, progress, check_cancel)
        bn_ranges = batchnorm_output_amax(project, check_cancel)
    check_cancel()

    model = project.model
    model.eval()
    args = project.example_inputs
    state = _QuantizerState(project)
    written: List[str] = []
    try:
        for q in project.quantizers:
            q.module.calibrator = None
            q.module.enabled = False
        fp32, fp32_exporter = "", None
        if not params.int8_only:
            progress("export", 0, 3, "exporting the FP32 model")
            fp32, fp32_exporter, _, _, _ = _export_to(
                out_dir,
                FP32_FILE,
                model,
                args,
                opset,
                dynamic_batch,
                project.input_names,
                project.output_names,
                0,
                False,
                project.quantizers,
            )
            written.append(fp32)
            check_cancel()
        # tensorrt: an add that does not follow a convolution keeps its residual stream in float
        residual_off = set(left_off(project, target))
        active = []
        for q in project.quantizers:
            on = (q.role != "output" or target == "ort-cpu") and q.name not in residual_off
            q.module.enabled = on
            if on and q.module.amax is not None:
                active.append(q)
        waiting = [q for q in project.quantizers if q.role != "output" and q.module.amax is None]
        expected, unused = _count_calls(project, active, waiting)
        progress("export", 1, 3, f"exporting the INT8 QDQ model ({len(active)} quantizers, target {target})")
        int8, exporter, counts, folded, actual_opset = _export_to(
            out_dir,
            _int8_file_name(params.int8_file),
            model,
            args,
            opset,
            dynamic_batch,
            project.input_names,
            project.output_names,
            expected,
            fold_weights,
            project.quantizers,
        )
        written.append(int8)
        check_cancel()
        eval_file = ""
        if not params.int8_only:
            progress("export", 2, 3, "writing the evaluation inputs")
            eval_file = _write_eval(project, out_dir, dynamic_batch, eval_batches, progress, check_cancel)
    except BaseException:
        # all or nothing: a failed or cancelled export leaves none of this run's files
        for path in written:
            if os.path.exists(path):
                os.unlink(path)
        raise
    finally:
        state.restore()
    return {
        "fp32_onnx": fp32,
        "int8_onnx": int8,
        "exporter": exporter,
        "fp32_exporter": fp32_exporter or exporter,
        "eval_file": eval_file,
        "outputs": list(project.output_names),
        "inputs": project.inputs_description(),
        "target": target,
        "opset": actual_opset,
        "qdq_nodes": counts,
        "quantizer_calls": expected,
        "weights_folded": folded,
        "torch_version": torch.__version__,
        "batchnorm_output_amax": bn_ranges,
        "fp32_markers": fp32_markers(model),
        "unused_quantizers": unused,
        "exporter_fallback": _FALLBACKS.get(INT8_FILE, ""),
        "residual_float": sorted(residual_off),
    }


def fp32_markers(model: Any) -> List[Dict[str, str]]:
    """Modules marked keep_float(X, "fp32"): the TypeScript typing pass keeps their ops FP32."""
    return [
        {"module": name, "site": f"{type(model).__name__}.{name}"}
        for name, m in model.named_modules()
        if name and getattr(m, "_qdq_float_precision", None) == "fp32"
    ]
