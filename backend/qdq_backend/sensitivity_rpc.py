"""The `sensitivity` and `tune` requests: a loaded, calibrated project and typed params in, protocol results out.

The algorithm lives in sensitivity.py (typed, no I/O); this adapter picks the held-out data and the metric and
turns the typed results into the schema's result dictionaries. The params arrive as the generated dataclasses
(protocol_types.py, parsed and checked by the RPC shell: server.py, or sensitivity_dist.py for N processes).
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Tuple, Union

from . import knobs
from . import sensitivity as sens
from .errors import QdqError
from .loader import Project, _resolve, _user_error
from .protocol_types import GroupSensitivity, SensitivityParams, SensitivityResult, SiteGroup, TuneParams, TuneResult
from .residual_fusion import target_form

DEFAULT_EVAL_BATCHES = knobs.EVAL_BATCHES_DEFAULT
RunnerClass = Callable[..., sens.Runner]


def _sites(project: Project) -> List[sens.Site]:
    return [
        sens.Site(name=q.name, site=f"{q.site['file']}::{q.site['cls']}.{q.site['attr']}", module=q.module)
        for q in project.quantizers
        if getattr(q.module, "enabled", True)
    ]


MetricParams = Union[SensitivityParams, TuneParams]


def _count(key: str, value: Optional[int], default: int) -> int:
    """A batch count of the params (the schema made it an integer or absent): negative is a config error."""
    if value is None:
        return default
    if value < 0:
        raise QdqError("config", f"{key} = {value!r} is not a non-negative integer", "pass a count such as 50")
    return value


def _user_metric(project: Project, spec: Any) -> sens.Metric:
    """`[tool.qdq] metric = "file.py:fn"`: fn(model) -> a number, higher is better, on the user's own held-out data."""
    if not isinstance(spec, str) or ":" not in spec:
        raise QdqError("config", f"metric = {spec!r} is not file.py:function", 'set metric = "metric.py:score"')
    fn, _ = _resolve(spec, "metric", project.project_dir, None, project.user_roots)

    def run() -> float:
        try:
            value = fn(project.model)
        except Exception as exc:  # noqa: BLE001 - user code
            raise _user_error(exc, f"metric {spec} raised", project.user_roots) from None
        number = float(value.item()) if hasattr(value, "item") else value
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise QdqError(
                "config",
                f"metric {spec} returned {value!r}, not a finite number",
                "return one float, higher is better (e.g. accuracy in percent, or -loss)",
            )
        return float(number)

    return run


def _metric(project: Project, params: MetricParams, switch: sens.PrecisionSwitch) -> Tuple[str, sens.Metric, int]:
    """The user's metric function if set; top-1 on labelled eval-data; else output SQNR on held-out batches
    (eval-data inputs, or calibration batches past those calibrated: never the calibrated ones)."""
    if params.metric:
        return params.metric, _user_metric(project, params.metric), 0
    limit = _count("eval_batches", params.eval_batches, DEFAULT_EVAL_BATCHES) or DEFAULT_EVAL_BATCHES
    if project.eval_source is not None:
        batches = list(project.eval_batches(limit))
        labelled = [(inputs, labels) for inputs, labels in batches if labels is not None]
        if labelled and len(labelled) == len(batches):
            samples = sum(int(labels.shape[0]) for _, labels in labelled)
            return "top1", sens.top1_metric(project.model, labelled), samples
        held_out = [inputs for inputs, _ in batches]
    else:
        skip = _count("calibration_batches", params.calibration_batches, 0)
        held_out = list(project.calibration_batches(skip + limit))[skip:]
    if not held_out:
        raise QdqError(
            "config",
            "no held-out batches to measure sensitivity on (eval-data is not set and the calibration data has no "
            "batches beyond those calibrated)",
            "set eval-data in [tool.qdq] (labelled (inputs, labels) batches give top-1), or calibrate on fewer batches",
        )
    samples = sum(int(b[0].shape[0]) if b[0].dim() else 1 for b in held_out)
    return "sqnr_db", sens.sqnr_metric(project.model, held_out, switch), samples


def _prepare(
    project: Project, params: MetricParams
) -> Tuple[List[sens.SiteGroup], sens.PrecisionSwitch, str, sens.Metric, int]:
    if not project.calibration_state and not any(
        getattr(q.module, "amax", None) is not None for q in project.quantizers
    ):
        raise QdqError("config", "sensitivity before calibrate", "send calibrate first (this is a client bug)")
    sites = _sites(project)
    if not sites:
        raise QdqError("config", "the model has no enabled quantizers", "quantize the model first (qdq quantize)")
    project.model.eval()
    shared = sens.shared_input_sets(project.model, sites, project.example_inputs)
    groups = sens.group_sites(sites, shared)
    switch = sens.PrecisionSwitch(sites, groups)
    name, metric, samples = _metric(project, params, switch)
    return groups, switch, name, metric, samples


def _group_dict(g: sens.SiteGroup) -> SiteGroup:
    return {"label": g.label, "sites": list(g.sites), "quantizers": list(g.quantizers)}


def _group_sensitivity(s: sens.GroupSensitivity) -> GroupSensitivity:
    g = s.group
    return {
        "label": g.label,
        "sites": list(g.sites),
        "quantizers": list(g.quantizers),
        "only_int8": s.only_int8,
        "only_float": s.only_float,
    }


def sensitivity(
    project: Project,
    params: SensitivityParams,
    progress: sens.Progress,
    check_cancel: Callable[[], None],
    runner_class: RunnerClass = sens.Runner,
) -> SensitivityResult:
    # The target's graph form: a quantizer its export leaves off is neither a group nor on in any evaluation.
    with target_form(project, params.target):
        groups, switch, name, metric, samples = _prepare(project, params)
        r = sens.measure_sensitivity(groups, runner_class(switch, metric, "sensitivity", progress, check_cancel), name)
    return {
        "metric": r.metric,
        "samples": samples,
        "fp32": r.fp32,
        "all_int8": r.all_int8,
        "evaluations": r.evaluations,
        "groups": [_group_sensitivity(s) for s in r.groups],
    }


def _max_drop(params: TuneParams) -> Tuple[float, bool]:
    value = params.max_drop
    if not value >= 0:  # the schema made it a number; NaN and negatives are still not a budget
        raise QdqError("config", f"max_drop = {value!r} is not a non-negative number", "pass --max-drop 0.5 (points)")
    return float(value), bool(params.relative)


def tune(
    project: Project,
    params: TuneParams,
    progress: sens.Progress,
    check_cancel: Callable[[], None],
    runner_class: RunnerClass = sens.Runner,
) -> TuneResult:
    max_drop, relative = _max_drop(params)
    with target_form(project, params.target):  # as in sensitivity: the form the target exports
        groups, switch, name, metric, samples = _prepare(project, params)
        runner = runner_class(switch, metric, "tune", progress, check_cancel)
        plan = sens.tune(groups, runner, name, max_drop, relative)
    return {
        "metric": plan.metric,
        "samples": samples,
        "fp32": plan.fp32,
        "all_int8": plan.all_int8,
        "target": plan.target,
        "mixed": plan.mixed,
        "within_budget": plan.within_budget,
        "evaluations": plan.evaluations,
        "groups": len(groups),
        "float_groups": [_group_dict(g) for g in plan.float_groups],
        "float_sites": sorted(sens.float_site_set(plan)),
        "steps": [{"float": s.float_labels, "value": s.value} for s in plan.steps],
    }
