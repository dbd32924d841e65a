"""qdq_quant.py, the runtime copied into users' projects: quantizers, drop-in layers, export."""

import collections
import copy
import inspect
import io
import pickle
import warnings

import pytest
import torch
import torch.nn as nn
from qdq_backend import qdq_quant
from qdq_backend.qdq_quant import TensorQuantizer, keep_float, quant
from qdq_backend.tensor_quant import fake_tensor_quant

try:
    import onnx
    from onnx import numpy_helper
except ImportError:  # Debian's torch 1.13 interpreter has no onnx package
    onnx = None

LAYERS = [
    (lambda: nn.Linear(6, 5), qdq_quant.QuantLinear, 0, (3, 6)),
    (lambda: nn.Conv1d(3, 5, 3), qdq_quant.QuantConv1d, 0, (2, 3, 8)),
    (lambda: nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"), qdq_quant.QuantConv2d, 0, (2, 3, 8, 8)),
    (lambda: nn.Conv3d(3, 5, 2), qdq_quant.QuantConv3d, 0, (1, 3, 4, 4, 4)),
    (lambda: nn.ConvTranspose1d(3, 5, 2, stride=2), qdq_quant.QuantConvTranspose1d, 1, (2, 3, 6)),
    (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), qdq_quant.QuantConvTranspose2d, 1, (2, 4, 5, 5)),
    (lambda: nn.ConvTranspose3d(3, 5, 2), qdq_quant.QuantConvTranspose3d, 1, (1, 3, 3, 3, 3)),
]


def calibrate_by_max(model, x):
    """Sets every quantizer's amax from the data (inputs) or the weight (per channel)."""
    for module in model.modules():
        if isinstance(module, qdq_quant._QuantMixin):
            w = module.weight.detach()
            axis = module.weight_quantizer.axis
            dims = [d for d in range(w.dim()) if d != axis]
            module.weight_quantizer.set_amax(w.abs().amax(dim=dims))
    seen = {}

    def hook(name):
        def record(t):
            seen[name] = max(seen.get(name, 0.0), t.abs().max().item())

        return record

    for name, module in model.named_modules():
        if isinstance(module, TensorQuantizer) and module.amax is None and module.enabled:
            module.calibrator = hook(name)
    with torch.no_grad():
        model(x)
    for name, module in model.named_modules():
        if name in seen:
            module.calibrator = None
            module.set_amax(seen[name])


@pytest.mark.parametrize("make, quant_class, axis, shape", LAYERS)
def test_quant_makes_drop_in_layers(make, quant_class, axis, shape):
    torch.manual_seed(0)
    layer = make()
    float_type = type(layer)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = layer(x)
    same = quant(layer)
    assert same is layer and type(layer) is quant_class
    assert isinstance(layer, float_type)
    assert layer.weight_quantizer.axis == axis and layer.input_quantizer.axis is None
    assert not layer.output_quantizer.enabled
    # Uncalibrated quantizers pass through: the model computes exactly what it did.
    with torch.no_grad():
        assert torch.equal(layer(x), expected)
    calibrate_by_max(layer, x)
    assert layer.weight_quantizer.amax.shape == (layer.weight.shape[axis],)
    assert layer.input_quantizer.amax.dim() == 0
    with torch.no_grad():
        quantized = layer(x)
    assert quantized.shape == expected.shape
    assert not torch.equal(quantized, expected)
    assert torch.allclose(quantized, expected, atol=0.05 * expected.abs().max().item())


def test_constructed_directly_and_idempotent():
    layer = qdq_quant.QuantConv2d(3, 4, 3, bias=False)
    assert isinstance(layer, nn.Conv2d) and layer.bias is None
    assert isinstance(layer.weight_quantizer, TensorQuantizer)
    assert quant(layer) is layer and type(layer) is qdq_quant.QuantConv2d


def test_quant_leaves_others_alone():
    relu = nn.ReLU()
    assert quant(relu) is relu and type(relu) is nn.ReLU

    head = keep_float(nn.Linear(3, 3))
    assert head._qdq_keep_float is True
    assert type(quant(head)) is nn.Linear


def test_quant_of_a_tuple_or_list_quantizes_each_element():
    # timm's create_classifier returns (global_pool, fc) or (global_pool, dropout, fc): the call site
    # `self.global_pool, self.fc = qdq_quant.quant(create_classifier(...))` unpacks what quant returns.
    pool, drop, fc, kept = nn.AdaptiveAvgPool2d(1), nn.Dropout(0.1), nn.Linear(4, 2), keep_float(nn.Linear(4, 2))
    out = quant((pool, drop, fc, kept, nn.Identity()))
    assert type(out) is tuple and len(out) == 5
    assert out[0] is pool and type(pool) is nn.AdaptiveAvgPool2d and out[1] is drop
    assert out[2] is fc and type(fc) is qdq_quant.QuantLinear
    assert type(out[3]) is nn.Linear and type(out[4]) is nn.Identity

    conv = nn.Conv2d(3, 4, 1)
    listed = quant([nn.ReLU(), conv])
    assert type(listed) is list and listed[1] is conv and type(conv) is qdq_quant.QuantConv2d
    assert quant(()) == () and quant(out) == out  # empty, and already quantized elements, are unchanged

    Head = collections.namedtuple("Head", "pool fc")
    head = quant(Head(nn.Identity(), nn.Linear(2, 2)))
    assert type(head) is Head and type(head.fc) is qdq_quant.QuantLinear


def test_subclass_keeps_its_forward():
    # timm's Conv2dSame pads in its own forward: the drop-in must keep that, with the INT8 weight.
    class PadConv(nn.Conv2d):
        def forward(self, x):
            return super().forward(torch.nn.functional.pad(x, (1, 1, 1, 1)))

    torch.manual_seed(0)
    mine = PadConv(2, 3, 3)
    x = torch.randn(1, 2, 5, 5)
    ref = mine(x)
    q = quant(mine)
    assert q is mine and isinstance(q, PadConv) and type(q) is not PadConv
    assert q.weight_quantizer.axis == 0 and q(x).shape == ref.shape == (1, 3, 5, 5)
    q.input_quantizer.set_amax(x.abs().max())
    q.weight_quantizer.set_amax(mine.weight.detach().abs().amax(dim=(1, 2, 3)))
    out = q(x)
    assert not torch.equal(out, ref) and torch.allclose(out, ref, atol=0.1)
    assert isinstance(mine.weight, nn.Parameter)  # the float weight is back after the call
    assert quant(q) is q and type(quant(PadConv(1, 1, 1))) is type(q)  # one drop-in class per class
    # torch.save(model) pickles classes by name: the drop-in is found in qdq_quant like the built-in ones.
    assert getattr(qdq_quant, type(q).__qualname__) is type(q)


def test_hf_conv1d_weight_axis_is_1():
    class Conv1D(nn.Module):  # Hugging Face's layout: weight [in, out], y = x @ W + b
        def __init__(self, nf, nx):
            super().__init__()
            self.nf = nf
            self.weight = nn.Parameter(torch.randn(nx, nf))
            self.bias = nn.Parameter(torch.zeros(nf))

        def forward(self, x):
            return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(*x.shape[:-1], self.nf)

    layer = Conv1D(6, 4)
    x = torch.randn(2, 4)
    ref = layer(x)
    quant(layer)
    assert layer.weight_quantizer.axis == 1
    layer.input_quantizer.set_amax(x.abs().max())
    layer.weight_quantizer.set_amax(layer.weight.detach().abs().amax(dim=0))
    assert layer.weight_quantizer.amax.shape == (6,)  # one scale per output channel
    assert torch.allclose(layer(x), ref, atol=0.1)

    # Exported, the weight's QuantizeLinear/DequantizeLinear carry axis 1 on the [in, out] initializer.
    onnx = pytest.importorskip("onnx")
    buf = io.BytesIO()
    kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    torch.onnx.export(layer, (x,), buf, opset_version=13, **kwargs)
    graph = onnx.load_from_string(buf.getvalue()).graph
    weight_q = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "weight"]
    assert len(weight_q) == 1
    assert [a.i for a in weight_q[0].attribute if a.name == "axis"] == [1]


def test_tensor_quantizer_forward_modes():
    q = TensorQuantizer()
    x = torch.linspace(-3, 3, 101)
    assert q(x) is x  # no amax yet
    q.set_amax(2.0)
    assert q.amax.dim() == 0 and q.amax.dtype == torch.float32
    y = q(x)
    # scale amax/127, full signed range [-128, 127]: -2.0157 is the lowest value
    assert y.max().item() == pytest.approx(2.0)
    assert y.min().item() == pytest.approx(-128 * 2.0 / 127)
    assert torch.allclose(y, fake_tensor_quant(x, torch.tensor(2.0), narrow_range=False), atol=1e-6)
    ids = torch.arange(5)
    assert q(ids) is ids  # integer tensors (indices) are never quantized
    q.enabled = False
    assert q(x) is x
    q.enabled = True
    calls = []
    q.calibrator = calls.append
    x.requires_grad_(True)
    assert q(x) is x
    assert len(calls) == 1 and not calls[0].requires_grad
    q.calibrator = None
    q.set_amax(None)
    assert q.amax is None and q(x) is x


def test_zero_amax_gives_zeros_not_nan():
    q = TensorQuantizer(axis=0)
    q.set_amax([0.0, 1.0])
    y = q(torch.tensor([[0.5, -0.2], [0.5, -0.2]]))
    assert torch.isfinite(y).all()
    assert y[0].abs().max().item() < 1e-6
    assert torch.allclose(y[1], torch.tensor([0.5, -0.2]), atol=1 / 127)


def test_amax_shape_mismatch_is_a_clear_error():
    q = TensorQuantizer(axis=0)
    q.set_amax([1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="3 values but the input has 2 channels"):
        q(torch.ones(2, 4))


def test_straight_through_gradients():
    torch.manual_seed(0)
    layer = quant(nn.Linear(4, 3))
    x = torch.randn(8, 4)
    calibrate_by_max(layer, x)
    layer.input_quantizer.set_amax(1.0)  # clip some inputs
    x.requires_grad_(True)
    layer(x).sum().backward()
    inside = x.detach().abs() <= 1.0
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert (x.grad[~inside] == 0).all()
    # within range the gradient is the float layer's (through the quantized weight)
    w_q = layer.weight_quantizer(layer.weight.detach())
    expected = w_q.sum(dim=0).expand_as(x)
    assert torch.allclose(x.grad[inside], expected[inside], atol=1e-6)


def small_model():
    return nn.Sequential(
        quant(nn.Conv2d(3, 8, 3, padding=1)),
        nn.ReLU(),
        quant(nn.ConvTranspose2d(8, 4, 2, stride=2)),
        nn.ReLU(),
        nn.Flatten(),
        quant(nn.Linear(4 * 8 * 8, 5)),
        keep_float(nn.Linear(5, 2)),
    )


def calibrated_model():
    torch.manual_seed(0)
    model = small_model().eval()
    x = torch.randn(2, 3, 4, 4)
    calibrate_by_max(model, x)
    return model, x


def test_state_dict_round_trip_into_fresh_model():
    model, x = calibrated_model()
    state = model.state_dict()
    assert {k for k in state if k.endswith("amax")} == {
        "0.input_quantizer.amax",
        "0.weight_quantizer.amax",
        "2.input_quantizer.amax",
        "2.weight_quantizer.amax",
        "5.input_quantizer.amax",
        "5.weight_quantizer.amax",
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh = small_model().eval()
    assert fresh[0].input_quantizer.amax is None
    fresh.load_state_dict(torch.load(buffer))
    assert fresh[2].weight_quantizer.amax.shape == (4,)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def test_float_checkpoint_loads_strictly_into_quantized_model():
    torch.manual_seed(1)
    float_model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(8, 4, 2, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 5),
        nn.Linear(5, 2),
    ).eval()
    model = small_model().eval()
    model.load_state_dict(float_model.state_dict())  # strict: no quantizer keys missing
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        assert torch.equal(model(x), float_model(x))


def test_deepcopy_and_pickle():
    model, x = calibrated_model()
    with torch.no_grad():
        expected = model(x)
        for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert type(clone[0]) is qdq_quant.QuantConv2d
            assert torch.equal(clone(x), expected)


def export_onnx(model, x, opset=13):
    """TorchScript exporter: torch 1.13 has only it; torch 2.x needs dynamo=False for it."""
    kwargs = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.x: DeprecationWarning for the TorchScript exporter
        torch.onnx.export(model, (x,), f, opset_version=opset, input_names=["x"], output_names=["y"], **kwargs)
    return f.getvalue()


def test_onnx_export_emits_qdq():
    model, x = calibrated_model()
    data = export_onnx(model, x)
    # The op types are plain strings inside the protobuf: a check that needs no onnx package.
    assert b"QuantizeLinear" in data and b"DequantizeLinear" in data


@pytest.mark.skipif(
    onnx is None,
    reason="the onnx package is not installed in this interpreter "
    "(Debian's torch 1.13 has none); the graph is inspected under the other",
)
def test_onnx_graph_has_int8_zero_point_and_channel_axis():
    model, x = calibrated_model()
    graph = onnx.load_from_string(export_onnx(model, x)).graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producers = {out: node for node in graph.node for out in node.output}
    qs = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    dqs = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    assert len(qs) == len(dqs) == 6  # input + weight for 3 quantized layers; keep_float layer has none
    for node in qs + dqs:
        scale, zero_point = constants[node.input[1]], constants[node.input[2]]  # constants, as TensorRT needs
        assert zero_point.dtype.name == "int8" and not zero_point.any()
        axis = {a.name: a.i for a in node.attribute}.get("axis")
        if scale.ndim == 0:
            assert zero_point.ndim == 0
        else:
            assert scale.shape == zero_point.shape and axis is not None
        if node.op_type == "DequantizeLinear":
            assert producers[node.input[0]].op_type == "QuantizeLinear"
    # weights per output channel: axis 0 for Conv/Gemm, 1 for ConvTranspose
    by_consumer, float_layers = {}, []
    for node in graph.node:
        if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            if node.input[1] not in producers:  # weight straight from an initializer
                float_layers.append(node.input[1])
                continue
            dq = producers[node.input[1]]
            assert dq.op_type == "DequantizeLinear"
            by_consumer[node.op_type] = ({a.name: a.i for a in dq.attribute}.get("axis"), constants[dq.input[1]].shape)
            assert producers[node.input[0]].op_type == "DequantizeLinear"
    assert float_layers == ["6.weight"]  # the keep_float head
    assert by_consumer["Conv"] == (0, (8,))
    assert by_consumer["ConvTranspose"] == (1, (4,))
    assert by_consumer["Gemm" if "Gemm" in by_consumer else "MatMul"] == (0, (5,))
    scales = [constants[n.input[1]] for n in qs if constants[n.input[1]].ndim == 0]
    amax = model[0].input_quantizer.amax.item()
    assert any(abs(float(s) - amax / 127) < 1e-7 for s in scales)


def test_output_quantizer_when_enabled():
    model, x = calibrated_model()
    layer = model[5]
    with torch.no_grad():
        layer.output_quantizer.set_amax(1.0)
        before = model(x)
        layer.output_quantizer.enabled = True
        after = model(x)
    assert not torch.equal(before, after)
    data = export_onnx(model, x)
    if onnx is not None:
        graph = onnx.load_from_string(data).graph
        assert sum(n.op_type == "QuantizeLinear" for n in graph.node) == 7


def test_half_inputs_and_half_amax():
    q = TensorQuantizer()
    q.set_amax(1.0)
    q.half()  # model.half() casts the amax buffer too
    x = torch.tensor([0.3, -0.71, 2.0], dtype=torch.float16)
    y = q(x)
    assert y.dtype == torch.float16
    assert torch.allclose(y.float(), torch.tensor([38 / 127, -90 / 127, 1.0]), atol=1e-3)


def test_keep_float_on_an_already_quantized_layer_switches_its_quantizers_off():
    layer = qdq_quant.quant(torch.nn.Linear(4, 3))
    layer.input_quantizer.set_amax(torch.tensor(0.05))  # would clip almost every input
    x = torch.randn(2, 4)
    assert not torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    layer = qdq_quant.keep_float(layer)
    assert isinstance(layer, torch.nn.Linear) and layer._qdq_keep_float
    quantizers = [m for m in layer.modules() if isinstance(m, qdq_quant.TensorQuantizer)]
    assert quantizers and not any(q.enabled for q in quantizers)
    assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))


def test_keep_float_fp32_marks_the_module_and_stays_backward_compatible():
    low = qdq_quant.keep_float(torch.nn.Linear(4, 3))
    assert low._qdq_keep_float and not hasattr(low, "_qdq_float_precision")
    fp32 = qdq_quant.keep_float(torch.nn.Linear(4, 3), "fp32")
    assert fp32._qdq_keep_float and fp32._qdq_float_precision == "fp32"
    assert qdq_quant.quant(fp32) is fp32 and type(fp32) is torch.nn.Linear
    with pytest.raises(ValueError, match='None or "fp32"'):
        qdq_quant.keep_float(torch.nn.Linear(4, 3), "int4")
