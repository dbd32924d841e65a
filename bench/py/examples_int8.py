"""INT8 accuracy of a bundled example, emulating what qdq writes into its source.

Used by `npm run bench` and test/examples. It rewrites the example's model.py the way qdq's quantize
action does (quant() around every Linear/Conv, TensorQuantizers on attention-matmul operands and on the
residual operand of residual adds), calibrates activations on the calibration split with the backend's
histogram calibrators (one pass, then every method) and weights per output channel with max, and reports
FP32 and INT8 (fake-quantized) accuracy on eval_data.

Usage: python3 bench/py/examples_int8.py EXAMPLE_DIR [METHOD ...]      prints one JSON object
(methods default to max, entropy, percentile, mse)
"""

import json
import re
import sys
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "backend"))
from qdq_backend import qdq_quant  # noqa: E402
from qdq_backend.calib import METHODS, HistogramCalibrator, weight_amax  # noqa: E402

# Operand rewrites per example: (source text, quantized text, quantizer names declared in that class), as
# `qdq run` places them (checked against its qdq-out/quantized/model.py): in the CNN only the identity operand
# of the residual add (the other comes from conv + BN, which TensorRT fuses the add into); in the transformers
# both operands of each residual add.
REWRITES = {
    "digits-cnn": [
        ("out = out + x", "out = out + self.add0_residual_quantizer(x)", ("ResidualBlock", ["add0_residual"])),
    ],
    "digits-transformer": [
        (
            "torch.matmul(q, k.transpose(-2, -1))",
            "torch.matmul(self.matmul0_a_quantizer(q), self.matmul0_b_quantizer(k.transpose(-2, -1)))",
            ("SelfAttention", ["matmul0_a", "matmul0_b"]),
        ),
        (
            "context = attn @ v",
            "context = self.matmul1_a_quantizer(attn) @ self.matmul1_b_quantizer(v)",
            ("SelfAttention", ["matmul1_a", "matmul1_b"]),
        ),
        (
            "x = self.norm1(x + self.attn(x))",
            "x = self.norm1(self.add0_residual_quantizer(x) + self.add0_local_quantizer(self.attn(x)))",
            ("EncoderLayer", ["add0_residual", "add0_local"]),
        ),
        (
            "x = self.norm2(x + ffn)",
            "x = self.norm2(self.add1_residual_quantizer(x) + self.add1_local_quantizer(ffn))",
            ("EncoderLayer", ["add1_residual", "add1_local"]),
        ),
    ],
    # bench/encoder: the BERT-base-sized encoder of the model-speed and calibration-cost benches.
    "encoder": [
        (
            "torch.matmul(q, k.transpose(-2, -1))",
            "torch.matmul(self.matmul0_a_quantizer(q), self.matmul0_b_quantizer(k.transpose(-2, -1)))",
            ("SelfAttention", ["matmul0_a", "matmul0_b"]),
        ),
        (
            "torch.matmul(probs, v)",
            "torch.matmul(self.matmul1_a_quantizer(probs), self.matmul1_b_quantizer(v))",
            ("SelfAttention", ["matmul1_a", "matmul1_b"]),
        ),
        (
            "self.attention_norm(x + self.attention(x))",
            "self.attention_norm(self.add0_residual_quantizer(x) + self.add0_local_quantizer(self.attention(x)))",
            ("EncoderLayer", ["add0_residual", "add0_local"]),
        ),
        (
            "self.output_norm(x + ffn)",
            "self.output_norm(self.add1_residual_quantizer(x) + self.add1_local_quantizer(ffn))",
            ("EncoderLayer", ["add1_residual", "add1_local"]),
        ),
    ],
}

WEIGHTED = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def quantized_source(example, text):
    declarations = {}
    for old, new, (cls, names) in REWRITES.get(example, []):
        if old not in text:
            raise SystemExit(f"{example}/model.py no longer contains {old!r}: update REWRITES in {__file__}")
        text = text.replace(old, new)
        declarations.setdefault(cls, []).extend(names)
    for cls, names in declarations.items():
        m = re.search(rf"class {cls}\(.*?\n(\s+)super\(\).__init__\(\)\n", text, re.S)
        lines = "".join(f"{m.group(1)}self.{n}_quantizer = qdq_quant.TensorQuantizer()  # qdq\n" for n in names)
        text = text[: m.end()] + lines + text[m.end() :]
    text = re.sub(r"(\nfrom torch import nn\n)", r"\1import qdq_quant  # qdq\n", text, count=1)
    return text


def load_example(example_dir):
    example_dir = Path(example_dir).resolve()
    sys.path.insert(0, str(example_dir))
    sys.modules["qdq_quant"] = qdq_quant
    import data  # the example's data.py

    src_path = example_dir / "model.py"
    module = types.ModuleType("model_qdq")
    module.__file__ = str(src_path)
    code = quantized_source(example_dir.name, src_path.read_text())
    exec(compile(code, str(src_path), "exec"), module.__dict__)
    model = module.build_model()
    for m in list(model.modules()):
        if isinstance(m, WEIGHTED):
            qdq_quant.quant(m)
    return model.eval(), data


def activation_quantizers(model):
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, qdq_quant.TensorQuantizer) and m.axis is None and m.enabled
    ]


def collect_histograms(model, data, batches):
    """One pass over the calibration batches with the backend's histogram calibrators on every activation
    quantizer; weights get per-channel max amax (no data needed)."""
    calibrators = {}
    for name, q in activation_quantizers(model):
        q.calibrator = calibrators[name] = HistogramCalibrator(name=name)
    with torch.no_grad():
        for i, batch in enumerate(data.calibration_data()):
            if i >= batches:
                break
            model(batch)
    for name, q in activation_quantizers(model):
        q.calibrator = None
    for m in model.modules():
        if hasattr(m, "weight_quantizer"):
            m.weight_quantizer.set_amax(weight_amax(m.weight.detach(), m.weight_quantizer.axis))
    return calibrators


def set_method(model, calibrators, method):
    for name, q in activation_quantizers(model):
        q.set_amax(calibrators[name].compute_amax(method))


def main():
    example_dir = sys.argv[1]
    methods = sys.argv[2:] or list(METHODS)
    model, data = load_example(example_dir)
    all_q = [m for m in model.modules() if isinstance(m, qdq_quant.TensorQuantizer) and m.enabled]
    fp32 = accuracy_with(model, data, all_q, False)
    result = {
        "example": Path(example_dir).name,
        "torch": torch.__version__,
        "quantizers": len(all_q),
        "fp32_accuracy": fp32,
        "int8_accuracy": {},
    }
    for q in all_q:
        q.enabled = True
    calibrators = collect_histograms(model, data, batches=32)
    for method in methods:
        set_method(model, calibrators, method)
        result["int8_accuracy"][method] = accuracy_with(model, data, all_q, True)
    print(json.dumps(result))


def accuracy_with(model, data, quantizers, enabled):
    for q in quantizers:
        q.enabled = enabled
    correct = total = 0
    with torch.no_grad():
        for inputs, labels in data.eval_data():
            correct += (model(inputs).argmax(dim=1) == labels).sum().item()
            total += len(labels)
    return correct / total


if __name__ == "__main__":
    main()
