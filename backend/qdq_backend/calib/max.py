"""Running maximum of |x|, per tensor or per channel."""

import torch

__all__ = ["MaxCalibrator", "NonFiniteError", "max_amax", "check_finite"]


class NonFiniteError(ValueError):
    """A calibrator met NaN or Inf; calibration needs finite values."""


def check_finite(value, name, what="input"):
    """Raises NonFiniteError when the (reduced) tensor `value` holds NaN or Inf.

    Callers pass an already-reduced max, which is NaN/Inf exactly when the tensor was,
    so the check costs no extra pass over the data.
    """
    if not bool(torch.isfinite(value).all()):
        kind = "NaN" if bool(torch.isnan(value).any()) else "Inf"
        where = f" of {name}" if name else ""
        raise NonFiniteError(f"{kind} in the {what}{where}: calibration needs finite values; "
                             "check the model and the calibration data for overflow")


def max_amax(x, axis=None):
    """max |x| over the whole tensor (0-d) or per channel of `axis` (1-d), as float32."""
    x = x.detach()
    if not x.is_floating_point():
        x = x.float()
    if axis is None:
        if x.numel() == 0:
            return None
        # One pass and no |x| temporary: max(|x|) = max(max(x), -min(x)).
        lo, hi = torch.aminmax(x)
        return torch.maximum(hi, -lo).float()
    axis = axis % x.dim()
    dims = [d for d in range(x.dim()) if d != axis]
    if not dims:
        return x.abs().float()
    return x.abs().amax(dim=dims).float()


class MaxCalibrator:
    """Calibrator keeping the running max of |x| (per tensor, or per channel of `axis`).

    Usable directly as TensorQuantizer.calibrator: calling it collects one batch.
    """

    def __init__(self, num_bits=8, axis=None, unsigned=False, name=None):
        self.num_bits = num_bits
        self.axis = axis
        self.unsigned = unsigned
        self.name = name
        self.amax = None  # running max on the data's device
        self.batches = 0

    def collect(self, x):
        if x.numel() == 0:
            return
        amax = max_amax(x, self.axis)
        check_finite(amax, self.name)
        if self.amax is None:
            self.amax = amax
        else:
            if amax.shape != self.amax.shape:
                raise ValueError(
                    f"{self.name or 'MaxCalibrator'}: per-channel max changed shape from "
                    f"{tuple(self.amax.shape)} to {tuple(amax.shape)} between batches")
            self.amax = torch.maximum(self.amax, amax.to(self.amax.device))
        self.batches += 1

    __call__ = collect

    def reset(self):
        self.amax = None
        self.batches = 0

    def compute_amax(self, method="max", percentile=None):
        """The max seen, as a float32 CPU tensor (0-d or 1-d); None before any data."""
        if method != "max":
            raise ValueError(f"MaxCalibrator keeps no histogram, so it computes only 'max', not {method!r}; "
                             "use HistogramCalibrator for entropy, percentile and mse")
        return None if self.amax is None else self.amax.detach().cpu().clone()

    def summary(self, buckets=64):
        return None

    def __repr__(self):
        return f"MaxCalibrator(axis={self.axis}, batches={self.batches})"
