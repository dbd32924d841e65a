"""Runs QAT under torchrun (`python -m torch.distributed.run`) from the backend and follows it.

The backend writes the run's spec beside the checkpoint, starts torchrun (no shell, its own process
group) with `qdq_backend.qat_worker`, and reads the workers' stdout: lines starting with EVENT_PREFIX
are progress / result events from rank 0 or an error from any rank, the rest is the user's output and
goes to the log. Cancel creates the stop file; rank 0 sees it between steps, every process stops at the
same step and rank 0 saves that step before they exit. Single node: `--standalone`; several nodes: the
client passes torchrun's rendezvous flags (docs/qat.md), and rank 0's node writes the checkpoint.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from typing import Any, Callable, Deque, Dict, List, Optional

from . import qat, qat_checkpoint
from .errors import QdqError
from .loader import Project
from .protocol import to_json

EVENT_PREFIX = "@qdq-qat "
SPEC_FILE = "spec.json"
STOP_GRACE_S = 60.0
# After rank 0 reported "done" (every epoch saved), how long torchrun gets to exit before it is ended: a process
# can hang in its shutdown (seen once with torch 1.13 under gloo on an overloaded machine), and the work is done.
DONE_GRACE_S = 30.0
_BACKEND_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker_spec(p: Any, directory: str) -> Dict[str, Any]:
    """The spec file each torchrun process reads: its `load` and `qat` parts in the protocol's JSON form."""
    load = to_json(p.load)
    return {
        "load": load,
        "qat": {
            "out_dir": p.out_dir,
            "train_data": p.train_data,
            "train_step": p.train_step,
            "epochs": p.config.epochs,
            "lr": p.config.lr,
            "learn_amax": p.config.learn_amax,
            "nproc": p.nproc,
            "load": load,
            "target": p.target,
        },
        "config": asdict(p.config),
        "checkpoint": os.path.join(directory, qat_checkpoint.CHECKPOINT),
        "stop_file": os.path.join(directory, "stop"),
    }


def command(nproc: int, torchrun_args: List[str], spec_path: str) -> List[str]:
    rendezvous = torchrun_args or ["--standalone"]
    return [
        sys.executable,
        "-m",
        "qdq_backend.qat_torchrun",  # torchrun, with a fix for torch 1.13 on Python 3.11
        f"--nproc_per_node={nproc}",
        *rendezvous,
        "-m",
        "qdq_backend.qat_worker",
        spec_path,
    ]


def _pump(stream: Any, sink: "queue.Queue[Optional[Dict[str, Any]]]", tail: Deque[str], events: bool) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        if events and line.startswith(EVENT_PREFIX):
            try:
                sink.put(json.loads(line[len(EVENT_PREFIX) :]))
                continue
            except ValueError:
                pass
        tail.append(line)
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
    if events:
        sink.put(None)


def train_distributed(
    project: Project,
    p: Any,
    start: qat_checkpoint.Checkpoint,
    directory: str,
    progress: Callable[[str, int, Optional[int], str], None],
    cancelled: Callable[[], bool],
) -> qat.TrainState:
    from .qat_run import stopped_error  # noqa: WPS433 - one home for the message

    spec = worker_spec(p, directory)
    spec_path = os.path.join(directory, SPEC_FILE)
    qat_checkpoint.write_text_atomic(spec_path, json.dumps(spec, indent=1))
    if os.path.exists(spec["stop_file"]):
        os.unlink(spec["stop_file"])
    env = dict(os.environ)
    env["PYTHONPATH"] = _BACKEND_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    argv = command(p.nproc, p.torchrun_args, spec_path)
    progress("qat", start.state.global_step, None, f"starting {p.nproc} processes under torchrun")
    proc = subprocess.Popen(
        argv,
        cwd=project.project_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    events: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
    tail: Deque[str] = collections.deque(maxlen=40)
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, events, tail, True), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, events, tail, False), daemon=True),
    ]
    for r in readers:
        r.start()
    outcome = _follow(proc, events, spec["stop_file"], progress, cancelled)
    for r in readers:
        r.join(timeout=5)
    code = proc.wait()
    if outcome.get("event") == "stopped":
        state = qat_checkpoint.load(spec["checkpoint"]).state
        raise stopped_error(state, int(outcome.get("total_steps") or 0), spec["checkpoint"])
    if outcome.get("event") == "error":
        err = outcome.get("error") or {}
        raise QdqError(
            err.get("kind", "internal"),
            err.get("message", "a QAT process failed"),
            err.get("hint", ""),
            err.get("detail"),
        )
    if outcome.get("event") == "killed":
        raise QdqError(
            "cancelled",
            f"QAT cancelled; the processes did not stop within {STOP_GRACE_S:.0f} s and were killed; "
            f"the checkpoint {spec['checkpoint']} holds the last finished epoch",
            "run qdq qat --resume to continue from it",
        )
    if outcome.get("event") != "done" or (code != 0 and not outcome.get("ended_after_done")):
        last = "\n".join(list(tail)[-12:])
        raise QdqError(
            "internal",
            f"torchrun exited with code {code} before QAT finished; the last checkpoint is kept",
            "see the log above (the last lines are in detail); qdq qat --resume continues from the checkpoint",
            detail=last,
        )
    return qat_checkpoint.load(spec["checkpoint"]).state


def _follow(
    proc: "subprocess.Popen[bytes]",
    events: "queue.Queue[Optional[Dict[str, Any]]]",
    stop_file: str,
    progress: Callable[[str, int, Optional[int], str], None],
    cancelled: Callable[[], bool],
) -> Dict[str, Any]:
    """Relays events until the workers finish; returns the last outcome event."""
    outcome: Dict[str, Any] = {}
    stop_asked: Optional[float] = None
    failed_at: Optional[float] = None
    done_at: Optional[float] = None
    while True:
        if stop_asked is None and cancelled():
            qat_checkpoint.write_text_atomic(stop_file, "stop\n")
            stop_asked = time.monotonic()
        if stop_asked is not None and time.monotonic() - stop_asked > STOP_GRACE_S and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            return {"event": "killed"}
        if failed_at is not None and time.monotonic() - failed_at > STOP_GRACE_S and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # a process failed and the others wait on it forever
            return outcome
        if done_at is not None and time.monotonic() - done_at > DONE_GRACE_S and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # finished and saved, but a process does not exit
            return {**outcome, "ended_after_done": True}
        try:
            event = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if event is None:
            return outcome
        kind = event.get("event")
        if kind == "progress":
            progress(event["step"], event["done"], event.get("total"), event["message"])
        elif kind in ("done", "stopped", "error") and outcome.get("event") != "error":
            outcome = event
            if kind == "error":
                failed_at = time.monotonic()
            if kind == "done":
                done_at = time.monotonic()
