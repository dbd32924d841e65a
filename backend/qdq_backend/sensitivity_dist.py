"""`qdq sensitivity|tune --nproc N`: the per-group evaluations split across N processes with torch.distributed.

On one machine the CLI starts
    python -m qdq_backend.sensitivity_dist --nproc N REQUEST.json RESULT.json
which spawns N workers with torchrun's environment contract (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT): torch 1.13's own launcher fails under Python 3.11 (its elastic agent's Std enum check), so the
single-node case does not depend on it. Under torchrun (RANK already set) the module runs as one worker, which is
how several machines are used:
    torchrun --nnodes 2 --node_rank K --nproc_per_node N --rdzv_backend c10d --rdzv_endpoint HOST:29400 \
        -m qdq_backend.sensitivity_dist REQUEST.json RESULT.json
with the project and REQUEST.json at the same paths on every node. gloo on CPU; nccl when the request says
"device": "cuda" and CUDA is available (the evaluations themselves run where the loader put the model).

Every rank loads the model; rank 0 alone calibrates and broadcasts the ranges, so all ranks quantize alike. The
search (sensitivity.py) runs in lockstep on every rank: each batch of independent evaluations is split round-robin,
the values are gathered, and every rank takes the same decision from the same list, so the plan cannot depend on
the number of processes. Rank 0 writes the result and prints progress lines ("qdq-progress {json}") on stderr.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from . import calibrate, loader, sensitivity_rpc
from . import sensitivity as sens
from .errors import QdqError
from .protocol_types import CalibrateParams, LoadParams, SensitivityParams, TuneParams


class DistributedRunner(sens.Runner):
    """Evaluates index i of a batch on rank i % world_size, then all ranks gather every value."""

    def measure(self, configs: Sequence[Tuple[Sequence[sens.SiteGroup], str]]) -> List[float]:
        rank, world = dist.get_rank(), dist.get_world_size()
        mine = {i: self.evaluate(int8, what) for i, (int8, what) in enumerate(configs) if i % world == rank}
        gathered: List[Optional[Dict[int, float]]] = [None] * world
        dist.all_gather_object(gathered, mine)
        merged: Dict[int, float] = {}
        for part in gathered:
            merged.update(part or {})
        self.done += len(configs) - len(mine)  # count the other ranks' evaluations too
        return [merged[i] for i in range(len(configs))]


def _progress(rank: int):
    def report(step: str, done: int, total: Optional[int], message: str) -> None:
        if rank == 0:
            line = {"step": step, "done": done, "total": total, "message": message}
            sys.stderr.write("qdq-progress " + json.dumps(line) + "\n")
            sys.stderr.flush()

    return report


def _noop(*_args: Any) -> None:
    return None


def _share_calibration(project: loader.Project, params: CalibrateParams, rank: int) -> None:
    """Rank 0 calibrates (writing the usual calibration file); the others receive its ranges."""
    amax: List[Optional[Dict[str, Any]]] = [None]
    if rank == 0:
        calibrate.calibrate(project, params, _progress(rank), _noop)
        amax[0] = {q.name: q.module.amax for q in project.quantizers if getattr(q.module, "amax", None) is not None}
    dist.broadcast_object_list(amax, src=0)
    if rank != 0:
        for q in project.quantizers:
            value = (amax[0] or {}).get(q.name)
            if value is not None:
                q.module.set_amax(value)


def run(request: Dict[str, Any]) -> Optional[Any]:
    """The RPC shell of the N-process form: the request file's parts parsed into the schema's types, then the same
    adapters as the `sensitivity` and `tune` requests."""
    rank = dist.get_rank()
    command = request.get("command")
    if command not in ("sensitivity", "tune"):
        raise QdqError("protocol", f"request.command: expected sensitivity or tune, got {command!r}", "a qdq bug")
    project = loader.load(LoadParams.from_json(request.get("load"), "request.load"), _noop, None)
    _share_calibration(project, CalibrateParams.from_json(request.get("calibrate"), "request.calibrate"), rank)
    progress = _progress(rank)
    result: Any
    if command == "sensitivity":
        params = SensitivityParams.from_json(request.get("params"), "request.params")
        result = sensitivity_rpc.sensitivity(project, params, progress, _noop, DistributedRunner)
    else:
        tune_params = TuneParams.from_json(request.get("params"), "request.params")
        result = sensitivity_rpc.tune(project, tune_params, progress, _noop, DistributedRunner)
    return result if rank == 0 else None


def _write_atomic(path: str, data: Dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".qdq-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(nproc: int, argv: List[str]) -> int:
    """Single-node launcher: N workers of this module with torchrun's environment; the first failure wins."""
    port = str(_free_port())
    children = []
    for rank in range(nproc):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc))
        env.update(LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        env.setdefault("OMP_NUM_THREADS", "1")
        children.append(subprocess.Popen([sys.executable, "-m", "qdq_backend.sensitivity_dist", *argv], env=env))
    codes = [c.wait() for c in children]
    return next((c for c in codes if c != 0), 0)


def main(argv: List[str]) -> int:
    if len(argv) == 4 and argv[0] == "--nproc" and "RANK" not in os.environ:
        return launch(int(argv[1]), argv[2:])
    if len(argv) != 2:
        sys.stderr.write("usage: torchrun ... -m qdq_backend.sensitivity_dist REQUEST.json RESULT.json\n")
        return 2
    with open(argv[0]) as f:
        request = json.load(f)
    use_cuda = torch.cuda.is_available() and request.get("device") == "cuda"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        result: Dict[str, Any]
        try:
            result = {"result": run(request)}
        except QdqError as err:
            result = {"error": err.to_data()}
        if dist.get_rank() == 0:
            _write_atomic(argv[1], result)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
