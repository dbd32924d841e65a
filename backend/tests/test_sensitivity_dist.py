"""--nproc: the per-group evaluations split over 2 CPU processes (gloo) give the 1-process result."""

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
from rpc_client import BACKEND_DIR, make_project  # noqa: E402


def _run(project, tmp_path, nproc, command, params):
    request = {
        "command": command,
        "load": {
            "project_dir": project,
            "model": "model.py:build",
            "example_inputs": "model.py:example_inputs",
            "calibration_data": "model.py:calibration_data",
            "eval_data": "model.py:eval_data",
        },
        "calibrate": {"method": "max", "batches": 4, "out_dir": str(tmp_path / f"out{nproc}")},
        "params": params,
    }
    req = tmp_path / f"req-{command}-{nproc}.json"
    res = tmp_path / f"res-{command}-{nproc}.json"
    req.write_text(json.dumps(request))
    env = dict(os.environ, PYTHONPATH=BACKEND_DIR, OMP_NUM_THREADS="1")
    args = [sys.executable, "-m", "qdq_backend.sensitivity_dist", "--nproc", str(nproc), str(req), str(res)]
    done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(res.read_text())
    assert "result" in out, out
    return out["result"], done.stderr


def test_two_processes_give_the_one_process_sensitivity_and_plan(tmp_path):
    project = make_project(tmp_path, "convnet")
    one, _ = _run(project, tmp_path, 1, "sensitivity", {"eval_batches": 4})
    two, log = _run(project, tmp_path, 2, "sensitivity", {"eval_batches": 4})
    assert one == two
    assert "qdq-progress" in log
    assert two["evaluations"] == 2 + 2 * len(two["groups"])
    # A budget tighter than all-INT8's loss forces real greedy rounds (0 points: float wherever it costs).
    t1, _ = _run(project, tmp_path, 1, "tune", {"eval_batches": 4, "max_drop": 0.0})
    t2, _ = _run(project, tmp_path, 2, "tune", {"eval_batches": 4, "max_drop": 0.0})
    assert t1 == t2
