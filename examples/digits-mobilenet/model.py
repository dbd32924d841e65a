"""A small MobileNetV3-style network for scikit-learn's 8x8 digits, in plain PyTorch (qdq inserts the quantizers).

Inverted residual blocks: a 1x1 expansion, a 3x3 depthwise convolution, squeeze-and-excitation on some blocks, and a
linear 1x1 projection; hardswish activations as in MobileNetV3. Depthwise convolutions see one channel each, so their
per-channel output ranges differ widely, and a single per-tensor activation scale for the next 1x1 projection spends
most of its 256 levels on the few widest channels: the known reason MobileNets lose accuracy under plain INT8 PTQ.
"""
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduced):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, reduced, kernel_size=1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(reduced, channels, kernel_size=1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        scale = self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))
        return x * scale


class InvertedResidual(nn.Module):
    def __init__(self, in_channels, expanded, out_channels, stride, use_se):
        super().__init__()
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand = nn.Conv2d(in_channels, expanded, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(expanded)
        self.depthwise = nn.Conv2d(expanded, expanded, kernel_size=3, stride=stride, padding=1, groups=expanded,
                                   bias=False)
        self.bn2 = nn.BatchNorm2d(expanded)
        self.se = SqueezeExcite(expanded, max(8, expanded // 4)) if use_se else nn.Identity()
        self.project = nn.Conv2d(expanded, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.act = nn.Hardswish()

    def forward(self, x):
        out = self.act(self.bn1(self.expand(x)))
        out = self.act(self.bn2(self.depthwise(out)))
        out = self.se(out)
        out = self.bn3(self.project(out))
        if self.use_residual:
            out = out + x
        return out


class DigitsMobileNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.Hardswish(),
        )
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 16, stride=1, use_se=True),
            InvertedResidual(16, 64, 24, stride=2, use_se=False),
            InvertedResidual(24, 72, 24, stride=1, use_se=False),
            InvertedResidual(24, 96, 40, stride=2, use_se=True),
            InvertedResidual(40, 120, 40, stride=1, use_se=True),
        )
        self.head = nn.Sequential(
            nn.Conv2d(40, 128, kernel_size=1, bias=False),
            nn.BatchNorm2d(128),
            nn.Hardswish(),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.blocks(x)
        x = self.head(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _weights_path():
    """weights.pt next to this file; the project directory (cwd) when this file was loaded from elsewhere."""
    here = Path(__file__).resolve().with_name("weights.pt")
    if here.exists() or not (Path.cwd() / "weights.pt").exists():
        return here
    return Path.cwd() / "weights.pt"


def build_model():
    """The trained model in eval mode; trains it first (about half a minute) when weights.pt is missing."""
    weights = _weights_path()
    if not weights.exists():
        # Run train.py (next to weights.pt, in the project folder) in its own interpreter so it imports this
        # project's data.py and model.py however this file itself was loaded.
        subprocess.run([sys.executable, str(weights.with_name("train.py")), str(weights)],
                       cwd=str(weights.parent), check=True)
    model = DigitsMobileNet()
    model.load_state_dict(torch.load(str(weights), map_location="cpu"))
    return model.eval()
