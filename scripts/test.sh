#!/usr/bin/env bash
# The whole test suite: TypeScript (node:test) and the Python backend under every interpreter with torch.
set -uo pipefail
cd "$(dirname "$0")/.."
npx tsc -p . || { echo "build failed"; exit 1; }
status=0
# The .vsix test unpacks the packaged extension alone and starts its server: package it first.
npm run --silent package >/tmp/qdq-package.log 2>&1 || { echo "npm run package failed:"; tail -20 /tmp/qdq-package.log; status=1; }
node --test --test-reporter=spec --test-reporter-destination=stdout out/test/ || status=1
# Linters (eslint + prettier on TypeScript, ruff + mypy on the backend): configured in the repo, clean on main.
echo "== lint"
npm run --silent lint || { echo "lint failed: run npm run lint (npm run format fixes formatting)"; status=1; }
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import torch, pytest' >/dev/null 2>&1; then
    echo "== backend tests with $py ($("$py" -c 'import torch; print("torch", torch.__version__)'))"
    "$py" -m pytest -q backend/tests || status=1
  else
    echo "== backend tests skipped for $py: it cannot import torch and pytest"
  fi
done
exit $status
