#!/usr/bin/env bash
# Python lint for the backend and the bench scripts: ruff check, ruff format --check (ruff.toml at the repo root)
# and mypy on backend/qdq_backend (backend/mypy.ini). Exits non-zero on the first failing step.
#   scripts/lint-python.sh            (PY=/path/to/python to pick the interpreter that has ruff, mypy and torch)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-python3}"
cd "$root"
echo "ruff check"
"$PY" -m ruff check
echo "ruff format --check"
"$PY" -m ruff format --check
echo "mypy backend/qdq_backend"
cd backend
"$PY" -m mypy --config-file mypy.ini
