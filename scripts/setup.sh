#!/usr/bin/env bash
# Installs everything qdq needs on a fresh Debian 12 machine (idempotent; safe to re-run).
# - Debian packages: PyTorch 1.13 + torchvision + scikit-learn for /usr/bin/python3, editors for the editor tests
# - PyPI: the newest PyTorch 2.x, onnx and scikit-learn for the default python3
# - npm: the TypeScript build (onnxruntime-node must skip its CUDA download here)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

APT_PKGS=(python3-torch python3-torchvision python3-sklearn python3-numpy python3-pytest neovim chromium
          emacs-nox elpa-eglot libkrb5-dev pkg-config ripgrep fonts-liberation)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "not root: skipping Debian packages ${missing[*]} (tests that need them will say so and skip)"
  fi
fi

PY=${QDQ_PYTHON:-python3}
if ! "$PY" -c 'import torch, onnx, onnxscript, sklearn, pytest, transformers, timm, ruff, mypy' >/dev/null 2>&1; then
  log "pip install torch onnx onnxscript scikit-learn pytest transformers timm ruff mypy into $("$PY" -c 'import sys; print(sys.executable)')"
  "$PY" -m pip install -q torch onnx onnxscript scikit-learn pytest transformers timm ruff mypy
fi

if [ ! -d node_modules/tree-sitter ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi
log "build"
npx tsc -p .

log "code-server 4.100.3 for the editor tests"
bash test/editors/code-server/install.sh || log "code-server install failed: test/editors/code-server.test.ts will skip and say why"
log "done"
