"""One graph form per target: sensitivity, tune and QAT measure what the target's export leaves off, off.

The tensorrt export leaves off the residual quantizer of an add that follows no convolution (residual_fusion.py);
the measurements that predict that export must leave it off too, and put every flag back afterwards.
"""

import os
import sys

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qdq_backend import calibrate, loader, qat_launch, qat_run, residual_fusion, sensitivity_rpc  # noqa: E402
from qdq_backend.protocol_types import QatParams, SensitivityParams, TuneParams  # noqa: E402
from test_export import HELPER, RESIDUALS  # noqa: E402


def _noop(*_args):
    return None


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("residual_form")
    (root / "residuals.py").write_text(RESIDUALS)
    (root / "qdq_quant.py").write_text(open(HELPER, encoding="utf-8").read())
    proj = loader.load({"project_dir": str(root), "model": "residuals.py:build", "input_shapes": [[2, 4, 6, 6]]}, _noop)
    calibrate.calibrate(proj, {"method": "max", "batches": 2, "out_dir": str(root / "out")}, _noop, _noop)
    return proj


def _enabled(proj):
    return {q.name: q.module.enabled for q in proj.quantizers}


def _grouped(result):
    return {name for g in result["groups"] for name in g["quantizers"]}


def test_left_off_is_the_linear_fed_residual_for_tensorrt_only(project):
    assert residual_fusion.left_off(project, "tensorrt") == ["add0_residual_quantizer"]
    assert residual_fusion.left_off(project, "ort-cpu") == []
    assert residual_fusion.left_off(project, None) == []


def test_target_form_disables_then_restores_even_on_error(project):
    before = _enabled(project)
    with pytest.raises(RuntimeError):
        with residual_fusion.target_form(project, "tensorrt") as off:
            assert off == ["add0_residual_quantizer"]
            assert not project.model.add0_residual_quantizer.enabled
            assert project.model.iadd0_residual_quantizer.enabled  # conv-fed: TensorRT fuses it, kept
            raise RuntimeError("stop")
    assert _enabled(project) == before


def test_sensitivity_measures_the_tensorrt_form(project):
    before = _enabled(project)
    params = {"calibration_batches": 2, "eval_batches": 2}
    form = sensitivity_rpc.sensitivity(
        project, SensitivityParams.from_json({**params, "target": "tensorrt"}), _noop, _noop
    )
    plain = sensitivity_rpc.sensitivity(project, SensitivityParams.from_json(params), _noop, _noop)
    assert "add0_residual_quantizer" not in _grouped(form)
    assert "add0_residual_quantizer" in _grouped(plain)
    assert "iadd0_residual_quantizer" in _grouped(form)
    assert _enabled(project) == before


def test_tune_searches_the_tensorrt_form(project):
    before = _enabled(project)
    params = TuneParams.from_json(
        {"max_drop": 1000.0, "calibration_batches": 2, "eval_batches": 2, "target": "tensorrt"}
    )
    result = sensitivity_rpc.tune(project, params, _noop, _noop)
    assert result["within_budget"]
    assert not any("add0_residual" in s for g in result["float_groups"] for s in g["quantizers"])
    assert _enabled(project) == before


def test_qat_job_carries_the_target_to_its_workers(tmp_path):
    load = {"project_dir": str(tmp_path), "model": "residuals.py:build"}
    job = qat_run.parse_params(
        QatParams.from_json(
            {"out_dir": str(tmp_path), "train_data": "d.py:f", "nproc": 2, "load": load, "target": "tensorrt"}
        )
    )
    assert job.target == "tensorrt"
    spec = qat_launch.worker_spec(job, str(tmp_path))
    assert qat_run.parse_params(spec["qat"]).target == "tensorrt"
