"""A model module inside a package."""
from __future__ import annotations

import torch.nn as nn

from .config import ModelConfig


class Head(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.hidden, cfg.classes)

    def forward(self, x):
        return self.fc(x)
