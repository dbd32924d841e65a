"""A small residual CNN for scikit-learn's 8x8 digits, in plain PyTorch (qdq inserts the quantizers)."""
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + x
        return self.relu(out)


class DigitsCNN(nn.Module):
    def __init__(self, num_classes=10, width=16):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.block1 = ResidualBlock(width)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(2 * width)
        self.relu = nn.ReLU()
        self.block2 = ResidualBlock(2 * width)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.block1(x)
        x = self.pool(x)
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.block2(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


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
    model = DigitsCNN()
    model.load_state_dict(torch.load(str(weights), map_location="cpu"))
    return model.eval()
