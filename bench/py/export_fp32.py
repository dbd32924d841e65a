"""FP32 ONNX export of a qdq project's model, plus the inputs the model-speed bench feeds it.

Usage: python3 bench/py/export_fp32.py PROJECT_DIR OUT_DIR
Writes OUT_DIR/fp32.onnx (dynamic batch axis, opset 13, TorchScript exporter) and OUT_DIR/inputs.json +
inputs.bin: the latency batch (the first eval batch, else example_inputs()) and, when the project has
eval_data, every eval input with its labels for accuracy. Prints one JSON line with what it wrote.
It reads [tool.qdq] only for the file:function names (model, example-inputs, eval-data).
"""

import importlib.util
import inspect
import json
import os
import re
import sys
import warnings
from pathlib import Path

import torch


def tool_qdq(project):
    # A minimal reader for the flat `key = "value"` lines of [tool.qdq] (tomllib is 3.11+ only).
    text = (project / "pyproject.toml").read_text()
    section = re.search(r"^\[tool\.qdq\]\s*$(.*?)(?=^\[|\Z)", text, re.S | re.M)
    if not section:
        raise SystemExit(f"{project}/pyproject.toml has no [tool.qdq] table")
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]*)"', section.group(1), re.M))


def load(project, spec):
    file, fn = spec.split(":")
    path = project / file
    mod_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[path.stem] = module
    mod_spec.loader.exec_module(module)
    return getattr(module, fn)


def main():
    project, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(project)
    sys.path.insert(0, str(project))
    cfg = tool_qdq(project)
    model = load(project, cfg["model"])().eval()
    example = load(project, cfg["example-inputs"])()
    eval_inputs, labels = [], []
    if "eval-data" in cfg:
        for x, y in load(project, cfg["eval-data"])():
            eval_inputs.append(x)
            labels.append(y)
    latency_batch = eval_inputs[0] if eval_inputs else example

    kwargs = dict(
        opset_version=13,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        do_constant_folding=True,
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter: the same one torch 1.13 has
    tmp = out / ".fp32.onnx.tmp"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(tmp), **kwargs)
    os.replace(tmp, out / "fp32.onnx")

    blobs, entries, offset = [], {}, 0

    def put(name, tensor, dtype):
        nonlocal offset
        data = tensor.detach().contiguous().numpy().astype(dtype).tobytes()
        entries[name] = {
            "shape": list(tensor.shape),
            "dtype": str(tensor.dtype).replace("torch.", ""),
            "offset": offset,
            "length": len(data),
        }
        blobs.append(data)
        offset += len(data)

    put("latency", latency_batch.float(), "<f4")
    if eval_inputs:
        put("eval_inputs", torch.cat(eval_inputs).float(), "<f4")
        put("eval_labels", torch.cat(labels).long(), "<i8")
    (out / "inputs.bin").write_bytes(b"".join(blobs))
    (out / "inputs.json").write_text(json.dumps(entries))
    print(json.dumps({"fp32_onnx": str(out / "fp32.onnx"), "torch": torch.__version__, "inputs": entries}))


if __name__ == "__main__":
    main()
