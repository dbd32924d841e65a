"""A BERT-base-sized transformer encoder (4 layers, hidden 768, 12 heads, FFN 3072) with random weights,
for `npm run bench`: the model-speed figures for FP32, static INT8 and dynamic INT8 on a realistic shape.

It takes embeddings [batch, seq, 768] (the token/position embedding lookup is not what INT8 speeds up).
Attention is written with explicit matmuls, as in the bundled digits-transformer, so qdq quantizes its
operands too. Weights are seeded: every run builds the same model.
"""
import math

import torch
from torch import nn
import torch.nn.functional as F

HIDDEN = 768
HEADS = 12
FFN = 3072
LAYERS = 4


class SelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, dim = x.shape
        q = self.query(x).reshape(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        k = self.key(x).reshape(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        v = self.value(x).reshape(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        probs = F.softmax(scores, dim=-1)
        context = torch.matmul(probs, v)
        context = context.transpose(1, 2).reshape(batch, tokens, dim)
        return self.output(context)


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, ffn_dim):
        super().__init__()
        self.attention = SelfAttention(dim, heads)
        self.attention_norm = nn.LayerNorm(dim)
        self.intermediate = nn.Linear(dim, ffn_dim)
        self.ffn_output = nn.Linear(ffn_dim, dim)
        self.output_norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.attention_norm(x + self.attention(x))
        ffn = self.ffn_output(F.gelu(self.intermediate(x)))
        return self.output_norm(x + ffn)


class Encoder(nn.Module):
    def __init__(self, dim=HIDDEN, heads=HEADS, ffn_dim=FFN, layers=LAYERS):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, ffn_dim) for _ in range(layers)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def build_model():
    torch.manual_seed(0)
    model = Encoder()
    # BERT's initialisation (normal, std 0.02), so activations have BERT-like ranges.
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    return model.eval()
