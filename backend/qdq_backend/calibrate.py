"""Calibration: run batches through the model with calibrators attached, then set every quantizer's amax.

Activations (per tensor) get both a histogram and a running max, so `set_method` can switch between
max / entropy / percentile / mse without another pass over the data; memory is bins x quantizers.
Weights are calibrated per channel with max, straight from the weight tensors.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch

from . import artifacts, knobs
from .artifacts import prepare_out_dir, site_key, write_atomic  # noqa: F401 - their old home; export imports them
from .errors import QdqError
from .loader import Project, QuantizerInfo, amax_value, forward_error, quantizer_summary
from .protocol_types import CALIBRATION_METHODS, CalibrateParams, CalibrateResult, Quantizer, SetMethodParams
from .quant_error import hist_sqnr_db, method_choices, weight_sqnr_db

METHODS = CALIBRATION_METHODS
# Entropy (TensorRT's KL search) treats whatever lies above its amax as a sparse tail to clip. On
# a histogram with a second mode (the digits images: a background spike at 0.86 and the ink
# spread up to 2.0) it can settle between the modes and clip a large share of the values: the
# first conv of resnet18 on digits lost every ink pixel (24.8% of its input) and the output
# cosine fell to 0.87. Where a normal entropy amax clips a few in ten thousand values, a share
# above this is a degenerate result: that quantizer falls back to the percentile amax, and the
# report says so per quantizer ("fallback").
ENTROPY_MAX_CLIPPED = 0.01
HIST_SUMMARY_BUCKETS = 64
CALIBRATION_FILE = artifacts.CALIBRATION_FILE

Progress = Callable[[str, int, Optional[int], str], None]


class NonFinite(QdqError):
    pass


def _calibrator_classes() -> Tuple[Any, Any]:
    from .calib import HistogramCalibrator, MaxCalibrator  # noqa: WPS433 - written by another part

    return HistogramCalibrator, MaxCalibrator


def _validate_method(params: Union[CalibrateParams, SetMethodParams]) -> Tuple[str, float]:
    method = params.method if params.method is not None else knobs.METHOD_DEFAULT
    if method not in METHODS:
        raise QdqError("config", f"method = {method!r} is not a calibration method", f"use one of {', '.join(METHODS)}")
    percentile = params.percentile
    if percentile is None:
        percentile = knobs.PERCENTILE_DEFAULT
    in_range = knobs.PERCENTILE_MIN_EXCLUSIVE < percentile <= knobs.PERCENTILE_MAX
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not in_range:
        raise QdqError(
            "config",
            f"percentile = {percentile!r} is not in (0, 100]",
            "use a percentile such as 99.99 (the default) or 99.999",
        )
    return method, float(percentile)


def _site_text(q: QuantizerInfo) -> str:
    return f"{q.site['cls']}.{q.site['attr']} ({q.name})"


class _Collector:
    """Calibrator hook for one activation quantizer: checks values, feeds the histogram, which
    also keeps the exact max (one reduction per call instead of a second calibrator's)."""

    def __init__(self, q: QuantizerInfo, hist: Any, check_cancel: Callable[[], None], batch_index: List[int]) -> None:
        self.q = q
        self.hist = hist
        self.check_cancel = check_cancel
        self.batch_index = batch_index
        self.calls = 0
        self.reached = False  # called at all (integer tensors included)

    def __call__(self, x: torch.Tensor) -> None:
        # Checked here, inside forward, so a cancel stops even a long single batch.
        self.check_cancel()
        self.reached = True
        if not x.is_floating_point():
            return
        # The histogram checks for NaN/Inf with the max it takes anyway (no extra pass over x);
        # for small batches that happens when it bins them, a few calls later or at finish(),
        # so each batch is tagged with its number for the error to name the right one.
        with self._non_finite_as_error():
            self.hist.collect(x, tag=self.batch_index[0])
        self.calls += 1

    def finish(self) -> None:
        """Bins what the histogram still holds; raises the NaN/Inf error of a batch not binned yet."""
        with self._non_finite_as_error():
            self.hist.finish()

    @contextlib.contextmanager
    def _non_finite_as_error(self) -> Iterator[None]:
        try:
            yield
        except ValueError as exc:
            if type(exc).__name__ != "NonFiniteError":
                raise
            bad = getattr(exc, "kind", None) or "NaN or Inf"
            batch = getattr(exc, "tag", None)
            raise NonFinite(
                "nan",
                f"{bad} in the input of quantizer {_site_text(self.q)} during calibration batch "
                f"{self.batch_index[0] if batch is None else batch}",
                "check the model and the calibration data for overflow (e.g. log of 0 or of negatives, division "
                "by 0, uninitialised weights); calibration needs finite activations",
            ) from None


def _weight_amax(q: QuantizerInfo) -> Optional[torch.Tensor]:
    weight = getattr(q.parent, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return None
    w = weight.detach().float().abs()
    if not bool(torch.isfinite(w).all()):
        raise QdqError(
            "nan",
            f"the weight of {q.name} contains NaN or Inf",
            "the model's weights are broken: check the checkpoint the factory loads",
        )
    axis = getattr(q.module, "axis", None)
    if axis is None:
        return w.max()
    axis = axis % w.dim()
    dims = [d for d in range(w.dim()) if d != axis]
    return w.amax(dim=dims) if dims else w


def _hist_summary(hist: Any) -> Optional[Dict[str, Any]]:
    summary = getattr(hist, "summary", None)
    if callable(summary):
        result = summary(HIST_SUMMARY_BUCKETS)
        if result is not None:
            return {"bins": [float(b) for b in result["bins"]], "edges_max": float(result["edges_max"])}
    counts, edges = _hist_arrays(hist)
    if counts is None or edges is None or counts.numel() == 0:
        return None
    n = counts.numel()
    size = int(math.ceil(n / HIST_SUMMARY_BUCKETS))
    padded = torch.zeros(size * HIST_SUMMARY_BUCKETS, dtype=torch.float64)
    padded[:n] = counts.double()
    buckets = padded.reshape(HIST_SUMMARY_BUCKETS, size).sum(dim=1)
    # 64 equal buckets over [0, edges_max]; the last may extend past the histogram's last edge.
    bin_width = float(edges[1] - edges[0]) if edges.numel() > 1 else 0.0
    edges_max = float(edges[0]) + bin_width * size * HIST_SUMMARY_BUCKETS
    return {"bins": [float(b) for b in buckets], "edges_max": edges_max}


def _hist_arrays(hist: Any) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    for counts_name, edges_name in (
        ("_calib_hist", "_calib_bin_edges"),
        ("hist", "bin_edges"),
        ("histogram", "bin_edges"),
        ("_hist", "_bin_edges"),
    ):
        counts = getattr(hist, counts_name, None)
        edges = getattr(hist, edges_name, None)
        if counts is not None and edges is not None:
            return torch.as_tensor(counts).reshape(-1).double(), torch.as_tensor(edges).reshape(-1).double()
    return None, None


def _compute(state: Dict[str, Any], method: str, percentile: float) -> Optional[torch.Tensor]:
    if method == "max":
        amax = state["hist"].compute_amax("max")  # the exact max |x|, tracked beside the bins
    else:
        amax = state["hist"].compute_amax(method, percentile=percentile)
    if amax is None:
        return None
    return torch.as_tensor(amax, dtype=torch.float32).detach()


def _activation_quantizers(project: Project, outputs: bool) -> List[QuantizerInfo]:
    return [q for q in project.quantizers if q.role != "weight" and (outputs or q.role != "output")]


def collect(
    project: Project,
    batches: int,
    outputs: bool,
    progress: Progress,
    check_cancel: Callable[[], None],
    only: Optional[List[QuantizerInfo]] = None,
) -> Tuple[Dict[str, Dict[str, Any]], int]:
    """One pass over the calibration data; returns per-quantizer {hist, max} states and batches seen."""
    HistogramCalibrator, _ = _calibrator_classes()
    targets = only if only is not None else _activation_quantizers(project, outputs)
    batch_index = [0]
    states: Dict[str, Dict[str, Any]] = {}
    collectors: Dict[str, _Collector] = {}
    for q in targets:
        num_bits = int(getattr(q.module, "num_bits", 8))
        unsigned = bool(getattr(q.module, "unsigned", False))
        hist = HistogramCalibrator(num_bits=num_bits, axis=None, unsigned=unsigned)
        states[q.name] = {"hist": hist}
        collectors[q.name] = _Collector(q, hist, check_cancel, batch_index)

    saved = [(q.module, q.module.enabled, q.module.calibrator) for q in project.quantizers]
    # Which modules holding a quantizer ran: a quantizer never reached while its module ran sits on a path
    # the forward skips (fused attention), one whose module never ran is an unused branch.
    ran: set = set()
    parents = {id(q.parent): q.parent for q in targets if q.parent is not None}
    ran_hooks = [m.register_forward_pre_hook(lambda module, _inputs: ran.add(id(module))) for m in parents.values()]
    seen = 0
    total = _batch_total(project, batches)
    progress("calibrate", 0, total, f"calibrating {len(targets)} activation quantizers")
    started = time.monotonic()
    try:
        for q in project.quantizers:
            q.module.calibrator = None
            q.module.enabled = False  # calibrate the float model (PQ does the same)
        for q in targets:
            q.module.calibrator = collectors[q.name]
        project.model.eval()
        for inputs in project.calibration_batches(batches):
            check_cancel()
            batch_index[0] = seen
            for i, t in enumerate(inputs):
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise QdqError(
                        "nan",
                        f"calibration batch {seen} input {i} contains NaN or Inf",
                        "clean the calibration data: every value must be finite",
                    )
            try:
                with torch.no_grad():
                    project.model(*inputs)
            except QdqError:
                raise
            except Exception as exc:  # noqa: BLE001 - the user's forward
                raise forward_error(
                    exc, f"the model's forward raised on calibration batch {seen}", project, inputs
                ) from None
            seen += 1
            elapsed = time.monotonic() - started
            progress("calibrate", seen, total, f"batch {seen}/{total if total else '?'} ({elapsed:.1f} s)")
        check_cancel()
        for collector in collectors.values():
            collector.finish()  # bins the last batches; a NaN/Inf in them is reported here
        if seen:
            # the data may end before `batches`: close the bar at what was really seen
            progress("calibrate", seen, seen, f"calibrated on {seen} batches")
    finally:
        for module, enabled, calibrator in saved:
            module.enabled = enabled
            module.calibrator = calibrator
        for handle in ran_hooks:
            handle.remove()
    if seen == 0:
        where = project.calibration_spec or "the random calibration data"
        raise QdqError(
            "no_data",
            f"calibration-data {where} yielded no batches",
            "make it yield at least one batch (check the dataset path and filters), "
            "or remove calibration-data to calibrate on random normal data",
        )
    for name, collector in collectors.items():
        states[name]["calls"] = collector.calls
    for q in targets:
        # never reached while its module ran: a branch the data or the build never takes (EfficientNet's
        # has_skip) or a fused path; export refuses it only if the exported graph would use it uncalibrated
        states[q.name]["module_ran"] = id(q.parent) in ran
    return states, seen


def _call_line(q: QuantizerInfo) -> str:
    """Where the module's source calls (or builds) the quantizer: file:line, for the error to point at."""
    attr = q.name.rsplit(".", 1)[-1]
    try:
        lines, start = inspect.getsourcelines(type(q.parent))
        file = inspect.getsourcefile(type(q.parent)) or q.site["file"]
    except (OSError, TypeError):
        return q.site["file"]
    hits = [i for i, line in enumerate(lines) if f".{attr}(" in line and "TensorQuantizer(" not in line]
    hits = hits or [i for i, line in enumerate(lines) if f".{attr}" in line]
    return f"{file}:{start + hits[0]}" if hits else file


def uncalibrated_error(skipped: List[QuantizerInfo]) -> QdqError:
    """Quantizers the exported graph would run but calibration never reached: named with their source line."""
    shown = "; ".join(f"{q.name} ({_call_line(q)})" for q in skipped[:6])
    more = f" and {len(skipped) - 6} more" if len(skipped) > 6 else ""
    return QdqError(
        "config",
        f"{len(skipped)} quantizers run on the export inputs but saw no calibration data, so they would stay "
        f"uncalibrated: {shown}{more}",
        "the forward takes a path that skips them: fused attention (F.scaled_dot_product_attention; set "
        "fused_attn = False or build transformers models with attn_implementation=\"eager\"), or a branch the "
        "calibration data never reaches (calibrate on data that does, or remove those quantizers with qdq unquantize)",
    )


def _batch_total(project: Project, batches: int) -> Optional[int]:
    if project.calibration_source is None:
        return batches
    return batches


def _apply(
    project: Project,
    states: Dict[str, Dict[str, Any]],
    method: str,
    percentile: float,
    progress: Progress,
    check_cancel: Callable[[], None],
) -> Dict[str, Dict[str, Any]]:
    """Compute and load amax for the activation quantizers in `states`; return per-name extras."""
    extras: Dict[str, Dict[str, Any]] = {}
    names = [q for q in project.quantizers if q.name in states]
    total = len(names)
    for index, q in enumerate(names):
        check_cancel()
        state = states[q.name]
        if state.get("calls", 1) == 0:
            q.module.set_amax(None)
            extras[q.name] = {
                "method": None,
                "note": "never called during calibration"
                + (" although its module ran (a branch not taken)" if state.get("module_ran") else ""),
            }
            continue
        amax = _compute(state, method, percentile)
        extras[q.name] = {"method": method, "hist": _hist_summary(state["hist"])}
        if method == "entropy" and amax is not None:
            clipped = state["hist"].share_above(amax)
            if clipped > ENTROPY_MAX_CLIPPED:
                fallback = _compute(state, "percentile", percentile)
                extras[q.name]["method"] = "percentile"
                extras[q.name]["fallback"] = {
                    "from": "entropy",
                    "amax": float(amax),
                    "clipped": clipped,
                    "reason": (
                        f"entropy's amax {float(amax):.4g} clips {clipped:.1%} of the values "
                        f"(more than {ENTROPY_MAX_CLIPPED:.0%}): not the sparse tail the KL search "
                        f"means to clip but a large part of the histogram; used percentile "
                        f"{percentile:g} ({float(fallback) if fallback is not None else float('nan'):.4g}) instead"
                    ),
                }
                amax = fallback
        q.module.set_amax(amax)
        _score(q, state, extras[q.name], amax, method, percentile)
        progress("histogram", index + 1, total, f"{method}: {q.name}")
    return extras


def _score(
    q: QuantizerInfo, state: Dict[str, Any], extra: Dict[str, Any], amax: Any, method: str, percentile: float
) -> None:
    """The error the chosen amax adds (SQNR) and what every other method would have picked, from the histogram."""
    num_bits = int(getattr(q.module, "num_bits", 8))
    unsigned = bool(getattr(q.module, "unsigned", False))
    hist = state["hist"]
    extra["sqnr_db"] = hist_sqnr_db(hist, amax, num_bits, unsigned)
    chosen = {method: amax}
    extra["methods"] = method_choices(
        hist,
        list(METHODS),
        lambda m: chosen[m] if m in chosen else _compute(state, m, percentile),
        num_bits,
        unsigned,
    )


def _calibrate_weights(project: Project) -> None:
    for q in project.quantizers:
        if q.role == "weight":
            amax = _weight_amax(q)
            q.module.set_amax(amax)


def _result(
    project: Project,
    extras: Dict[str, Dict[str, Any]],
    out_dir: str,
    batches_seen: int,
    seconds: float,
    method: str,
    percentile: float,
) -> CalibrateResult:
    listed: List[Quantizer] = []
    for q in project.quantizers:
        if q.role == "output" and q.name not in extras:
            continue
        entry = quantizer_summary(q)
        entry["amax"] = amax_value(q.module)
        if q.role == "weight":
            entry["method"] = "max" if entry["amax"] is not None else None
            amax = getattr(q.module, "amax", None)
            entry["sqnr_db"] = weight_sqnr_db(
                getattr(q.parent, "weight", None),
                amax if entry["amax"] is not None else None,
                getattr(q.module, "axis", None),
                int(getattr(q.module, "num_bits", 8)),
            )
        else:
            extra = extras.get(q.name, {})
            entry["method"] = extra.get("method")
            if extra.get("fallback") is not None:
                entry["fallback"] = extra["fallback"]
            if extra.get("hist") is not None:
                entry["hist"] = extra["hist"]
            for key in ("sqnr_db", "methods"):
                if extra.get(key) is not None:
                    entry[key] = extra[key]  # type: ignore[literal-required]
        listed.append(entry)
    header = {
        "model": project.factory,
        "model_class": type(project.model).__name__,
        "method": method,
        "percentile": percentile,
        "batches_seen": batches_seen,
        "calibration_data_kind": project.calibration_data_kind,
    }
    calibration_file = artifacts.write_calibration(out_dir, header, [dict(e) for e in listed])
    fallbacks = [e["name"] for e in listed if e.get("fallback")]
    return {
        "quantizers": listed,
        "fallbacks": fallbacks,
        "calibration_file": calibration_file,
        "batches_seen": batches_seen,
        "seconds": round(seconds, 3),
        "method": method,
        "percentile": percentile,
        "calibration_data_kind": project.calibration_data_kind,
    }


def calibrate(
    project: Project,
    params: Union[CalibrateParams, Mapping[str, Any]],
    progress: Progress,
    check_cancel: Callable[[], None],
) -> CalibrateResult:
    if not isinstance(params, CalibrateParams):
        params = CalibrateParams.from_json(params)
    method, percentile = _validate_method(params)
    batches = params.batches if params.batches is not None else knobs.BATCHES_DEFAULT
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < knobs.BATCHES_MIN:
        raise QdqError(
            "config",
            f"batches = {batches!r} is not a positive integer",
            f"set batches = {knobs.BATCHES_DEFAULT} (or another count of calibration batches) in [tool.qdq]",
        )
    outputs = bool(params.outputs) or params.target == "ort-cpu"
    out_dir = prepare_out_dir(params.out_dir)
    started = time.monotonic()
    # A failed or cancelled calibration leaves the previous amax values (and calibration.json) intact.
    previous = {q.name: q.module.amax for q in project.quantizers}
    try:
        if params.reuse_histograms:
            states, seen, outputs = _saved_states(project, out_dir, batches, outputs)
            progress("calibrate", seen, seen, f"reused the histograms of {seen} calibration batches")
        else:
            states, seen = collect(project, batches, outputs, progress, check_cancel)
            _save_states(project, out_dir, states, seen, batches)
        if not outputs:
            # ranges from an earlier run on other data would be stale; export recalibrates them when needed
            for q in project.quantizers:
                if q.role == "output":
                    q.module.set_amax(None)
        _calibrate_weights(project)
        extras = _apply(project, states, method, percentile, progress, check_cancel)
    except BaseException:
        for q in project.quantizers:
            q.module.amax = previous[q.name]
        raise
    project.calibration_state = {
        "states": states,
        "batches_seen": seen,
        "batches": batches,
        "method": method,
        "percentile": percentile,
        "out_dir": out_dir,
        "outputs": outputs,
    }
    return _result(project, extras, out_dir, seen, time.monotonic() - started, method, percentile)


def _fingerprint(project: Project, batches: int) -> Dict[str, Any]:
    """What the histograms depend on besides the model's quantizers: the model, its calibration data and count."""
    return {"model": project.factory, "calibration_data": project.calibration_spec, "batches": batches}


def _save_states(project: Project, out_dir: str, states: Dict[str, Dict[str, Any]], seen: int, batches: int) -> None:
    quantizers = {}
    for name, state in states.items():
        q = next(q for q in project.quantizers if q.name == name)
        quantizers[name] = {
            **state["hist"].state(),
            "calls": int(state.get("calls", 0)),
            "num_bits": int(getattr(q.module, "num_bits", 8)),
            "unsigned": bool(getattr(q.module, "unsigned", False)),
        }
    artifacts.write_histograms(
        out_dir, {"version": 1, **_fingerprint(project, batches), "batches_seen": seen, "quantizers": quantizers}
    )


def _saved_states(
    project: Project, out_dir: str, batches: int, outputs: bool
) -> Tuple[Dict[str, Dict[str, Any]], int, bool]:
    """The histograms the last calibration saved, checked against this model and calibration setting."""
    HistogramCalibrator, _ = _calibrator_classes()
    document = artifacts.read_histograms(out_dir)
    expected = _fingerprint(project, batches)
    changed = [k for k, v in expected.items() if document.get(k) != v]
    saved = document["quantizers"]
    # Output quantizers (ort-cpu) may be missing from a calibration for another target: export then calibrates
    # them itself; every other activation quantizer must be there.
    wanted = [q.name for q in _activation_quantizers(project, False)]
    missing = [n for n in wanted if n not in saved]
    if changed or missing:
        what = (
            f"{', '.join(changed)} changed since"
            if changed
            else f"{len(missing)} quantizers ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}) are not in"
        )
        raise QdqError(
            "config",
            f"the saved calibration histograms do not fit this run: {what} the calibration that saved them",
            "calibrate again (without reusing histograms) to collect new ones",
        )
    states: Dict[str, Dict[str, Any]] = {}
    for name, state in saved.items():
        if not isinstance(state, dict):
            continue
        hist = HistogramCalibrator.restore(
            state, num_bits=int(state.get("num_bits", 8)), unsigned=bool(state.get("unsigned", False))
        )
        states[name] = {"hist": hist, "calls": int(state.get("calls", 1))}
    has_outputs = all(q.name in states for q in project.quantizers if q.role == "output")
    return states, int(document.get("batches_seen", 0)), has_outputs


def set_method(
    project: Project,
    params: Union[SetMethodParams, Mapping[str, Any]],
    progress: Progress,
    check_cancel: Callable[[], None],
) -> CalibrateResult:
    if not isinstance(params, SetMethodParams):
        params = SetMethodParams.from_json(params)
    method, percentile = _validate_method(params)
    state = project.calibration_state
    if not state.get("states"):
        raise QdqError("config", "set_method before calibrate", "calibrate first; set_method reuses its histograms")
    started = time.monotonic()
    previous = {q.name: q.module.amax for q in project.quantizers}
    try:
        extras = _apply(project, state["states"], method, percentile, progress, check_cancel)
    except BaseException:
        for q in project.quantizers:
            q.module.amax = previous[q.name]
        raise
    state["method"], state["percentile"] = method, percentile
    out_dir = prepare_out_dir(params.out_dir) if params.out_dir else state["out_dir"]
    return _result(project, extras, out_dir, state["batches_seen"], time.monotonic() - started, method, percentile)


def ensure_outputs_calibrated(project: Project, progress: Progress, check_cancel: Callable[[], None]) -> None:
    """For target ort-cpu: calibrate the weighted layers' output quantizers if calibrate skipped them."""
    missing = [q for q in project.quantizers if q.role == "output" and q.module.amax is None]
    state = project.calibration_state
    if not missing or not state.get("states"):
        return
    states, _seen = collect(project, state["batches"], True, progress, check_cancel, only=missing)
    _apply(project, states, state["method"], state["percentile"], progress, check_cancel)
    state["states"].update(states)
