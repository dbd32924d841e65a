import torch
import torch.nn as nn
import qdq_quant  # qdq


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.matmul0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.matmul0_b_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.fc = qdq_quant.quant(nn.Linear(8, 8))
        self.extra = nn.Linear(8, 8)

    def forward(self, x, y):
        a = torch.matmul(self.matmul0_a_quantizer(x), self.matmul0_b_quantizer(y))
        return self.extra(self.fc(a)) @ y
