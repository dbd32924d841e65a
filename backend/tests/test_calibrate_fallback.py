"""Entropy calibration falls back to the percentile amax where the KL search clips a whole mode,
and says so per quantizer (through the backend's own load + calibrate, in process)."""

import json
import textwrap

import pytest
import torch
from qdq_backend import calibrate, loader
from qdq_backend.calib import HistogramCalibrator

MODEL = textwrap.dedent('''
    import torch
    from torch import nn
    import qdq_quant


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc1 = qdq_quant.quant(nn.Linear(64, 32))
            self.fc2 = qdq_quant.quant(nn.Linear(32, 10))

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))


    def build():
        return Net()


    def digits_like():
        # like the normalised digits images: most pixels are background at -0.857, the ink is
        # spread up to 2.0 (the network input of the torchvision e2e tests)
        g = torch.Generator().manual_seed(0)
        for _ in range(4):
            x = torch.full((32, 64), -0.857)
            ink = torch.rand(32, 64, generator=g) < 0.3
            x[ink] = torch.rand(int(ink.sum()), generator=g) * 2.857 - 0.857
            yield x
''')


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "model.py").write_text(MODEL)
    from qdq_backend import qdq_quant

    with open(qdq_quant.__file__, encoding="utf-8") as src:
        (tmp_path / "qdq_quant.py").write_text(src.read())
    noop = lambda *a, **k: None  # noqa: E731
    return loader.load(
        {
            "project_dir": str(tmp_path),
            "model": "model.py:build",
            "input_shapes": [[32, 64]],
            "calibration_data": "model.py:digits_like",
        },
        noop,
    ), tmp_path


def _calibrate(project, tmp_path, method):
    noop = lambda *a, **k: None  # noqa: E731
    return calibrate.calibrate(
        project, {"method": method, "batches": 4, "out_dir": str(tmp_path / "out")}, noop, lambda: None
    )


def test_faithful_entropy_clips_the_ink_mode_of_a_bimodal_input():
    # The anchor's KL search itself, on such an input: its amax sits on the background spike.
    cal = HistogramCalibrator()
    x = torch.full((100000,), 0.857)
    x[:30000] = torch.linspace(0, 2.0, 30000)
    cal(x)
    amax = cal.compute_amax("entropy").item()
    assert amax < 1.0 and cal.share_above(amax) > 0.1
    assert cal.share_above(cal.compute_amax("percentile").item()) < 0.001


def test_entropy_falls_back_to_percentile_where_it_clips_a_mode_and_reports_it(project):
    proj, tmp_path = project
    result = _calibrate(proj, tmp_path, "entropy")
    qs = {q["name"]: q for q in result["quantizers"]}
    inp = qs["fc1.input_quantizer"]
    assert inp["method"] == "percentile"
    fb = inp["fallback"]
    assert fb["from"] == "entropy" and fb["clipped"] > calibrate.ENTROPY_MAX_CLIPPED
    assert fb["amax"] < 1.0 < inp["amax"] <= 2.0  # the ink is kept
    assert "clips" in fb["reason"] and "percentile" in fb["reason"]
    assert result["fallbacks"] == ["fc1.input_quantizer"]
    # a quantizer whose histogram has no such mode keeps entropy's amax
    hidden = qs["fc2.input_quantizer"]
    assert hidden["method"] == "entropy" and "fallback" not in hidden
    state = proj.calibration_state["states"]["fc2.input_quantizer"]["hist"]
    assert hidden["amax"] == pytest.approx(state.compute_amax("entropy").item())
    assert state.share_above(hidden["amax"]) <= calibrate.ENTROPY_MAX_CLIPPED
    # the saved calibration (what the editor shows) carries the same
    with open(result["calibration_file"], encoding="utf-8") as handle:
        saved = {q["name"]: q for q in json.load(handle)["quantizers"]}
    assert saved["fc1.input_quantizer"]["fallback"]["reason"] == fb["reason"]


def test_other_methods_never_fall_back(project):
    proj, tmp_path = project
    for method in ("max", "percentile", "mse"):
        result = _calibrate(proj, tmp_path, method)
        assert result["fallbacks"] == []
        assert all(q["method"] in (method, "max") for q in result["quantizers"] if q["amax"] is not None)
