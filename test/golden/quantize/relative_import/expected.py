"""A model module inside a package."""
from __future__ import annotations

import torch.nn as nn

from .config import ModelConfig
from . import qdq_quant  # qdq


class Head(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = qdq_quant.quant(nn.Linear(cfg.hidden, cfg.classes))

    def forward(self, x):
        return self.fc(x)
