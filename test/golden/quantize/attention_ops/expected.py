import math

import torch
from torch import nn
import qdq_quant  # qdq


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.matmul0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.matmul0_b_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.matmul1_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.matmul1_b_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.bmm0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.bmm0_b_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.einsum0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.einsum0_b_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.heads = heads
        self.qkv = qdq_quant.quant(nn.Linear(dim, dim * 3))
        self.proj = qdq_quant.quant(nn.Linear(dim, dim))
        self.rel_bias = nn.Parameter(torch.zeros(heads, 1, 1))

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = torch.matmul(self.matmul0_a_quantizer(q), self.matmul0_b_quantizer(k.transpose(-2, -1))) / math.sqrt(c)
        scores = scores + self.rel_bias
        probs = scores.softmax(dim=-1)
        out = self.matmul1_a_quantizer(probs) @ self.matmul1_b_quantizer(v)
        mixed = torch.bmm(self.bmm0_a_quantizer(out), self.bmm0_b_quantizer(v.transpose(1, 2)))
        pooled = torch.einsum("bnm,bmc->bnc", self.einsum0_a_quantizer(mixed), self.einsum0_b_quantizer(out))
        return self.proj(pooled)
