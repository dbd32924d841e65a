"""Build small random-weight timm / transformers models from qdq-quantized library sources and run them.

Usage: python run_models.py QUANTIZED_DIR [MODEL ...] (QUANTIZED_DIR holds <module>.py files written by
corpusQuantize.js). For each model: patch its library modules with the quantized sources (the backend's
in-memory patching), build it from a small config, calibrate every quantizer on one random batch (max), run
it again with fake quantization, and print one JSON line: weighted layers present / quantized / left in float
(with their classes), quantizers that were handed something other than a float tensor, and any error.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "backend"))
from qdq_backend import patching, qdq_quant  # noqa: E402


def _timm(name, **kw):
    def build():
        import timm

        return timm.create_model(name, pretrained=False, **kw)

    return build


def _hf(config_cls, model_cls, **kw):
    def build():
        import transformers

        config = getattr(transformers, config_cls)(**kw)
        config._attn_implementation = "eager"
        return getattr(transformers, model_cls)(config)

    return build


def _tokens(vocab=100, n=8):
    return lambda: {"input_ids": torch.randint(0, vocab, (2, n))}


def _image(size=64, ch=3):
    return lambda: (torch.randn(2, ch, size, size),)


TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100)

# name -> (library modules besides timm.layers.*, builder, inputs)
MODELS = {
    "timm/vit": (["timm.models.vision_transformer"], _timm("vit_tiny_patch16_224", img_size=64), _image()),
    "timm/deit": (
        ["timm.models.deit", "timm.models.vision_transformer"],
        _timm("deit_tiny_patch16_224", img_size=64),
        _image(),
    ),
    "timm/swin": (
        ["timm.models.swin_transformer"],
        _timm("swin_tiny_patch4_window7_224", img_size=224, depths=(1, 1, 1, 1)),
        _image(224),
    ),
    "timm/convnext": (["timm.models.convnext"], _timm("convnext_atto"), _image()),
    "timm/resnet": (["timm.models.resnet"], _timm("resnet18"), _image()),
    "timm/efficientnet": (
        ["timm.models._efficientnet_blocks", "timm.models._efficientnet_builder", "timm.models.efficientnet"],
        _timm("efficientnet_b0"),
        _image(),
    ),
    "timm/mobilenetv3": (
        ["timm.models._efficientnet_blocks", "timm.models._efficientnet_builder", "timm.models.mobilenetv3"],
        _timm("mobilenetv3_small_100"),
        _image(),
    ),
    "hf/gpt2": (
        ["transformers.models.gpt2.modeling_gpt2"],
        _hf("GPT2Config", "GPT2Model", n_embd=32, n_layer=2, n_head=4, vocab_size=100, n_positions=64),
        _tokens(),
    ),
    "hf/bert": (["transformers.models.bert.modeling_bert"], _hf("BertConfig", "BertModel", **TINY), _tokens()),
    "hf/roberta": (
        ["transformers.models.roberta.modeling_roberta"],
        _hf("RobertaConfig", "RobertaModel", **TINY),
        _tokens(),
    ),
    "hf/distilbert": (
        ["transformers.models.distilbert.modeling_distilbert"],
        _hf("DistilBertConfig", "DistilBertModel", dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=100),
        _tokens(),
    ),
    "hf/llama": (
        ["transformers.models.llama.modeling_llama"],
        _hf("LlamaConfig", "LlamaModel", num_key_value_heads=2, **TINY),
        _tokens(),
    ),
    "hf/t5": (
        ["transformers.models.t5.modeling_t5"],
        _hf("T5Config", "T5EncoderModel", d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, vocab_size=100),
        _tokens(),
    ),
    "hf/vit": (
        ["transformers.models.vit.modeling_vit"],
        _hf(
            "ViTConfig", "ViTModel", image_size=32, patch_size=8, **{k: v for k, v in TINY.items() if k != "vocab_size"}
        ),
        _image(32),
    ),
}


def _weighted(model):
    """(name, module) for every module holding a weight matrix/kernel that qdq could quantize."""
    for name, m in model.named_modules():
        w = getattr(m, "_parameters", {}).get("weight")
        if w is None or w.dim() < 2:
            continue
        hf_conv1d = any(c.__name__ == "Conv1D" for c in type(m).__mro__)
        if isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd)) or hf_conv1d:
            yield name, m


def run_one(key, quantized_dir):
    modules, build, inputs = MODELS[key]
    names = []
    if key.startswith("timm/"):
        import timm.layers  # noqa: F401

        layer_mods = sorted(
            f[:-3] for f in os.listdir(quantized_dir) if f.startswith("timm.layers.") and f.endswith(".py")
        )
        names = layer_mods + [m for m in modules if m not in layer_mods]
    else:
        names = list(modules)
    patches = []
    for n in names:
        path = os.path.join(quantized_dir, n + ".py")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                patches.append({"module": n, "source": fh.read()})
    out = {"model": key, "patched": len(patches)}
    try:
        patching.install(patches)
        torch.manual_seed(0)
        model = build().eval()
        weighted = list(_weighted(model))
        float_left = [
            f"{n}:{type(m).__module__}.{type(m).__name__}" for n, m in weighted if not hasattr(m, "weight_quantizer")
        ]
        out.update(weighted=len(weighted), quantized=len(weighted) - len(float_left), float=float_left[:40])
        quantizers = [(n, q) for n, q in model.named_modules() if isinstance(q, qdq_quant.TensorQuantizer)]
        out["quantizers"] = len(quantizers)
        bad = {}
        seen = {}

        def calibrator(name):
            def cal(x):
                if not torch.is_tensor(x) or not x.is_floating_point():
                    bad[name] = type(x).__name__ if not torch.is_tensor(x) else str(x.dtype)
                    return
                seen[name] = max(seen.get(name, 0.0), float(x.detach().abs().max()))

            return cal

        for n, q in quantizers:
            if q.axis is None:
                q.calibrator = calibrator(n)
        args = inputs()
        with torch.no_grad():
            ref = model(**args) if isinstance(args, dict) else model(*args)
            for n, q in quantizers:
                if q.axis is None:
                    q.calibrator = None
                    q.set_amax(seen.get(n, 1.0))
                else:
                    w = None
                    owner = dict(model.named_modules())[n.rsplit(".", 1)[0]]
                    w = owner.weight
                    dims = [d for d in range(w.dim()) if d != q.axis]
                    q.set_amax(w.detach().abs().amax(dim=dims))
            got = model(**args) if isinstance(args, dict) else model(*args)
        a = ref[0] if isinstance(ref, (tuple, list)) else getattr(ref, "last_hidden_state", ref)
        b = got[0] if isinstance(got, (tuple, list)) else getattr(got, "last_hidden_state", got)
        out["cosine"] = round(float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)), 5)
        out["non_tensor_inputs"] = bad
        out["uncalibrated"] = [n for n, q in quantizers if q.axis is None and n not in seen and n not in bad]
        out["ok"] = True
    except Exception as exc:  # reported, not raised: the sweep goes on
        out["ok"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"[:400]
        out["trace"] = traceback.format_exc(limit=-3)[-800:]
    finally:
        patching.restore()
    return out


def summarize(path):
    """One line per model from a results file (JSON lines), for scripts/corpus-check.sh."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            extra = r.get("error") or f"cosine {r.get('cosine')}"
            print(
                f"{'ok  ' if r['ok'] else 'FAIL'} {r['model']:18} weighted layers {r.get('quantized', '-')}/"
                f"{r.get('weighted', '-')} quantized, {r.get('quantizers', '-')} quantizers, "
                f"non-float inputs to quantizers {len(r.get('non_tensor_inputs') or {})}; {extra}"
            )
    return 0


def main(argv):
    if argv[:1] == ["--summarize"]:
        return summarize(argv[1])
    quantized_dir = argv[0]
    keys = argv[1:] or list(MODELS)
    failed = 0
    for key in keys:
        r = run_one(key, quantized_dir)
        failed += not r["ok"]
        print(json.dumps(r), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
