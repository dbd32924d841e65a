"""How far INT8 sits from where this model's accuracy breaks: the simulation at 8, 7, 6, 5 and 4 bits.

Every quantizer is narrowed alike (per-channel max weights, per-tensor max activations over the 32 calibration
batches, int8_variants.simulate); top-1 on the 360 held-out images. Usage (from this folder): python3 bit_knee.py
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model import build_model  # noqa: E402  (the example's own trained model)
from int8_variants import simulate  # noqa: E402


def main():
    torch.set_num_threads(1)
    model = build_model()
    for bits in (8, 7, 6, 5, 4):
        fp32, quantized, agreement, _ = simulate(model, bits=bits)
        print(f"{bits} bits: FP32 {fp32:.2f}%  quantized {quantized:.2f}% (drop {fp32 - quantized:.2f} pt), "
              f"agreement {agreement:.2f}%")


if __name__ == "__main__":
    main()
