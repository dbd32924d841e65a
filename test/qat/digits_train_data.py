"""train-data for the bundled digits examples (their data.py has calibration and eval data, no training
batches): the training split of the example's own `data.load_split()`, 64 images a batch, reshuffled
(seeded) on every call, so each QAT epoch sees its own order. Use it from the example's folder:

    npx qdq qat examples/digits-mobilenet --train-data ../../test/qat/digits_train_data.py:train_data
"""
import torch

from data import load_split

BATCH_SIZE = 64
_CALLS = [0]


def train_data():
    x_train, y_train, _, _ = load_split()
    generator = torch.Generator().manual_seed(1000 + _CALLS[0])
    _CALLS[0] += 1
    order = torch.randperm(len(x_train), generator=generator)
    for start in range(0, len(x_train), BATCH_SIZE):
        idx = order[start : start + BATCH_SIZE]
        yield x_train[idx], y_train[idx]
