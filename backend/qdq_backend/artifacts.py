"""The backend's one I/O module: the files it writes into out_dir (calibration.json, eval.json + eval.bin).

The algorithms (calibrate, export) compute documents and tensors; this module turns them into files,
atomically (a temp file in the same directory, then a rename), so a failed run leaves the previous file.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List

from .errors import QdqError

CALIBRATION_FILE = "calibration.json"
EVAL_FILE = "eval.json"
EVAL_BIN = "eval.bin"
HISTOGRAMS_FILE = "histograms.json"


def write_atomic(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def prepare_out_dir(out_dir: Any) -> str:
    """The absolute out_dir, created if needed; a `config` error naming it when it cannot be."""
    if not isinstance(out_dir, str) or not out_dir:
        raise QdqError("config", "out_dir is missing", "set out-dir in [tool.qdq] (default: qdq-out)")
    out_dir = os.path.abspath(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise QdqError(
            "config",
            f"cannot create the output directory {out_dir}: {exc.strerror}",
            "choose a writable out-dir in [tool.qdq]",
        ) from None
    return out_dir


def site_key(site: Dict[str, str]) -> str:
    return f"{site['file']}::{site['cls']}.{site['attr']}"


def write_calibration(out_dir: str, header: Dict[str, Any], listed: List[Dict[str, Any]]) -> str:
    """calibration.json: `header` (model, method, ...), the quantizer records, and the same records by source site."""
    sites: Dict[str, Dict[str, Any]] = {}
    for entry in listed:
        slot = sites.setdefault(site_key(entry["site"]), {"site": entry["site"], "quantizers": []})
        slot["quantizers"].append({k: v for k, v in entry.items() if k != "site"})
    document = {"version": 1, **header, "quantizers": listed, "sites": sites}
    path = os.path.join(out_dir, CALIBRATION_FILE)
    write_atomic(path, json.dumps(document, indent=1, allow_nan=False).encode("utf-8"))
    return path


def write_eval(out_dir: str, document: Dict[str, Any], blob: bytes) -> str:
    """eval.json (batch layout) + eval.bin (the raw tensors at its byte offsets); returns the eval.json path."""
    bin_path = os.path.join(out_dir, EVAL_BIN)
    json_path = os.path.join(out_dir, EVAL_FILE)
    write_atomic(bin_path, blob)
    write_atomic(json_path, json.dumps(document, indent=1).encode("utf-8"))
    return json_path


def write_histograms(out_dir: str, document: Dict[str, Any]) -> str:
    """histograms.json: each activation quantizer's calibration histogram, for another method without a new pass."""
    path = os.path.join(out_dir, HISTOGRAMS_FILE)
    write_atomic(path, json.dumps(document, separators=(",", ":")).encode("utf-8"))
    return path


def read_histograms(out_dir: str) -> Dict[str, Any]:
    """The saved histograms; a `config` error naming the fix when there are none or they cannot be read."""
    path = os.path.join(out_dir, HISTOGRAMS_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise QdqError(
            "config",
            f"no saved calibration histograms in {out_dir}",
            "calibrate once without reusing histograms (qdq calibrate, or QDQ: Calibrate); later runs can then switch method",
        ) from None
    except (OSError, ValueError) as exc:
        raise QdqError("config", f"cannot read {path}: {exc}", "calibrate again to rewrite it") from None
    if not isinstance(document, dict) or not isinstance(document.get("quantizers"), dict):
        raise QdqError("config", f"{path} is not a histograms file qdq wrote", "calibrate again to rewrite it")
    return document
