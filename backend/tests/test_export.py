"""Export in process: ConvTranspose weight axis, ort-cpu output quantizers, weight folding, Q/DQ counting."""

import os
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from qdq_backend import calibrate, export, loader  # noqa: E402
from qdq_backend.errors import QdqError  # noqa: E402

try:
    import onnx
    from onnx import numpy_helper
except ImportError:
    onnx = None

HELPER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qdq_backend", "qdq_quant.py")
NO_ONNX = f"onnx is not installed in {sys.executable}; only file existence and byte-level Q/DQ counts are checked"

MODEL = textwrap.dedent(
    """
    import torch
    import torch.nn as nn
    import qdq_quant  # qdq


    class UpDown(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = qdq_quant.quant(nn.Conv2d(3, 6, 3, stride=2, padding=1))
            self.up = qdq_quant.quant(nn.ConvTranspose2d(6, 5, 2, stride=2))
            self.fc = qdq_quant.keep_float(nn.Linear(5, 2))

        def forward(self, x):
            y = torch.relu(self.up(torch.relu(self.down(x))))
            return self.fc(y.mean(dim=(2, 3)))


    def build():
        torch.manual_seed(0)
        return UpDown()
    """
)


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path):
    # forget only what the test's project imported; dropping library modules (torch, triton) breaks them
    path = list(sys.path)
    yield
    sys.path[:] = path
    root = str(tmp_path)
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(root) or name == "qdq_quant":
            del sys.modules[name]


def _noop(*args):
    return None


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "updown.py").write_text(MODEL)
    (tmp_path / "qdq_quant.py").write_text(open(HELPER, encoding="utf-8").read())
    proj = loader.load(
        {"project_dir": str(tmp_path), "model": "updown.py:build", "input_shapes": [[2, 3, 8, 8]]}, _noop
    )
    out_dir = str(tmp_path / "out")
    calibrate.calibrate(proj, {"method": "percentile", "batches": 3, "out_dir": out_dir}, _noop, _noop)
    return proj, out_dir


def _export(proj, out_dir, **extra):
    params = {"out_dir": out_dir, "opset": 13, "dynamic_batch": False, "target": "tensorrt"}
    params.update(extra)
    return export.export(proj, params, _noop, _noop)


def _dq_nodes(path):
    model = onnx.load(path)
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return model, consts, [n for n in model.graph.node if n.op_type == "DequantizeLinear"]


def test_keep_float_layer_has_no_quantizers(project):
    proj, _ = project
    assert not [q for q in proj.quantizers if q.name.startswith("fc.")]


def test_export_reports_fp32_markers(project):
    proj, out_dir = project
    helper = sys.modules[type(proj.model).__module__].qdq_quant  # the project's copy of qdq_quant.py
    helper.keep_float(proj.model.fc, "fp32")
    result = _export(proj, out_dir)
    assert result["fp32_markers"] == [{"module": "fc", "site": "UpDown.fc"}]


def test_conv_transpose_weight_is_per_channel_on_axis_1(project):
    proj, out_dir = project
    result = _export(proj, out_dir)
    assert result["quantizer_calls"] == 4
    assert os.path.getsize(result["int8_onnx"]) > 0
    if onnx is None:
        pytest.skip(NO_ONNX)
    model, consts, dqs = _dq_nodes(result["int8_onnx"])
    axes = {}
    for node in dqs:
        scale = consts[node.input[1]]
        if scale.size > 1:
            axes[scale.size] = {a.name: a.i for a in node.attribute}.get("axis", 1)
        assert consts[node.input[2]].dtype.name == "int8"
    assert axes == {6: 0, 5: 1}  # Conv2d weight [6,3,3,3] on 0, ConvTranspose2d weight [6,5,2,2] on 1
    ops = [n.op_type for n in model.graph.node]
    assert "ConvTranspose" in ops and "Conv" in ops


def test_scales_are_amax_over_127(project):
    if onnx is None:
        pytest.skip(NO_ONNX)
    proj, out_dir = project
    result = _export(proj, out_dir)
    _, consts, dqs = _dq_nodes(result["int8_onnx"])
    scales = sorted(float(consts[n.input[1]]) for n in dqs if consts[n.input[1]].size == 1)
    amaxes = sorted(float(q.module.amax) / 127 for q in proj.quantizers if q.role == "input")
    assert scales == pytest.approx(amaxes, rel=1e-6)


def test_ort_cpu_target_quantizes_weighted_outputs(project):
    proj, out_dir = project
    trt = _export(proj, out_dir)
    ort = _export(proj, out_dir, target="ort-cpu")
    assert ort["quantizer_calls"] == trt["quantizer_calls"] + 2
    outputs = [q for q in proj.quantizers if q.role == "output"]
    assert outputs and all(q.module.amax is not None for q in outputs)
    assert all(not q.module.enabled for q in outputs)  # restored: off again for the float/TRT path
    if onnx is None:
        pytest.skip(NO_ONNX)
    model = onnx.load(ort["int8_onnx"])
    consumers = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node.op_type)
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            assert consumers[node.output[0]] == ["QuantizeLinear"]


def test_fold_weights_stores_int8_weights(project):
    proj, out_dir = project
    result = _export(proj, out_dir, fold_weights=True)
    if onnx is None:
        assert result["weights_folded"] is False
        pytest.skip(NO_ONNX + "; folding needs onnx and is reported as not done")
    assert result["weights_folded"] is True
    model, consts, dqs = _dq_nodes(result["int8_onnx"])
    onnx.checker.check_model(model)
    weights = [consts[n.input[0]] for n in dqs if n.input[0] in consts]
    assert sorted(w.shape for w in weights) == [(6, 3, 3, 3), (6, 5, 2, 2)]
    assert all(w.dtype.name == "int8" for w in weights)
    assert result["qdq_nodes"]["quantize"] == result["qdq_nodes"]["dequantize"] - 2
    # the folded integers are the fake-quantized weights divided by the scale
    w = proj.model.down.weight.detach()
    scale = proj.model.down.weight_quantizer.amax / 127
    expected = torch.clamp(torch.round(w / scale.reshape(-1, 1, 1, 1)), -128, 127).to(torch.int8).numpy()
    folded = [x for x in weights if x.shape == (6, 3, 3, 3)][0]
    assert (folded == expected).all()


def test_byte_count_matches_onnx_count(project, monkeypatch):
    if onnx is None:
        pytest.skip(NO_ONNX)
    proj, out_dir = project
    result = _export(proj, out_dir)
    with_onnx = export.count_qdq(result["int8_onnx"])
    monkeypatch.setattr(export, "_onnx", lambda: None)
    assert export.count_qdq(result["int8_onnx"]) == with_onnx


def test_exporter_that_drops_qdq_is_rejected_and_leaves_no_file(project, monkeypatch):
    proj, out_dir = project
    real = export._run_exporter

    def float_only(model, args, path, *rest):
        for q in proj.quantizers:
            q.module.enabled = False
        return real(model, args, path, *rest)

    monkeypatch.setattr(export, "_run_exporter", float_only)
    with pytest.raises(QdqError) as info:
        _export(proj, out_dir)
    assert info.value.kind == "export" and "expected at least" in info.value.message
    assert sorted(os.listdir(out_dir)) == ["calibration.json", "histograms.json"]  # calibrate's, untouched


def test_dynamo_fallback_produces_qdq(project, monkeypatch):
    """Where the TorchScript exporter is missing or fails, the dynamo exporter must give the same QDQ form."""
    if "dynamo" not in __import__("inspect").signature(torch.onnx.export).parameters:
        pytest.skip(f"torch {torch.__version__} has no dynamo-based ONNX exporter")
    pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript, not installed here")
    if onnx is None:
        pytest.skip(NO_ONNX)
    proj, out_dir = project
    real = export._run_exporter

    def no_torchscript(*args):
        if not args[-1]:
            raise RuntimeError("simulated: the TorchScript exporter is gone")
        return real(*args)

    monkeypatch.setattr(export, "_run_exporter", no_torchscript)
    result = _export(proj, out_dir, dynamic_batch=True)
    assert result["exporter"] == "dynamo" and result["opset"] >= 13
    model, consts, dqs = _dq_nodes(result["int8_onnx"])
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            assert [producers[i].op_type for i in node.input[:2]] == ["DequantizeLinear"] * 2
    for node in dqs:
        assert producers[node.input[0]].op_type == "QuantizeLinear"  # no Clip left between Q and DQ
        assert consts[node.input[2]].dtype.name == "int8"
    axes = sorted({a.name: a.i for a in n.attribute}.get("axis", 1) for n in dqs if consts[n.input[1]].size > 1)
    assert axes == [0, 1]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param


BRANCHES = textwrap.dedent(
    """
    import torch
    import torch.nn as nn
    import qdq_quant  # qdq


    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = qdq_quant.quant(nn.Linear(4, 4))
            self.head = qdq_quant.quant(nn.Linear(4, 2))  # built, run, but its result is not returned
            self.matmul0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
            self.single = False

        def forward(self, x):
            y = self.fc(x)
            self.head(y)
            if self.single:  # a path calibration never takes
                y = self.matmul0_a_quantizer(y) @ x.t() @ x
            return y


    def build():
        torch.manual_seed(0)
        return Branches()
    """
)


def test_unused_branch_is_reported_and_an_uncalibrated_live_quantizer_is_named(tmp_path):
    (tmp_path / "branches.py").write_text(BRANCHES)
    (tmp_path / "qdq_quant.py").write_text(open(HELPER, encoding="utf-8").read())
    proj = loader.load({"project_dir": str(tmp_path), "model": "branches.py:build", "input_shapes": [[2, 4]]}, _noop)
    out_dir = str(tmp_path / "out")
    result = calibrate.calibrate(proj, {"method": "max", "batches": 2, "out_dir": out_dir}, _noop, _noop)
    skipped = [q for q in result["quantizers"] if q["name"] == "matmul0_a_quantizer"][0]
    assert skipped["amax"] is None  # never reached: left uncalibrated, not an error by itself
    exported = _export(proj, out_dir)  # the head's result is unused: reported, not a pair-count failure
    assert exported["unused_quantizers"] == ["head.input_quantizer", "head.weight_quantizer"]
    assert exported["quantizer_calls"] == 2
    proj.model.single = True  # now the export forward runs a quantizer calibration never saw
    with pytest.raises(QdqError) as err:
        _export(proj, out_dir)
    assert err.value.kind == "config"
    assert "matmul0_a_quantizer" in err.value.message and "branches.py:" in err.value.message


KEYWORDS = textwrap.dedent(
    """
    import functools
    import torch
    import torch.nn as nn
    import qdq_quant  # qdq


    def fills_use_cache(forward):
        # as transformers 5's decorators do: a positional use_cache clashes with this keyword
        @functools.wraps(forward)
        def wrapper(self, *args, **kwargs):
            kwargs["use_cache"] = False
            return forward(self, *args, **kwargs)

        return wrapper


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = qdq_quant.quant(nn.Linear(4, 4))

        @fills_use_cache
        def forward(self, ids=None, scale=None, use_cache=None, extra=None):
            return {"out": self.fc(scale * ids), "cache": object()}


    def build():
        torch.manual_seed(0)
        return Net()


    def example():
        return {"scale": torch.full((2, 4), 2.0), "ids": torch.randn(2, 4)}
    """
)


def test_keyword_example_inputs_export_without_filling_defaults_positionally(tmp_path):
    (tmp_path / "kw.py").write_text(KEYWORDS)
    (tmp_path / "qdq_quant.py").write_text(open(HELPER, encoding="utf-8").read())
    proj = loader.load({"project_dir": str(tmp_path), "model": "kw.py:build", "example_inputs": "kw.py:example"}, _noop)
    assert proj.input_names == ["scale", "ids"] and proj.keywords == ["scale", "ids"]
    out_dir = str(tmp_path / "out")
    calibrate.calibrate(proj, {"method": "max", "batches": 2, "out_dir": out_dir}, _noop, _noop)
    result = _export(proj, out_dir)
    assert result["exporter"] == "torchscript" and result["outputs"] == ["output"]  # the cache object left out
    if onnx is None:
        pytest.skip(NO_ONNX)
    assert [i.name for i in onnx.load(result["int8_onnx"]).graph.input] == ["scale", "ids"]


RESIDUALS = textwrap.dedent(
    """
    import torch
    import torch.nn as nn
    import qdq_quant  # qdq


    class Residuals(nn.Module):
        # a ResNet-style add (conv -> BN, then + identity) and a transformer-style one (+ a Linear branch)
        def __init__(self):
            super().__init__()
            self.conv = qdq_quant.quant(nn.Conv2d(4, 4, 3, padding=1))
            self.bn = nn.BatchNorm2d(4)
            self.fc = qdq_quant.quant(nn.Linear(4, 4))
            self.iadd0_residual_quantizer = qdq_quant.TensorQuantizer()  # qdq
            self.add0_residual_quantizer = qdq_quant.TensorQuantizer()  # qdq

        def forward(self, x):
            y = self.bn(self.conv(x))
            y += self.iadd0_residual_quantizer(x)
            t = torch.relu(y).mean(dim=(2, 3))
            return self.add0_residual_quantizer(t) + self.fc(t)


    def build():
        torch.manual_seed(0)
        return Residuals().eval()
    """
)


def test_tensorrt_keeps_residual_quantizers_only_on_adds_after_a_convolution(tmp_path):
    (tmp_path / "residuals.py").write_text(RESIDUALS)
    (tmp_path / "qdq_quant.py").write_text(open(HELPER, encoding="utf-8").read())
    proj = loader.load(
        {"project_dir": str(tmp_path), "model": "residuals.py:build", "input_shapes": [[2, 4, 6, 6]]}, _noop
    )
    out_dir = str(tmp_path / "out")
    calibrate.calibrate(proj, {"method": "max", "batches": 2, "out_dir": out_dir}, _noop, _noop)
    exported = _export(proj, out_dir)
    # Conv + Add fuses in TensorRT with the identity in INT8; a Linear branch's add has no such fusion
    assert exported["residual_float"] == ["add0_residual_quantizer"]
    # conv and fc, input and weight; the identity's quantizer has the conv input's range on the same x: one pair
    assert exported["quantizer_calls"] == 4
    assert proj.model.add0_residual_quantizer.enabled  # left off for the export only
    if onnx is None:
        pytest.skip(NO_ONNX)
    model, _, dqs = _dq_nodes(exported["int8_onnx"])
    readers = {i: n.op_type for n in model.graph.node for i in n.input}
    assert sorted(readers[dq.output[0]] for dq in dqs if readers.get(dq.output[0]) == "Add") == ["Add"]
