// Re-analysis with the previous index (segment reuse) must give exactly what a fresh build gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModelIndex, parsePython } from '../../server/src/analysis';
import { applyEdit, modelSources, randomEdits, sameLengthEdits, type TextEdit } from './editing';

// Insert/delete characters, lines, and qdq wrappers at many places.
const INSERTS = [
  'x',
  '\n',
  ' + y',
  '\n\nclass Z(nn.Module):\n    pass\n',
  'qdq_quant.quant(',
  '(',
  '    def f(self, a, b):\n        return a @ b\n',
  // A module-receiving function (HF's eager_attention_forward) and classes that hand themselves to it.
  '\ndef attend(module, q, k):\n    return module.q_quantizer(q) @ k\n',
  ' attend(self, x, y)',
  '\n\n\n',
  '"""',
  '\nimport torch.nn as tnn\n',
  '\n@register_model()\ndef built(**kw):\n    return nn.Conv2d(1, 2, 3)\n',
];

function checkIncrementalIndex(editsOf: (text: string, seed: number) => Iterable<TextEdit>): void {
  for (const { name, text: original } of modelSources([
    '/usr/lib/python3/dist-packages/torch/nn/modules/transformer.py',
  ])) {
    let text = original;
    let tree = parsePython(text);
    let index = buildModelIndex(tree, text);
    for (const e of editsOf(original, name.length)) {
      let start: number;
      ({ text, tree, start } = applyEdit(text, tree, e));
      const incremental = buildModelIndex(tree, text, index);
      const fresh = buildModelIndex(parsePython(text), text);
      assert.deepStrictEqual(incremental, fresh, `${name}: index differs after editing at ${start}`);
      index = incremental;
    }
  }
}

test('incremental re-analysis equals a fresh build after each edit', () => {
  checkIncrementalIndex((text, seed) => randomEdits(text, seed, 25, INSERTS, { maxDelete: 20, emptyOneIn: 3 }));
});

test('incremental re-analysis equals a fresh build after edits that keep the length (nothing moves)', () => {
  checkIncrementalIndex((text, seed) => sameLengthEdits(text, seed, 25, '"\'#()x =\n:@+'));
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
  assert.deepStrictEqual(
    index.classes.map((c) => c.delegates.length),
    [0, 0],
  );
  // `mod` becomes `module` (the classes move and the function now receives a module), then typing above both
  // classes and the function moves them again, then an edit inside A.
  const edits: [(t: string) => number, string][] = [
    [(t) => t.indexOf('mod,') + 3, 'ule'],
    [() => 0, '#'],
    [() => 0, 'x = 1\n'],
    [(t) => t.indexOf('class A'), '\n\n'],
    [(t) => t.indexOf('return attend') + 6, ' '],
  ];
  for (const [where, insert] of edits) {
    const pos = where(text);
    ({ text, tree } = applyEdit(text, tree, { start: pos, end: pos, insert }));
    index = buildModelIndex(tree, text, index);
    const fresh = buildModelIndex(parsePython(text), text);
    assert.deepStrictEqual(index, fresh);
    assert.deepStrictEqual(
      index.classes.map((c) => c.delegates),
      [[{ func: 'attend', paramName: 'module' }], [{ func: 'attend', paramName: 'module' }]],
    );
  }
});
