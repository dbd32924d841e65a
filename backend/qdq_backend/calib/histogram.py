"""Histogram of |x| over calibration batches, and amax from it by entropy, percentile or mse.

The histogram starts with `num_bins` (2048) equal bins over [0, max |x| of the first batch
that is not all zero]. A later batch with a larger |x| appends bins of the same width, as
NVIDIA pytorch-quantization does, so early data is never re-binned. To keep memory bounded
(bins x quantizers, whatever the data set), once the count would pass `max_bins` adjacent
bins are merged (width doubled, tripled, ...), which keeps every edge aligned.

Collection is cheap per call, with the same result as binning each batch as it arrives:
small batches only have |x| copied into a bounded scratch (32 values per bin); when it is
full, one reduction gives every batch's max, and one bincount bins them all, the range growth
being planned from those maxes (see _flush). NaN/Inf is found there too, and reported with
the tag of the batch that held it. Calibrators fed the very same tensor (same object, same
version counter) with the same history share one state until their inputs differ (see
_recent). calibrate.py and bench/py/calibration_cost.py call finish() at the end of a pass.

The amax algorithms follow pytorch-quantization's calibrators (TensorRT's entropy
calibration), vectorised so that one quantizer takes milliseconds:
  entropy     KL divergence between the clipped reference distribution and its 128-level
              quantization, for every candidate bin i >= 128; the last minimum wins.
  percentile  the bin edge where the CDF reaches `percentile` (default 99.99).
  mse         bin centre minimising the count-weighted squared error of fake-quantizing the
              bin centres.
  max         the exact max |x| seen (tracked beside the histogram).
"""

import math
import struct

import torch

from ..tensor_quant import quant_bounds
from .max import abs_max, dense_view, raise_non_finite

__all__ = ["HistogramCalibrator", "entropy_divergences", "entropy_amax", "percentile_amax", "mse_amax"]

_CHUNK = 1 << 18  # elements per step of the CPU histogram: keeps the temporaries in cache
# Small batches are binned together: each call only writes |x| into a scratch buffer of this
# many values per bin (one op), and when the buffer is full one max and one bincount handle all
# the batches in it. On the bundled examples' ~2 ms batches the per-op dispatch of binning (and
# of taking the max) every call cost more than the forward itself. The buffer bounds the memory
# by bins x quantizers (256 KiB of float32 at 2048 bins); a larger batch is binned directly.
_PENDING_PER_BIN = 32
_INT16_BINS = 1 << 15  # bin indices up to here fit int16: a narrower cast and a faster bincount
# Quantizers fed the very same tensor (q/k/v projections and the residual branch all take the
# same x in a transformer layer) would bin the same values: a calibrator whose history so far
# is identical to the one that just staged the tensor only points at that one's state (it
# "follows" it) until their inputs differ. These are the tensors staged last (by identity and
# version counter, each kept alive so that its id cannot be reused), a few small ones at most.
# (A change through x.data or a NumPy view between the two calls would not bump the version
# counter; models do not do that to an activation inside forward.)
_recent = {}
_RECENT_MAX = 8
_FLOAT32 = struct.Struct("f")


def _round_to_float32(value):
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


def _scaled_index(value, inv_width, dtype):
    """int(value * inv_width) computed as the binning computes it on a tensor of `dtype`: in
    float32, the python scalar rounded to float32 first (a product of two float32 is exact in
    a python float, so rounding it once gives the float32 product)."""
    if dtype == torch.float64:
        return int(value * inv_width)
    return int(_round_to_float32(_round_to_float32(value) * _round_to_float32(inv_width)))


class HistogramCalibrator:
    """Calibrator collecting a histogram of |x| (per tensor). Call it (or .collect) per batch."""

    def __init__(self, num_bits=8, axis=None, unsigned=False, num_bins=2048, max_bins=None, name=None):
        if axis is not None:
            raise NotImplementedError(
                "HistogramCalibrator is per tensor; calibrate per-channel weights with MaxCalibrator"
            )
        if num_bins < 1:
            raise ValueError("num_bins must be positive")
        self.num_bits = num_bits
        self.axis = None
        self.unsigned = unsigned
        self.num_bins = num_bins
        self.max_bins = max(max_bins or 4 * num_bins, num_bins)
        self.name = name
        self._capacity = _PENDING_PER_BIN * num_bins
        self._leader = None  # the calibrator whose state this one shares (see _recent), or None
        self._followers = []  # calibrators sharing this one's state
        self.reset()

    def reset(self):
        self._settle_followers(everyone=True)
        if self._leader is not None:
            self._leader._followers.remove(self)
            self._leader = None
        self._token = None  # identifies the data collected so far (None: nothing yet)
        self._prev_token = None  # and before the last staged batch
        self._hist = None  # int64 counts on the data's device
        self._width = None  # bin width (python float)
        self._max = 0.0  # exact max |x|
        self._count = 0  # values seen
        self._pending_zeros = 0  # values seen while every batch so far was all zero
        self._pending = None  # scratch (CPU): |x| of batches not binned yet, in arrival order
        self._pending_size = 0  # values used in it
        self._ends = []  # where each pending batch ends in the scratch
        self._tags = []  # and the tag it was collected with (named in a NaN/Inf error)
        self._seg_len = 0  # the length of every pending batch when they are alike, else 0
        self._slots = {}  # (start, shape) -> view of the scratch: batches repeat their shapes
        self._orders = {}  # (shape, strides) -> permutation making x contiguous, or None
        self.batches = 0

    # ---- collection -------------------------------------------------------------------
    def collect(self, x, tag=None):
        """Adds |x| to the histogram. `tag` (e.g. the batch number) is named in the NonFiniteError
        raised for NaN or Inf in x; that error may come from a later call (or from reading the
        histogram), as small batches are checked when they are binned."""
        n = x.numel()
        if n == 0:
            return
        if x.requires_grad:
            x = x.detach()
        entry = _recent.get(id(x))
        if entry is not None and entry[0] is x and entry[1] == x._version:
            owner = entry[2]
            if (
                owner is not self
                and owner._token is entry[3]
                and owner._prev_token is self._token
                and owner._capacity == self._capacity
                and owner.max_bins == self.max_bins
                and owner.num_bins == self.num_bins
            ):
                # same data so far, and now the same tensor: share the owner's state
                self._follow(owner)
                self._count += n
                self.batches += 1
                return
        if self._leader is not None:
            self._leader._materialize(self)  # the inputs differ from here on
        pending = self._pending
        if pending is not None and x.dtype == pending.dtype and n <= self._capacity and not x.is_cuda:
            # The common case, one op: |x| into the scratch (a copy: the model may change x in
            # place later). The max, the NaN/Inf check and the binning wait for the flush.
            if self._followers:
                self._settle_followers()
            # attention operands (transposed) and channels-last conv activations are copied in
            # their memory order, through a contiguous permuted view: the order of the values
            # does not matter to a histogram, and the copy runs ~2x faster
            src = x if x.is_contiguous() else self._dense(x)
            start = self._pending_size
            if start + n > self._capacity:
                self._flush()
                start = 0
            # The same quantizer sees the same shapes batch after batch, so the views of the
            # scratch repeat too: cached, they save two view ops per call (as much as the abs).
            key = (start, src.shape)
            slot = self._slots.get(key)
            if slot is None:
                if len(self._slots) >= 256:  # shapes that vary (e.g. sequence lengths): stay bounded
                    self._slots.clear()
                slot = self._slots[key] = pending[start : start + n].view(src.shape)
            torch.abs(src, out=slot)
            if start == 0:
                self._seg_len = n  # all batches in the scratch this long so far (0: they differ)
            elif n != self._seg_len:
                self._seg_len = 0
            self._pending_size = start + n
            self._ends.append(start + n)
            self._tags.append(tag)
            self._count += n
            self.batches += 1
            self._prev_token, self._token = self._token, object()
            if len(_recent) >= _RECENT_MAX:
                del _recent[next(iter(_recent))]
            _recent[id(x)] = (x, x._version, self, self._token)
            return
        if x.dtype not in (torch.float32, torch.float64):
            x = x.float()
        if n <= self._capacity and not x.is_cuda and (self._hist is None or not self._hist.is_cuda):
            if pending is None or pending.dtype != x.dtype:
                # the first small batch, or a dtype change: (re)allocate the scratch
                self._flush(release=True)
                self._pending = torch.empty(self._capacity, dtype=x.dtype)
            return self.collect(x, tag)  # staged by the common case above
        # A large batch (or CUDA): binned at once, after what is pending (arrival order matters
        # when the range grows).
        self._settle_followers(everyone=True)
        self._prev_token, self._token = self._token, object()
        self._flush()
        x_max = abs_max(x, self.name, tag)  # raises NonFiniteError on NaN/Inf, before anything is kept
        self._count += n
        self.batches += 1
        if not self._admit(x_max, n, x.device):
            return
        self._hist += self._count_bins(x).to(self._hist.device)

    __call__ = collect

    def _dense(self, x):
        """dense_view(x), with the permutation cached per (shape, strides): they repeat."""
        key = (x.shape, x.stride())
        order = self._orders.get(key, False)
        if order is False:
            view = dense_view(x)
            order = None
            if view is not x:
                order = tuple(sorted(range(x.dim()), key=lambda d: -x.stride(d)))
                if not x.permute(order).is_contiguous():
                    order = None
            if len(self._orders) >= 64:
                self._orders.clear()
            self._orders[key] = order
        return x if order is None else x.permute(order)

    # ---- shared state of calibrators fed the same tensors -----------------------------------
    def _follow(self, owner):
        if self._leader is not owner:
            if self._leader is not None:
                self._leader._followers.remove(self)
            else:  # its own state equals the owner's before this tensor: drop it
                self._settle_followers(everyone=True)
                self._pending, self._slots, self._hist = None, {}, None
                self._pending_size, self._ends, self._tags = 0, [], []
            self._leader = owner
            owner._followers.append(self)
        self._token = owner._token

    def _settle_followers(self, everyone=False):
        """Gives followers their own copy of the state they share before this one changes it:
        those one batch behind (their state is this one's without its last pending batch, which
        a flush or the next batch would make unrecoverable), or all of them."""
        for follower in list(self._followers):
            if everyone or follower._token is not self._token:
                self._materialize(follower)

    def _materialize(self, follower):
        """Copies into `follower` this calibrator's state at the follower's token: the current
        state, or the one before the last staged batch (still pending, so simply left out)."""
        behind = follower._token is not self._token
        ends, tags = list(self._ends), list(self._tags)
        count, batches, size = self._count, self.batches, self._pending_size
        if behind:
            assert follower._token is self._prev_token and ends, "follower more than one batch behind"
            end = ends.pop()
            tags.pop()
            size = ends[-1] if ends else 0
            count -= end - size
            batches -= 1
        follower._hist = None if self._hist is None else self._hist.clone()
        follower._width, follower._max, follower._pending_zeros = self._width, self._max, self._pending_zeros
        follower._count, follower.batches = count, batches
        follower._pending, follower._slots = None, {}
        if self._pending is not None:
            follower._pending = torch.empty(self._capacity, dtype=self._pending.dtype)
            if size:
                follower._pending[:size].copy_(self._pending[:size])
        follower._pending_size, follower._ends, follower._tags = size, ends, tags
        lengths = {b - a for a, b in zip([0] + ends[:-1], ends)}
        follower._seg_len = lengths.pop() if len(lengths) == 1 else 0
        follower._prev_token = None
        follower._leader = None
        self._followers.remove(follower)

    def _admit(self, x_max, n, device=None):
        """Updates the max, starts or grows the bins for a batch whose max |x| is x_max, as
        pytorch-quantization does batch by batch; False when the batch needs no binning (all
        zero before any bins exist: counted into the zero bin once the width is known)."""
        self._max = max(self._max, x_max)
        if self._hist is None:
            if x_max == 0.0:
                self._pending_zeros += n
                return False
            self._width = x_max / self.num_bins
            self._hist = torch.zeros(self.num_bins, dtype=torch.int64, device=device)
            if self._pending_zeros:
                self._hist[0] += self._pending_zeros
            self._pending_zeros = 0
        elif x_max > self._width * self._hist.numel():
            self._grow(x_max)
        return True

    def _flush(self, release=False):
        """Bins the pending batches; `release` frees the scratch.

        The result is what binning each batch as it arrived gives (pytorch-quantization's
        order), whatever the grouping. The batches' maxes decide how: if none is above the
        current bins (the usual case once the first batches have set the range), one bincount
        bins them all. If the range grew (always so in the first flush), the growth is planned
        from the maxes, everything is binned at once with the final bins, and the few values
        that sat on the top edge of the bins a batch met, which that batch put in its last bin,
        are moved there (_bin_planned). A NaN/Inf, or a growth that merges bins, replays the
        batches one by one (_replay). Batches of one shape (the usual case) get all their
        maxes from one reduction over the scratch viewed as [batches, values].
        """
        size = self._pending_size
        if self._followers:
            self._settle_followers()  # those one batch behind need that batch still pending
        try:
            if size:
                ends, tags, seg_len = self._ends, self._tags, self._seg_len
                self._pending_size = 0
                self._ends, self._tags = [], []
                scratch = self._pending[:size]
                maxes = scratch.view(-1, seg_len).amax(dim=1).tolist() if seg_len else None
                top = max(maxes) if seg_len else scratch.max().item()
                # (the sum is not finite exactly when a max is NaN or Inf: max() skips NaN)
                finite = math.isfinite(sum(maxes)) if seg_len else math.isfinite(top)
                if finite and self._hist is not None and top <= self._width * self._hist.numel():
                    self._max = max(self._max, top)
                    self._bin_scratch(0, size)
                    return
                if maxes is None:  # batches of several shapes: one max each
                    starts = [0] + ends[:-1]
                    maxes = [scratch[a:b].max().item() for a, b in zip(starts, ends)]
                if not (finite and self._bin_planned(ends, maxes, size)):
                    self._replay(ends, tags, maxes)
        finally:
            if release:
                self._pending = None
                self._slots = {}

    def _bin_planned(self, ends, maxes, size):
        """Bins the scratch at once when the range only grew by appending bins (no merge);
        False, having changed nothing, when a merge is needed."""
        width = self._width
        bins = None if self._hist is None else self._hist.numel()
        first = None  # the max that starts the bins, when none exist yet
        runs = []  # (start, end, bins, max) of the batches binned under the same bins
        run, run_max, start = 0, 0.0, 0
        for end, x_max in zip(ends, maxes):
            if bins is None:
                if x_max == 0.0:  # all zero before any bins: binned with the rest, into bin 0
                    start = end
                    continue
                first = x_max
                width, bins = x_max / self.num_bins, self.num_bins
            elif x_max > width * bins:
                grown = max(bins, math.ceil(x_max / width))
                if grown > self.max_bins:
                    return False
                runs.append((run, start, bins, run_max))
                run, run_max, bins = start, 0.0, grown
            run_max = max(run_max, x_max)
            start = end
        if bins is None:  # still all zero
            self._pending_zeros += size
            return True
        runs.append((run, size, bins, run_max))
        if first is not None:
            self._admit(first, 0)
        top = max(maxes)
        self._admit(top, 0)  # the final bins: what growing batch by batch ends with
        inv_width = 1.0 / self._width
        n = self._hist.numel()
        scratch = self._pending[:size]
        index = scratch.mul_(inv_width).to(torch.int16 if n < _INT16_BINS else torch.int32)
        counts = torch.bincount(index, minlength=n)
        if counts.numel() > n:
            counts[n - 1] += counts[n:].sum()
            counts = counts[:n]
        # A batch met `bins` bins; its values at index `bins` (the top edge) went to bin
        # bins - 1 then. Only a run whose max scales to that index can hold such values: the
        # run maxes are scaled by the same float arithmetic as the scratch to find them.
        for lo, hi, bins, run_max in runs:
            if bins < n and _scaled_index(run_max, inv_width, scratch.dtype) >= bins:
                moved = int((index[lo:hi] == bins).sum())
                counts[bins] -= moved
                counts[bins - 1] += moved
        self._hist += counts
        return True

    def _replay(self, ends, tags, maxes=None):
        bad = None  # (kind, tag) of the first batch with NaN/Inf: skipped, as if it had raised
        run = 0  # start of the batches admitted under the current bins, not binned yet
        start = 0
        for i, (end, tag) in enumerate(zip(ends, tags)):
            x_max = self._pending[start:end].max().item() if maxes is None else maxes[i]
            if not math.isfinite(x_max):
                self._bin_scratch(run, start)
                run = end
                self._count -= end - start
                self.batches -= 1
                if bad is None:
                    bad = ("NaN" if math.isnan(x_max) else "Inf", tag)
            elif self._hist is None or x_max > self._width * self._hist.numel():
                self._bin_scratch(run, start)  # the batches before it, under the bins they met
                run = start if self._admit(x_max, end - start) else end
            else:
                self._max = max(self._max, x_max)
            start = end
        self._bin_scratch(run, start)
        if bad is not None:
            raise_non_finite(bad[0], self.name, tag=bad[1])

    def _bin_scratch(self, lo, hi):
        if hi <= lo:
            return
        n = self._hist.numel()
        # In place on the scratch; the same arithmetic as _count_bins (floor(|x| * (1/width))),
        # but instead of a clamp pass the few values at the top edge (index n) are folded into
        # the last bin.
        index_type = torch.int16 if n < _INT16_BINS else torch.int32
        counts = torch.bincount(self._pending[lo:hi].mul_(1.0 / self._width).to(index_type), minlength=n)
        if counts.numel() > n:
            counts[n - 1] += counts[n:].sum()
            counts = counts[:n]
        self._hist += counts

    def _grow(self, x_max):
        n_old = self._hist.numel()
        n_new = max(n_old, math.ceil(x_max / self._width))
        hist = self._hist
        if n_new > self.max_bins:
            factor = math.ceil(n_new / self.max_bins)
            padded = torch.zeros(math.ceil(n_old / factor) * factor, dtype=hist.dtype, device=hist.device)
            padded[:n_old] = hist
            hist = padded.reshape(-1, factor).sum(dim=1)
            self._width *= factor
            n_new = max(hist.numel(), math.ceil(x_max / self._width))
        if n_new > hist.numel():
            hist = torch.cat([hist, hist.new_zeros(n_new - hist.numel())])
        self._hist = hist

    def _count_bins(self, x):
        n = self._hist.numel()
        top = self._width * n
        if x.is_cuda:
            return torch.histc(x.abs().float(), bins=n, min=0.0, max=top).long()
        # On CPU torch.histc is slow; floor(|x| / width) + bincount over cache-sized chunks
        # is several times faster and bins the same way ([k w, (k+1) w), max in the last).
        flat = dense_view(x).reshape(-1)  # a view, not a copy, for channels-last activations
        inv_width = 1.0 / self._width
        size = min(_CHUNK, flat.numel())
        buf = torch.empty(size, dtype=x.dtype)
        # int32 bin indices, clamped while still float: the conversion and bincount run about
        # twice as fast as on int64, and n <= max_bins fits easily. For |x| >= 0, clamping to
        # the integer n - 1 before truncating gives the same index as after.
        idx = torch.empty(size, dtype=torch.int32)
        counts = None
        for start in range(0, flat.numel(), size):
            chunk = flat[start : start + size]
            k = chunk.numel()
            f, i = buf[:k], idx[:k]
            torch.abs(chunk, out=f)
            f.mul_(inv_width)
            f.clamp_(max=n - 1)
            i.copy_(f)  # truncation = floor for |x| >= 0
            part = torch.bincount(i, minlength=n)
            counts = part if counts is None else counts.add_(part)
        return counts  # int64, as the histogram

    # ---- state --------------------------------------------------------------------------
    def finish(self):
        """Bins every pending batch and frees the scratch; collection may still go on after.

        Raises NonFiniteError if a pending batch held NaN or Inf. Reading the histogram or an
        amax does this first; call it at the end of a calibration pass to get that error there.
        """
        leader = self._leader
        if leader is not None:
            leader.finish()  # (which may already have given this one its own copy)
            if self._leader is leader:
                leader._materialize(self)
        self._flush(release=True)

    @property
    def hist(self):
        """Counts per bin (float64, CPU), or None before any non-zero data."""
        self.finish()
        return None if self._hist is None else self._hist.detach().cpu().double()

    @property
    def bin_edges(self):
        """len(hist) + 1 edges from 0 (float64, CPU), or None."""
        self.finish()
        if self._hist is None:
            return None
        return torch.arange(self._hist.numel() + 1, dtype=torch.float64) * self._width

    @property
    def bin_width(self):
        self.finish()
        return self._width

    # ---- amax -----------------------------------------------------------------------------
    def compute_amax(self, method="entropy", percentile=99.99, start_bin=128, stride=1):
        """amax by `method` as a 0-d float32 CPU tensor; None before any data.

        Needs no new pass over the data: switch methods freely.
        """
        if method not in ("max", "entropy", "percentile", "mse"):
            raise ValueError(f"unknown calibration method {method!r}; use max, entropy, percentile or mse")
        self.finish()
        if self._count == 0:
            return None
        if method == "max" or self._hist is None:  # all data zero: every method says 0
            return torch.tensor(self._max, dtype=torch.float32)
        hist = self.hist
        # These are small tensors: one thread avoids the thread pool's overhead, which on a
        # busy machine made torch 2.x ten times slower here than torch 1.13.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            if method == "entropy":
                amax = entropy_amax(hist, self._width, self.num_bits, self.unsigned, start_bin, stride)
            elif method == "percentile":
                amax = percentile_amax(hist, self._width, percentile)
            else:
                amax = mse_amax(hist, self._width, self.num_bits, self.unsigned, start_bin, stride)
        finally:
            torch.set_num_threads(threads)
        return torch.tensor(amax, dtype=torch.float32)

    def share_above(self, amax):
        """The share of the values collected that lie in bins at or above `amax` (which the
        histogram methods return as a bin edge): what quantizing with this amax clips."""
        hist = self.hist
        if hist is None or amax is None:
            return 0.0
        first = int(round(float(amax) / self._width))
        total = hist.sum().item() + 0.0
        return hist[first:].sum().item() / total if total else 0.0

    def summary(self, buckets=64):
        """{bins: [buckets counts], edges_max}: equal buckets over [0, edges_max] for a chart."""
        hist = self.hist
        if hist is None:
            return None
        n = hist.numel()
        per_bucket = math.ceil(n / buckets)
        padded = torch.zeros(per_bucket * buckets, dtype=torch.float64)
        padded[:n] = hist
        counts = padded.reshape(buckets, per_bucket).sum(dim=1)
        return {"bins": [float(c) for c in counts], "edges_max": self._width * per_bucket * buckets}

    # ---- saving ---------------------------------------------------------------------------
    def state(self):
        """What the amax methods read (counts, bin width, exact max, values seen), as plain data, so a later
        process can pick another method without a new pass over the data (restore())."""
        hist = self.hist
        return {
            "counts": [] if hist is None else [int(c) for c in hist.tolist()],
            "width": self._width,
            "max": float(self._max),
            "count": int(self._count),
            "batches": int(self.batches),
        }

    @classmethod
    def restore(cls, state, num_bits=8, unsigned=False):
        """A calibrator holding a saved state(); only for computing amax (collecting more data would start a new
        range from it, as after any batch)."""
        cal = cls(num_bits=num_bits, unsigned=unsigned)
        counts = state.get("counts") or []
        if counts:
            cal._hist = torch.tensor(counts, dtype=torch.int64)
            cal._width = float(state["width"])
        cal._max = float(state.get("max", 0.0))
        cal._count = int(state.get("count", 0))
        cal.batches = int(state.get("batches", 0))
        cal._token = object() if cal._count else None
        return cal

    def __repr__(self):
        n = 0 if self._hist is None else self._hist.numel()
        return f"HistogramCalibrator(bins={n}, max={self._max:.4g}, batches={self.batches})"


def entropy_divergences(hist, num_bits=8, unsigned=False, start_bin=128, stride=1):
    """(candidate bin counts i, KL divergence for each), TensorRT's entropy calibration.

    For candidate i: the reference P is hist[:i] with everything above added to its last
    bin; the candidate Q spreads each of 2^(bits-1) equal groups of hist[:i] uniformly over
    the group's non-empty bins. Computed for all i at once from prefix sums: with group mass
    M and non-empty count c, sum p log q = sum_groups M log(M / c) (+ outliers x log q_last).
    """
    bins = torch.as_tensor(hist, dtype=torch.float64).reshape(-1).clone()
    n = bins.numel()
    levels = 1 << (num_bits - 1 + int(unsigned))
    if n > 1:
        bins[0] = bins[1]  # the zero bin is usually a spike (ReLU); TensorRT drops it this way
    total = bins.sum()
    zero = bins.new_zeros(1)
    cum = torch.cat([zero, bins.cumsum(0)])  # sum bins[:k]
    cum_nonzero = torch.cat([zero, (bins > 0).double().cumsum(0)])  # non-empty bins in [:k]
    xlogx = torch.where(bins > 0, bins * torch.log(bins.clamp(min=1e-300)), bins.new_zeros(()))
    cum_xlogx = torch.cat([zero, xlogx.cumsum(0)])
    start = max(start_bin, levels)  # below that some groups would be empty
    if start > n:
        start = n
    candidates = torch.arange(start, n + 1, stride, dtype=torch.int64)
    group = torch.arange(levels + 1, dtype=torch.int64)
    divergences = []
    for chunk in torch.split(candidates, 1024):
        # first bin index of each group: ceil(g * i / levels), exact in integers
        # (torch.div and torch.take: several times faster than // and indexing in torch 2.x)
        bounds = torch.div(group[None, :] * chunk[:, None] + levels - 1, levels, rounding_mode="floor")
        at_cum = torch.take(cum, bounds)
        at_nonzero = torch.take(cum_nonzero, bounds)
        mass = at_cum[:, 1:] - at_cum[:, :-1]
        nonzero = at_nonzero[:, 1:] - at_nonzero[:, :-1]
        safe_nz = nonzero.clamp(min=1)
        p_log_q = torch.where(mass > 0, mass * torch.log(mass.clamp(min=1e-300) / safe_nz), mass.new_zeros(())).sum(
            dim=1
        )
        inside = torch.take(cum, chunk)
        outliers = (total - inside).clamp(min=0)
        last = torch.take(bins, chunk - 1)
        q_last = mass[:, -1] / safe_nz[:, -1]
        p_last = last + outliers
        p_log_p = torch.take(cum_xlogx, chunk - 1) + torch.where(
            p_last > 0, p_last * torch.log(p_last.clamp(min=1e-300)), p_last.new_zeros(())
        )
        p_log_q = p_log_q + torch.where(
            outliers > 0, outliers * torch.log(q_last.clamp(min=1e-300)), outliers.new_zeros(())
        )
        kl = (p_log_p - p_log_q) / total - torch.log(total) + torch.log(inside.clamp(min=1e-300))
        # P > 0 where Q = 0 (outliers piled onto an empty last bin), or Q empty: infinite.
        kl = torch.where(((outliers > 0) & (last == 0)) | (inside <= 0), torch.full_like(kl, float("inf")), kl)
        divergences.append(kl.clamp(min=0))
    return candidates, torch.cat(divergences) if divergences else bins.new_zeros(0)


def entropy_amax(hist, width, num_bits=8, unsigned=False, start_bin=128, stride=1):
    candidates, kl = entropy_divergences(hist, num_bits, unsigned, start_bin, stride)
    if kl.numel() == 0:
        return float(torch.as_tensor(hist).numel() * width)
    # The last minimum: on ties the larger amax clips less.
    best = kl.numel() - 1 - int(torch.argmin(kl.flip(0)))
    return float(candidates[best]) * width


def percentile_amax(hist, width, percentile=99.99):
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    hist = torch.as_tensor(hist, dtype=torch.float64).reshape(-1)
    cdf = hist.cumsum(0) / hist.sum()
    idx = int(torch.searchsorted(cdf, torch.tensor([percentile / 100.0], dtype=torch.float64))[0])
    return min(idx, hist.numel()) * width  # the left edge of the bin where the CDF reaches p


def mse_amax(hist, width, num_bits=8, unsigned=False, start_bin=128, stride=1):
    """The bin centre c_i (i >= start_bin) minimising sum_k hist[k] (fq(c_k; amax=c_i) - c_k)^2.

    Exact, but cheap: empty bins contribute nothing and are dropped, and every centre above
    the candidate clips to amax itself, so that part is (c - a)^2 summed from prefix sums;
    only the centres up to the candidates of a chunk are fake-quantized one by one.
    """
    hist = torch.as_tensor(hist, dtype=torch.float64).reshape(-1)
    n = hist.numel()
    centers64 = (torch.arange(n, dtype=torch.float64) + 0.5) * width
    start = min(start_bin, n - 1)
    candidates = torch.arange(start, n, stride)
    _, max_bound = quant_bounds(num_bits, unsigned)
    keep = hist > 0
    positions = torch.nonzero(keep).reshape(-1)  # bin index of each non-empty bin
    h_nz, c_nz = hist[keep], centers64[keep]
    zero = h_nz.new_zeros(1)
    # suffix sums over non-empty bins j >= m: sum h, sum h c, sum h c^2
    s0 = torch.cat([h_nz.flip(0).cumsum(0).flip(0), zero])
    s1 = torch.cat([(h_nz * c_nz).flip(0).cumsum(0).flip(0), zero])
    s2 = torch.cat([(h_nz * c_nz * c_nz).flip(0).cumsum(0).flip(0), zero])
    h32, c32 = h_nz.float(), c_nz.float()
    errors = []
    rows = 256
    with torch.no_grad():
        for chunk in torch.split(candidates, rows):
            amax = centers64[chunk]
            # non-empty bins up to the chunk's largest candidate are quantized explicitly
            cols = int(torch.searchsorted(positions, chunk[-1:], right=True)[0])
            a32 = amax.float()[:, None]
            scale = max_bound / a32
            q = c32[None, :cols] * scale
            q.round_().clamp_(max=max_bound).div_(scale).sub_(c32[None, :cols])
            err = q.pow_(2).mul_(h32[None, :cols]).sum(dim=1).double()
            # the rest all clip to amax: sum h (c - a)^2 = S2 - 2 a S1 + a^2 S0
            err += s2[cols] - 2 * amax * s1[cols] + amax * amax * s0[cols]
            errors.append(err)
    errors = torch.cat(errors) / n
    best = int(torch.argmin(errors))  # the first minimum, as numpy's argmin
    return float(centers64[candidates[best]])
