import torch
from torch import nn
import qdq_quant  # qdq


def eager_attention_forward(module: nn.Module, query, key, value, attention_mask, scaling):
    attn_weights = torch.matmul(module.matmul0_a_quantizer(query), module.matmul0_b_quantizer(key.transpose(2, 3))) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1)
    attn_output = torch.matmul(module.matmul1_a_quantizer(attn_weights), module.matmul1_b_quantizer(value))
    return attn_output.transpose(1, 2).contiguous(), attn_weights


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.matmul0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.matmul0_b_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.matmul1_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.matmul1_b_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.heads = heads
        self.scaling = (hidden // heads) ** -0.5
        self.query = qdq_quant.quant(nn.Linear(hidden, hidden))
        self.key = qdq_quant.quant(nn.Linear(hidden, hidden))
        self.value = qdq_quant.quant(nn.Linear(hidden, hidden))

    def forward(self, hidden_states, attention_mask=None):
        b, n, c = hidden_states.shape
        shape = (b, n, self.heads, c // self.heads)
        q = self.query(hidden_states).view(shape).transpose(1, 2)
        k = self.key(hidden_states).view(shape).transpose(1, 2)
        v = self.value(hidden_states).view(shape).transpose(1, 2)
        attention_interface = eager_attention_forward
        out, _ = attention_interface(self, q, k, v, attention_mask, self.scaling)
        return out.reshape(b, n, c)
