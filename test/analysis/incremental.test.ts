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
  // torchvision's model files (Debian's python3-torchvision) and torch.nn's transformer.py.
  const tv = '/usr/lib/python3/dist-packages/torchvision/models';
  const files = fs.existsSync(tv) ? fs.readdirSync(tv).filter((f) => f.endsWith('.py')).sort().map((f) => path.join(tv, f)) : [];
  for (const f of [...files, '/usr/lib/python3/dist-packages/torch/nn/modules/transformer.py']) {
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
  const inserts = [
    'x', '\n', ' + y', '\n\nclass Z(nn.Module):\n    pass\n', 'qdq_quant.quant(', '(', '    def f(self, a, b):\n        return a @ b\n',
    // A module-receiving function (HF's eager_attention_forward) and classes that hand themselves to it.
    '\ndef attend(module, q, k):\n    return module.q_quantizer(q) @ k\n', ' attend(self, x, y)', '\n\n\n', '"""',
    '\nimport torch.nn as tnn\n', '\n@register_model()\ndef built(**kw):\n    return nn.Conv2d(1, 2, 3)\n',
  ];
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

test('classes handing themselves to a module-receiving function keep their delegates as the file above them changes', () => {
  let text = [
    'import torch',
    'from torch import nn',
    '',
    'def attend(mod, q, k):',
    '    return module.q_quantizer(q) @ k',
    '',
    'class A(nn.Module):',
    '    def forward(self, x):',
    '        return attend(self, x, x)',
    '',
    'class B(nn.Module):',
    '    def forward(self, x):',
    '        f = attend',
    '        return f(self, x, x)',
    '',
  ].join('\n');
  let tree = parsePython(text);
  let index = buildModelIndex(tree, text);
  assert.deepStrictEqual(index.classes.map((c) => c.delegates.length), [0, 0]);
  // `mod` becomes `module` (the classes move and the function now receives a module), then typing above both
  // classes and the function moves them again, then an edit inside A.
  const edits: [(t: string) => number, string][] = [
    [(t) => t.indexOf('mod,') + 3, 'ule'], [() => 0, '#'], [() => 0, 'x = 1\n'], [(t) => t.indexOf('class A'), '\n\n'], [(t) => t.indexOf('return attend') + 6, ' '],
  ];
  for (const [where, insert] of edits) {
    const lines = new LineIndex(text);
    const pos = where(text);
    const edit = editFor(text, { start: lines.positionAt(pos), end: lines.positionAt(pos) }, insert, lines);
    text = text.slice(0, pos) + insert + text.slice(pos);
    tree = parsePython(text, { tree, edit });
    index = buildModelIndex(tree, text, index);
    const fresh = buildModelIndex(parsePython(text), text);
    assert.deepStrictEqual(index, fresh);
    assert.deepStrictEqual(index.classes.map((c) => c.delegates), [[{ func: 'attend', paramName: 'module' }], [{ func: 'attend', paramName: 'module' }]]);
  }
});
