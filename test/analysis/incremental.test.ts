// Re-analysis with the previous index (segment reuse) must give exactly what a fresh build gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { buildModelIndex, editFor, LineIndex, parsePython } from '../../server/src/analysis';

function sources(): { name: string; text: string }[] {
  const out: { name: string; text: string }[] = [];
  const golden = path.join(process.cwd(), 'test/golden/quantize');
  for (const c of fs.readdirSync(golden)) {
    const f = path.join(golden, c, 'input.py');
    if (fs.existsSync(f)) out.push({ name: c, text: fs.readFileSync(f, 'utf8') });
  }
  for (const f of ['/usr/lib/python3/dist-packages/torchvision/models/resnet.py', '/usr/lib/python3/dist-packages/torch/nn/modules/transformer.py']) {
    if (fs.existsSync(f)) out.push({ name: f, text: fs.readFileSync(f, 'utf8') });
  }
  return out;
}

// Deterministic pseudo-random edits: insert/delete characters, lines, and qdq wrappers at many places.
function* edits(text: string, seed: number): Generator<{ start: number; end: number; insert: string }> {
  let x = seed;
  const rnd = (n: number) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % Math.max(1, n);
  };
  const inserts = ['x', '\n', ' + y', '\n\nclass Z(nn.Module):\n    pass\n', 'qdq_quant.quant(', '(', '    def f(self, a, b):\n        return a @ b\n'];
  for (let i = 0; i < 25; i++) {
    const start = rnd(text.length + 1);
    const del = rnd(4) === 0 ? rnd(20) : 0;
    yield { start, end: Math.min(text.length, start + del), insert: rnd(3) === 0 ? '' : inserts[rnd(inserts.length)] };
  }
}

test('incremental re-analysis equals a fresh build after each edit', () => {
  for (const { name, text: original } of sources()) {
    let text = original;
    let tree = parsePython(text);
    let index = buildModelIndex(tree, text);
    for (const e of edits(original, name.length)) {
      const start = Math.min(e.start, text.length);
      const end = Math.min(e.end, text.length);
      const lines = new LineIndex(text);
      const edit = editFor(text, { start: lines.positionAt(start), end: lines.positionAt(end) }, e.insert, lines);
      text = text.slice(0, start) + e.insert + text.slice(end);
      tree = parsePython(text, { tree, edit });
      const incremental = buildModelIndex(tree, text, index);
      const fresh = buildModelIndex(parsePython(text), text);
      assert.deepStrictEqual(incremental, fresh, `${name}: index differs after editing at ${start}`);
      index = incremental;
    }
  }
});
