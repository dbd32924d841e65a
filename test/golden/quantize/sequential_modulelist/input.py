import torch.nn as nn


class MLPStack(nn.Module):
    def __init__(self, dim, depth):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(dim, dim, 1),
            nn.GELU(),
            nn.LayerNorm(dim),
        )
        self.blocks = nn.ModuleList([nn.Linear(dim, dim) for _ in range(depth)])
        self.up = nn.ConvTranspose2d(dim, dim, 2, stride=2)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x
