"""Quantization-aware training: fine-tune a calibrated, fake-quantized model so INT8 recovers what PTQ lost.

The recipe is pytorch-quantization's: start from the calibrated model, train about 10% of the original
schedule with the straight-through estimator (the TensorQuantizer's fake quantization already passes
gradients through where a value was not clipped), the learning rate starting at 1% of the original
initial one and following a cosine down to `min_lr_ratio` of that. With `learn_amax` every calibrated
quantizer's range becomes a trained parameter with LSQ's gradient (Esser et al. 2020), scaled by
1/sqrt(elements x qmax).

This module is the algorithm only: typed inputs, callbacks out, no files and no JSON. Checkpoint files
live in qat_checkpoint.py, the backend request in qat_run.py, the torchrun worker in qat_worker.py.
Everything here runs under torch 1.13 and 2.x, in one process or inside DistributedDataParallel (the
caller wraps the model and passes the collective operations through `Collectives`).
"""

from __future__ import annotations

import math
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

Inputs = Tuple[torch.Tensor, ...]
Batch = Tuple[Inputs, Optional[torch.Tensor]]
# (model, inputs, labels) -> scalar loss; the default is cross-entropy on the logits.
StepLoss = Callable[[nn.Module, Inputs, Optional[torch.Tensor]], torch.Tensor]

_LEARNED = "_qat_amax"  # the parameter learn_amax adds to a quantizer (never in a saved state_dict)
_MIN_AMAX = 2.0**-24


@dataclass(frozen=True)
class QatConfig:
    epochs: int = 1
    lr: float = 1e-4  # the starting learning rate: 1% of the original training's initial one
    min_lr_ratio: float = 0.01  # the cosine ends at this fraction of `lr`
    learn_amax: bool = False
    weight_decay: float = 0.0
    seed: int = 0


@dataclass
class TrainState:
    """Where training stands: enough to resume exactly (model weights with amax, optimizer, position)."""

    epoch: int  # epochs completed
    step_in_epoch: int  # steps of epoch `epoch` already taken (0 at an epoch boundary)
    global_step: int
    model_state: Dict[str, torch.Tensor]
    optimizer_state: Dict[str, Any]
    history: List[Dict[str, Any]] = field(default_factory=list)  # one entry per finished epoch


@dataclass(frozen=True)
class StepInfo:
    epoch: int  # 0-based
    step: int  # global step just taken, 1-based
    total_steps: int
    loss: float
    lr: float
    elapsed_s: float
    eta_s: Optional[float]


@dataclass(frozen=True)
class EpochInfo:
    epoch: int  # 1-based: epochs completed
    epochs: int
    loss: float  # mean training loss of the epoch (this process)
    accuracy: Optional[float]  # eval top-1 after the epoch, None without labelled eval data
    seconds: float


@dataclass
class Collectives:
    """The cross-process operations; the defaults are the single-process ones."""

    rank: int = 0
    world: int = 1
    all_sum: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    any_true: Callable[[bool], bool] = lambda flag: flag
    # every process's buffers (BN running statistics, amax) become rank 0's
    buffers_from_rank0: Callable[[nn.Module], None] = lambda module: None


@dataclass
class Hooks:
    on_step: Callable[[StepInfo], None] = lambda info: None
    on_epoch: Callable[[EpochInfo], None] = lambda info: None
    should_stop: Callable[[], bool] = lambda: False
    save: Callable[[TrainState], None] = lambda state: None  # called by rank 0 only


class Stopped(Exception):
    """Training stopped on request; `state` is what was saved (the step boundary it stopped at)."""

    def __init__(self, state: TrainState) -> None:
        super().__init__(f"stopped at epoch {state.epoch + 1}, step {state.global_step}")
        self.state = state


class StepFailed(Exception):
    """The loss step raised or gave a non-finite loss; nothing was saved from the failed step."""

    def __init__(self, epoch: int, step: int, cause: Optional[BaseException], loss: Optional[float] = None) -> None:
        what = f"loss {loss}" if cause is None else f"{type(cause).__name__}: {cause}"
        super().__init__(f"training step {step} (epoch {epoch + 1}) failed: {what}")
        self.epoch, self.step, self.cause, self.loss = epoch, step, cause, loss


# -- schedule ---------------------------------------------------------------------------------------------


def cosine_lr(config: QatConfig, step: int, total_steps: int) -> float:
    """Learning rate for 0-based `step`: cosine from `lr` down to `lr * min_lr_ratio` at the last step."""
    if total_steps <= 1:
        return config.lr
    progress = min(max(step / (total_steps - 1), 0.0), 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cross_entropy_step(model: nn.Module, inputs: Inputs, labels: Optional[torch.Tensor]) -> torch.Tensor:
    """The default loss for classifiers: cross-entropy of the (first) output against integer labels."""
    if labels is None:
        raise ValueError("the training batch has no labels; yield (inputs, labels) or set train-step")
    out = model(*inputs)
    logits = out[0] if isinstance(out, (tuple, list)) else out
    return nn.functional.cross_entropy(logits, labels.long())


# -- learned amax (LSQ) ------------------------------------------------------------------------------------


class _LsqFakeQuant(torch.autograd.Function):
    """Fake quantization whose scale gets LSQ's gradient; the input's gradient is straight-through."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, amax: torch.Tensor, axis: Optional[int], qmin: int, qmax: int) -> Any:
        shape = [1] * x.dim()
        if axis is not None:
            shape[axis] = -1
        scale = (amax.clamp(min=_MIN_AMAX) / qmax).reshape(shape if axis is not None else [])
        scaled = x / scale
        ctx.save_for_backward(scaled, scale)
        ctx.axis, ctx.qmin, ctx.qmax, ctx.amax_shape = axis, qmin, qmax, amax.shape
        return torch.clamp(torch.round(scaled), qmin, qmax) * scale

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        scaled, scale = ctx.saved_tensors
        qmin, qmax, axis = ctx.qmin, ctx.qmax, ctx.axis
        inside = (scaled >= qmin) & (scaled <= qmax)
        grad_x = grad * inside.to(grad.dtype)
        # d(out)/d(scale): round(v) - v inside the grid, the clipped bound outside it.
        local = torch.where(inside, torch.round(scaled) - scaled, torch.where(scaled < qmin, qmin, qmax).to(grad.dtype))
        per_scale = scaled.numel() if axis is None else scaled.numel() // scaled.shape[axis]
        factor = 1.0 / math.sqrt(per_scale * qmax)
        contrib = grad * local
        if axis is None:
            grad_scale = contrib.sum()
        else:
            dims = [d for d in range(contrib.dim()) if d != axis]
            grad_scale = contrib.sum(dim=dims) if dims else contrib
        grad_amax = (grad_scale * factor / qmax).reshape(ctx.amax_shape)
        return grad_x, grad_amax, None, None, None


def _lsq_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if self.calibrator is not None or not self.enabled or not x.is_floating_point():
        return self.__class__.forward(self, x)
    amax = getattr(self, _LEARNED)
    axis = None if self.axis is None else self.axis % x.dim()
    out = _LsqFakeQuant.apply(x.float(), amax, axis, int(self.quant_min), int(self.quant_max))
    return out.to(x.dtype)


def learnable(quantizer: nn.Module) -> bool:
    amax = getattr(quantizer, "amax", None)
    return bool(getattr(quantizer, "enabled", False)) and isinstance(amax, torch.Tensor) and amax.numel() > 0


def install_learned_amax(quantizers: Sequence[nn.Module]) -> List[nn.Parameter]:
    """Makes each calibrated, enabled quantizer's amax a parameter (its buffer keeps the value for export)."""
    params = []
    for q in quantizers:
        if not learnable(q) or hasattr(q, _LEARNED):
            continue
        amax: torch.Tensor = q.amax  # type: ignore[assignment]
        param = nn.Parameter(amax.detach().clone().float())
        q.register_parameter(_LEARNED, param)
        q.forward = types.MethodType(_lsq_forward, q)  # instance attribute: the class stays the user's
        params.append(param)
    return params


def sync_learned_amax(quantizers: Sequence[nn.Module]) -> None:
    """Copies learned ranges into the amax buffers (what state_dict, export and the checkpoint see)."""
    with torch.no_grad():
        for q in quantizers:
            param = getattr(q, _LEARNED, None)
            if param is not None:
                amax: torch.Tensor = q.amax  # type: ignore[assignment]
                amax.copy_(param.detach().clamp(min=_MIN_AMAX))


def remove_learned_amax(quantizers: Sequence[nn.Module]) -> None:
    sync_learned_amax(quantizers)
    for q in quantizers:
        if hasattr(q, _LEARNED):
            delattr(q, _LEARNED)
            if "forward" in vars(q):
                del q.forward


def model_state(model: nn.Module, quantizers: Sequence[nn.Module]) -> Dict[str, torch.Tensor]:
    """state_dict with the learned ranges folded into amax: loads into the quantized source as it is."""
    sync_learned_amax(quantizers)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not k.endswith(_LEARNED)}


# -- evaluation ---------------------------------------------------------------------------------------------


def count_correct(model: nn.Module, batches: Iterable[Batch]) -> Tuple[int, int]:
    """(correct top-1, labelled samples) over `batches`, in eval mode, without gradients."""
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        with torch.no_grad():
            for inputs, labels in batches:
                if labels is None:
                    continue
                out = model(*inputs)
                logits = out[0] if isinstance(out, (tuple, list)) else out
                correct += int((logits.argmax(dim=-1) == labels.to(logits.device)).sum())
                total += int(labels.numel())
    finally:
        model.train(was_training)
    return correct, total


def accuracy(
    model: nn.Module, batches: Callable[[], Iterable[Batch]], coll: Optional[Collectives] = None
) -> Optional[float]:
    """Top-1 over every process's share of the eval batches (batch i goes to process i % world)."""
    coll = coll or Collectives()
    shard = (b for i, b in enumerate(batches()) if i % coll.world == coll.rank)
    correct, total = count_correct(model, shard)
    both = coll.all_sum(torch.tensor([float(correct), float(total)], dtype=torch.float64))
    return None if both[1] == 0 else float(both[0] / both[1])


# -- training ---------------------------------------------------------------------------------------------


def _optimizer(model: nn.Module, config: QatConfig) -> torch.optim.Optimizer:
    weights = [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith(_LEARNED)]
    ranges = [p for n, p in model.named_parameters() if p.requires_grad and n.endswith(_LEARNED)]
    groups: List[Dict[str, Any]] = [{"params": weights, "weight_decay": config.weight_decay}]
    if ranges:
        groups.append({"params": ranges, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=config.lr)


def _shard(batches: Iterable[Batch], coll: Collectives, steps: int, skip: int) -> Iterator[Batch]:
    """This process's batches of one epoch: every world-th, `steps` of them, the first `skip` dropped."""
    taken = 0
    for i, batch in enumerate(batches):
        if i % coll.world != coll.rank:
            continue
        if taken >= steps:
            return
        taken += 1
        if taken > skip:
            yield batch


def steps_per_epoch(batch_count: int, world: int) -> int:
    """Every process takes the same number of steps (DDP would wait forever on a missing one)."""
    return batch_count // world


@dataclass
class _Run:
    model: nn.Module  # what forward runs (a DDP wrapper under torchrun)
    inner: nn.Module  # the quantized model itself (state_dict, eval)
    quantizers: Sequence[nn.Module]
    optimizer: torch.optim.Optimizer
    config: QatConfig
    total_steps: int
    coll: Collectives
    hooks: Hooks
    step_loss: StepLoss

    def snapshot(self, epoch: int, step_in_epoch: int, global_step: int, history: List[Dict[str, Any]]) -> TrainState:
        return TrainState(
            epoch=epoch,
            step_in_epoch=step_in_epoch,
            global_step=global_step,
            model_state=model_state(self.inner, self.quantizers),
            optimizer_state=self.optimizer.state_dict(),
            history=list(history),
        )

    def save(self, state: TrainState) -> None:
        if self.coll.rank == 0:
            self.hooks.save(state)


def fine_tune(
    model: nn.Module,
    inner: nn.Module,
    quantizers: Sequence[nn.Module],
    train_batches: Callable[[int], Iterable[Batch]],
    batches_per_epoch: int,
    step_loss: StepLoss,
    config: QatConfig,
    evaluate: Optional[Callable[[], Optional[float]]] = None,
    hooks: Optional[Hooks] = None,
    coll: Optional[Collectives] = None,
    resume: Optional[TrainState] = None,
) -> TrainState:
    """Fine-tunes `inner` (through `model`, its DDP wrapper or itself) and returns the final state.

    `train_batches(epoch)` yields that epoch's (inputs, labels) batches, the same sequence in every
    process; process r takes batches r, r + world, ... `quantizers` are inner's TensorQuantizers, already
    calibrated; with config.learn_amax they must already carry their learned parameters
    (install_learned_amax, before DDP wraps the model). `hooks.save` gets a state at every epoch end and
    when stopped. Raises Stopped (after saving) when hooks.should_stop() turns true in any process, and
    StepFailed (saving nothing) when a step raises or its loss is not finite.
    """
    hooks = hooks or Hooks()
    coll = coll or Collectives()
    steps = steps_per_epoch(batches_per_epoch, coll.world)
    if steps < 1:
        raise ValueError(f"{batches_per_epoch} training batches cannot give {coll.world} processes a step each")
    run = _Run(
        model, inner, quantizers, _optimizer(inner, config), config, steps * config.epochs, coll, hooks, step_loss
    )
    epoch, skip, global_step, history = 0, 0, 0, []
    if resume is not None:
        load_model_state(inner, resume.model_state)
        _reload_learned(quantizers)
        run.optimizer.load_state_dict(resume.optimizer_state)
        epoch, skip, global_step, history = resume.epoch, resume.step_in_epoch, resume.global_step, list(resume.history)
    torch.manual_seed(config.seed + epoch)
    started, done_here = time.monotonic(), 0
    while epoch < config.epochs:
        epoch_started = time.monotonic()
        losses: List[float] = []
        model.train()
        for inputs, labels in _shard(train_batches(epoch), coll, steps, skip):
            if coll.any_true(hooks.should_stop()):
                state = run.snapshot(epoch, skip + len(losses), global_step, history)
                run.save(state)
                raise Stopped(state)
            loss = _step(run, inputs, labels, epoch, global_step)
            global_step += 1
            done_here += 1
            losses.append(loss)
            elapsed = time.monotonic() - started
            eta = elapsed / done_here * (run.total_steps - global_step)
            lr = cosine_lr(config, global_step - 1, run.total_steps)
            hooks.on_step(StepInfo(epoch, global_step, run.total_steps, loss, lr, elapsed, eta))
        sync_learned_amax(quantizers)
        # DDP broadcasts buffers before each forward, so after the last step every process's BN statistics hold
        # its own last batch: evaluate (and go on from) rank 0's model, the one the checkpoint saves.
        coll.buffers_from_rank0(inner)
        acc = evaluate() if evaluate is not None else None
        mean = sum(losses) / len(losses) if losses else float("nan")
        seconds = time.monotonic() - epoch_started
        history.append({"epoch": epoch + 1, "loss": mean, "accuracy": acc, "seconds": round(seconds, 3)})
        hooks.on_epoch(EpochInfo(epoch + 1, config.epochs, mean, acc, seconds))
        epoch, skip = epoch + 1, 0
        torch.manual_seed(config.seed + epoch)
        run.save(run.snapshot(epoch, 0, global_step, history))
    model.eval()
    return run.snapshot(epoch, 0, global_step, history)


def _step(run: _Run, inputs: Inputs, labels: Optional[torch.Tensor], epoch: int, global_step: int) -> float:
    for group in run.optimizer.param_groups:
        group["lr"] = cosine_lr(run.config, global_step, run.total_steps)
    run.optimizer.zero_grad()
    try:
        loss = run.step_loss(run.model, inputs, labels)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError(f"the step returned {type(loss).__name__}, not a scalar loss tensor")
    except Exception as exc:  # noqa: BLE001 - the user's step
        raise StepFailed(epoch, global_step + 1, exc) from exc
    value = float(loss.detach())
    if not math.isfinite(value):
        raise StepFailed(epoch, global_step + 1, None, value)
    try:
        loss.backward()
    except Exception as exc:  # noqa: BLE001 - autograd through the user's model
        raise StepFailed(epoch, global_step + 1, exc) from exc
    run.optimizer.step()
    with torch.no_grad():
        for q in run.quantizers:
            param = getattr(q, _LEARNED, None)
            if param is not None:
                param.clamp_(min=_MIN_AMAX)
    return value


def load_model_state(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Strict, except for the learned-amax parameters (the state carries their values in amax)."""
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(_LEARNED)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"the saved state does not fit the model: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )


def _reload_learned(quantizers: Sequence[nn.Module]) -> None:
    """After load_state_dict wrote the amax buffers: the learned parameters take the loaded values."""
    with torch.no_grad():
        for q in quantizers:
            param = getattr(q, _LEARNED, None)
            if param is not None:
                amax: torch.Tensor = q.amax  # type: ignore[assignment]
                param.copy_(amax.detach().reshape(param.shape))
