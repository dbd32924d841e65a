import torch
from torch.nn import Module


class ScaledDot(Module):
    """Attention scores without parameters."""

    def forward(self, q, k):
        return torch.matmul(q, k.transpose(-1, -2))


class Child(ScaledDot):
    def forward(self, q, k):
        return super().forward(q, k) + torch.bmm(q, k)
