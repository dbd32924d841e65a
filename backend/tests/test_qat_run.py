"""The `qat` request on a real project (test/qat/fixtures/digits-mlp): FP32/PTQ/QAT top-1, checkpoints,
cancel, resume, a failing train-step, and 2 CPU processes under torchrun (gloo)."""

import os
import shutil
import threading

import pytest
import torch
from qdq_backend import calibrate, loader, qat_checkpoint, qat_run
from qdq_backend.errors import QdqError

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "test", "qat", "fixtures", "digits-mlp")


@pytest.fixture()
def project_dir(tmp_path):
    target = tmp_path / "digits-mlp"
    shutil.copytree(FIXTURE, target)
    return str(target)


def _load_params(directory):
    return {
        "project_dir": directory,
        "model": "model_quantized.py:build_model",
        "calibration_data": "data.py:calibration_data",
        "eval_data": "data.py:eval_data",
        "example_inputs": "data.py:example_inputs",
    }


def _calibrated(directory):
    project = loader.load(_load_params(directory), lambda *a: None)
    calibrate.calibrate(
        project,
        {"method": "max", "batches": 8, "out_dir": os.path.join(directory, "qdq-out")},
        lambda *a: None,
        lambda: None,
    )
    return project


def _params(directory, **extra):
    params = {
        "out_dir": os.path.join(directory, "qdq-out"),
        "train_data": "data.py:train_data",
        "epochs": 2,
        "lr": 2e-3,
        "load": _load_params(directory),
    }
    params.update(extra)
    return params


def _checkpoint(directory):
    return os.path.join(directory, "qdq-out", "qat", "checkpoint.pt")


def test_qat_reports_fp32_ptq_qat_and_writes_a_checkpoint(project_dir):
    project = _calibrated(project_dir)
    events = []
    result = qat_run.run_qat(project, _params(project_dir), lambda *e: events.append(e), lambda: False)
    assert result["eval_samples"] == 397
    for key in ("fp32", "ptq", "qat"):
        assert 0.8 < result[key] <= 1.0
    assert result["qat"] >= result["ptq"] - 0.005
    assert result["steps"] == 2 * 22 and len(result["history"]) == 2
    assert any(e[0] == "qat" and "ETA" in e[3] and "lr" in e[3] for e in events)
    assert [e[1] for e in events if e[0] == "qat_epoch"] == [1, 2]
    # the checkpoint loads strictly into a fresh quantized source ...
    fresh = loader.load(_load_params(project_dir), lambda *a: None)
    report = qat_checkpoint.load_into(fresh.model, _checkpoint(project_dir), strict=True)
    assert report.not_in_model == [] and report.not_in_checkpoint == []
    x = fresh.example_inputs[0].repeat(4, 1)
    assert torch.allclose(fresh.model(x), project.model(x), atol=1e-5)
    # ... and into a fresh FP32 model whose layers went through quant(): only the residual quantizer is left over
    plain = loader.load({**_load_params(project_dir), "model": "model.py:build_model"}, lambda *a: None).model
    import qdq_quant

    for name in ("fc1", "fc2", "head"):
        qdq_quant.quant(getattr(plain, name))
    report = qat_checkpoint.load_into(plain, _checkpoint(project_dir))
    assert report.not_in_model == ["add0_residual_quantizer.amax"]
    assert report.not_in_checkpoint == []
    assert torch.equal(plain.fc1.weight, fresh.model.fc1.weight)


def test_cancel_saves_the_step_and_resume_finishes(project_dir):
    project = _calibrated(project_dir)
    count = [0]

    def cancelled():
        count[0] += 1
        return count[0] > 30

    with pytest.raises(QdqError) as info:
        qat_run.run_qat(project, _params(project_dir), lambda *e: None, cancelled)
    assert info.value.kind == "cancelled"
    assert "step 30 of 44" in info.value.message and "--resume" in info.value.hint
    saved = qat_checkpoint.load(_checkpoint(project_dir))
    assert saved.state.global_step == 30
    project = _calibrated(project_dir)
    with pytest.raises(QdqError) as info:
        qat_run.run_qat(project, _params(project_dir, resume=True, nproc=2), lambda *e: None, lambda: False)
    assert info.value.kind == "config" and "--nproc 1" in info.value.hint
    result = qat_run.run_qat(project, _params(project_dir, resume=True), lambda *e: None, lambda: False)
    assert result["resumed_from_step"] == 30 and result["steps"] == 44
    assert result["ptq"] == saved.meta["ptq"]


def test_a_failing_train_step_keeps_the_last_checkpoint(project_dir):
    project = _calibrated(project_dir)
    with pytest.raises(QdqError) as info:
        qat_run.run_qat(
            project, _params(project_dir, train_step="steps.py:failing_step"), lambda *e: None, lambda: False
        )
    err = info.value
    assert err.kind == "user_code"
    assert "corrupt batch in the user's step" in err.message and "step 25 (epoch 2)" in err.message
    assert "step 22) is kept" in err.message and "steps.py" in (err.detail or "")
    assert qat_checkpoint.load(_checkpoint(project_dir)).state.global_step == 22


def test_resume_without_a_checkpoint_and_missing_train_data_are_config_errors(project_dir):
    project = _calibrated(project_dir)
    with pytest.raises(QdqError) as info:
        qat_run.run_qat(project, _params(project_dir, resume=True), lambda *e: None, lambda: False)
    assert info.value.kind == "config" and "nothing to resume" in info.value.message
    params = _params(project_dir)
    del params["train_data"]
    with pytest.raises(QdqError) as info:
        qat_run.run_qat(project, params, lambda *e: None, lambda: False)
    assert "train-data" in info.value.hint


def test_two_cpu_processes_under_torchrun(project_dir):
    project = _calibrated(project_dir)
    events = []
    result = qat_run.run_qat(project, _params(project_dir, nproc=2), lambda *e: events.append(e), lambda: False)
    assert result["processes"] == 2
    assert result["steps"] == 2 * 11  # 22 batches shared by 2 processes
    assert result["qat"] >= result["ptq"] - 0.005
    assert [e[1] for e in events if e[0] == "qat_epoch"] == [1, 2]


def test_a_failing_step_under_torchrun_is_reported_once_clearly(project_dir, monkeypatch):
    monkeypatch.setenv("QDQ_TEST_FAIL_AT", "14")
    project = _calibrated(project_dir)
    with pytest.raises(QdqError) as info:
        qat_run.run_qat(
            project, _params(project_dir, nproc=2, train_step="steps.py:failing_step"), lambda *e: None, lambda: False
        )
    assert info.value.kind == "user_code" and "corrupt batch" in info.value.message
    assert qat_checkpoint.load(_checkpoint(project_dir)).state.global_step == 11


def test_cancel_under_torchrun_stops_every_process_at_one_step(project_dir):
    project = _calibrated(project_dir)
    seen = threading.Event()

    def progress(step, done, total, message):
        if step == "qat" and total and done >= 5:
            seen.set()

    with pytest.raises(QdqError) as info:
        qat_run.run_qat(project, _params(project_dir, nproc=2, epochs=50), progress, seen.is_set)
    assert info.value.kind == "cancelled" and "--resume" in info.value.hint
    assert qat_checkpoint.load(_checkpoint(project_dir)).state.global_step >= 5


def test_a_fresh_run_keeps_the_earlier_checkpoint_and_a_damaged_one_is_named_not_removed(project_dir):
    def cancel_after(n):
        count = [0]

        def cancelled():
            count[0] += 1
            return count[0] > n

        return cancelled

    project = _calibrated(project_dir)
    with pytest.raises(QdqError):
        qat_run.run_qat(project, _params(project_dir), lambda *e: None, cancel_after(10))
    # starting over (no --resume) moves the cancelled run's checkpoint aside instead of overwriting it
    project = _calibrated(project_dir)
    with pytest.raises(QdqError):
        qat_run.run_qat(project, _params(project_dir), lambda *e: None, cancel_after(3))
    previous = os.path.join(project_dir, "qdq-out", "qat", qat_checkpoint.PREVIOUS)
    assert qat_checkpoint.load(previous).state.global_step == 10
    assert qat_checkpoint.load(_checkpoint(project_dir)).state.global_step == 3
    # a damaged checkpoint (a crash of the disk, not of qdq: saves are atomic) is named on --resume and left alone
    with open(_checkpoint(project_dir), "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(QdqError) as info:
        qat_run.run_qat(project, _params(project_dir, resume=True), lambda *e: None, lambda: False)
    assert info.value.kind == "config" and "not a readable QAT checkpoint" in info.value.message
    assert "without --resume" in info.value.hint
    assert os.path.getsize(_checkpoint(project_dir)) == 100
    assert qat_checkpoint.load(previous).state.global_step == 10
