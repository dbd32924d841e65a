"""The QAT algorithm (qdq_backend.qat): schedule, LSQ gradient, fine-tuning, stop/resume, failing steps."""

import math

import pytest
import torch
from qdq_backend import qat, qdq_quant
from torch import nn


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _batches(x, y, size=64):
    return [((x[i : i + size],), y[i : i + size]) for i in range(0, len(x), size)]


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = qdq_quant.quant(nn.Linear(64, 48))
        self.fc2 = qdq_quant.quant(nn.Linear(48, 10))

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def _quantizers(model):
    return [m for m in model.modules() if isinstance(m, qdq_quant.TensorQuantizer)]


def _trained(bits):
    """A float-trained MLP, then calibrated with `bits`-bit quantizers (max ranges)."""
    torch.manual_seed(0)
    xt, yt, xe, ye = _digits()
    model = Mlp()
    for q in _quantizers(model):
        q.enabled = False
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(8):
        for (inputs,), labels in _batches(xt, yt):
            opt.zero_grad()
            nn.functional.cross_entropy(model(inputs), labels).backward()
            opt.step()
    for layer in (model.fc1, model.fc2):
        layer.weight_quantizer.num_bits = bits
        layer.input_quantizer.num_bits = bits
        layer.weight_quantizer.set_amax(layer.weight.detach().abs().amax(dim=1))
        layer.weight_quantizer.enabled = True
        layer.input_quantizer.enabled = True
    model.fc1.input_quantizer.set_amax(xt.abs().max())
    model.fc2.input_quantizer.set_amax(torch.relu(model.fc1(xt)).abs().max().detach())
    return model, (xt, yt, xe, ye)


def _tune(model, data, config, **kw):
    xt, yt, xe, ye = data
    train = _batches(xt, yt)
    return qat.fine_tune(
        model,
        model,
        _quantizers(model),
        lambda epoch: train,
        len(train),
        kw.pop("step_loss", qat.cross_entropy_step),
        config,
        evaluate=lambda: qat.accuracy(model, lambda: _batches(xe, ye)),
        **kw,
    )


def test_cosine_schedule_starts_at_lr_and_ends_at_one_percent():
    config = qat.QatConfig(lr=1e-3)
    lrs = [qat.cosine_lr(config, s, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-5)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_lsq_forward_matches_the_quantizer_and_gradients_are_lsq():
    torch.manual_seed(0)
    for axis, amax in ((None, torch.tensor(1.5)), (0, torch.tensor([0.5, 1.0, 2.0]))):
        q = qdq_quant.TensorQuantizer(axis=axis)
        q.set_amax(amax)
        x = torch.randn(3, 40) * 1.2
        expected = q(x)
        (param,) = qat.install_learned_amax([q])
        xg = x.clone().requires_grad_(True)
        out = q(xg)
        assert torch.allclose(out, expected, atol=1e-6)
        grad = torch.randn_like(out)
        out.backward(grad)
        scale = (amax / 127).reshape(-1, 1) if axis == 0 else amax / 127
        v = x / scale
        inside = (v >= -128) & (v <= 127)
        assert torch.equal(xg.grad, grad * inside)
        local = torch.where(inside, torch.round(v) - v, torch.where(v < -128, -128.0, 127.0))
        per = x.numel() if axis is None else x.shape[1]
        g = (grad * local).sum() if axis is None else (grad * local).sum(dim=1)
        assert torch.allclose(param.grad, g / math.sqrt(per * 127) / 127, atol=1e-6)
        qat.remove_learned_amax([q])
        assert "_qat_amax" not in dict(q.named_parameters()) and "forward" not in vars(q)


def test_fine_tune_recovers_low_bit_accuracy():
    model, data = _trained(bits=3)  # 3 bits: PTQ loses about 5 points on this MLP
    xe, ye = data[2], data[3]
    ptq = qat.accuracy(model, lambda: _batches(xe, ye))
    state = _tune(model, data, qat.QatConfig(epochs=3, lr=2e-3))
    tuned = qat.accuracy(model, lambda: _batches(xe, ye))
    assert tuned > ptq + 0.01, (ptq, tuned)
    assert [h["epoch"] for h in state.history] == [1, 2, 3]
    assert state.history[-1]["accuracy"] == pytest.approx(tuned)


def test_learned_amax_moves_and_the_state_loads_into_a_fresh_quantized_model():
    model, data = _trained(bits=4)
    before = [q.amax.clone() for q in _quantizers(model) if q.amax is not None]
    qat.install_learned_amax(_quantizers(model))
    state = _tune(model, data, qat.QatConfig(epochs=1, lr=5e-3, learn_amax=True))
    after = [q.amax for q in _quantizers(model) if q.amax is not None]
    assert any(not torch.allclose(a, b) for a, b in zip(before, after))
    assert not any(k.endswith("_qat_amax") for k in state.model_state)
    fresh = Mlp()
    fresh.load_state_dict(state.model_state, strict=True)
    qat.remove_learned_amax(_quantizers(model))
    for q in _quantizers(fresh):
        if q.amax is not None:
            q.num_bits = 4
    xe = data[2]
    assert torch.allclose(fresh(xe), model(xe), atol=1e-5)


def test_stop_saves_and_resume_gives_the_uninterrupted_result():
    config = qat.QatConfig(epochs=2, lr=2e-3)
    model, data = _trained(bits=4)
    full = _tune(model, data, config)

    model, data = _trained(bits=4)
    saved = []
    calls = [0]

    def stop():
        calls[0] += 1
        return calls[0] == 30  # inside the second epoch (22 steps an epoch)

    with pytest.raises(qat.Stopped) as info:
        _tune(model, data, config, hooks=qat.Hooks(should_stop=stop, save=saved.append))
    assert [s.global_step for s in saved] == [22, 29]
    assert info.value.state.epoch == 1 and info.value.state.step_in_epoch == 7

    model, data = _trained(bits=4)
    resumed = _tune(model, data, config, resume=saved[-1])
    assert resumed.global_step == full.global_step == 44
    for key, value in full.model_state.items():
        assert torch.allclose(value.float(), resumed.model_state[key].float(), atol=1e-5), key


def test_a_failing_step_raises_and_saves_nothing_from_it():
    model, data = _trained(bits=8)
    saved = []
    count = [0]

    def step(m, inputs, labels):
        count[0] += 1
        if count[0] == 25:
            raise RuntimeError("bad batch")
        return qat.cross_entropy_step(m, inputs, labels)

    with pytest.raises(qat.StepFailed) as info:
        _tune(model, data, qat.QatConfig(epochs=2), step_loss=step, hooks=qat.Hooks(save=saved.append))
    assert info.value.step == 25 and "bad batch" in str(info.value)
    assert [s.global_step for s in saved] == [22]  # the epoch-1 checkpoint, nothing after


def test_a_non_finite_loss_is_a_failed_step():
    model, data = _trained(bits=8)
    with pytest.raises(qat.StepFailed) as info:
        _tune(model, data, qat.QatConfig(), step_loss=lambda m, inputs, labels: m(*inputs).sum() * float("nan"))
    assert info.value.step == 1 and info.value.cause is None
