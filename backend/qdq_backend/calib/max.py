"""Running maximum of |x|, per tensor or per channel."""

import math

import torch

__all__ = ["MaxCalibrator", "NonFiniteError", "max_amax", "check_finite", "abs_max", "dense_view"]


class NonFiniteError(ValueError):
    """A calibrator met NaN or Inf; calibration needs finite values.

    kind: "NaN" or "Inf"; tag: what the caller passed with the batch that held it (e.g. its
    batch number), or None.
    """

    def __init__(self, message, kind=None, tag=None):
        super().__init__(message)
        self.kind = kind
        self.tag = tag


def check_finite(value, name, what="input"):
    """Raises NonFiniteError when the (reduced) tensor `value` holds NaN or Inf.

    Callers pass an already-reduced max, which is NaN/Inf exactly when the tensor was,
    so the check costs no extra pass over the data.
    """
    if not bool(torch.isfinite(value).all()):
        raise_non_finite("NaN" if bool(torch.isnan(value).any()) else "Inf", name, what)


def raise_non_finite(kind, name, what="input", tag=None):
    where = f" of {name}" if name else ""
    batch = f" (batch {tag})" if tag is not None else ""
    raise NonFiniteError(
        f"{kind} in the {what}{where}{batch}: calibration needs finite values; "
        "check the model and the calibration data for overflow",
        kind,
        tag,
    )


def dense_view(x):
    """x itself when contiguous; else, when x is dense in another dimension order (conv
    activations come channels-last from oneDNN), a contiguous permuted view of it. A full
    reduction does not care about the order, and on the permuted view it runs ~5x faster."""
    if x.is_contiguous():
        return x
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1)  # the common case, without the general search below
    order = sorted(range(x.dim()), key=lambda d: -x.stride(d))
    view = x.permute(order)
    return view if view.is_contiguous() else x


def abs_max(x, name, tag=None):
    """max |x| of a non-empty floating tensor as a python float, checked finite.

    Per call this is one reduction and two scalar reads: on the small activations of the
    bundled examples the per-op dispatch, not the data, is what calibration costs, so the
    NaN/Inf check runs on the two python floats instead of as tensor ops.
    """
    lo, hi = torch.aminmax(dense_view(x))  # one pass and no |x| temporary; NaN propagates into both
    lo, hi = lo.item(), hi.item()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise_non_finite("NaN" if math.isnan(lo) or math.isnan(hi) else "Inf", name, tag=tag)
    return max(hi, -lo)


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
        self.amax = None  # running max per channel (axis set), on the data's device
        self._max = None  # running max |x| per tensor (axis None), a python float
        self.batches = 0

    def collect(self, x):
        if x.numel() == 0:
            return
        if self.axis is None:
            # Per tensor the running max is a python float: exact for float32/float64 data
            # (a float64 max rounds to float32 once, at the end, as the tensor path did).
            if not x.is_floating_point():
                x = x.float()
            x_max = abs_max(x, self.name)
            self._max = x_max if self._max is None else max(self._max, x_max)
            self.batches += 1
            return
        amax = max_amax(x, self.axis)
        check_finite(amax, self.name)
        if self.amax is None:
            self.amax = amax
        else:
            if amax.shape != self.amax.shape:
                raise ValueError(
                    f"{self.name or 'MaxCalibrator'}: per-channel max changed shape from "
                    f"{tuple(self.amax.shape)} to {tuple(amax.shape)} between batches"
                )
            self.amax = torch.maximum(self.amax, amax.to(self.amax.device))
        self.batches += 1

    __call__ = collect

    def reset(self):
        self.amax = None
        self._max = None
        self.batches = 0

    def compute_amax(self, method="max", percentile=None):
        """The max seen, as a float32 CPU tensor (0-d or 1-d); None before any data."""
        if method != "max":
            raise ValueError(
                f"MaxCalibrator keeps no histogram, so it computes only 'max', not {method!r}; "
                "use HistogramCalibrator for entropy, percentile and mse"
            )
        if self.axis is None:
            return None if self._max is None else torch.tensor(self._max, dtype=torch.float32)
        return None if self.amax is None else self.amax.detach().cpu().clone()

    def summary(self, buckets=64):
        return None

    def __repr__(self):
        return f"MaxCalibrator(axis={self.axis}, batches={self.batches})"
