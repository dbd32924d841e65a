"""The `qat` backend request: on the loaded, calibrated project, measure FP32 and PTQ, fine-tune, measure QAT.

One process runs the algorithm (qat.py) here, in the backend; `nproc` > 1 runs it under torchrun
(qat_launch.py, qat_worker.py) and loads the final checkpoint back into this process's model, so the
`export` request that follows exports the fine-tuned model either way. Accuracies are always measured
here, in one process, on every eval-data batch: the same figure whatever the process count.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, List, Mapping, Optional, Union

import torch

from . import knobs, qat, qat_checkpoint
from .errors import Cancelled, QdqError
from .loader import Project, _iterate_user, _resolve, _user_error, split_batch
from .protocol_types import LoadParams, QatEpoch, QatParams, QatResult
from .residual_fusion import target_form

Progress = Callable[[str, int, Optional[int], str], None]
MAX_EVAL_BATCHES = 1_000_000
STOP_FILE = "stop"


@dataclass(frozen=True)
class QatJob:
    """The `qat` request's params (protocol_types.QatParams) with defaults applied and ranges checked."""

    out_dir: str
    train_data: str
    train_step: Optional[str]
    config: qat.QatConfig
    nproc: int
    resume: bool
    load: Optional[LoadParams]  # the `load` request's params: what each torchrun worker loads
    torchrun_args: List[str]
    target: Optional[str] = None  # the export's graph form, trained and measured (residual_fusion.target_form)


def _in_range(key: str, value: Optional[float], default: float, lo: float, hi: float, hint: str) -> float:
    value = default if value is None else value
    if not lo < value <= hi:
        raise QdqError("config", f"{key} = {value!r} is out of range", hint)
    return float(value)


def parse_params(params: Union[QatParams, Mapping[str, Any]]) -> QatJob:
    """Typed params (a mapping is checked against the schema first: the torchrun workers' spec file) to a QatJob."""
    if not isinstance(params, QatParams):
        params = QatParams.from_json(params)
    if not params.train_data:
        raise QdqError(
            "config",
            "QAT needs training data: train-data is not set",
            'add train-data = "data.py:train_data" to [tool.qdq], a function yielding (inputs, labels) batches',
        )
    epochs = _in_range(
        "epochs", params.epochs, 1, 0, 10_000, "set epochs to a positive integer (about 10% of the training)"
    )
    lr = _in_range("lr", params.lr, 1e-4, 0, 10, "set lr to about 1% of the original initial learning rate, e.g. 1e-4")
    nproc = params.nproc or 1
    if nproc < 1:
        raise QdqError("config", f"nproc = {nproc!r} is not a positive integer", "pass --nproc 2 (processes per node)")
    if nproc > 1 and (params.load is None or not params.load.model):
        raise QdqError("config", "qat with nproc > 1 needs the load params", "this is a client bug")
    return QatJob(
        out_dir=params.out_dir or knobs.OUT_DIR_DEFAULT,
        train_data=params.train_data,
        train_step=params.train_step or None,
        config=qat.QatConfig(epochs=int(epochs), lr=lr, learn_amax=bool(params.learn_amax)),
        nproc=nproc,
        resume=bool(params.resume),
        load=params.load,
        torchrun_args=list(params.torchrun_args or []),
        target=params.target,
    )


# -- the user's data and step ------------------------------------------------------------------------------


@dataclass
class UserTraining:
    batches: Callable[[int], Iterable[qat.Batch]]
    count: int
    step_loss: qat.StepLoss


def user_training(project: Project, p: QatJob) -> UserTraining:
    """Resolves train-data (and train-step); counts the batches of one epoch."""
    override = p.load.model_source_override if p.load is not None else None
    source, _ = _resolve(p.train_data, "train-data", project.project_dir, override, project.user_roots)
    n_inputs = len(project.example_inputs)
    raw = p.train_step is not None

    def batches(epoch: int) -> Iterable[qat.Batch]:
        for index, batch in enumerate(_iterate_user(source, p.train_data, project)):
            if raw:
                yield (batch,), None  # the user's step gets the batch as train-data yielded it
            else:
                yield split_batch(batch, n_inputs, p.train_data, index)

    count = sum(1 for _ in batches(0))
    if count == 0:
        raise QdqError("no_data", f"train-data {p.train_data} yielded no batches", "make it yield at least one batch")
    if p.train_step is None:
        first = next(iter(batches(0)))
        if first[1] is None:
            raise QdqError(
                "config",
                f"train-data {p.train_data} yields no labels, so the default cross-entropy step cannot train on it",
                'yield (inputs, labels) batches, or set train-step = "file.py:fn" (fn(model, batch) -> loss)',
            )
        return UserTraining(batches, count, qat.cross_entropy_step)
    user_step, _ = _resolve(p.train_step, "train-step", project.project_dir, override, project.user_roots)
    return UserTraining(batches, count, lambda model, inputs, labels: user_step(model, inputs[0]))


def eval_batches(project: Project) -> Callable[[], Iterable[qat.Batch]]:
    return lambda: project.eval_batches(MAX_EVAL_BATCHES)


def quantizer_modules(project: Project) -> List[torch.nn.Module]:
    return [q.module for q in project.quantizers]


def measure(project: Project, quantized: bool) -> Optional[float]:
    """Top-1 on eval-data with the quantizers on (as calibrated/trained) or all off (FP32)."""
    if project.eval_source is None:
        return None
    saved = [(m, m.enabled) for m in quantizer_modules(project)]
    try:
        if not quantized:
            for m, _ in saved:
                setattr(m, "enabled", False)  # noqa: B010 - a TensorQuantizer flag, not a typed nn.Module field
        return qat.accuracy(project.model, eval_batches(project))
    except QdqError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's model or data
        raise _user_error(exc, "evaluating on eval-data raised", project.user_roots) from None
    finally:
        for m, enabled in saved:
            m.enabled = enabled


def eval_samples(project: Project) -> int:
    if project.eval_source is None:
        return 0
    return sum(int(labels.numel()) for _, labels in project.eval_batches(MAX_EVAL_BATCHES) if labels is not None)


# -- messages ----------------------------------------------------------------------------------------------


def stopped_error(state: qat.TrainState, total_steps: int, checkpoint: str) -> QdqError:
    err = Cancelled("QAT")
    err.message = (
        f"QAT cancelled at step {state.global_step} of {total_steps} (epoch {state.epoch + 1}); "
        f"the checkpoint {checkpoint} holds that step"
    )
    err.hint = "run qdq qat --resume to continue from it"
    return err


def step_error(exc: qat.StepFailed, project: Project, checkpoint: str, last_step: int) -> QdqError:
    kept = f"the last checkpoint ({checkpoint}, step {last_step}) is kept"
    if exc.cause is None:
        return QdqError(
            "nan",
            f"QAT step {exc.step} (epoch {exc.epoch + 1}) gave a non-finite loss ({exc.loss}); {kept}",
            "lower lr (QAT starts at about 1% of the training's initial learning rate), then qdq qat --resume",
        )
    inner = _user_error(
        exc.cause, f"the training step raised on step {exc.step} (epoch {exc.epoch + 1})", project.user_roots
    )
    return QdqError(
        "user_code",
        f"{inner.message}; {kept}",
        "fix train-step / train-data (traceback in detail), then qdq qat --resume",
        detail=inner.detail,
    )


def progress_hooks(
    progress: Progress, cancelled: Callable[[], bool], save: Callable[[qat.TrainState], None]
) -> qat.Hooks:
    def on_step(info: qat.StepInfo) -> None:
        eta = f", ETA {info.eta_s:.0f} s" if info.eta_s is not None else ""
        progress(
            "qat",
            info.step,
            info.total_steps,
            f"epoch {info.epoch + 1} step {info.step}/{info.total_steps} loss {info.loss:.4f} lr {info.lr:.2e}{eta}",
        )

    def on_epoch(info: qat.EpochInfo) -> None:
        acc = f", eval top-1 {info.accuracy:.4f}" if info.accuracy is not None else ""
        progress("qat_epoch", info.epoch, info.epochs, f"epoch {info.epoch}/{info.epochs} loss {info.loss:.4f}{acc}")

    return qat.Hooks(on_step=on_step, on_epoch=on_epoch, should_stop=cancelled, save=save)


# -- the request ---------------------------------------------------------------------------------------------


def _start(project: Project, p: QatJob, directory: str, progress: Progress) -> qat_checkpoint.Checkpoint:
    """The checkpoint to train from: the last one (resume), or the calibrated model as step 0."""
    path = os.path.join(directory, qat_checkpoint.CHECKPOINT)
    if p.resume:
        try:
            ckpt = qat_checkpoint.load(path)
        except FileNotFoundError:
            raise QdqError(
                "config", f"nothing to resume: {path} does not exist", "run qdq qat without --resume"
            ) from None
        except ValueError as exc:
            raise QdqError("config", str(exc), "delete it and run qdq qat without --resume") from None
        saved = ckpt.meta.get("config") or {}
        if saved != asdict(p.config):
            raise QdqError(
                "config",
                f"the checkpoint was trained with {saved}, this run asks for {asdict(p.config)}",
                "resume with the same epochs / lr / learn-amax, or run without --resume to start over",
            )
        processes = ckpt.meta.get("processes", 1)
        if ckpt.state.global_step and processes != p.nproc:
            raise QdqError(
                "config",
                f"the checkpoint is from a run on {processes} process(es), this run asks for {p.nproc}",
                f"resume with --nproc {processes} (the schedule counts steps per process), or start over",
            )
        qat.load_model_state(project.model, ckpt.state.model_state)
        progress("qat", ckpt.state.global_step, None, f"resuming from step {ckpt.state.global_step}")
        return ckpt
    if any(q.module.amax is None for q in project.quantizers if q.role == "weight" and q.module.enabled):
        raise QdqError("config", "qat before calibrate", "calibrate first (this is a client bug)")
    progress("qat", 0, None, "measuring FP32 and PTQ top-1 on eval-data")
    meta = {
        "fp32": measure(project, quantized=False),
        "ptq": measure(project, quantized=True),
        "eval_samples": eval_samples(project),
        "config": asdict(p.config),
        "processes": p.nproc,
        "model": project.factory,
    }
    state = qat.TrainState(0, 0, 0, qat.model_state(project.model, quantizer_modules(project)), {}, [])
    qat_checkpoint.keep_previous(directory)
    qat_checkpoint.save(path, state, meta)
    return qat_checkpoint.Checkpoint(state, meta)


def run_qat(
    project: Project, params: Union[QatParams, Mapping[str, Any]], progress: Progress, cancelled: Callable[[], bool]
) -> QatResult:
    from .artifacts import prepare_out_dir  # noqa: WPS433

    p = parse_params(params)
    out_dir = prepare_out_dir(p.out_dir)
    directory = os.path.join(out_dir, "qat")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, qat_checkpoint.CHECKPOINT)
    started = time.monotonic()
    training = user_training(project, p)
    # PTQ, training and QAT all in the graph form the target exports (the export then leaves off the same ones)
    with target_form(project, p.target):
        start = _start(project, p, directory, progress)
        measured = time.monotonic() - started
        trained_at = time.monotonic()
        if p.nproc == 1:
            final = _train_here(project, p, training, start, path, progress, cancelled)
        else:
            from . import qat_launch  # noqa: WPS433

            final = qat_launch.train_distributed(project, p, start, directory, progress, cancelled)
        train_seconds = time.monotonic() - trained_at
        qat.load_model_state(project.model, final.model_state)
        project.model.eval()
        qat_top1 = measure(project, quantized=True)
    result: QatResult = {
        "fp32": start.meta.get("fp32"),
        "ptq": start.meta.get("ptq"),
        "qat": qat_top1,
        "eval_samples": start.meta.get("eval_samples"),
        "epochs": p.config.epochs,
        "lr": p.config.lr,
        "learn_amax": p.config.learn_amax,
        "processes": p.nproc,
        "steps": final.global_step,
        "train_batches": training.count,
        "resumed_from_step": start.state.global_step if p.resume else None,
        "history": [_epoch(entry) for entry in final.history],
        "checkpoint": path,
        "seconds": {
            "measure_ptq": round(measured, 3),
            "train": round(train_seconds, 3),
            "total": round(time.monotonic() - started, 3),
        },
    }
    return result


def _epoch(entry: Mapping[str, Any]) -> QatEpoch:
    """One history entry of qat.fine_tune, as the schema's QatEpoch."""
    accuracy = entry.get("accuracy")
    return {
        "epoch": int(entry["epoch"]),
        "loss": float(entry["loss"]),
        "accuracy": None if accuracy is None else float(accuracy),
        "seconds": float(entry["seconds"]),
    }


def _train_here(
    project: Project,
    p: QatJob,
    training: UserTraining,
    start: qat_checkpoint.Checkpoint,
    path: str,
    progress: Progress,
    cancelled: Callable[[], bool],
) -> qat.TrainState:
    quantizers = quantizer_modules(project)
    last = [start.state.global_step]

    def save(state: qat.TrainState) -> None:
        qat_checkpoint.save(path, state, start.meta)
        last[0] = state.global_step

    if p.config.learn_amax:
        qat.install_learned_amax(quantizers)
    total = qat.steps_per_epoch(training.count, 1) * p.config.epochs
    try:
        return qat.fine_tune(
            project.model,
            project.model,
            quantizers,
            training.batches,
            training.count,
            training.step_loss,
            p.config,
            evaluate=(lambda: measure(project, True)) if project.eval_source is not None else None,
            hooks=progress_hooks(progress, cancelled, save),
            resume=start.state if start.state.global_step else None,
        )
    except qat.Stopped as stop:
        raise stopped_error(stop.state, total, path) from None
    except qat.StepFailed as exc:
        raise step_error(exc, project, path, last[0]) from None
    finally:
        qat.remove_learned_amax(quantizers)
