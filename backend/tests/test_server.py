"""The backend over a real subprocess pipe: initialize, load, calibrate, set_method, export, progress, cancel."""

import json
import os
import struct
import sys

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
from rpc_client import Backend, RpcError, make_project  # noqa: E402

try:
    import onnx  # noqa: F401

    HAVE_ONNX = True
except ImportError:
    HAVE_ONNX = False

LOAD = {
    "model": "model.py:build",
    "example_inputs": "model.py:example_inputs",
    "calibration_data": "model.py:calibration_data",
    "eval_data": "model.py:eval_data",
}


@pytest.fixture()
def project(tmp_path):
    return make_project(tmp_path, "convnet")


@pytest.fixture()
def backend(project):
    b = Backend(project)
    yield b
    b.close()


def _load(backend, project, **extra):
    params = dict(LOAD, project_dir=project)
    params.update(extra)
    return backend.call("load", params)


def _by_name(quantizers):
    return {q["name"]: q for q in quantizers}


def test_initialize_reports_the_interpreter(backend):
    info = backend.call("initialize")
    assert info["python"] == sys.executable
    assert info["torch_version"] == torch.__version__
    assert (info["onnx_version"] is not None) == HAVE_ONNX


def test_load_finds_quantizers_with_their_source_sites(backend, project):
    result = _load(backend, project)
    assert result["model_class"] == "Net"
    assert result["calibration_data_kind"] == "user"
    assert result["eval_data"] is True
    assert result["inputs"] == [{"name": "x", "shape": [2, 3, 8, 8], "dtype": "float32"}]
    qs = _by_name(result["quantizers"])
    model_file = os.path.join(project, "model.py")
    # a layer built by a helper function inside Block.__init__ belongs to Block
    assert qs["block.conv1.input_quantizer"]["site"] == {
        "file": model_file,
        "cls": "Block",
        "attr": "conv1.input_quantizer",
    }
    assert qs["block.add0_residual_quantizer"]["site"]["attr"] == "add0_residual_quantizer"
    # inside nn.Sequential the owner is the user's class that built the Sequential
    assert qs["stem.0.weight_quantizer"]["site"] == {
        "file": model_file,
        "cls": "Net",
        "attr": "stem.0.weight_quantizer",
    }
    assert qs["stem.0.weight_quantizer"]["axis"] == 0
    assert qs["matmul0_a_quantizer"]["role"] == "activation"
    # output quantizers are off for TensorRT and not listed before they are calibrated
    assert not [n for n in qs if n.endswith("output_quantizer")]
    assert all(q["amax"] is None for q in qs.values())


def test_load_without_shapes_uses_random_normal(backend, project):
    result = backend.call("load", {"project_dir": project, "model": "model.py:build", "input_shapes": [[1, 3, 8, 8]]})
    assert result["calibration_data_kind"] == "random-normal"
    assert result["eval_data"] is False
    calib = backend.call("calibrate", {"method": "max", "batches": 3, "out_dir": os.path.join(project, "out")})
    assert calib["batches_seen"] == 3


@pytest.mark.parametrize("method", ["max", "entropy", "percentile", "mse"])
def test_calibrate_each_method(backend, project, method):
    _load(backend, project)
    out_dir = os.path.join(project, "qdq-out")
    result = backend.call("calibrate", {"method": method, "percentile": 99.9, "batches": 100, "out_dir": out_dir})
    assert result["batches_seen"] == 6  # the data has 6 batches, fewer than asked
    qs = _by_name(result["quantizers"])
    # weights: per channel, max of |w| per output channel
    w = qs["block.conv1.weight_quantizer"]
    assert w["axis"] == 0 and isinstance(w["amax"], list) and len(w["amax"]) == 8
    # the stem's input quantizer sees the calibration data itself: max method = max |x| over all batches
    g = torch.Generator().manual_seed(1)
    true_max = max(float(torch.randn(4, 3, 8, 8, generator=g).abs().max()) for _ in range(6))
    stem = qs["stem.0.input_quantizer"]
    assert stem["method"] == method
    if method == "max":
        assert stem["amax"] == pytest.approx(true_max, rel=1e-6)
    else:
        assert 0 < stem["amax"] <= true_max * 1.01
        assert len(stem["hist"]["bins"]) == 64 and stem["hist"]["edges_max"] >= true_max * 0.99
    for q in qs.values():
        assert q["amax"] is not None, q["name"]
    # progress: every batch counted, in order, for this request
    steps = [n["params"] for n in backend.notifications if n["params"]["step"] == "calibrate"]
    assert steps and steps[-1]["done"] == 6
    assert [s["done"] for s in steps] == sorted(s["done"] for s in steps)
    with open(result["calibration_file"], encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["method"] == method
    key = f"{os.path.join(project, 'model.py')}::Block.conv1.input_quantizer"
    assert saved["sites"][key]["quantizers"][0]["amax"] == qs["block.conv1.input_quantizer"]["amax"]
    assert len(saved["quantizers"]) == len(result["quantizers"])
    assert [f for f in os.listdir(out_dir) if f.endswith(".tmp")] == []


def test_set_method_reuses_the_histograms(backend, project):
    _load(backend, project)
    out_dir = os.path.join(project, "out")
    first = backend.call("calibrate", {"method": "max", "batches": 6, "out_dir": out_dir})
    calls_before = len([n for n in backend.notifications if n["params"]["step"] == "calibrate"])
    switched = backend.call("set_method", {"method": "percentile", "percentile": 99.0})
    calls_after = len([n for n in backend.notifications if n["params"]["step"] == "calibrate"])
    assert calls_after == calls_before  # no new pass over the data
    a, b = _by_name(first["quantizers"]), _by_name(switched["quantizers"])
    assert b["stem.0.input_quantizer"]["method"] == "percentile"
    assert b["stem.0.input_quantizer"]["amax"] < a["stem.0.input_quantizer"]["amax"]
    assert b["block.conv1.weight_quantizer"]["amax"] == a["block.conv1.weight_quantizer"]["amax"]
    back = backend.call("set_method", {"method": "max"})
    assert _by_name(back["quantizers"])["stem.0.input_quantizer"]["amax"] == a["stem.0.input_quantizer"]["amax"]


def _read_eval(eval_file):
    with open(eval_file, encoding="utf-8") as handle:
        meta = json.load(handle)
    with open(os.path.join(os.path.dirname(eval_file), "eval.bin"), "rb") as handle:
        blob = handle.read()
    return meta, blob


def test_export_writes_fp32_int8_and_eval_files(backend, project):
    _load(backend, project)
    out_dir = os.path.join(project, "out")
    calib = backend.call("calibrate", {"method": "entropy", "batches": 6, "out_dir": out_dir})
    result = backend.call(
        "export", {"out_dir": out_dir, "opset": 13, "dynamic_batch": True, "target": "tensorrt", "fold_weights": False}
    )
    assert result["exporter"] == "torchscript"
    for path in (result["fp32_onnx"], result["int8_onnx"]):
        assert os.path.isfile(path) and os.path.getsize(path) > 0
    # 4 weighted-layer inputs + 4 weights + residual = 9 (the matmul operand is a constant, folded away);
    # the residual and conv1's input quantize the same tensor: one pair when their ranges are equal
    qs = _by_name(calib["quantizers"])
    same = qs["block.add0_residual_quantizer"]["amax"] == qs["block.conv1.input_quantizer"]["amax"]
    expected = 8 if same else 9
    assert result["quantizer_calls"] == expected
    assert result["qdq_nodes"]["quantize"] >= expected and result["qdq_nodes"]["dequantize"] >= expected
    assert result["outputs"] == ["output"] and result["inputs"][0]["name"] == "x"
    meta, blob = _read_eval(result["eval_file"])
    assert len(meta["batches"]) == 3 and meta["labelled"] is True
    first = meta["batches"][0]
    x = first["inputs"][0]
    assert x["name"] == "x" and x["dtype"] == "float32" and x["shape"] == [4, 3, 8, 8]
    assert x["length"] == 4 * 3 * 8 * 8 * 4
    g = torch.Generator().manual_seed(2)
    expected = torch.randn(4, 3, 8, 8, generator=g)
    labels = torch.randint(0, 10, (4,), generator=g)
    got = struct.unpack(f"<{4 * 3 * 8 * 8}f", blob[x["offset"] : x["offset"] + x["length"]])
    assert torch.allclose(torch.tensor(got).reshape(4, 3, 8, 8), expected)
    lab = first["labels"]
    assert list(struct.unpack("<4q", blob[lab["offset"] : lab["offset"] + lab["length"]])) == labels.tolist()
    if not HAVE_ONNX:
        pytest.skip(
            f"onnx is not installed in {sys.executable}: checked the files exist, are non-empty and hold "
            "QuantizeLinear/DequantizeLinear nodes (counted from the protobuf bytes)"
        )
    model = onnx.load(result["int8_onnx"])
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 13
    consts = _constants(model)
    qnodes = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qnodes
    for node in qnodes:
        zero = consts[node.input[2]]
        assert zero.dtype.name == "int8" and not zero.any()
    per_channel = [n for n in qnodes if n.op_type == "DequantizeLinear" and consts[n.input[1]].size > 1]
    assert len(per_channel) == 4  # one per weight
    for node in per_channel:
        assert {a.name: a.i for a in node.attribute}.get("axis", 1) == 0
    # every Conv/Gemm is fed by DequantizeLinear on its data and weight inputs
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            assert all(producers[i].op_type == "DequantizeLinear" for i in node.input[:2]), node.name
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param  # dynamic batch
    fp32 = onnx.load(result["fp32_onnx"])
    assert not [n for n in fp32.graph.node if n.op_type == "QuantizeLinear"]


def _constants(model):
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return consts


def test_export_for_ort_cpu_also_quantizes_weighted_outputs(backend, project):
    _load(backend, project)
    out_dir = os.path.join(project, "out")
    backend.call("calibrate", {"method": "max", "batches": 2, "out_dir": out_dir})
    trt = backend.call("export", {"out_dir": out_dir, "opset": 13, "dynamic_batch": False, "target": "tensorrt"})
    ort = backend.call("export", {"out_dir": out_dir, "opset": 13, "dynamic_batch": False, "target": "ort-cpu"})
    # 4 weighted layers: their outputs gain a Q/DQ pair each (calibrated on demand by export)
    assert ort["quantizer_calls"] == trt["quantizer_calls"] + 4
    assert ort["qdq_nodes"]["quantize"] >= trt["qdq_nodes"]["quantize"] + 4
    meta, _ = _read_eval(ort["eval_file"])
    # fixed batch: eval batches are cut to the exported batch size (2)
    assert all(b["inputs"][0]["shape"][0] == 2 for b in meta["batches"]) and len(meta["batches"]) == 6


def test_cancel_stops_calibration(backend, project):
    _load(backend, project, calibration_data="model.py:slow_data")
    out_dir = os.path.join(project, "out")
    request = backend.start("calibrate", {"method": "max", "batches": 400, "out_dir": out_dir})
    sent = []

    def on_progress(message):
        params = message["params"]
        if not sent and params["requestId"] == request and params["step"] == "calibrate" and params["done"] >= 2:
            backend.cancel(request)
            sent.append(params["done"])

    reply = backend.wait(request, on_progress)
    assert sent, "no calibrate progress before the reply"
    assert reply["error"]["data"]["kind"] == "cancelled"
    # the worker is free again, so the calibration loop has really ended
    backend.call("initialize")
    with open(os.path.join(project, "forward_calls.log"), encoding="utf-8") as handle:
        produced = len(handle.readlines())
    assert produced < 400
    with open(os.path.join(project, "forward_calls.log"), encoding="utf-8") as handle:
        assert len(handle.readlines()) == produced  # nothing more is pulled from the data after the answer
    assert not os.path.exists(os.path.join(out_dir, "calibration.json"))
    assert os.listdir(out_dir) == []


def test_shutdown_answers_then_exits(project):
    b = Backend(project)
    try:
        assert b.call("shutdown") is None
        assert b.proc.wait(timeout=60) == 0
    finally:
        b.close()


def test_unknown_method_is_a_protocol_error(backend):
    reply = backend.wait(backend.start("no_such_method"))
    assert reply["error"]["code"] == -32601


def test_calibrate_before_load_is_a_config_error(backend, project):
    err = backend.error("calibrate", {"method": "max", "batches": 1, "out_dir": os.path.join(project, "o")})
    assert err["data"]["kind"] == "config"


def test_bad_method_is_a_config_error(backend, project):
    _load(backend, project)
    err = backend.error("calibrate", {"method": "kl", "batches": 1, "out_dir": os.path.join(project, "o")})
    assert err["data"]["kind"] == "config" and "entropy" in err["data"]["hint"]


def test_export_before_calibrate_is_a_config_error(backend, project):
    _load(backend, project)
    out_dir = os.path.join(project, "o")
    err = backend.error("export", {"out_dir": out_dir, "opset": 13, "dynamic_batch": False, "target": "tensorrt"})
    assert err["data"]["kind"] == "config" and "calibrate" in err["data"]["hint"]
    assert not os.path.exists(out_dir) or os.listdir(out_dir) == []


def test_opset_below_13_is_a_config_error(backend, project):
    _load(backend, project)
    out_dir = os.path.join(project, "o")
    backend.call("calibrate", {"method": "max", "batches": 1, "out_dir": out_dir})
    err = backend.error("export", {"out_dir": out_dir, "opset": 11, "dynamic_batch": False, "target": "tensorrt"})
    assert err["data"]["kind"] == "config" and "13" in err["data"]["message"]


def test_rpc_error_carries_kind(backend, project):
    with pytest.raises(RpcError) as info:
        backend.call("load", {"project_dir": project, "model": "model.py"})
    assert info.value.kind == "config"


def test_patch_modules_quantizes_a_library_in_memory(backend, project):
    # a "library" the model file imports; the pipeline sends its quantized source as patch_modules
    lib = os.path.join(project, "fakelib_d2")
    os.mkdir(lib)
    original = (
        "import torch.nn as nn\n\n\nclass Head(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(4, 3)\n\n"
        "    def forward(self, x):\n        return self.fc(x)\n"
    )
    with open(os.path.join(lib, "__init__.py"), "w", encoding="utf-8") as handle:
        handle.write(original)
    with open(os.path.join(project, "uselib.py"), "w", encoding="utf-8") as handle:
        handle.write("import fakelib_d2\n\n\ndef build():\n    return fakelib_d2.Head()\n")
    source = backend.call("module_source", {"module": "fakelib_d2"})
    assert source["source"] == original
    patched = original.replace("import torch.nn as nn\n", "import torch.nn as nn\nimport qdq_quant  # qdq\n").replace(
        "nn.Linear(4, 3)", "qdq_quant.quant(nn.Linear(4, 3))"
    )
    result = backend.call(
        "load",
        {
            "project_dir": project,
            "model": "uselib.py:build",
            "input_shapes": [[2, 4]],
            "patch_modules": [{"module": "fakelib_d2", "source": patched}],
        },
    )
    qs = _by_name(result["quantizers"])
    assert qs["fc.input_quantizer"]["site"]["cls"] == "Head"
    assert qs["fc.input_quantizer"]["site"]["file"] == os.path.join(lib, "__init__.py")
    out_dir = os.path.join(project, "out")
    backend.call("calibrate", {"method": "max", "batches": 2, "out_dir": out_dir})
    exported = backend.call("export", {"out_dir": out_dir, "opset": 13, "dynamic_batch": False, "target": "tensorrt"})
    assert exported["quantizer_calls"] == 2
    assert backend.call("restore_modules") == {"restored": ["fakelib_d2"]}
    with open(os.path.join(lib, "__init__.py"), encoding="utf-8") as handle:
        assert handle.read() == original  # patched in memory only
    result = backend.call("load", {"project_dir": project, "model": "uselib.py:build", "input_shapes": [[2, 4]]})
    assert result["quantizers"] == []
