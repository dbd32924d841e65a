import math

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros(heads, 1, 1))

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(c)
        scores = scores + self.rel_bias
        probs = scores.softmax(dim=-1)
        out = probs @ v
        mixed = torch.bmm(out, v.transpose(1, 2))
        pooled = torch.einsum("bnm,bmc->bnc", mixed, out)
        return self.proj(pooled)
