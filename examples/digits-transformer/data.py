"""Data for the digits transformer: scikit-learn's bundled 8x8 handwritten digits (no download).

The split is fixed (seeded), so training, calibration and evaluation always see the same images.
"""
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

BATCH_SIZE = 32
SPLIT_SEED = 0


def load_split():
    """(x_train, y_train, x_test, y_test): images as float32 [N, 8, 8] (8 rows = 8 tokens of 8 pixels) scaled to [0, 1], labels int64."""
    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.2, random_state=SPLIT_SEED, stratify=labels)
    return (torch.from_numpy(x_train), torch.from_numpy(y_train),
            torch.from_numpy(x_test), torch.from_numpy(y_test))


def calibration_data():
    """Batches of training images (no labels): what calibration runs through the model."""
    x_train, _, _, _ = load_split()
    for start in range(0, len(x_train), BATCH_SIZE):
        yield x_train[start:start + BATCH_SIZE]


def eval_data():
    """(inputs, labels) batches from the held-out split, for FP32 vs INT8 accuracy."""
    _, _, x_test, y_test = load_split()
    for start in range(0, len(x_test), BATCH_SIZE):
        yield x_test[start:start + BATCH_SIZE], y_test[start:start + BATCH_SIZE]


def example_inputs():
    """One input batch with the shape the model takes, for tracing and export."""
    _, _, x_test, _ = load_split()
    return x_test[:1]


TRAIN_BATCH_SIZE = 64
_TRAIN_CALLS = [0]


def train_data():
    """(inputs, labels) batches of the training split for `qdq qat`, reshuffled on every call (seeded by the call's
    number), so each fine-tuning epoch sees its own order and every torch.distributed process the same one."""
    x_train, y_train, _, _ = load_split()
    generator = torch.Generator().manual_seed(1000 + _TRAIN_CALLS[0])
    _TRAIN_CALLS[0] += 1
    order = torch.randperm(len(x_train), generator=generator)
    for start in range(0, len(x_train), TRAIN_BATCH_SIZE):
        idx = order[start:start + TRAIN_BATCH_SIZE]
        yield x_train[idx], y_train[idx]
