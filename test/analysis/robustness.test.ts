// Nothing crashes: each input gets a result or nothing, never an exception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModelIndex, parsePython } from '../../server/src/analysis';
import { keepFloat, quantizeFile, unquantizeFile } from '../../server/src/fixes';

function exercise(text: string): void {
  const tree = parsePython(text);
  const ix = buildModelIndex(tree, text);
  assert.ok(Array.isArray(ix.classes));
  const q = quantizeFile(text);
  assert.equal(typeof q.text, 'string');
  assert.equal(typeof unquantizeFile(q.text).text, 'string');
  for (const off of [0, Math.floor(text.length / 2), text.length])
    assert.equal(typeof keepFloat(text, off).text, 'string');
  if (!tree.rootNode.hasError) assert.equal(unquantizeFile(q.text).text, unquantizeFile(text).text);
}

const MODEL = `import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x):
        return x + self.fc(x) @ x.t()
`;

test('empty and whitespace-only files', () => {
  exercise('');
  exercise('\n\n   \n');
  assert.equal(quantizeFile('').text, '');
});

test('files mid-edit (syntax errors) are indexed best-effort and never rewritten', () => {
  for (let cut = 0; cut < MODEL.length; cut += 7) {
    const broken = MODEL.slice(0, cut) + '(' + MODEL.slice(cut);
    exercise(broken);
    const tree = parsePython(broken);
    if (tree.rootNode.hasError) assert.equal(quantizeFile(broken).text, broken);
  }
});

test('a 10,000-line file', () => {
  const parts: string[] = ['import torch', 'from torch import nn', ''];
  let i = 0;
  while (parts.length < 10000) {
    parts.push(
      `class B${i}(nn.Module):`,
      '    def __init__(self):',
      '        super().__init__()',
      `        self.fc = nn.Linear(${i + 1}, 4)`,
      '',
      '    def forward(self, x, y):',
      '        return torch.matmul(x, y) + x',
      '',
      '',
    );
    i++;
  }
  const text = parts.join('\n');
  const ix = buildModelIndex(parsePython(text), text);
  assert.equal(ix.classes.length, i);
  const q = quantizeFile(text);
  assert.equal(parsePython(q.text).rootNode.hasError, false);
  assert.equal(unquantizeFile(q.text).text, text);
});

test('non-UTF-8 bytes decoded lossily', () => {
  const bytes = Buffer.concat([Buffer.from('# caf'), Buffer.from([0xe9, 0xff, 0xfe]), Buffer.from('\n' + MODEL)]);
  const text = bytes.toString('utf8'); // U+FFFD replacement characters
  assert.ok(text.includes('\ufffd'));
  exercise(text);
  assert.equal(unquantizeFile(quantizeFile(text).text).text, text);
});

test('class with no __init__, one-line bodies, and deeply nested code', () => {
  exercise(
    'import torch\nfrom torch import nn\nclass A(nn.Module): pass\nclass B(nn.Module):\n    def forward(self, a, b): return a @ b\n',
  );
  exercise(
    'from torch import nn\nclass A(nn.Module):\n    def __init__(self): super().__init__(); self.fc = nn.Linear(1, 1)\n    def forward(self, a, b):\n        return a @ b\n',
  );
  let deep = 'from torch import nn\nclass A(nn.Module):\n    def forward(self, x):\n';
  let indent = '        ';
  for (let i = 0; i < 60; i++) {
    deep += `${indent}if x:\n`;
    indent += '    ';
  }
  deep += `${indent}return x @ x\n`;
  deep += 'y = ' + '('.repeat(300) + '1' + ')'.repeat(300) + '\n';
  exercise(deep);
  const q = quantizeFile(deep);
  assert.equal(parsePython(q.text).rootNode.hasError, false);
});
