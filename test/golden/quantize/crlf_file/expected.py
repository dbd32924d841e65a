import torch
import torch.nn as nn
import qdq_quant  # qdq


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.matmul0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.matmul0_b_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.fc1 = qdq_quant.quant(nn.Linear(8, 8))
        self.fc2 = qdq_quant.quant(nn.Linear(8, 8))

    def forward(self, x):
        return self.matmul0_a_quantizer(self.fc2(self.fc1(x))) @ self.matmul0_b_quantizer(x.t())
