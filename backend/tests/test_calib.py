"""Calibrators: max, and the histogram methods (entropy, percentile, mse) on known distributions,
checked against straightforward (slow) implementations of the same algorithms."""

import math

import pytest
import torch
from qdq_backend.calib import (
    METHODS,
    HistogramCalibrator,
    MaxCalibrator,
    NonFiniteError,
    entropy_amax,
    entropy_divergences,
    make_calibrator,
    mse_amax,
    percentile_amax,
    weight_amax,
)
from qdq_backend.calib.histogram import _PENDING_PER_BIN
from qdq_backend.qdq_quant import TensorQuantizer, quant
from qdq_backend.tensor_quant import fake_tensor_quant

np = pytest.importorskip("numpy")


def naive_entropy_divergences(hist, num_bits=8, start_bin=128):
    """TensorRT's entropy calibration written loop by loop (reference for the vectorised one)."""
    bins = [float(v) for v in hist]
    bins[0] = bins[1]
    levels = 1 << (num_bits - 1)
    out = []
    for i in range(start_bin, len(bins) + 1):
        ref = bins[:i]
        ref[-1] += sum(bins[i:])
        cand = [0.0] * i
        for g in range(levels):
            members = [k for k in range(i) if g * i / levels <= k < (g + 1) * i / levels and bins[k] != 0]
            if members:
                mass = sum(bins[k] for k in members)
                for k in members:
                    cand[k] = mass / len(members)
        p = np.array(ref) / sum(ref)
        q = np.array(cand) / sum(cand)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p / q), 0.0)
        out.append(float(np.sum(terms)) if np.all(q[p > 0] > 0) else math.inf)
    return out


def naive_mse_amax(hist, width, start_bin=128):
    centers = (torch.arange(len(hist), dtype=torch.float32) + 0.5) * width
    counts = torch.as_tensor(hist, dtype=torch.float32)
    errors = []
    for i in range(start_bin, len(centers)):
        q = fake_tensor_quant(centers, centers[i])
        errors.append(((q - centers) ** 2 * counts).mean().item())
    return centers[start_bin + int(np.argmin(errors))].item()


def collect(calibrator, data, batches=4):
    for chunk in torch.chunk(data, batches):
        calibrator(chunk)
    return calibrator


# ---- max -------------------------------------------------------------------------------------


def test_max_is_exact_per_tensor_and_per_channel():
    torch.manual_seed(0)
    data = torch.randn(64, 8, 5)
    cal = collect(MaxCalibrator(), data)
    assert cal.compute_amax().item() == data.abs().max().item()
    per_channel = collect(MaxCalibrator(axis=1), data)
    assert torch.equal(per_channel.compute_amax(), data.abs().amax(dim=(0, 2)))
    assert torch.equal(weight_amax(data, axis=-1), data.abs().amax(dim=(0, 1)))
    assert weight_amax(data).dim() == 0
    with pytest.raises(ValueError, match="only 'max'"):
        cal.compute_amax("entropy")
    assert MaxCalibrator().compute_amax() is None


def test_non_finite_values_raise():
    cal = MaxCalibrator(name="conv1.input_quantizer")
    cal(torch.ones(10))
    with pytest.raises(NonFiniteError, match="NaN .*conv1.input_quantizer"):
        cal(torch.tensor([1.0, float("nan")]))
    with pytest.raises(NonFiniteError, match="Inf"):
        cal(torch.tensor([1.0, -float("inf")]))
    # The histogram checks small batches when it bins them: at finish() (or a read) at the
    # latest, naming the tag of the first bad batch; the batches around it still count.
    cal = HistogramCalibrator(name="conv1.input_quantizer")
    cal(torch.ones(10), tag=0)
    cal(torch.tensor([1.0, float("nan")]), tag=1)
    cal(torch.tensor([1.0, -float("inf")]), tag=2)
    cal(torch.full((5,), 3.0), tag=3)
    with pytest.raises(NonFiniteError, match=r"NaN .*conv1.input_quantizer \(batch 1\)") as info:
        cal.finish()
    assert (info.value.kind, info.value.tag) == ("NaN", 1)
    assert cal.hist.sum().item() == 15 and cal.compute_amax("max").item() == 3.0
    cal(torch.tensor([float("inf")]), tag=4)
    with pytest.raises(NonFiniteError, match="Inf") as info:
        cal.compute_amax("entropy")
    assert info.value.tag == 4
    with pytest.raises(NonFiniteError, match="NaN"):  # a batch too large to wait: at once
        cal(torch.full((1 << 20,), float("nan")))
    with pytest.raises(NonFiniteError):
        weight_amax(torch.tensor([[1.0, float("nan")]]), axis=0)


def test_calibrators_plug_into_tensor_quantizer():
    torch.manual_seed(0)
    layer = quant(torch.nn.Linear(4, 3))
    layer.input_quantizer.calibrator = HistogramCalibrator()
    x = torch.randn(100, 4)
    with torch.no_grad():
        float_out = layer(x)
    cal = layer.input_quantizer.calibrator
    layer.input_quantizer.calibrator = None
    layer.input_quantizer.set_amax(cal.compute_amax("max"))
    layer.weight_quantizer.set_amax(weight_amax(layer.weight, axis=0))
    assert layer.input_quantizer.amax.item() == x.abs().max().item()
    with torch.no_grad():
        assert torch.allclose(layer(x), float_out, atol=0.05)
    assert isinstance(make_calibrator("max"), MaxCalibrator)
    assert isinstance(make_calibrator("entropy", axis=0), MaxCalibrator)  # per channel: max only
    assert isinstance(make_calibrator("mse"), HistogramCalibrator)
    with pytest.raises(ValueError, match="unknown calibration method"):
        make_calibrator("kl")
    with pytest.raises(NotImplementedError):
        HistogramCalibrator(axis=0)
    q = TensorQuantizer()
    q.calibrator = MaxCalibrator()
    q(torch.tensor([0.5, -2.0]))
    assert q.calibrator.compute_amax().item() == 2.0


# ---- histogram collection ----------------------------------------------------------------------


def test_histogram_counts_every_value_and_grows_with_same_width():
    torch.manual_seed(0)
    cal = HistogramCalibrator()
    first = torch.randn(10000)
    cal(first)
    width = cal.bin_width
    assert cal.hist.numel() == 2048 and width == pytest.approx(first.abs().max().item() / 2048)
    bigger = torch.randn(10000) * 1.5
    cal(bigger)
    assert cal.bin_width == width  # bins appended, early data never re-binned
    assert cal.hist.numel() == math.ceil(bigger.abs().max().item() / width)
    assert cal.hist.sum().item() == 20000
    # counts agree with a direct histogram of |x| on the same edges (up to edge rounding)
    edges = cal.bin_edges
    direct = torch.histc(torch.cat([first, bigger]).abs().double(), bins=edges.numel() - 1, min=0, max=edges[-1].item())
    assert (direct - cal.hist).abs().sum().item() <= 4
    assert cal.compute_amax("max").item() == max(first.abs().max().item(), bigger.abs().max().item())


def test_histogram_memory_is_bounded():
    cal = HistogramCalibrator(num_bins=2048, max_bins=8192)
    cal(torch.rand(1000))
    for scale in (10.0, 1000.0, 1e6):
        cal(torch.rand(1000) * scale)
        assert cal.hist.numel() <= 8192
    assert cal.hist.sum().item() == 4000
    assert cal.bin_edges[-1].item() >= 1e6 * 0.999
    assert cal.compute_amax("max").item() <= 1e6


def test_small_batches_binned_together_count_as_if_binned_one_by_one():
    # Small batches wait in a bounded scratch buffer and are binned together; the histogram must
    # be exactly what binning each batch as it arrives gives: floor(|x| / width), the top edge
    # in the last bin, bins appended (same width) when a batch exceeds them.
    torch.manual_seed(0)
    batches = [torch.randn(4, 8, 8).clamp(min=0) * (1 + 0.002 * i) for i in range(300)]
    cal = HistogramCalibrator()
    expected, width = None, None
    for b in batches:
        cal(b)
        if b.abs().max().item() == 0:
            continue
        if width is None:
            width = b.abs().max().item() / 2048
            expected = np.zeros(2048)
        top_bins = math.ceil(b.abs().max().item() / width)
        if top_bins > len(expected):
            expected = np.concatenate([expected, np.zeros(top_bins - len(expected))])
        scaled = b.abs().reshape(-1) * torch.tensor(1.0 / width, dtype=torch.float32)
        idx = np.minimum(scaled.to(torch.int64).numpy(), len(expected) - 1)
        expected += np.bincount(idx, minlength=len(expected))
        b.mul_(-7.0)  # the model may reuse the tensor in place: what was collected must not change
    assert cal._pending is None or cal._pending.numel() <= _PENDING_PER_BIN * cal.num_bins  # bounded by bins
    assert cal.bin_width == width
    assert np.array_equal(cal.hist.numpy(), expected)
    assert cal._pending is None  # reading the histogram bins the rest and frees the scratch
    cal(torch.ones(10) * 1e-3)  # collection may go on after a read
    assert cal.hist.sum().item() == expected.sum() + 10
    cal(torch.ones(10))  # pending values, then a bad batch: the error comes when they are binned
    cal(torch.tensor([1.0, float("nan")]))
    with pytest.raises(NonFiniteError, match="NaN"):
        cal.finish()
    assert cal.hist.sum().item() == expected.sum() + 20


def test_layout_of_the_activation_does_not_change_the_result():
    # conv activations arrive channels-last and attention operands transposed; the calibrators
    # reduce them through a contiguous view, which must give what the contiguous tensor gives
    torch.manual_seed(0)
    batches = [torch.randn(8, 16, 5, 5) * (i + 1) for i in range(6)]
    layouts = {
        "contiguous": lambda b: b,
        "channels_last": lambda b: b.contiguous(memory_format=torch.channels_last),
        "transposed": lambda b: b.transpose(1, 3).contiguous().transpose(1, 3),
        "strided": lambda b: torch.stack([b, b], dim=-1)[..., 0],  # not dense: the plain path
    }
    results = {}
    for name, layout in layouts.items():
        mx, hist = MaxCalibrator(), HistogramCalibrator()
        for b in batches:
            x = layout(b)
            assert torch.equal(x, b)
            mx(x)
            hist(x)
        results[name] = (mx.compute_amax(), hist.hist, hist.compute_amax("entropy"))
    for name, (amax, counts, entropy) in results.items():
        assert torch.equal(amax, results["contiguous"][0]), name
        assert torch.equal(counts, results["contiguous"][1]), name
        assert torch.equal(entropy, results["contiguous"][2]), name


def test_all_zero_batches_then_data():
    cal = HistogramCalibrator()
    cal(torch.zeros(100))
    assert cal.compute_amax("entropy").item() == 0.0 and cal.summary() is None
    cal(torch.full((50,), 2.0))
    assert cal.hist[0].item() == 100 and cal.hist.sum().item() == 150
    assert HistogramCalibrator().compute_amax("percentile") is None


def test_summary_has_64_equal_buckets():
    torch.manual_seed(0)
    cal = collect(HistogramCalibrator(), torch.randn(50000))
    cal(torch.randn(100) * 3)  # grow to a bin count that is not a multiple of 64
    summary = cal.summary()
    assert len(summary["bins"]) == 64
    assert sum(summary["bins"]) == 50100
    assert summary["edges_max"] >= cal.bin_edges[-1].item()
    assert summary["edges_max"] == pytest.approx(cal.bin_width * 64 * math.ceil(cal.hist.numel() / 64))


# ---- amax methods --------------------------------------------------------------------------------


def test_percentile_is_close_to_the_true_quantile():
    torch.manual_seed(0)
    data = torch.randn(400000)
    cal = collect(HistogramCalibrator(), data)
    for p in (99.0, 99.9, 99.99):
        true = torch.quantile(data.abs()[:100000], p / 100).item()  # quantile() has a size limit
        exact = np.quantile(data.abs().numpy(), p / 100)
        got = cal.compute_amax("percentile", percentile=p).item()
        assert abs(got - exact) <= cal.bin_width * 1.01, (p, got, exact, true)
    # as in pytorch-quantization, the answer is the left edge of the bin where the CDF
    # reaches p, so even 100 lands one bin below the max
    assert cal.compute_amax("percentile", percentile=100).item() == pytest.approx(cal.bin_edges[-2].item())
    with pytest.raises(ValueError, match="percentile"):
        cal.compute_amax("percentile", percentile=0)


def test_entropy_and_mse_clip_heavy_tails_but_not_uniform_data():
    torch.manual_seed(0)
    # Student's t with 3 degrees of freedom: a few values far out. (With 2 degrees, mse
    # stays near the max: once the bulk all rounds to 0 its error no longer grows with amax,
    # a property of the anchor's bin-centre MSE, not of this code.)
    heavy = torch.distributions.StudentT(3.0).sample((200000,))
    cal = collect(HistogramCalibrator(), heavy)
    top = cal.compute_amax("max").item()
    for method in ("entropy", "mse", "percentile"):
        assert cal.compute_amax(method).item() < 0.8 * top, method
    uniform = torch.rand(200000) * 2 - 1
    cal = collect(HistogramCalibrator(), uniform)
    top = cal.compute_amax("max").item()
    for method in ("entropy", "mse", "percentile"):
        assert cal.compute_amax(method).item() > 0.98 * top, method


def test_switching_method_needs_no_new_data():
    torch.manual_seed(0)
    cal = collect(HistogramCalibrator(), torch.randn(20000))
    first = {m: cal.compute_amax(m).item() for m in METHODS}
    again = {m: cal.compute_amax(m).item() for m in reversed(METHODS)}
    assert first == again
    assert len(set(first.values())) == 4
    with pytest.raises(ValueError, match="unknown calibration method"):
        cal.compute_amax("minmax")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entropy_matches_the_loop_implementation(seed):
    torch.manual_seed(seed)
    # a small histogram with empty bins and a tail, so every branch of the algorithm is hit
    data = torch.cat([torch.randn(3000).abs(), torch.rand(20) * 8])
    hist = torch.histc(data, bins=300, min=0, max=8.0)
    hist[150:170] = 0
    candidates, fast = entropy_divergences(hist)
    slow = naive_entropy_divergences(hist.tolist())
    assert candidates.tolist() == list(range(128, 301))
    fast = fast.tolist()
    for a, b in zip(fast, slow):
        assert (math.isinf(a) and math.isinf(b)) or a == pytest.approx(b, rel=1e-6, abs=1e-9)
    width = 8.0 / 300
    best = len(slow) - 1 - int(np.argmin(slow[::-1]))
    assert entropy_amax(hist, width) == pytest.approx((128 + best) * width)


@pytest.mark.parametrize("seed", [0, 1])
def test_mse_matches_the_loop_implementation(seed):
    torch.manual_seed(seed)
    data = torch.cat([torch.randn(5000).abs(), torch.rand(30) * 6])
    hist = torch.histc(data, bins=400, min=0, max=6.0)
    width = 6.0 / 400
    assert mse_amax(hist, width) == pytest.approx(naive_mse_amax(hist, width), rel=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here; the GPU path uses torch.histc")
def test_cuda_histogram_matches_cpu():
    torch.manual_seed(0)
    data = torch.randn(100000)
    cpu = collect(HistogramCalibrator(), data)
    gpu = collect(HistogramCalibrator(), data.cuda())
    assert (cpu.hist - gpu.hist).abs().sum().item() <= 10
    for method in METHODS:
        assert gpu.compute_amax(method).item() == pytest.approx(cpu.compute_amax(method).item(), rel=0.01)


# ---- deferred binning against a straightforward reference -------------------------------------


class ReferenceHistogram:
    """pytorch-quantization's histogram written plainly: each batch binned as it arrives,
    floor(|x| / width) with the top edge in the last bin, bins of the same width appended when a
    batch exceeds them, adjacent bins merged when the count would pass max_bins."""

    def __init__(self, num_bins=2048, max_bins=8192):
        self.num_bins, self.max_bins = num_bins, max_bins
        self.hist, self.width, self.zeros, self.max = None, None, 0, 0.0

    def __call__(self, x):
        a = x.detach().abs().reshape(-1)
        if x.dtype not in (torch.float32, torch.float64):
            a = a.float()
        m = a.max().item()
        self.max = max(self.max, m)
        if self.hist is None:
            if m == 0:
                self.zeros += a.numel()
                return
            self.width = m / self.num_bins
            self.hist = np.zeros(self.num_bins, dtype=np.int64)
            self.hist[0] += self.zeros
        elif m > self.width * len(self.hist):
            need = math.ceil(m / self.width)
            if need > self.max_bins:
                factor = math.ceil(need / self.max_bins)
                padded = np.zeros(math.ceil(len(self.hist) / factor) * factor, dtype=np.int64)
                padded[: len(self.hist)] = self.hist
                self.hist = padded.reshape(-1, factor).sum(axis=1)
                self.width *= factor
                need = max(len(self.hist), math.ceil(m / self.width))
            self.hist = np.concatenate([self.hist, np.zeros(need - len(self.hist), dtype=np.int64)])
        scaled = a * torch.tensor(1.0 / self.width, dtype=a.dtype)
        idx = np.minimum(scaled.to(torch.int64).numpy(), len(self.hist) - 1)
        self.hist += np.bincount(idx, minlength=len(self.hist))


def _sequences():
    g = torch.Generator().manual_seed(7)
    # one shape throughout, the range growing batch after batch (and a jump past max_bins)
    growing = [torch.randn(32, 8, 48, generator=g) * (1 + 0.05 * i) for i in range(40)]
    growing[25] = growing[25] * 9.0
    # ReLU-like activations: all-zero batches first, then data, then a tensor reused in place
    relu = [torch.zeros(16, 64)] * 3 + [torch.randn(16, 64, generator=g).clamp(min=0) for _ in range(60)]
    # shapes that vary (sequence lengths), float64 and float16 batches, one larger than the scratch
    mixed = [
        torch.randn(4, int(t), 24, generator=g) * (0.5 + (i % 7))
        for i, t in enumerate(torch.randint(1, 50, (50,), generator=g))
    ]
    mixed[10] = mixed[10].double()
    mixed[11] = mixed[11].double()
    mixed[20] = mixed[20].half()
    mixed[30] = torch.randn(300000, generator=g) * 3
    # non-contiguous views (attention operands), channels-last conv activations
    strided = [torch.randn(8, 12, 4, 16, generator=g).transpose(1, 2) * (i + 1) for i in range(20)]
    strided += [torch.randn(8, 16, 6, 6, generator=g).contiguous(memory_format=torch.channels_last) for _ in range(20)]
    # one value per batch, with ties at the top edge
    tiny = [torch.tensor([float(v)]) for v in (1, 1, 2, 0.5, 2, 3, 3)]
    return {"growing": growing, "relu": relu, "mixed": mixed, "strided": strided, "tiny": tiny}


@pytest.mark.parametrize("name", list(_sequences()))
def test_deferred_binning_matches_binning_each_batch_as_it_arrives(name):
    batches = _sequences()[name]
    cal, ref = HistogramCalibrator(max_bins=8192), ReferenceHistogram(max_bins=8192)
    for i, b in enumerate(batches):
        cal(b)
        ref(b)
        if name == "relu":
            b.mul_(-3.0)  # the model may reuse the tensor in place after the quantizer saw it
        if name == "growing" and i % 7 == 3:
            cal.finish()  # a read in the middle (set_method, the editor's chart) changes nothing
    assert cal.bin_width == ref.width
    assert np.array_equal(cal.hist.numpy().astype(np.int64), ref.hist)
    assert cal.compute_amax("max").item() == torch.tensor(ref.max, dtype=torch.float32).item()
    width = ref.width
    expected = {
        "entropy": entropy_amax(torch.from_numpy(ref.hist), width),
        "mse": mse_amax(torch.from_numpy(ref.hist), width),
        "percentile": percentile_amax(torch.from_numpy(ref.hist), width),
    }
    for method, value in expected.items():
        assert cal.compute_amax(method).item() == torch.tensor(value, dtype=torch.float32).item(), method


@pytest.mark.parametrize("seed", range(6))
def test_calibrators_fed_the_same_tensors_match_the_reference(seed):
    # Quantizers fed the very same tensor share one state until their inputs differ. Feed a
    # few calibrators from a small pool of tensors per batch, in shuffled order, with inputs
    # that sometimes coincide and sometimes not, tensors changed in place between calls,
    # reads in the middle and batches too large to wait: each must end with exactly the
    # histogram it would have had alone.
    g = torch.Generator().manual_seed(seed)
    names = ["a", "b", "c", "d", "e"]
    cals = {n: HistogramCalibrator(name=n) for n in names}
    refs = {n: ReferenceHistogram() for n in names}

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    for step in range(60):
        scale = 1.0 + step * 0.03 * float(rand(1))
        big = float(rand(1)) < 0.05
        pool = [
            torch.randn(200000 if big else 12 * 64, generator=g).reshape(-1, 64) * scale
            for _ in range(1 + (float(rand(1)) > 0.5) + (float(rand(1)) > 0.7))
        ]
        order = [names[int(i)] for i in torch.randperm(len(names), generator=g)]
        for name in order:
            if float(rand(1)) < 0.1:
                continue  # this quantizer is not called in this batch
            x = pool[int(rand(1) * len(pool))]
            if float(rand(1)) < 0.1:
                x.mul_(1.5)  # changed in place after an earlier quantizer saw it
            cals[name](x)
            refs[name](x)
            if float(rand(1)) < 0.03:
                cals[name].finish()
    for name in names:
        cal, ref = cals[name], refs[name]
        if ref.hist is None:
            assert cal.hist is None
            continue
        assert cal.bin_width == ref.width, name
        assert np.array_equal(cal.hist.numpy().astype(np.int64), ref.hist), name
        assert cal.compute_amax("max").item() == torch.tensor(ref.max, dtype=torch.float32).item(), name


def test_quantizers_fed_the_same_tensor_share_the_work():
    torch.manual_seed(0)
    lead, follow, other = HistogramCalibrator(), HistogramCalibrator(), HistogramCalibrator()
    for _ in range(10):
        x = torch.randn(8, 64)
        lead(x)
        follow(x)  # q/k/v projections of one input
        other(x.clone())  # equal values, another tensor: binned on its own
    assert follow._leader is lead and follow._pending is None
    assert other._leader is None
    assert torch.equal(follow.hist, lead.hist) and torch.equal(other.hist, lead.hist)
    assert follow._leader is None  # reading gave it its own copy
    follow(torch.ones(3))
    assert follow.hist.sum().item() == lead.hist.sum().item() + 3
