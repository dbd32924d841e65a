"""The error each quantizer adds, from what calibration saw: SQNR in dB (10 log10 of signal over noise power).

Activations: from the calibration histogram of |x| (2048+ bins over [0, max], about 16 bins per INT8 step),
each bin's centre fake-quantized with the amax, weighted by the bin's count, the same measure mse calibration
minimises; symmetric quantization makes |x|'s error the error of x. So every method's amax can be scored from
the one pass over the data, which is what the report's calibration explorer shows. Weights: exact, the weight
tensor fake-quantized per channel against itself.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional

import torch

from .tensor_quant import fake_tensor_quant, quant_bounds

# Noise power floor relative to the signal: an exact quantization (all-zero tensor, or a weight already on the
# grid) reads as this many dB instead of infinity, which JSON cannot carry.
SQNR_CAP_DB = 300.0


def _db(signal: float, noise: float) -> Optional[float]:
    if signal <= 0:
        return None
    if noise <= signal * 10 ** (-SQNR_CAP_DB / 10):
        return SQNR_CAP_DB
    return round(10.0 * math.log10(signal / noise), 3)


def hist_sqnr_db(hist: Any, amax: Any, num_bits: int = 8, unsigned: bool = False) -> Optional[float]:
    """SQNR of fake-quantizing the histogram's values with `amax`; None without data."""
    counts = getattr(hist, "hist", None)
    width = getattr(hist, "bin_width", None)
    if counts is None or amax is None or not width:
        return None
    counts = torch.as_tensor(counts, dtype=torch.float64).reshape(-1)
    centers = (torch.arange(counts.numel(), dtype=torch.float64) + 0.5) * float(width)
    a = float(amax)
    signal = float((counts * centers * centers).sum())
    if a <= 0:
        return _db(signal, signal)
    _, max_bound = quant_bounds(num_bits, unsigned)
    scale = max_bound / a
    quantized = torch.clamp(torch.round(centers * scale), max=max_bound) / scale
    noise = float((counts * (quantized - centers) ** 2).sum())
    return _db(signal, noise)


def weight_sqnr_db(weight: Any, amax: Any, axis: Optional[int], num_bits: int = 8) -> Optional[float]:
    """SQNR of the weight fake-quantized (per channel along `axis`, else per tensor) against itself."""
    if not isinstance(weight, torch.Tensor) or amax is None:
        return None
    w = weight.detach().float()
    a = torch.as_tensor(amax, dtype=torch.float32)
    with torch.no_grad():
        fq = fake_tensor_quant(w, a, axis=axis if a.dim() == 1 else None, num_bits=num_bits)
    return _db(float((w * w).sum()), float(((fq - w) ** 2).sum()))


def method_choices(
    hist: Any,
    methods: List[str],
    compute: Callable[[str], Optional[torch.Tensor]],
    num_bits: int,
    unsigned: bool,
) -> List[dict]:
    """For each method: the amax it would pick on this histogram, its SQNR and the share of values it clips."""
    out = []
    for method in methods:
        amax = compute(method)
        if amax is None:
            continue
        share = hist.share_above(amax) if method != "max" else 0.0
        out.append(
            {
                "method": method,
                "amax": float(amax),
                "sqnr_db": hist_sqnr_db(hist, amax, num_bits, unsigned),
                "clipped": float(share),
            }
        )
    return out
