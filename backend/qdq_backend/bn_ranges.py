"""Calibrated output ranges of BatchNorm layers, for the ort-cpu target.

The ort-cpu rewrite (server/src/onnx/ortCpu.ts) folds Conv -> [Q -> DQ] -> BatchNormalization into one Conv and
needs a quantizer on the folded output. The Q torch placed there was calibrated on the Conv output, before BN;
without data the rewrite can only take the range BN maps that grid to, per channel, at its worst (1.4-3.1x the
calibrated range on a trained resnet18). This pass calibrates every BatchNorm output on the same batches with
the same method as the quantizers, and the export hands the amax values to the rewrite keyed by the name of the
BN weight, which the TorchScript exporter keeps as the initializer name (`layer1.0.bn2.weight`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import torch

from .loader import Project

_BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)


def batchnorm_output_amax(project: Project, check_cancel: Callable[[], None]) -> Dict[str, float]:
    """{BN weight name: calibrated amax of its output}; empty without BatchNorm layers or calibration state."""
    from .calibrate import _calibrator_classes, _compute  # noqa: WPS433 - the calibrate module's own machinery

    state = project.calibration_state
    if not state.get("states"):
        return {}
    norms = [
        (name, m)
        for name, m in project.model.named_modules()
        if isinstance(m, _BATCH_NORMS) and isinstance(getattr(m, "weight", None), torch.Tensor)
    ]
    if not norms:
        return {}
    histogram_class, _ = _calibrator_classes()
    hists: Dict[str, Any] = {name: histogram_class(num_bits=8, axis=None, unsigned=False) for name, _ in norms}
    handles: List[Any] = []

    def hook(name: str) -> Callable[..., None]:
        def record(_module: Any, _inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.is_floating_point():
                hists[name].collect(output.detach())

        return record

    quantizers = [(q.module, q.module.enabled, q.module.calibrator) for q in project.quantizers]
    try:
        for q in project.quantizers:
            q.module.calibrator = None
            q.module.enabled = False  # the float model, as the quantizers were calibrated
        for name, m in norms:
            handles.append(m.register_forward_hook(hook(name)))
        project.model.eval()
        with torch.no_grad():
            for inputs in project.calibration_batches(state["batches"]):
                check_cancel()
                project.model(*inputs)
        ranges: Dict[str, float] = {}
        for name, _ in norms:
            hists[name].finish()
            amax = _compute({"hist": hists[name]}, state["method"], state["percentile"])
            if amax is not None and bool(torch.isfinite(amax).all()) and float(amax.max()) > 0:
                ranges[f"{name}.weight" if name else "weight"] = float(amax.max())
        return ranges
    except (ValueError, RuntimeError):
        # A BN output the histogram cannot take (NaN/Inf): the rewrite falls back to the grid's range.
        return {}
    finally:
        for h in handles:
            h.remove()
        for module, enabled, calibrator in quantizers:
            module.enabled, module.calibrator = enabled, calibrator
