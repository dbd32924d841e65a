"""Looking for an honest INT8-sensitive model on the digits: train a variant, then simulate the tensorrt target.

The simulation is what the README's "sim" rows mean: weights quantized per output channel with max, the input of
every Conv2d/Linear, the identity operand of residual adds and both operands of attention matmuls quantized per
tensor with max over 32 calibration batches of the training split (symmetric INT8, 127 levels each side), top-1 on
the 360 held-out images. It is a quick screen; a variant worth keeping is then measured with `npx qdq run`.

Usage (from this folder; 1 thread, a few minutes per variant on a busy 2-core machine):
    python3 int8_variants.py "MobileNetV3Small(width=0.5, size=32)" --seed 0 --epochs 15 --lr 3e-3
    python3 int8_variants.py "ViT(patch=4, size=32)" --seed 0 --epochs 25 --lr 1e-3 --per-site
Prints FP32 and INT8 top-1, top-1 agreement, and the sites with the largest max/RMS activation ratio.
"""
import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data import load_split  # noqa: E402  (the example's own split)


def make_divisible(v, d=8):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


class Operand(nn.Module):
    """Marks a tensor the tensorrt target quantizes that is not a Conv/Linear input (residual, matmul operand)."""

    def forward(self, x):
        return x


def upsample(x, size):
    # bilinear resize of the 8x8 digit, the way ImageNet images are resized to a network's input size
    return x if size == 8 else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class SqueezeExcite(nn.Module):
    def __init__(self, c):
        super().__init__()
        r = make_divisible(c // 4)
        self.fc1, self.fc2 = nn.Conv2d(c, r, 1), nn.Conv2d(r, c, 1)

    def forward(self, x):
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, kernel, exp, cout, se, act, stride):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        layers = [nn.Conv2d(cin, exp, 1, bias=False), nn.BatchNorm2d(exp), act()] if exp != cin else []
        layers += [nn.Conv2d(exp, exp, kernel, stride, kernel // 2, groups=exp, bias=False), nn.BatchNorm2d(exp), act()]
        layers += [SqueezeExcite(exp)] if se else []
        layers += [nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body, self.operand = nn.Sequential(*layers), Operand()

    def forward(self, x):
        out = self.body(x)
        return out + self.operand(x) if self.residual else out


# MobileNetV3-Small's bneck table (Howard et al. 2019): kernel, expansion, out, SE, activation, stride
V3_SMALL = [(3, 16, 16, 1, "RE", 2), (3, 72, 24, 0, "RE", 2), (3, 88, 24, 0, "RE", 1), (5, 96, 40, 1, "HS", 2),
            (5, 240, 40, 1, "HS", 1), (5, 240, 40, 1, "HS", 1), (5, 120, 48, 1, "HS", 1), (5, 144, 48, 1, "HS", 1),
            (5, 288, 96, 1, "HS", 2), (5, 576, 96, 1, "HS", 1), (5, 576, 96, 1, "HS", 1)]
# MobileNetV2's table (Sandler et al. 2018): expansion, out, repeats, stride
V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV3Small(nn.Module):
    def __init__(self, width=0.5, size=32):
        super().__init__()
        self.size, c = size, make_divisible(16 * width)
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.Hardswish())
        blocks = []
        for k, e, o, se, act, s in V3_SMALL:
            o = make_divisible(o * width)
            blocks.append(InvertedResidual(c, k, make_divisible(e * width), o, se,
                                           nn.Hardswish if act == "HS" else nn.ReLU, s))
            c = o
        self.blocks = nn.Sequential(*blocks)
        h = make_divisible(576 * width)
        self.head = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.Hardswish())
        self.fc1, self.drop, self.fc2 = nn.Linear(h, 1024), nn.Dropout(0.2), nn.Linear(1024, 10)

    def forward(self, x):
        x = torch.flatten(F.adaptive_avg_pool2d(self.head(self.blocks(self.stem(upsample(x, self.size)))), 1), 1)
        return self.fc2(self.drop(F.hardswish(self.fc1(x))))


class MobileNetV2(nn.Module):
    def __init__(self, width=0.35, size=32):
        super().__init__()
        self.size, c = size, make_divisible(32 * width)
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6())
        blocks = []
        for t, o, n, s in V2:
            o = make_divisible(o * width)
            for i in range(n):
                blocks.append(InvertedResidual(c, 3, c * t, o, 0, nn.ReLU6, s if i == 0 else 1))
                c = o
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(c, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6())
        self.drop, self.fc = nn.Dropout(0.2), nn.Linear(1280, 10)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(upsample(x, self.size))))
        return self.fc(self.drop(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.hd = heads, d // heads
        self.q_proj, self.k_proj, self.v_proj, self.out = (nn.Linear(d, d) for _ in range(4))
        self.ops = nn.ModuleList(Operand() for _ in range(4))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (p(x).reshape(b, t, self.heads, self.hd).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        a = F.softmax(torch.matmul(self.ops[0](q), self.ops[1](k.transpose(-2, -1))) / math.sqrt(self.hd), -1)
        return self.out((self.ops[2](a) @ self.ops[3](v)).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d, heads, ffn, pre_norm):
        super().__init__()
        self.pre = pre_norm
        self.n1, self.attn, self.n2 = nn.LayerNorm(d), Attention(d, heads), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.ops = nn.ModuleList(Operand() for _ in range(4))

    def forward(self, x):
        o = self.ops
        if self.pre:
            x = o[0](x) + o[1](self.attn(self.n1(x)))
            return o[2](x) + o[3](self.fc2(F.gelu(self.fc1(self.n2(x)))))
        x = self.n1(o[0](x) + o[1](self.attn(x)))
        return self.n2(o[2](x) + o[3](self.fc2(F.gelu(self.fc1(x)))))


class ViT(nn.Module):
    """A class token, learned positions, square patches of the (resized) digit as tokens."""

    def __init__(self, patch=2, size=8, d=64, heads=4, ffn=128, layers=4, pre_norm=True):
        super().__init__()
        self.patch, self.size, tokens = patch, size, (size // patch) ** 2
        self.embed = nn.Linear(patch * patch, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, heads, ffn, pre_norm) for _ in range(layers))
        self.norm, self.fc = (nn.LayerNorm(d) if pre_norm else nn.Identity()), nn.Linear(d, 10)

    def forward(self, x):
        p, b = self.patch, x.shape[0]
        t = upsample(x, self.size).unfold(2, p, p).unfold(3, p, p).reshape(b, -1, p * p)
        t = torch.cat([self.cls.expand(b, -1, -1), self.embed(t)], 1) + self.pos
        for block in self.blocks:
            t = block(t)
        return self.fc(self.norm(t)[:, 0])


class MobileViTBlock(nn.Module):
    """MobileViT's block (Mehta & Rastegari 2021) with 1x1 patches: attention over every position of the map."""

    def __init__(self, c, d, layers):
        super().__init__()
        self.local = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.SiLU(),
                                   nn.Conv2d(c, d, 1, bias=False))
        self.tf = nn.ModuleList(Block(d, 4, 2 * d, True) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Sequential(nn.Conv2d(d, c, 1, bias=False), nn.BatchNorm2d(c), nn.SiLU())
        self.fuse = nn.Sequential(nn.Conv2d(2 * c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.SiLU())

    def forward(self, x):
        b, _, h, w = x.shape
        t = self.local(x).flatten(2).transpose(1, 2)
        for block in self.tf:
            t = block(t)
        y = self.norm(t).transpose(1, 2).reshape(b, -1, h, w)
        return self.fuse(torch.cat([x, self.proj(y)], 1))


class MobileViT(nn.Module):
    """MobileNetV2 blocks at 8x8, attention over the 64 positions, down to 4x4, attention over the 16."""

    def __init__(self, d=64, size=8):
        super().__init__()
        self.size = size
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.SiLU())
        self.blocks = nn.Sequential(InvertedResidual(16, 3, 32, 16, 0, nn.SiLU, 1),
                                    InvertedResidual(16, 3, 48, 24, 0, nn.SiLU, 1), MobileViTBlock(24, d, 2),
                                    InvertedResidual(24, 3, 96, 48, 0, nn.SiLU, 2), MobileViTBlock(48, d, 2))
        self.head = nn.Sequential(nn.Conv2d(48, 192, 1, bias=False), nn.BatchNorm2d(192), nn.SiLU())
        self.fc = nn.Linear(192, 10)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(upsample(x, self.size))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def train(model, seed, epochs, lr, batch=64):
    """The example's recipe: AdamW, one-cycle, one-pixel random shifts."""
    torch.manual_seed(seed)
    x, y, _, _ = load_split()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * math.ceil(len(x) / batch))
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            shift = torch.randint(-1, 2, (2,), generator=g).tolist()
            opt.zero_grad()
            F.cross_entropy(model(torch.roll(x[idx], shifts=shift, dims=(2, 3))), y[idx]).backward()
            opt.step()
            sched.step()
    return model.eval()


def fake_quant(x, amax, bits=8):
    levels = 2 ** (bits - 1) - 1  # symmetric: 127 levels each side at 8 bits
    scale = amax / levels
    return torch.clamp(torch.round(x / scale), -levels, levels) * scale


def simulate(model, float_sites=(), bits=8):
    """(FP32 top-1 %, INT8 top-1 %, agreement %, {site: max/RMS of its calibration activations}).

    `bits` narrows every quantizer alike (weights and activations) to find where the model's accuracy breaks."""
    x_train, _, x_test, y_test = load_split()
    sites = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, Operand))]
    amax, sq, hooks = {}, {}, []

    def observe(name):
        def hook(_, inp):
            amax[name] = max(amax.get(name, 0.0), inp[0].detach().abs().max().item())
            s = sq.setdefault(name, [0.0, 0])
            s[0], s[1] = s[0] + inp[0].detach().pow(2).mean().item(), s[1] + 1
        return hook

    hooks = [m.register_forward_pre_hook(observe(n)) for n, m in sites]
    with torch.no_grad():
        for start in range(0, 32 * 32, 32):  # the example's 32 calibration batches of 32
            model(x_train[start:start + 32])
        for h in hooks:
            h.remove()
        fp32 = model(x_test).argmax(1)
        saved = {}
        for n, m in sites:
            if n in float_sites or isinstance(m, Operand):
                continue
            w = saved[n] = m.weight.data.clone()
            per_channel = w.abs().reshape(w.shape[0], -1).amax(1).clamp_min(1e-12)
            m.weight.data = fake_quant(w, per_channel.reshape(-1, *([1] * (w.dim() - 1))), bits)
        hooks = [m.register_forward_pre_hook(lambda _, inp, a=amax[n]: (fake_quant(inp[0], a, bits),))
                 for n, m in sites if n not in float_sites and n in amax]
        int8 = model(x_test).argmax(1)
        for h in hooks:
            h.remove()
        for n, m in sites:
            if n in saved:
                m.weight.data = saved[n]
    ratio = {n: amax[n] / max(math.sqrt(sq[n][0] / sq[n][1]), 1e-12) for n in amax}
    pct = lambda t: 100.0 * t.float().mean().item()  # noqa: E731
    return pct(fp32 == y_test), pct(int8 == y_test), pct(int8 == fp32), ratio


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variant", help='a constructor call, e.g. "MobileNetV3Small(width=0.5, size=32)"')
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--per-site", action="store_true", help="also: the INT8 top-1 with each site alone in float")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    variants = {c.__name__: c for c in (MobileNetV3Small, MobileNetV2, ViT, MobileViT)}
    model = train(eval(args.variant, {"__builtins__": {}}, variants), args.seed, args.epochs, args.lr)
    fp32, int8, agree, ratio = simulate(model)
    print(f"{args.variant} seed {args.seed}: FP32 {fp32:.2f}% INT8 {int8:.2f}% (drop {fp32 - int8:.2f} pt), "
          f"agreement {agree:.2f}%")
    for name, r in sorted(ratio.items(), key=lambda kv: -kv[1])[:4]:
        print(f"  max/RMS {r:6.1f}  {name}")
    if args.per_site:
        for name, _ in sorted(ratio.items(), key=lambda kv: -kv[1]):
            print(f"  {name} alone in float: INT8 {simulate(model, (name,))[1]:.2f}%")


if __name__ == "__main__":
    main()
