// D4 (issue 14): a lone CR ends a line for Python and LSP. Tree rows, diagnostics, fixes and `qdq check` must
// count it as one, and edits that make a CR lone or not must re-parse to the tree a fresh parse gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { buildModelIndex, LineIndex, parsePython } from '../../server/src/analysis';
import { runRules } from '../../server/src/rules';
import { applyTrtFixes } from '../../server/src/fixes/trtFixes';
import { applyEdit, modelSources, randomEdits } from './editing';

const LF = [
  'import torch',
  '',
  'def pos(ids, pad):',
  '    mask = ids.ne(pad).int()',
  '    return torch.cumsum(mask, 1) * mask',
  '',
].join('\n');
const CR = LF.replace(/\n/g, '\r');

function diagnostics(text: string) {
  const tree = parsePython(text);
  return runRules(buildModelIndex(tree, text), tree, text).map((d) => ({ code: d.code, range: d.range }));
}

test('tree-sitter rows count a lone CR as a line break', () => {
  const ret = parsePython(CR).rootNode.descendantsOfType('return_statement')[0];
  assert.deepEqual(ret.startPosition, { row: 4, column: 4 });
  assert.equal(ret.text, 'return torch.cumsum(mask, 1) * mask', 'node text is the document text');
});

test('diagnostics of a lone-CR file are on the lines of the same file with LF', () => {
  const lf = diagnostics(LF);
  assert.ok(lf.some((d) => d.code === 'TRT001' && d.range.start.line === 4));
  assert.deepEqual(diagnostics(CR), lf);
});

test('the TRT001 fix of a lone-CR file edits the cumsum line, keeps CR line breaks and parses', () => {
  const fixed = applyTrtFixes(CR);
  assert.deepEqual(
    fixed.edits.map((e) => e.range.start.line),
    [4, 4],
  );
  assert.equal(fixed.text, applyTrtFixes(LF).text.replace(/\n/g, '\r'));
  assert.equal(parsePython(fixed.text).rootNode.hasError, false);
  const ast = spawnSync('python3', ['-c', 'import ast,sys; ast.parse(sys.stdin.buffer.read())'], { input: fixed.text });
  if (!ast.error) assert.equal(ast.status, 0, String(ast.stderr));
});

test('`qdq check` prints the line of the cumsum in a lone-CR file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-cr-'));
  const file = path.join(dir, 'cr.py');
  fs.writeFileSync(file, CR);
  const r = spawnSync(process.execPath, [path.join(process.cwd(), 'bin/qdq.js'), 'check', file], { encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.match(r.stdout, /cr\.py:5:12: warning TRT001/, r.stdout + r.stderr);
});

test('incremental re-parse and analysis of a lone-CR file equal a fresh one through edits of CR and LF', () => {
  const sources = modelSources().slice(0, 4);
  const inserts = ['\r', '\n', '\r\n', 'x', ' + y', '\r    z = 1\r', '(', '"'];
  for (const { name, text: original } of sources) {
    let text = original.replace(/\r?\n/g, '\r');
    let tree = parsePython(text);
    let index = buildModelIndex(tree, text);
    for (const e of randomEdits(text, name.length, 30, inserts, { maxDelete: 6, emptyOneIn: 4 })) {
      let start: number;
      ({ text, tree, start } = applyEdit(text, tree, e));
      const fresh = parsePython(text);
      assert.equal(tree.rootNode.toString(), fresh.rootNode.toString(), `${name}: tree differs after edit at ${start}`);
      index = buildModelIndex(tree, text, index);
      assert.deepStrictEqual(index, buildModelIndex(fresh, text), `${name}: index differs after edit at ${start}`);
      const lines = new LineIndex(text);
      assert.equal(lines.positionAt(text.length).line, fresh.rootNode.endPosition.row, `${name}: last row`);
    }
  }
});
