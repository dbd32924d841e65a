import torch
import torch.nn as nn
import torch.nn.functional as F
import qdq_quant  # qdq


class SimpleCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = qdq_quant.quant(nn.Conv2d(3, 16, 3, padding=1))
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = qdq_quant.quant(nn.Conv2d(16, 32, 3, padding=1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = qdq_quant.quant(nn.Linear(32, num_classes))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)
