"""Inputs for the bench encoder: seeded random embeddings [1, 128, 768], LayerNorm-like scale."""
import torch

SEQ = 128
HIDDEN = 768


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, SEQ, HIDDEN, generator=g)


def calibration_data():
    for i in range(8):
        yield _batch(1000 + i)


def example_inputs():
    return _batch(0)
