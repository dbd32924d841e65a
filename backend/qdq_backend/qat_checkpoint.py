"""QAT checkpoints on disk: weights + amax + optimizer + position, written atomically.

A checkpoint is one torch.save'd dict of tensors and plain values (loadable with weights_only=True):
`model` is the quantized model's state_dict with every calibrated (or learned) amax in it, so it loads
strictly into the quantized source, and into a fresh FP32 model once its layers went through
qdq_quant.quant() (quantizers the source adds for functional ops, such as a residual add's, have no
counterpart there: `load_into` lists them instead of failing).
"""

from __future__ import annotations

import inspect
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from .qat import TrainState

FORMAT = "qdq-qat-checkpoint"
VERSION = 1
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.previous.pt"


@dataclass
class Checkpoint:
    state: TrainState
    meta: Dict[str, Any]  # fp32/ptq accuracy, config, processes: what a resumed run reports


def _torch_load(path: str) -> Any:
    kwargs: Dict[str, Any] = {"map_location": "cpu"}
    # torch 1.13's weights_only unpickler rejects plain floats (BINFLOAT); it reads our own out-dir file there.
    if "weights_only" in inspect.signature(torch.load).parameters and not torch.__version__.startswith("1."):
        kwargs["weights_only"] = True
    return torch.load(path, **kwargs)


def save(path: str, state: TrainState, meta: Dict[str, Any]) -> None:
    """Writes to a temporary file beside `path`, then renames: a crash or kill never leaves half a file."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "model": state.model_state,
        "optimizer": state.optimizer_state,
        "epoch": state.epoch,
        "step_in_epoch": state.step_in_epoch,
        "global_step": state.global_step,
        "history": state.history,
        "meta": meta,
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(path: str) -> Checkpoint:
    """Reads a checkpoint; ValueError names what is wrong with a file that is not one."""
    try:
        document = _torch_load(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise ValueError(f"{path} is not a readable QAT checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a qdq QAT checkpoint")
    if document.get("version") != VERSION:
        raise ValueError(f"{path} is a version {document.get('version')} checkpoint; this qdq reads {VERSION}")
    state = TrainState(
        epoch=int(document["epoch"]),
        step_in_epoch=int(document["step_in_epoch"]),
        global_step=int(document["global_step"]),
        model_state=document["model"],
        optimizer_state=document["optimizer"],
        history=list(document.get("history") or []),
    )
    return Checkpoint(state, dict(document.get("meta") or {}))


@dataclass
class LoadReport:
    loaded: int  # state entries applied
    not_in_model: List[str]  # checkpoint entries the model has no place for (functional-op quantizers)
    not_in_checkpoint: List[str]  # model entries the checkpoint does not set


def load_into(model: nn.Module, path_or_state: Any, strict: bool = False) -> LoadReport:
    """Loads a checkpoint's weights and amax into `model` (the quantized source, or quant()'ed FP32 model)."""
    state: Optional[Dict[str, torch.Tensor]]
    if isinstance(path_or_state, dict):
        state = path_or_state
    else:
        state = load(str(path_or_state)).state.model_state
    result = model.load_state_dict(state, strict=strict)
    return LoadReport(
        loaded=len(state) - len(result.unexpected_keys),
        not_in_model=list(result.unexpected_keys),
        not_in_checkpoint=list(result.missing_keys),
    )


def keep_previous(directory: str) -> Optional[str]:
    """Before a fresh (not resumed) run: the earlier checkpoint moves aside instead of being overwritten."""
    path = os.path.join(directory, CHECKPOINT)
    if not os.path.exists(path):
        return None
    previous = os.path.join(directory, PREVIOUS)
    os.replace(path, previous)
    return previous


def write_text_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
