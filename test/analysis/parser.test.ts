import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineIndex, editFor, nodeRange, parsePython } from '../../server/src/analysis';

test('tree-sitter indices and columns are UTF-16 units for non-ASCII text', () => {
  const text = 's = "é😀"\nx = foo(1)  # ü\ny = "日本" + bar(2)\n';
  const tree = parsePython(text);
  const calls = tree.rootNode.descendantsOfType('call');
  assert.equal(calls.length, 2);
  assert.equal(calls[0].startIndex, text.indexOf('foo'));
  assert.deepEqual(nodeRange(calls[0]).start, { line: 1, character: 4 });
  const bar = calls[1];
  assert.equal(bar.startIndex, text.indexOf('bar'));
  // "日本" are 2 UTF-16 units (6 UTF-8 bytes): column 11 in UTF-16
  assert.deepEqual(nodeRange(bar).start, { line: 2, character: 11 });
  assert.equal(bar.text, 'bar(2)');
  const idx = new LineIndex(text);
  assert.equal(idx.offsetAt(nodeRange(bar).start), bar.startIndex);
});

test('incremental re-parse gives the same tree as a full parse', () => {
  const old = 'import torch\n\nclass A:\n    def f(self, x):\n        return x + 1\n';
  const tree = parsePython(old);
  const range = { start: { line: 4, character: 19 }, end: { line: 4, character: 20 } };
  const next = old.replace('x + 1', 'x + 2.5');
  const edit = editFor(old, range, '2.5');
  const incremental = parsePython(next, { tree, edit });
  assert.equal(incremental.rootNode.toString(), parsePython(next).rootNode.toString());
  assert.equal(incremental.rootNode.descendantsOfType('float')[0].text, '2.5');
});

test('LineIndex handles CRLF', () => {
  const text = 'a\r\nbc\r\nd';
  const idx = new LineIndex(text);
  assert.deepEqual(idx.positionAt(text.indexOf('c')), { line: 1, character: 1 });
  assert.equal(idx.offsetAt({ line: 2, character: 0 }), text.indexOf('d'));
  assert.equal(idx.offsetAt({ line: 1, character: 99 }), text.indexOf('\r\nd'));
});
