"""Calibration cost, for `npm run bench`: a calibration pass per method against a plain FP32 forward pass
over the same batches, and the time to compute amax from the kept histograms, per quantizer.

Usage: python3 bench/py/calibration_cost.py [MODEL ...]     prints one JSON object (progress on stderr)

Models: the two bundled examples and bench/encoder, with quantizers placed as qdq places them (see
examples_int8.py). Calibrators are the backend's own (qdq_backend.calib.make_calibrator): "max" collects a
running max (MaxCalibrator); "entropy", "percentile" and "mse" share one histogram pass
(HistogramCalibrator), then each computes its amax from the histograms without touching the data again.
Each pass is timed once per round (25 rounds for the digits models, 9 for the encoder), the three passes in
turn, and the median is reported.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import examples_int8  # noqa: E402  (also puts <repo>/backend on sys.path)
from qdq_backend import qdq_quant  # noqa: E402
from qdq_backend.calib import make_calibrator, weight_amax  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Rounds per model, interleaved. 3 was too few on a shared 2-core machine (the same code gave 1.6x-3.6x); a
# digits pass takes about 40 ms, so with 9 rounds one busy spell could still move a median (max calibration of
# digits-cnn: 1.15x in one run, 1.38x in the next); 25 of them cost about 4 s more. An encoder pass takes ~1 s.
MODELS = [
    ("digits-cnn", REPO / "examples" / "digits-cnn", 32, 25),
    ("digits-transformer", REPO / "examples" / "digits-transformer", 32, 25),
    ("encoder", REPO / "bench" / "encoder", 8, 9),
]


def log(msg):
    print(f"[calibration] {msg}", file=sys.stderr, flush=True)


def batches_of(data, n):
    out = []
    for i, b in enumerate(data.calibration_data()):
        if i >= n:
            break
        out.append(b)
    return out


def main():
    # Threads: QDQ_BENCH_THREADS, default 1. With 2 OpenMP threads on a 2-core machine that other work
    # shares, every small op waits at a barrier for a descheduled thread, which swamps the tiny models.
    torch.set_num_threads(int(os.environ.get("QDQ_BENCH_THREADS", "1")))
    only = sys.argv[1:]
    results = []
    for name, project, n_batches, rounds in MODELS:
        if only and name not in only:
            continue
        log(f"{name}: loading")
        for mod in ("data", "model", "train"):
            sys.modules.pop(mod, None)  # each project has its own data.py
        model, data = examples_int8.load_example(project)
        sys.path.remove(str(project))
        batches = batches_of(data, n_batches)
        acts = examples_int8.activation_quantizers(model)
        weighted = [m for m in model.modules() if hasattr(m, "weight_quantizer")]
        everything = [m for m in model.modules() if isinstance(m, qdq_quant.TensorQuantizer)]

        def forward_all():
            with torch.no_grad():
                for b in batches:
                    model(b)

        def plain():
            for q in everything:
                q.enabled = False
            forward_all()
            for q in everything:
                q.enabled = True

        def calibration(method):
            # As in the backend: only the activation quantizers' calibrators see the data; weight quantizers
            # (whose amax an earlier round set) pass the float weights through.
            for m in weighted:
                m.weight_quantizer.enabled = False
            calibrators = {}
            for qname, q in acts:
                q.calibrator = calibrators[qname] = make_calibrator(method, name=qname)
            forward_all()
            for _, q in acts:
                q.calibrator = None
            for c in calibrators.values():  # the histogram bins its last batches here: part of the pass
                finish = getattr(c, "finish", None)
                if finish is not None:
                    finish()
            for m in weighted:
                m.weight_quantizer.enabled = True
            for m in weighted:  # weights need no data: per-channel max, once
                m.weight_quantizer.set_amax(weight_amax(m.weight.detach(), m.weight_quantizer.axis))
            return calibrators

        plain()  # warm-up (first-call allocations, thread pool)
        times = {"fp32": [], "max": [], "histogram": []}
        hist_calibrators = None
        for r in range(rounds):
            for variant in times:
                t0 = time.perf_counter()
                if variant == "fp32":
                    plain()
                else:
                    c = calibration("max" if variant == "max" else "entropy")
                    if variant == "histogram":
                        hist_calibrators = c
                times[variant].append((time.perf_counter() - t0) * 1000)
            log(f"{name}: round {r + 1}/{rounds}")
        amax_ms = {}
        for method in ("entropy", "percentile", "mse"):
            per_q = []
            for c in hist_calibrators.values():
                t0 = time.perf_counter()
                c.compute_amax(method)
                per_q.append((time.perf_counter() - t0) * 1000)
            amax_ms[method] = {"median": statistics.median(per_q), "max": max(per_q)}
        fp32 = statistics.median(times["fp32"])
        results.append(
            {
                "model": name,
                "rounds": rounds,
                "batches": len(batches),
                "batch_shape": list(batches[0].shape),
                "activation_quantizers": len(acts),
                "fp32_forward_ms": fp32,
                "max_ms": statistics.median(times["max"]),
                "histogram_ms": statistics.median(times["histogram"]),
                "max_ratio": statistics.median(times["max"]) / fp32,
                "histogram_ratio": statistics.median(times["histogram"]) / fp32,
                "amax_from_histogram_ms": amax_ms,
                "histogram_bins_max": max(
                    (c.hist.numel() for c in hist_calibrators.values() if c.hist is not None), default=0
                ),
            }
        )
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "models": results}))


if __name__ == "__main__":
    main()
