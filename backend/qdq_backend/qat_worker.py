"""One torchrun process of a distributed QAT run: `python -m qdq_backend.qat_worker SPEC.json`.

Every process loads the project as the backend did, takes the calibrated model from the checkpoint,
wraps it in DistributedDataParallel (gloo on CPU, nccl with one GPU per process) and runs qat.fine_tune
on its share of the training batches. Rank 0 writes the checkpoints and the progress events; any rank
that fails writes an error event (qat_launch reads them) and exits non-zero, which makes torchrun stop
the others. The checkpoint on disk is only ever replaced whole, so a failure loses nothing saved.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Dict, Iterable, Optional

import torch
import torch.distributed as dist

from . import qat, qat_checkpoint, qat_run, residual_fusion
from .errors import QdqError, internal_error
from .loader import load

EVENT_PREFIX = "@qdq-qat "


def emit(event: Dict[str, Any]) -> None:
    sys.stdout.write(EVENT_PREFIX + json.dumps(event, allow_nan=False, default=str) + "\n")
    sys.stdout.flush()


def _to(device: torch.device, batches: Callable[[int], Iterable[qat.Batch]]) -> Callable[[int], Iterable[qat.Batch]]:
    def moved(epoch: int) -> Iterable[qat.Batch]:
        for inputs, labels in batches(epoch):
            yield _move(inputs, device), (labels.to(device) if isinstance(labels, torch.Tensor) else labels)

    return moved


def _move(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_move(v, device) for v in value)
    return value


def _collectives(device: torch.device) -> qat.Collectives:
    def all_sum(t: torch.Tensor) -> torch.Tensor:
        moved = t.to(device)
        dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        return moved.cpu()

    def any_true(flag: bool) -> bool:
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def buffers_from_rank0(module: torch.nn.Module) -> None:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)

    return qat.Collectives(dist.get_rank(), dist.get_world_size(), all_sum, any_true, buffers_from_rank0)


def _device() -> torch.device:
    """One GPU per process (nccl) when this node has one for each of its processes; else CPU (gloo)."""
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if torch.cuda.is_available() and torch.cuda.device_count() >= per_node:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def train(spec: Dict[str, Any]) -> int:
    device = _device()
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank()
    coll = _collectives(device)
    project = load(spec["load"], lambda *a: None)
    p = qat_run.parse_params(spec["qat"])
    start = qat_checkpoint.load(spec["checkpoint"])
    qat.load_model_state(project.model, start.state.model_state)
    # the backend trains the target's graph form (qat_run.run_qat): every worker leaves off the same quantizers
    off = set(residual_fusion.left_off(project, p.target))
    for q in project.quantizers:
        if q.name in off:
            q.module.enabled = False
    project.model.to(device)
    training = qat_run.user_training(project, p)
    quantizers = qat_run.quantizer_modules(project)
    if p.config.learn_amax:
        qat.install_learned_amax(quantizers)
    ddp = torch.nn.parallel.DistributedDataParallel(
        project.model, device_ids=[device.index] if device.type == "cuda" else None
    )
    path = spec["checkpoint"]

    def save(state: qat.TrainState) -> None:
        qat_checkpoint.save(path, state, start.meta)

    def progress(step: str, done: int, total: Optional[int], message: str) -> None:
        if rank == 0:
            emit({"event": "progress", "step": step, "done": done, "total": total, "message": message})

    def should_stop() -> bool:
        return rank == 0 and os.path.exists(spec["stop_file"])

    eval_batches = qat_run.eval_batches(project)
    evaluate = None
    if project.eval_source is not None:
        on_device = _to(device, lambda _epoch: eval_batches())
        evaluate = lambda: qat.accuracy(project.model, lambda: on_device(0), coll)  # noqa: E731
    total = qat.steps_per_epoch(training.count, coll.world) * p.config.epochs
    try:
        qat.fine_tune(
            ddp,
            project.model,
            quantizers,
            _to(device, training.batches),
            training.count,
            training.step_loss,
            p.config,
            evaluate=evaluate,
            hooks=qat_run.progress_hooks(progress, should_stop, save),
            coll=coll,
            resume=start.state if start.state.global_step else None,
        )
    except qat.Stopped as stop:
        if rank == 0:
            emit({"event": "stopped", "step": stop.state.global_step, "total_steps": total})
        return 3
    except qat.StepFailed as exc:
        last = qat_checkpoint.load(path).state.global_step if os.path.exists(path) else 0
        emit({"event": "error", "error": qat_run.step_error(exc, project, path, last).to_data()})
        return 4
    if rank == 0:
        emit({"event": "done"})
    dist.destroy_process_group()
    return 0


def main(argv: Optional[list] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m torch.distributed.run ... -m qdq_backend.qat_worker SPEC.json\n")
        return 2
    with open(args[0], encoding="utf-8") as handle:
        spec = json.load(handle)
    try:
        code = train(spec)
    except QdqError as err:
        emit({"event": "error", "error": err.to_data()})
        code = 5
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error event
        emit({"event": "error", "error": internal_error(exc).to_data()})
        code = 5
    if code != 0:
        # Leave without the process group's teardown: after a failure or a stop its destructor can wait on
        # peers that are gone (seen with torch 1.13's gloo), and torchrun must see this exit code now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
