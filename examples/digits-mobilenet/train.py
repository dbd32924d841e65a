"""Train the digits MobileNet on the training split and write weights.pt (atomically). Seeded; about 10-30 s on 2 cores.

Usage: python3 train.py [OUT]      (OUT defaults to weights.pt next to this file)
Works with torch 1.13 and 2.x.
"""
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from data import load_split
from model import DigitsMobileNet

SEED = 0
EPOCHS = 12
BATCH_SIZE = 64
LEARNING_RATE = 3e-3


def accuracy(model, inputs, labels):
    model.eval()
    with torch.no_grad():
        return (model(inputs).argmax(dim=1) == labels).float().mean().item()


def train(out_path=None, verbose=True):
    out_path = Path(out_path) if out_path else Path(__file__).resolve().with_name("weights.pt")
    torch.manual_seed(SEED)
    x_train, y_train, x_test, y_test = load_split()
    model = DigitsMobileNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    steps_per_epoch = (len(x_train) + BATCH_SIZE - 1) // BATCH_SIZE
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE,
                                                    total_steps=EPOCHS * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(x_train), BATCH_SIZE):
            idx = order[start:start + BATCH_SIZE]
            # Small random shifts (one pixel) make the model robust to where the digit sits in the 8x8 frame.
            shift = torch.randint(-1, 2, (2,), generator=generator).tolist()
            batch = torch.roll(x_train[idx], shifts=shift, dims=(2, 3))
            optimizer.zero_grad()
            loss = loss_fn(model(batch), y_train[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
        if verbose:
            print(f"epoch {epoch + 1}/{EPOCHS}  loss {loss.item():.4f}  "
                  f"test accuracy {accuracy(model, x_test, y_test):.4f}", file=sys.stderr)
    model.eval()
    # Write to a temporary file in the same folder, then rename: a crash never leaves a half-written weights.pt.
    fd, tmp = tempfile.mkstemp(prefix=".weights-", suffix=".pt.tmp", dir=str(out_path.parent))
    try:
        # Saving through a file object (not the temporary path) keeps the archive's inner names fixed,
        # so the same seed writes the same bytes.
        with os.fdopen(fd, "wb") as f:
            torch.save(model.state_dict(), f)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; weights.pt is an ordinary project file
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return accuracy(model, x_test, y_test)


if __name__ == "__main__":
    acc = train(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"test accuracy {acc:.4f}")
