"""Every failure is a clean error object {kind, message, hint, detail?}, and leaves no half-written files."""

import os
import sys

import pytest

pytest.importorskip("torch")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
from rpc_client import Backend, make_project  # noqa: E402


@pytest.fixture()
def project(tmp_path):
    root = make_project(tmp_path, "convnet")
    # the broken files sit in the same project, next to the same qdq_quant.py
    for name in ("bad_import.py", "bad_syntax.py", "misc.py"):
        with open(os.path.join(os.path.dirname(__file__), "fixtures", "broken", name), encoding="utf-8") as src:
            with open(os.path.join(root, name), "w", encoding="utf-8") as dst:
                dst.write(src.read())
    return root


@pytest.fixture()
def backend(project):
    b = Backend(project)
    yield b
    b.close()


def _check(error, kind):
    data = error["data"]
    assert data["kind"] == kind, data
    assert error["code"] == -32000
    assert data["message"] and data["hint"]
    assert "Traceback (most recent call last)" not in data["message"]
    return data


def _no_files(out_dir):
    leftovers = os.listdir(out_dir) if os.path.isdir(out_dir) else []
    assert leftovers == [], leftovers


def _calibrate_error(backend, out_dir, **extra):
    params = {"method": "entropy", "batches": 8, "out_dir": out_dir}
    params.update(extra)
    return backend.error("calibrate", params)


def test_model_file_that_does_not_import(backend, project):
    data = _check(
        backend.error("load", {"project_dir": project, "model": "bad_import.py:build", "input_shapes": [[1, 4]]}),
        "import",
    )
    assert "package_that_does_not_exist_qdq" in data["message"]
    assert "bad_import.py" in data["detail"]
    assert "qdq_backend" not in data["detail"]  # trimmed to the user's frames


def test_model_file_with_a_syntax_error(backend, project):
    data = _check(
        backend.error("load", {"project_dir": project, "model": "bad_syntax.py:build", "input_shapes": [[1, 4]]}),
        "import",
    )
    assert "bad_syntax.py:4" in data["message"]


def test_factory_that_raises(backend, project):
    data = _check(
        backend.error("load", {"project_dir": project, "model": "misc.py:raising_factory", "input_shapes": [[1, 4]]}),
        "user_code",
    )
    assert "ValueError: checkpoint weights.pt not found" in data["message"]
    assert "misc.py" in data["detail"] and "loader.py" not in data["detail"]


def test_factory_that_returns_no_module(backend, project):
    data = _check(
        backend.error("load", {"project_dir": project, "model": "misc.py:not_a_module", "input_shapes": [[1, 4]]}),
        "config",
    )
    assert "int" in data["message"]


def test_missing_factory_names_the_candidates(backend, project):
    data = _check(
        backend.error("load", {"project_dir": project, "model": "model.py:nope", "input_shapes": [[1, 4]]}), "config"
    )
    assert "build" in data["hint"]


def test_missing_model_file(backend, project):
    _check(
        backend.error("load", {"project_dir": project, "model": "missing.py:build", "input_shapes": [[1, 4]]}), "config"
    )


def test_forward_that_raises_mid_calibration(backend, project):
    backend.call("load", {"project_dir": project, "model": "misc.py:flaky", "input_shapes": [[2, 4]]})
    out_dir = os.path.join(project, "out")
    data = _check(_calibrate_error(backend, out_dir), "user_code")
    assert "KeyError" in data["message"] and "batch 1" in data["message"]
    assert "misc.py" in data["detail"]
    _no_files(out_dir)


def test_empty_calibration_data(backend, project):
    backend.call(
        "load",
        {
            "project_dir": project,
            "model": "model.py:build",
            "example_inputs": "model.py:example_inputs",
            "calibration_data": "model.py:no_data",
        },
    )
    out_dir = os.path.join(project, "out")
    data = _check(_calibrate_error(backend, out_dir), "no_data")
    assert "model.py:no_data" in data["message"]
    _no_files(out_dir)


def test_empty_calibration_data_without_example_inputs(backend, project):
    _check(
        backend.error(
            "load", {"project_dir": project, "model": "model.py:build", "calibration_data": "model.py:no_data"}
        ),
        "no_data",
    )


def test_input_shapes_that_do_not_fit_the_model(backend, project):
    data = _check(
        backend.error("load", {"project_dir": project, "model": "model.py:build", "input_shapes": [[1, 5, 8, 8]]}),
        "shape",
    )
    assert "[1, 5, 8, 8]" in data["message"]


def test_calibration_batches_that_do_not_fit_the_model(backend, project):
    backend.call(
        "load",
        {
            "project_dir": project,
            "model": "model.py:build",
            "example_inputs": "model.py:example_inputs",
            "calibration_data": "model.py:wrong_shape_data",
        },
    )
    out_dir = os.path.join(project, "out")
    data = _check(_calibrate_error(backend, out_dir), "shape")
    assert "[4, 5, 8, 8]" in data["message"]
    _no_files(out_dir)


def test_nan_activations(backend, project):
    backend.call("load", {"project_dir": project, "model": "misc.py:lognet", "calibration_data": "misc.py:batches"})
    out_dir = os.path.join(project, "out")
    data = _check(_calibrate_error(backend, out_dir), "nan")
    assert "fc.input_quantizer" in data["message"] and "LogNet" in data["message"]
    _no_files(out_dir)
    # the model printed on every forward: that went to stderr, never into the protocol stream
    assert any("must not corrupt" in line for line in backend.stderr_lines)


def test_nan_in_calibration_data(backend, project):
    backend.call(
        "load",
        {
            "project_dir": project,
            "model": "model.py:build",
            "example_inputs": "model.py:example_inputs",
            "calibration_data": "model.py:nan_data",
        },
    )
    out_dir = os.path.join(project, "out")
    data = _check(_calibrate_error(backend, out_dir), "nan")
    assert "batch 1" in data["message"]
    _no_files(out_dir)


def test_failed_calibration_keeps_the_previous_one(backend, project):
    backend.call(
        "load",
        {
            "project_dir": project,
            "model": "model.py:build",
            "example_inputs": "model.py:example_inputs",
            "calibration_data": "model.py:calibration_data",
        },
    )
    out_dir = os.path.join(project, "out")
    good = backend.call("calibrate", {"method": "max", "batches": 2, "out_dir": out_dir})
    with open(good["calibration_file"], "rb") as handle:
        before = handle.read()
    _check(_calibrate_error(backend, out_dir, method="bogus"), "config")
    with open(good["calibration_file"], "rb") as handle:
        assert handle.read() == before
    assert sorted(os.listdir(out_dir)) == ["calibration.json", "histograms.json"]


def test_failed_export_leaves_no_file(backend, project):
    source = open(os.path.join(project, "model.py"), encoding="utf-8").read()
    # an operation neither exporter here can express (SVD: the TorchScript exporter has no symbolic for it,
    # and the dynamo exporter's onnxscript library none either), after the quantized stem
    broken = source.replace(
        "x = self.block(self.stem(x))", "x = self.block(self.stem(x))\n        x = x + torch.linalg.svd(x).S.sum() * 0"
    )
    assert broken != source
    backend.call(
        "load",
        {
            "project_dir": project,
            "model": "model.py:build",
            "example_inputs": "model.py:example_inputs",
            "model_source_override": {"file": "model.py", "source": broken},
        },
    )
    out_dir = os.path.join(project, "out")
    backend.call("calibrate", {"method": "max", "batches": 1, "out_dir": out_dir})
    data = _check(
        backend.error("export", {"out_dir": out_dir, "opset": 13, "dynamic_batch": False, "target": "tensorrt"}),
        "export",
    )
    assert "svd" in data["detail"].lower()
    assert sorted(os.listdir(out_dir)) == ["calibration.json", "histograms.json"]


def test_out_of_memory_mid_calibration(backend, project):
    backend.call("load", {"project_dir": project, "model": "misc.py:hungry", "input_shapes": [[2, 4]]})
    out_dir = os.path.join(project, "out")
    data = _check(_calibrate_error(backend, out_dir), "oom")
    assert "MemoryError" in data["message"] and "smaller" in data["hint"]
    _no_files(out_dir)
    # the backend keeps serving after it
    assert backend.call("initialize")["python"] == sys.executable
