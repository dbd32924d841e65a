"""Per-site-group quantization sensitivity and the accuracy-budget precision plan (`qdq sensitivity`, `qdq tune`).

Pure algorithm over an already calibrated model: it only switches `TensorQuantizer.enabled` and runs a metric.
No JSON, no files: server.py turns the typed results into the protocol's dictionaries.

A *group* is what a user keeps in float together, named by source site: a layer's input and weight quantizers (one
`qdq_quant.quant(...)` line), the operands of one matmul or residual add, and every quantizer fed by one tensor (Q/K/V
projections reading the same hidden state) joined into one group, because keeping only some of them in float still
leaves the shared tensor quantized for the others. All instances of a class share its source sites, so a block used
five times is one group: a `keep_float` edit in the source changes all five.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

import torch
from torch import nn

Inputs = Tuple[torch.Tensor, ...]
Progress = Callable[[str, int, Optional[int], str], None]
Metric = Callable[[], float]

# Operand suffixes of the activation quantizers qdq writes (add0_residual_quantizer, matmul1_b_quantizer, ...).
_OPERAND = re.compile(r"_(a|b|residual|local|left|right|\d+)$")


@dataclass(frozen=True)
class Site:
    """One quantizer: its module path in the model and its source site ("file::Class.attr")."""

    name: str
    site: str
    module: nn.Module = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class SiteGroup:
    label: str  # "InvertedResidual.expand": the source layer or operation
    sites: Tuple[str, ...]  # source sites, sorted
    quantizers: Tuple[str, ...]  # module paths of every instance's quantizers


@dataclass
class GroupSensitivity:
    group: SiteGroup
    only_int8: float  # metric with this group INT8 and every other group in float
    only_float: float  # metric with this group in float and every other group INT8


@dataclass
class SensitivityResult:
    metric: str
    fp32: float
    all_int8: float
    groups: List[GroupSensitivity]
    evaluations: int


@dataclass
class TuneStep:
    float_labels: List[str]
    value: float


@dataclass
class TunePlan:
    metric: str
    fp32: float
    all_int8: float
    target: float
    mixed: float
    float_groups: List[SiteGroup]
    steps: List[TuneStep]
    evaluations: int
    within_budget: bool


def _layer_label(cls: str, attr: str) -> str:
    parts = attr.split(".")
    if parts[-1].lstrip("_") in ("input_quantizer", "weight_quantizer", "output_quantizer") and len(parts) > 1:
        return f"{cls}.{'.'.join(parts[:-1])}"
    last = _OPERAND.sub("", re.sub(r"_quantizer$", "", parts[-1]))
    return f"{cls}.{'.'.join(parts[:-1] + [last])}"


class _UnionFind:
    def __init__(self) -> None:
        self.parent: Dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def shared_input_sets(model: nn.Module, sites: Sequence[Site], batch: Inputs) -> List[Set[str]]:
    """Names of the activation quantizers that received the very same tensor in one forward pass (Q/K/V)."""
    seen: Dict[Tuple[int, Tuple[int, ...], Tuple[int, ...]], Set[str]] = {}
    keep: List[torch.Tensor] = []  # hold the tensors so their storage is not reused within the pass
    handles = []
    for s in sites:
        if getattr(s.module, "axis", None) is not None:
            continue  # per-channel quantizers hold weights, not activations

        def hook(_module: nn.Module, args: Tuple[torch.Tensor, ...], name: str = s.name) -> None:
            x = args[0]
            if isinstance(x, torch.Tensor):
                keep.append(x)
                key = (x.data_ptr(), tuple(x.shape), tuple(x.stride()))
                seen.setdefault(key, set()).add(name)

        handles.append(s.module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(*batch)
    finally:
        for h in handles:
            h.remove()
    return [names for names in seen.values() if len(names) > 1]


def group_sites(sites: Sequence[Site], shared: Iterable[Set[str]] = ()) -> List[SiteGroup]:
    """Union of: same source layer/operation; same source site (every instance); same input tensor."""
    uf = _UnionFind()
    label_of_site: Dict[str, str] = {}
    for s in sites:
        cls, attr = s.site.split("::", 1)[-1].split(".", 1)
        label_of_site[s.site] = _layer_label(cls, attr)
        uf.union(f"L:{label_of_site[s.site]}", f"S:{s.site}")
    site_of = {s.name: s.site for s in sites}
    for names in shared:
        named = [site_of[n] for n in names if n in site_of]
        for other in named[1:]:
            uf.union(f"S:{named[0]}", f"S:{other}")
    members: Dict[str, List[Site]] = {}
    for s in sites:
        members.setdefault(uf.find(f"S:{s.site}"), []).append(s)
    groups = []
    for items in members.values():
        sorted_sites = tuple(sorted({s.site for s in items}))
        labels = sorted({label_of_site[x] for x in sorted_sites})
        groups.append(
            SiteGroup(label=" + ".join(labels), sites=sorted_sites, quantizers=tuple(sorted(s.name for s in items)))
        )
    return sorted(groups, key=lambda g: g.quantizers[0])


class PrecisionSwitch:
    """Turns groups INT8 or float by enabling their quantizers; quantizers the user left disabled stay disabled."""

    def __init__(self, sites: Sequence[Site], groups: Sequence[SiteGroup]) -> None:
        self._modules: Dict[str, Any] = {s.name: s.module for s in sites}
        self._originally = {s.name: bool(getattr(s.module, "enabled", True)) for s in sites}
        self._groups = list(groups)

    def set_int8(self, int8: Iterable[SiteGroup]) -> None:
        on: Set[str] = set()
        for g in int8:
            on.update(g.quantizers)
        for name, module in self._modules.items():
            module.enabled = self._originally[name] and name in on

    def restore(self) -> None:
        for name, module in self._modules.items():
            module.enabled = self._originally[name]


def top1_metric(model: nn.Module, batches: Sequence[Tuple[Inputs, torch.Tensor]]) -> Metric:
    """Top-1 accuracy in percent on labelled held-out batches."""

    def run() -> float:
        correct = total = 0
        with torch.no_grad():
            for inputs, labels in batches:
                out = model(*inputs)
                out = out[0] if isinstance(out, (tuple, list)) else out
                correct += int((out.argmax(dim=-1) == labels).sum().item())
                total += int(labels.numel())
        return 100.0 * correct / max(total, 1)

    return run


def _first_output(value: object) -> torch.Tensor:
    while isinstance(value, (tuple, list)):
        value = value[0]
    if isinstance(value, dict):
        return _first_output(next(iter(value.values())))
    assert isinstance(value, torch.Tensor)
    return value


def sqnr_metric(model: nn.Module, batches: Sequence[Inputs], switch: PrecisionSwitch) -> Metric:
    """Output SQNR in dB against the FP32 outputs (computed once, every quantizer off), on held-out inputs."""
    switch.set_int8([])
    with torch.no_grad():
        reference = [_first_output(model(*inputs)).float() for inputs in batches]
    switch.restore()

    def run() -> float:
        signal = noise = 0.0
        with torch.no_grad():
            for inputs, ref in zip(batches, reference):
                out = _first_output(model(*inputs)).float()
                signal += float((ref**2).sum())
                noise += float(((out - ref) ** 2).sum())
        if noise == 0.0:
            return 100.0  # identical: report a large finite SQNR (JSON has no infinity)
        return min(100.0, 10.0 * math.log10(max(signal, 1e-30) / noise))

    return run


class Runner:
    """Evaluates the metric for a list of precision assignments (which groups are INT8), with progress and an ETA.

    Every search below asks for its evaluations in batches that do not depend on each other, so a distributed
    runner (sensitivity_dist.py) can split a batch across processes and return the same list.
    """

    def __init__(
        self,
        switch: PrecisionSwitch,
        metric: Metric,
        step: str,
        progress: Progress,
        check_cancel: Callable[[], None],
    ) -> None:
        self.switch, self.metric, self.step = switch, metric, step
        self.progress, self.check_cancel = progress, check_cancel
        self.total = 0
        self.done = 0
        self.measured: Dict[FrozenSet[str], float] = {}
        self.started = time.monotonic()

    def evaluate(self, int8: Sequence[SiteGroup], what: str) -> float:
        self.check_cancel()
        self.switch.set_int8(int8)
        value = self.metric()
        self.done += 1
        elapsed = time.monotonic() - self.started
        total = max(self.total, self.done)
        eta = elapsed / self.done * (total - self.done)
        self.progress(self.step, self.done, total, f"{what}: {value:.2f} (ETA {eta:.0f} s)")
        return value

    def run(self, configs: Sequence[Tuple[Sequence[SiteGroup], str]]) -> List[float]:
        """The metric of each assignment; one already measured (in this batch or an earlier one) is not run again,
        so `done` counts distinct assignments: tune's pruning pass often revisits a state the greedy rounds saw."""
        keys = [frozenset(g.label for g in int8) for int8, _ in configs]
        fresh: Dict[FrozenSet[str], Tuple[Sequence[SiteGroup], str]] = {}
        for key, config in zip(keys, configs):
            if key not in self.measured and key not in fresh:
                fresh[key] = config
        for key, value in zip(fresh, self.measure(list(fresh.values()))):
            self.measured[key] = value
        return [self.measured[key] for key in keys]

    def measure(self, configs: Sequence[Tuple[Sequence[SiteGroup], str]]) -> List[float]:
        return [self.evaluate(int8, what) for int8, what in configs]


def measure_sensitivity(groups: Sequence[SiteGroup], runner: Runner, metric_name: str) -> SensitivityResult:
    """For each group, the metric when only it is INT8 and when only it is float (2 + 2 * len(groups) runs)."""
    configs: List[Tuple[Sequence[SiteGroup], str]] = [([], "all float"), (list(groups), "all INT8")]
    for g in groups:
        configs.append(([g], f"only {g.label} INT8"))
        configs.append(([o for o in groups if o is not g], f"only {g.label} float"))
    runner.total = len(configs)
    try:
        values = runner.run(configs)
    finally:
        runner.switch.restore()
    results = [
        GroupSensitivity(group=g, only_int8=values[2 + 2 * i], only_float=values[3 + 2 * i])
        for i, g in enumerate(groups)
    ]
    return SensitivityResult(metric_name, values[0], values[1], results, runner.done)


def budget_target(fp32: float, max_drop: float, relative: bool) -> float:
    """The lowest acceptable metric: max_drop points below FP32, or max_drop percent of FP32 when relative."""
    return fp32 * (1.0 - max_drop / 100.0) if relative else fp32 - max_drop


def tune(
    groups: Sequence[SiteGroup],
    runner: Runner,
    metric_name: str,
    max_drop: float,
    relative: bool,
) -> TunePlan:
    """Fewest groups in float with the metric within the budget.

    Greedy with re-ranking: each round measures, for every group still INT8, the metric with it also in float,
    and moves the best one to float (the ranking is redone every round because reverting one group changes what
    the others cost). Once within budget, a pruning pass puts back to INT8 every float group the budget does not
    need (last added first), so the plan holds no group that greed picked early and later ones made redundant.
    """
    n = len(groups)
    order = {g.label: i for i, g in enumerate(groups)}
    runner.total = 2 + n
    try:
        fp32, all_int8 = runner.run([([], "all float"), (list(groups), "all INT8")])
        target = budget_target(fp32, max_drop, relative)
        current = all_int8
        in_float: List[SiteGroup] = []
        steps: List[TuneStep] = []
        while current < target and len(in_float) < n:
            remaining = [g for g in groups if g not in in_float]
            runner.total = runner.done + len(remaining) + len(in_float) + 1
            values = runner.run([([x for x in remaining if x is not g], f"{g.label} float too") for g in remaining])
            best_value, _, best = max(zip(values, [-order[g.label] for g in remaining], remaining))
            in_float.append(best)
            current = best_value
            steps.append(TuneStep([g.label for g in in_float], current))
        for g in list(reversed(in_float)) if current >= target else []:
            trial = [x for x in in_float if x is not g]
            (value,) = runner.run([([x for x in groups if x not in trial], f"{g.label} back to INT8")])
            if value >= target:
                in_float, current = trial, value
                steps.append(TuneStep([x.label for x in in_float], current))
    finally:
        runner.switch.restore()
    return TunePlan(
        metric=metric_name,
        fp32=fp32,
        all_int8=all_int8,
        target=target,
        mixed=current,
        float_groups=sorted(in_float, key=lambda g: order[g.label]),
        steps=steps,
        evaluations=runner.done,
        within_budget=current >= target,
    )


def float_site_set(plan: TunePlan) -> FrozenSet[str]:
    return frozenset(s for g in plan.float_groups for s in g.sites)
