"""A small transformer encoder for scikit-learn's 8x8 digits, in plain PyTorch (qdq inserts the quantizers).

Each image row (8 pixels) is one token. Attention is written out with explicit matmuls and softmax, the way
many research models are, so the attention matmuls are ordinary operators that need quantizers of their own.
"""
import math
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F


class SelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, dim = x.shape
        q = self.q_proj(x).reshape(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).reshape(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).reshape(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        attn = F.softmax(scores, dim=-1)
        context = attn @ v
        context = context.transpose(1, 2).reshape(batch, tokens, dim)
        return self.out_proj(context)


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, ffn_dim):
        super().__init__()
        self.attn = SelfAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.norm1(x + self.attn(x))
        ffn = self.fc2(F.gelu(self.fc1(x)))
        x = self.norm2(x + ffn)
        return x


class DigitsTransformer(nn.Module):
    def __init__(self, num_classes=10, tokens=8, token_dim=8, dim=48, heads=4, ffn_dim=96, layers=2):
        super().__init__()
        self.embed = nn.Linear(token_dim, dim)
        self.position = nn.Parameter(torch.zeros(1, tokens, dim))
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, ffn_dim) for _ in range(layers)])
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.embed(x) + self.position
        for layer in self.layers:
            x = layer(x)
        return self.classifier(x.mean(dim=1))


def _weights_path():
    """weights.pt next to this file; the project directory (cwd) when this file was loaded from elsewhere."""
    here = Path(__file__).resolve().with_name("weights.pt")
    if here.exists() or not (Path.cwd() / "weights.pt").exists():
        return here
    return Path.cwd() / "weights.pt"


def build_model():
    """The trained model in eval mode; trains it first (a few seconds) when weights.pt is missing."""
    weights = _weights_path()
    if not weights.exists():
        # Run train.py (next to weights.pt, in the project folder) in its own interpreter so it imports this
        # project's data.py and model.py however this file itself was loaded.
        subprocess.run([sys.executable, str(weights.with_name("train.py")), str(weights)],
                       cwd=str(weights.parent), check=True)
    model = DigitsTransformer()
    model.load_state_dict(torch.load(str(weights), map_location="cpu"))
    return model.eval()
