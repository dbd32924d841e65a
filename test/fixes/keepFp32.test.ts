// "Keep in FP32" (fixes/keepFp32.ts): keep_float(C(...), "fp32") from a plain, a quantized or a kept-float layer;
// the edits reproduce the result byte for byte, re-applying changes nothing, the analysis reads the marker back,
// and Python parses the output.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import { keepFp32 } from '../../server/src/fixes/keepFp32';
import { LineIndex, parsePython } from '../../server/src/analysis/parser';
import { buildModelIndex } from '../../server/src/analysis/model';
import type { TextEdit } from '../../server/src/fixes/edits';

const HEAD =
  'import torch.nn as nn\nimport qdq_quant  # qdq\n\n\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n';
const CASES: Record<string, string> = {
  plain:
    'import torch.nn as nn\r\n\r\n\r\nclass M(nn.Module):\r\n    def __init__(self):\r\n        super().__init__()\r\n        self.head = nn.Linear(64, 10)\r\n',
  quantized: HEAD + '        self.head = qdq_quant.quant(nn.Linear(64, 10))\n',
  keptFloat: HEAD + '        self.head = qdq_quant.keep_float(nn.Linear(64, 10))  # small head\n',
};

function applyEdits(text: string, edits: TextEdit[]): string {
  const idx = new LineIndex(text);
  const offs = edits
    .map((e) => ({ s: idx.offsetAt(e.range.start), e: idx.offsetAt(e.range.end), t: e.newText }))
    .sort((a, b) => b.s - a.s);
  let out = text;
  for (const o of offs) out = out.slice(0, o.s) + o.t + out.slice(o.e);
  return out;
}

describe('Keep in FP32', () => {
  for (const [name, text] of Object.entries(CASES)) {
    it(`${name}: becomes keep_float(..., "fp32"), edits round trip, idempotent`, () => {
      const r = keepFp32(text, text.indexOf('nn.Linear(64'));
      assert.match(r.text, /self\.head = qdq_quant\.keep_float\(nn\.Linear\(64, 10\), "fp32"\)/);
      assert.equal(applyEdits(text, r.edits), r.text);
      // Everything outside the layer's statement and the import is untouched (line endings included).
      assert.equal(
        r.text.replace(/qdq_quant\.(keep_float|quant)\(|, "fp32"\)|\)|import qdq_quant {2}# qdq\r?\n/g, ''),
        text.replace(/qdq_quant\.(keep_float|quant)\(|\)|import qdq_quant {2}# qdq\r?\n/g, ''),
      );
      const layer = buildModelIndex(parsePython(r.text), r.text).classes[0].layers[0];
      assert.equal(layer.wrapped, 'keep_float');
      assert.equal(layer.keepFp32, true);
      assert.equal(layer.attr, 'head');
      const again = keepFp32(r.text, r.text.indexOf('nn.Linear(64'));
      assert.deepEqual(again.edits, []);
      assert.equal(again.text, r.text);
      const py = spawnSync('python3', ['-c', 'import ast,sys; ast.parse(sys.stdin.read())'], { input: r.text });
      if (py.error === undefined) assert.equal(py.status, 0, String(py.stderr));
    });
  }
  it('does nothing away from a weighted layer', () => {
    const text = CASES.quantized;
    assert.deepEqual(keepFp32(text, 0).edits, []);
  });
});
