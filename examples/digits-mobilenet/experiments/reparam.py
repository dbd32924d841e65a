"""Re-parameterized MobileNets (MobileOne, RepVGG): trained with parallel conv+BN branches, fused into one conv each.

Screens whether the fused (deploy) network loses accuracy under the tensorrt target's INT8 simulation
(int8_variants.simulate: per-channel max weights, per-tensor max activations over 32 calibration batches).

Usage (from this folder): python3 reparam.py "MobileOne(k=4)" --seed 0 --epochs 15 --lr 3e-3
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_variants import simulate, train  # noqa: E402


def conv_bn(cin, cout, kernel, stride, groups):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout))


def fold(kernel, bn):
    """(kernel, bias) of conv followed by bn in eval mode."""
    std = (bn.running_var + bn.eps).sqrt()
    return kernel * (bn.weight / std).reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * bn.weight / std


class RepBranches(nn.Module):
    """k conv+BN branches of `kernel`, a 1x1 conv+BN branch (when kernel > 1), a BN identity (when shapes allow)."""

    def __init__(self, cin, cout, kernel, stride, groups, k, identity_bn=True):
        super().__init__()
        self.cin, self.cout, self.kernel, self.stride, self.groups = cin, cout, kernel, stride, groups
        self.branches = nn.ModuleList(conv_bn(cin, cout, kernel, stride, groups) for _ in range(k))
        self.scale = conv_bn(cin, cout, 1, stride, groups) if kernel > 1 else None
        self.identity = nn.BatchNorm2d(cout) if identity_bn and cin == cout and stride == 1 else None

    def forward(self, x):
        out = sum(b(x) for b in self.branches)
        if self.scale is not None:
            out = out + self.scale(x)
        return out + self.identity(x) if self.identity is not None else out

    def fused(self):
        """One Conv2d with bias computing the same function (eval mode)."""
        w = torch.zeros(self.cout, self.cin // self.groups, self.kernel, self.kernel)
        b = torch.zeros(self.cout)
        pad = self.kernel // 2
        for br in self.branches:
            kw, kb = fold(br[0].weight, br[1])
            w, b = w + kw, b + kb
        if self.scale is not None:
            kw, kb = fold(self.scale[0].weight, self.scale[1])
            w, b = w + F.pad(kw, [pad] * 4), b + kb
        if self.identity is not None:
            eye = torch.zeros_like(w)
            for c in range(self.cout):
                eye[c, c % (self.cin // self.groups), pad, pad] = 1.0
            kw, kb = fold(eye, self.identity)
            w, b = w + kw, b + kb
        conv = nn.Conv2d(self.cin, self.cout, self.kernel, self.stride, pad, groups=self.groups)
        conv.weight.data, conv.bias.data = w.detach(), b.detach()
        return conv


def reparameterize(model):
    for name, child in model.named_children():
        if isinstance(child, RepBranches):
            setattr(model, name, child.fused())
        else:
            reparameterize(child)
    return model


class MobileOneBlock(nn.Sequential):
    def __init__(self, cin, cout, stride, k):
        super().__init__(RepBranches(cin, cin, 3, stride, cin, k), nn.ReLU(),
                         RepBranches(cin, cout, 1, 1, 1, k), nn.ReLU())


class MobileOne(nn.Module):
    """MobileOne's shape at the digits' size: 3x3 stem, depthwise+pointwise blocks, stride 2 twice."""

    def __init__(self, k=4, widths=(32, 64, 128), repeats=(2, 3, 2)):
        super().__init__()
        layers, c = [RepBranches(1, widths[0], 3, 1, 1, k), nn.ReLU()], widths[0]
        for i, (w, n) in enumerate(zip(widths, repeats)):
            for j in range(n):
                layers.append(MobileOneBlock(c, w, 2 if (i > 0 and j == 0) else 1, k))
                c = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class RepVGG(nn.Module):
    """RepVGG-A's shape at the digits' size: dense 3x3 + 1x1 + identity branches, stride 2 twice."""

    def __init__(self, k=1, widths=(32, 64, 128), repeats=(2, 3, 2)):
        super().__init__()
        layers, c = [], 1
        for i, (w, n) in enumerate(zip(widths, repeats)):
            for j in range(n):
                layers += [RepBranches(c, w, 3, 2 if (i > 0 and j == 0) else 1, 1, k), nn.ReLU()]
                c = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def weight_spread(model):
    """Per conv: median over output channels of (max |w| / RMS w) within the channel."""
    out = {}
    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.weight[0].numel() > 1:
            w = m.weight.detach().reshape(m.weight.shape[0], -1)
            out[n] = (w.abs().amax(1) / w.pow(2).mean(1).sqrt().clamp_min(1e-12)).median().item()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--per-site", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    model = train(eval(args.variant, {"__builtins__": {}}, {"MobileOne": MobileOne, "RepVGG": RepVGG}),
                  args.seed, args.epochs, args.lr)
    with torch.no_grad():
        x = torch.rand(8, 1, 8, 8)
        before = model(x)
        reparameterize(model)
        print(f"fused vs branches: max |diff| {(model(x) - before).abs().max().item():.2e}")
    fp32, int8, agree, ratio = simulate(model)
    print(f"{args.variant} seed {args.seed}: FP32 {fp32:.2f}% INT8 {int8:.2f}% (drop {fp32 - int8:.2f} pt), "
          f"agreement {agree:.2f}%")
    for name, r in sorted(ratio.items(), key=lambda kv: -kv[1])[:4]:
        print(f"  act max/RMS {r:6.1f}  {name}")
    for name, r in sorted(weight_spread(model).items(), key=lambda kv: -kv[1])[:4]:
        print(f"  weight max/RMS per channel (median) {r:6.1f}  {name}")
    if args.per_site:
        for name, _ in sorted(ratio.items(), key=lambda kv: -kv[1]):
            print(f"  {name} alone in float: INT8 {simulate(model, (name,))[1]:.2f}%")


if __name__ == "__main__":
    main()
