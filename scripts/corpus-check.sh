#!/usr/bin/env bash
# The real-model corpus check (issue 15): quantize every transformers models/*/modeling_*.py and timm
# models/layers file installed in the interpreter, check that each result parses and unquantizes back to the
# original byte for byte, then build small random-weight models from the quantized sources and run them
# (test/corpus/run_models.py). Prints counts; exit 1 on any failure. CI runs a slice (test/corpus/corpus.test.ts).
#   bash scripts/corpus-check.sh [PYTHON]        (default python3; needs torch, timm, transformers)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-python3}"
SITE="$("$PY" -c 'import os, timm; print(os.path.dirname(os.path.dirname(timm.__file__)))')"
OUT="${QDQ_CORPUS_OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
[ -f out/bench/corpusQuantize.js ] || npx tsc -p .
rc=0
# In groups: one node process per group keeps the parse trees' native memory bounded.
for group in 'transformers.models.[a-l]*' 'transformers.models.[m-z]*' 'timm.layers.*' 'timm.models.*'; do
  node --expose-gc out/bench/corpusQuantize.js "$SITE" "$OUT" "$group" > "$OUT/summary-${group//[^a-z]/_}.json" || rc=1
done
node -e '
const fs = require("fs"), dir = process.argv[1];
const t = { files: 0, layerWraps: 0, opWraps: {}, bad: [] };
for (const f of fs.readdirSync(dir).filter((f) => f.startsWith("summary-"))) {
  const s = JSON.parse(fs.readFileSync(dir + "/" + f, "utf8")).total;
  t.files += s.files; t.layerWraps += s.layerWraps; t.bad.push(...s.bad);
  for (const [k, v] of Object.entries(s.opWraps)) t.opWraps[k] = (t.opWraps[k] || 0) + v;
}
console.log(`quantized ${t.files} files: ${t.layerWraps} weighted layers wrapped, operand quantizers ${JSON.stringify(t.opWraps)}`);
console.log(t.bad.length ? `NOT OK: ${t.bad.join("; ")}` : "every file parses after quantize and unquantizes byte for byte");
' "$OUT"
"$PY" test/corpus/run_models.py "$OUT" > "$OUT/models.jsonl" || rc=1
"$PY" test/corpus/run_models.py --summarize "$OUT/models.jsonl"
grep -q '"ok": false' "$OUT/models.jsonl" && rc=1
echo "quantized sources and results in $OUT"
exit $rc
