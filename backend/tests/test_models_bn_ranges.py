"""Calibrated BatchNorm output ranges for the ort-cpu rewrite (bn_ranges.py), through export's result."""

import os
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from qdq_backend import calibrate, export, loader  # noqa: E402

HELPER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qdq_backend", "qdq_quant.py")

MODEL = textwrap.dedent(
    """
    import torch
    import torch.nn as nn
    import qdq_quant  # qdq


    class ConvBn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = qdq_quant.quant(nn.Conv2d(3, 4, 3, padding=1))
            self.bn = nn.BatchNorm2d(4)
            self.head = nn.Sequential(nn.BatchNorm2d(4))

        def forward(self, x):
            return self.head(self.bn(self.conv(x)))


    def build():
        torch.manual_seed(0)
        m = ConvBn()
        with torch.no_grad():
            m.bn.weight.copy_(torch.tensor([0.5, 2.0, -1.0, 3.0]))
            m.bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 1.0]))
            m.bn.running_var.copy_(torch.tensor([0.5, 1.0, 2.0, 4.0]))
        return m.eval()
    """
)


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path):
    path = list(sys.path)
    yield
    sys.path[:] = path
    root = str(tmp_path)
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(root) or name == "qdq_quant":
            del sys.modules[name]


def _noop(*args):
    return None


def _project(tmp_path, method):
    (tmp_path / "convbn.py").write_text(MODEL)
    (tmp_path / "qdq_quant.py").write_text(open(HELPER, encoding="utf-8").read())
    proj = loader.load(
        {"project_dir": str(tmp_path), "model": "convbn.py:build", "input_shapes": [[2, 3, 8, 8]]}, _noop
    )
    out_dir = str(tmp_path / "out")
    calibrate.calibrate(proj, {"method": method, "batches": 3, "out_dir": out_dir}, _noop, _noop)
    return proj, out_dir


def test_ort_cpu_export_gives_each_batchnorm_its_calibrated_output_range(tmp_path):
    proj, out_dir = _project(tmp_path, "max")
    params = {"out_dir": out_dir, "opset": 13, "dynamic_batch": False}
    trt = export.export(proj, {**params, "target": "tensorrt"}, _noop, _noop)
    assert trt["batchnorm_output_amax"] == {}, "only the ort-cpu rewrite folds BN"
    ort = export.export(proj, {**params, "target": "ort-cpu"}, _noop, _noop)
    ranges = ort["batchnorm_output_amax"]
    # Keyed by the BN weight's name, which the TorchScript exporter keeps as the initializer name.
    assert set(ranges) == {"bn.weight", "head.0.weight"}
    # With method max, the amax is the largest |output| over the same calibration batches, in float.
    assert ranges["bn.weight"] == pytest.approx(_float_max(proj), rel=1e-5)
    # The quantizers are left as they were (the export turns them on and off itself).
    assert all(q.module.calibrator is None for q in proj.quantizers)


def test_batchnorm_ranges_follow_the_calibration_method(tmp_path):
    proj, out_dir = _project(tmp_path, "percentile")
    ort = export.export(
        proj, {"out_dir": out_dir, "opset": 13, "dynamic_batch": False, "target": "ort-cpu"}, _noop, _noop
    )
    # The 99.99th percentile of |output| clips the largest values: below the max, and not far below it.
    amax = ort["batchnorm_output_amax"]["bn.weight"]
    assert 0.5 * _float_max(proj) < amax < _float_max(proj)


def _float_max(proj):
    saved = [(q.module, q.module.enabled) for q in proj.quantizers]
    seen = 0.0
    try:
        with torch.no_grad():
            for q in proj.quantizers:
                q.module.enabled = False
            for (x,) in proj.calibration_batches(3):
                seen = max(seen, float(proj.model.bn(proj.model.conv(x)).abs().max()))
    finally:
        for module, enabled in saved:
            module.enabled = enabled
    return seen
