"""Calibrators: callables set as TensorQuantizer.calibrator that collect statistics of the
tensors passing through, then turn them into an amax.

    MaxCalibrator        running max |x|, per tensor or per channel (axis); method "max"
    HistogramCalibrator  2048-bin histogram of |x| (per tensor) plus the exact max;
                         methods "max", "entropy", "percentile" (default 99.99), "mse",
                         switchable after collection without a new pass over the data

Both have collect(x) (also their __call__), compute_amax(method, percentile=99.99),
summary() (64 equal buckets for the editor's chart; None for max) and reset().
Per-channel weights need no data: weight_amax(weight, axis).
"""

from .histogram import HistogramCalibrator, entropy_amax, entropy_divergences, mse_amax, percentile_amax
from .max import MaxCalibrator, NonFiniteError, max_amax

METHODS = ("max", "entropy", "percentile", "mse")

__all__ = [
    "METHODS",
    "MaxCalibrator",
    "HistogramCalibrator",
    "NonFiniteError",
    "make_calibrator",
    "weight_amax",
    "max_amax",
    "entropy_amax",
    "entropy_divergences",
    "percentile_amax",
    "mse_amax",
]


def make_calibrator(method="max", axis=None, num_bits=8, unsigned=False, name=None):
    """The calibrator that `method` needs: a MaxCalibrator for "max" or any per-channel
    quantizer, else a HistogramCalibrator (which can still answer "max" afterwards)."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; use one of {', '.join(METHODS)}")
    if method == "max" or axis is not None:
        return MaxCalibrator(num_bits=num_bits, axis=axis, unsigned=unsigned, name=name)
    return HistogramCalibrator(num_bits=num_bits, unsigned=unsigned, name=name)


def weight_amax(weight, axis=None):
    """max |w| per channel of `axis` (1-d) or over the whole tensor (0-d), float32.

    Raises NonFiniteError if the weight holds NaN or Inf.
    """
    from .max import check_finite

    amax = max_amax(weight, axis)
    check_finite(amax, None, what="weight")
    return amax
