"""Per-quantizer error (SQNR) and the per-method amax table from calibration; the second INT8 form (int8_only)
and held-out evaluation batches without eval-data."""

import json
import math
import os

import pytest

torch = pytest.importorskip("torch")

from qdq_backend import calibrate, export, loader  # noqa: E402
from qdq_backend.calib import HistogramCalibrator  # noqa: E402
from qdq_backend.errors import QdqError  # noqa: E402
from qdq_backend.quant_error import SQNR_CAP_DB, hist_sqnr_db, weight_sqnr_db  # noqa: E402
from qdq_backend.tensor_quant import fake_tensor_quant  # noqa: E402
from test_export import HELPER, MODEL, isolated_imports  # noqa: E402,F401 - the fixture is used by name


def _exact_db(x, amax, axis=None):
    fq = fake_tensor_quant(x, torch.as_tensor(amax, dtype=torch.float32), axis=axis)
    return 10 * math.log10(float((x * x).sum()) / float(((fq - x) ** 2).sum()))


@pytest.mark.parametrize("amax_share", [1.0, 0.5, 0.1])
def test_histogram_sqnr_is_close_to_the_exact_one(amax_share):
    torch.manual_seed(0)
    x = torch.randn(200_000)
    hist = HistogramCalibrator()
    hist.collect(x)
    hist.finish()
    amax = float(x.abs().max()) * amax_share
    estimate = hist_sqnr_db(hist, amax)
    exact = _exact_db(x, amax)
    assert abs(estimate - exact) < 0.5, (estimate, exact)


def test_clipping_lowers_sqnr_and_zero_noise_is_capped():
    x = torch.linspace(-1, 1, 4097)
    hist = HistogramCalibrator()
    hist.collect(x)
    assert hist_sqnr_db(hist, 0.05) < hist_sqnr_db(hist, 1.0) - 20
    w = torch.tensor([[1.0, -1.0, 0.0]])  # on the INT8 grid of amax 1: no error
    assert weight_sqnr_db(w, torch.tensor([1.0]), 0) == SQNR_CAP_DB
    w = torch.randn(8, 16)
    amax = w.abs().amax(dim=1)
    assert abs(weight_sqnr_db(w, amax, 0) - _exact_db(w, amax, axis=0)) < 1e-3


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "updown.py").write_text(MODEL)
    (tmp_path / "qdq_quant.py").write_text(open(HELPER, encoding="utf-8").read())
    proj = loader.load(
        {"project_dir": str(tmp_path), "model": "updown.py:build", "input_shapes": [[2, 3, 8, 8]]}, lambda *a: None
    )
    return proj, str(tmp_path / "out")


def _noop(*args):
    return None


def test_calibrate_reports_sqnr_and_every_methods_amax(project):
    proj, out_dir = project
    result = calibrate.calibrate(proj, {"method": "entropy", "batches": 3, "out_dir": out_dir}, _noop, _noop)
    by_name = {q["name"]: q for q in result["quantizers"]}
    for q in result["quantizers"]:
        if q["amax"] is None:
            continue
        assert isinstance(q["sqnr_db"], float) and 10 < q["sqnr_db"] <= SQNR_CAP_DB, q
        if q["role"] != "weight":
            methods = {m["method"]: m for m in q["methods"]}
            assert set(methods) == {"max", "entropy", "percentile", "mse"}
            # the method used is the one whose amax was set, and its SQNR is the quantizer's
            chosen = methods[q["method"]]
            assert math.isclose(chosen["amax"], q["amax"], rel_tol=1e-6)
            assert chosen["sqnr_db"] == q["sqnr_db"]
            assert methods["max"]["clipped"] == 0.0
            # mse minimises the same error the SQNR measures: nothing beats it by more than rounding
            assert methods["mse"]["sqnr_db"] >= max(m["sqnr_db"] for m in methods.values()) - 0.05
    saved = json.load(open(os.path.join(out_dir, "calibration.json")))
    assert saved["quantizers"][0]["sqnr_db"] == result["quantizers"][0]["sqnr_db"]
    assert any(n.endswith("weight_quantizer") for n in by_name)


def test_second_form_writes_only_its_int8_file_and_eval_batches_are_held_out(project):
    proj, out_dir = project
    calibrate.calibrate(proj, {"method": "max", "batches": 3, "out_dir": out_dir, "outputs": True}, _noop, _noop)
    first = export.export(proj, {"out_dir": out_dir, "target": "tensorrt"}, _noop, _noop)
    fp32_mtime = os.stat(first["fp32_onnx"]).st_mtime_ns
    second = export.export(
        proj,
        {"out_dir": out_dir, "target": "ort-cpu", "int8_only": True, "int8_file": "model.int8.ort-cpu.onnx"},
        _noop,
        _noop,
    )
    assert second["fp32_onnx"] == "" and second["eval_file"] == ""
    assert os.path.basename(second["int8_onnx"]) == "model.int8.ort-cpu.onnx"
    assert os.stat(first["fp32_onnx"]).st_mtime_ns == fp32_mtime
    assert os.path.exists(first["int8_onnx"])
    meta = json.load(open(first["eval_file"]))
    # random normal calibration data: the evaluation batches come after the 3 calibration used
    assert meta["held_out"] is True and meta["calibration_batches_used"] == 3
    calibration = [t[0] for t in proj.calibration_batches(3)]
    evaluated = [t[0] for t in proj.calibration_batches(3 + len(meta["batches"]))][3:]
    assert evaluated and all(not torch.equal(e, c) for e in evaluated for c in calibration)
    with pytest.raises(Exception, match="plain .onnx file name"):
        export.export(proj, {"out_dir": out_dir, "int8_only": True, "int8_file": "../x.onnx"}, _noop, _noop)


def test_another_method_from_the_saved_histograms_without_a_pass(project, monkeypatch):
    proj, out_dir = project
    first = calibrate.calibrate(proj, {"method": "entropy", "batches": 3, "out_dir": out_dir}, _noop, _noop)
    assert os.path.exists(os.path.join(out_dir, "histograms.json"))
    mse_by_name = {
        q["name"]: next(m["amax"] for m in q["methods"] if m["method"] == "mse")
        for q in first["quantizers"]
        if q.get("methods")
    }

    def no_pass(*args, **kwargs):
        raise AssertionError("reusing histograms must not run the calibration data again")

    monkeypatch.setattr(calibrate, "collect", no_pass)
    again = calibrate.calibrate(
        proj, {"method": "mse", "batches": 3, "out_dir": out_dir, "reuse_histograms": True}, _noop, _noop
    )
    assert again["method"] == "mse" and again["batches_seen"] == 3
    for q in again["quantizers"]:
        if q["name"] in mse_by_name:
            assert math.isclose(q["amax"], mse_by_name[q["name"]], rel_tol=1e-6), q["name"]
            assert q["method"] == "mse"
    with pytest.raises(QdqError, match="batches changed"):
        calibrate.calibrate(
            proj, {"method": "mse", "batches": 4, "out_dir": out_dir, "reuse_histograms": True}, _noop, _noop
        )
    with pytest.raises(QdqError, match="no saved calibration histograms"):
        calibrate.calibrate(
            proj, {"method": "mse", "batches": 3, "out_dir": out_dir + "-empty", "reuse_histograms": True}, _noop, _noop
        )
