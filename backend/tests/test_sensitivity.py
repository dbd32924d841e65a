"""qdq sensitivity / tune: grouping by source site and shared input, per-group metrics, the greedy plan; and the
same requests over the real backend pipe."""

import os
import sys

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
from qdq_backend import qdq_quant  # noqa: E402
from qdq_backend import sensitivity as sens  # noqa: E402
from rpc_client import Backend, RpcError, make_project  # noqa: E402


class Attention(nn.Module):
    """Q/K/V read one tensor: their input quantizers must form one group."""

    def __init__(self, d=8):
        super().__init__()
        self.q = qdq_quant.quant(nn.Linear(d, d))
        self.k = qdq_quant.quant(nn.Linear(d, d))
        self.v = qdq_quant.quant(nn.Linear(d, d))
        self.out = qdq_quant.quant(nn.Linear(d, d))

    def forward(self, x):
        a = torch.softmax(self.q(x) @ self.k(x).transpose(-2, -1), dim=-1)
        return self.out(a @ self.v(x))


class Outlier(nn.Module):
    """`first` sees one input channel 1000x wider than the rest: per-tensor INT8 wipes out the others."""

    def __init__(self):
        super().__init__()
        self.first = qdq_quant.quant(nn.Linear(16, 32))
        self.second = qdq_quant.quant(nn.Linear(32, 10))

    def forward(self, x):
        return self.second(torch.tanh(self.first(x)))


def _sites(model, cls):
    return [
        sens.Site(name=n, site=f"model.py::{cls}.{n}", module=m)
        for n, m in model.named_modules()
        if isinstance(m, qdq_quant.TensorQuantizer) and m.enabled
    ]


def _calibrate_max(model, batches):
    quantizers = [m for m in model.modules() if isinstance(m, qdq_quant.TensorQuantizer) and m.enabled]
    amax = {}
    hooks = [
        q.register_forward_pre_hook(
            lambda m, a, q=q: amax.__setitem__(q, max(amax.get(q, 0.0), a[0].abs().max().item()))
        )
        for q in quantizers
        if q.axis is None
    ]
    for q in quantizers:
        q.enabled = False
    with torch.no_grad():
        for b in batches:
            model(b)
    for h in hooks:
        h.remove()
    for q in quantizers:
        q.enabled = True
        if q.axis is None:
            q.set_amax(torch.tensor(amax[q]))
    for m in model.modules():
        if hasattr(m, "weight_quantizer"):
            w = m.weight.detach()
            m.weight_quantizer.set_amax(w.abs().reshape(w.shape[0], -1).amax(1))


def _noop(*_args):
    return None


def test_qkv_reading_one_tensor_form_one_group():
    torch.manual_seed(0)
    model = Attention().eval()
    sites = _sites(model, "Attention")
    shared = sens.shared_input_sets(model, sites, (torch.randn(2, 4, 8),))
    groups = sens.group_sites(sites, shared)
    labels = sorted(g.label for g in groups)
    assert labels == ["Attention.k + Attention.q + Attention.v", "Attention.out"]
    qkv = next(g for g in groups if "Attention.q" in g.label)
    assert "Attention.q.weight_quantizer" in " ".join(qkv.sites)
    assert len(qkv.quantizers) == 6  # three inputs and three weights


def _outlier_setup():
    torch.manual_seed(0)
    model = Outlier().eval()
    calib = [torch.randn(32, 16) for _ in range(4)]
    held_out = [torch.randn(64, 16) for _ in range(4)]
    for b in calib + held_out[:1]:
        b[0, 0] = 1000.0  # a rare outlier sets the per-tensor amax of first's input
    _calibrate_max(model, calib)
    sites = _sites(model, "Outlier")
    groups = sens.group_sites(sites)
    switch = sens.PrecisionSwitch(sites, groups)
    switch.set_int8([])
    with torch.no_grad():
        labelled = [((x,), model(x).argmax(1)) for x in held_out]  # FP32 is 100% by construction
    switch.restore()
    return model, groups, switch, sens.top1_metric(model, labelled)


def _distinct_sensitivity_runs(n: int) -> int:
    """2 + 2n assignments, less the ones that coincide: with one group "only it INT8" is all INT8 and "only it float"
    all float; with two, "only the first INT8" is "only the second float" and the other way round."""
    return {1: 2, 2: 4}.get(n, 2 + 2 * n)


def test_sensitivity_names_the_layer_with_the_outlier_input():
    model, groups, switch, metric = _outlier_setup()
    events = []
    r = sens.measure_sensitivity(groups, sens.Runner(switch, metric, "s", lambda *a: events.append(a), _noop), "top1")
    by_label = {g.group.label: g for g in r.groups}
    assert r.fp32 == 100.0 and r.all_int8 < 90.0
    assert by_label["Outlier.first"].only_int8 < 90.0 < by_label["Outlier.second"].only_int8
    assert by_label["Outlier.first"].only_float > 99.0
    assert r.evaluations == _distinct_sensitivity_runs(len(groups)) and len(events) == r.evaluations
    assert "ETA" in events[-1][3]
    assert all(m.enabled for m in model.modules() if isinstance(m, qdq_quant.TensorQuantizer) and m.axis is not None)


def test_tune_keeps_only_the_sensitive_group_in_float():
    _model, groups, switch, metric = _outlier_setup()
    plan = sens.tune(groups, sens.Runner(switch, metric, "t", _noop, _noop), "top1", 0.5, False)
    assert [g.label for g in plan.float_groups] == ["Outlier.first"]
    assert plan.within_budget and plan.mixed >= plan.fp32 - 0.5
    assert plan.all_int8 < plan.mixed


def test_tune_with_a_loose_budget_keeps_nothing_in_float():
    _model, groups, switch, metric = _outlier_setup()
    plan = sens.tune(groups, sens.Runner(switch, metric, "t", _noop, _noop), "top1", 100.0, False)
    assert plan.float_groups == [] and plan.mixed == plan.all_int8


class _RecordingSwitch:
    """A PrecisionSwitch stand-in: remembers the INT8 set each evaluation runs with."""

    def __init__(self) -> None:
        self.int8: frozenset = frozenset()
        self.seen: list = []

    def set_int8(self, int8) -> None:
        self.int8 = frozenset(g.label for g in int8)
        self.seen.append(self.int8)

    def restore(self) -> None:
        self.int8 = frozenset()


def test_tune_never_measures_an_assignment_twice():
    # Each group costs a fixed number of points in INT8; "b" and "c" together exceed the budget, so the greedy
    # rounds put groups in float and the pruning pass puts back the last one, which reproduces a measured state.
    groups = [sens.SiteGroup(label=x, sites=(f"m.py::M.{x}",), quantizers=()) for x in "abcd"]
    cost = {"a": 0.1, "b": 0.4, "c": 0.3, "d": 0.05}
    switch = _RecordingSwitch()
    metric = lambda: 100.0 - sum(cost[x] for x in switch.int8)  # noqa: E731
    plan = sens.tune(groups, sens.Runner(switch, metric, "t", _noop, _noop), "top1", 0.5, False)
    assert [g.label for g in plan.float_groups] == ["b"]
    assert len(switch.seen) == len(set(switch.seen)) == plan.evaluations


def test_one_group_sensitivity_runs_each_assignment_once():
    groups = [sens.SiteGroup(label="a", sites=("m.py::M.a",), quantizers=())]
    switch = _RecordingSwitch()
    r = sens.measure_sensitivity(groups, sens.Runner(switch, lambda: 1.0, "s", _noop, _noop), "top1")
    # "only a INT8" is all INT8 and "only a float" is all float: 2 evaluations, not 4
    assert r.evaluations == 2 == len(switch.seen)


def test_cancel_stops_the_measurement():
    _model, groups, switch, metric = _outlier_setup()

    class Stop(Exception):
        pass

    def cancel():
        raise Stop()

    with pytest.raises(Stop):
        sens.measure_sensitivity(groups, sens.Runner(switch, metric, "s", _noop, cancel), "top1")


def test_budget_target_absolute_and_relative():
    assert sens.budget_target(98.0, 0.5, False) == 97.5
    assert abs(sens.budget_target(98.0, 1.0, True) - 97.02) < 1e-9


# -- over the backend pipe -----------------------------------------------------------------------------------

LOAD = {
    "model": "model.py:build",
    "example_inputs": "model.py:example_inputs",
    "calibration_data": "model.py:calibration_data",
    "eval_data": "model.py:eval_data",
}


@pytest.fixture()
def backend(tmp_path):
    project = make_project(tmp_path, "convnet")
    b = Backend(project)
    b.call("initialize")
    b.call("load", dict(LOAD, project_dir=project))
    yield b
    b.close()


def test_sensitivity_request_before_calibrate_is_a_clear_error(backend):
    with pytest.raises(RpcError) as err:
        backend.call("sensitivity", {})
    assert "calibrate" in str(err.value)


def test_sensitivity_and_tune_requests(backend, tmp_path):
    backend.call("calibrate", {"method": "max", "batches": 4, "out_dir": str(tmp_path / "out")})
    r = backend.call("sensitivity", {"eval_batches": 4})
    assert r["metric"] in ("top1", "sqnr_db") and r["groups"]
    assert all(g["sites"] and "::" in g["sites"][0] for g in r["groups"])
    assert r["evaluations"] == _distinct_sensitivity_runs(len(r["groups"]))
    t = backend.call("tune", {"max_drop": 1000.0, "eval_batches": 4})
    assert t["float_sites"] == [] and t["mixed"] == t["all_int8"]
    with pytest.raises(RpcError) as err:
        backend.call("tune", {"max_drop": "half"})
    assert "max_drop" in str(err.value)


SCORE = """
import torch
from model import eval_data


def accuracy(model):
    correct = total = 0
    with torch.no_grad():
        for x, y in eval_data():
            correct += int((model(x).argmax(dim=-1) == y).sum())
            total += int(y.numel())
    return torch.tensor(100.0 * correct / total)  # a 0-d tensor is fine too


def not_a_number(model):
    return "high"
"""


def test_user_metric_function_is_what_sensitivity_and_tune_measure(backend, tmp_path):
    """[tool.qdq] metric = "file.py:fn": fn(model) -> number, higher is better, called for every evaluation."""
    with open(os.path.join(str(tmp_path), "convnet", "score.py"), "w") as f:
        f.write(SCORE)
    backend.call("calibrate", {"method": "max", "batches": 4, "out_dir": str(tmp_path / "out")})
    r = backend.call("sensitivity", {"metric": "score.py:accuracy"})
    plain = backend.call("sensitivity", {"eval_batches": 50})
    assert r["metric"] == "score.py:accuracy" and plain["metric"] == "top1"
    # the same measurements as the built-in top-1 on the same labelled batches, through the user's function
    # (the 0-d float32 tensor it returns rounds in the 7th digit)
    assert [r["fp32"], r["all_int8"]] == pytest.approx([plain["fp32"], plain["all_int8"]], abs=1e-4)
    assert [g["only_int8"] for g in r["groups"]] == pytest.approx([g["only_int8"] for g in plain["groups"]], abs=1e-4)
    t = backend.call("tune", {"metric": "score.py:accuracy", "max_drop": 1000.0})
    assert t["metric"] == "score.py:accuracy" and t["float_sites"] == []
    with pytest.raises(RpcError) as err:
        backend.call("sensitivity", {"metric": "score.py:not_a_number"})
    assert "not a finite number" in str(err.value)
    with pytest.raises(RpcError) as err:
        backend.call("sensitivity", {"metric": "score.py:missing"})
    assert "has no 'missing'" in str(err.value)
