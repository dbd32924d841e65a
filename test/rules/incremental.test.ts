// The rules cache their text scans per top-level statement between versions of a document (rules/scan.ts,
// through the model index's document caches). After any sequence of edits, the diagnostics must be exactly
// those of a fresh analysis of the final text, and the piecewise scan exactly the scan of the whole text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'path';
import { buildModelIndex, parsePython } from '../../server/src/analysis';
import { applyEdit, modelSources, randomEdits, sameLengthEdits, type TextEdit } from '../analysis/editing';
import { documentCaches, statementStarts } from '../../server/src/analysis/model';
import { runRules } from '../../server/src/rules';
import { scanText } from '../../server/src/rules/scan';

// Many edits are what the text scans care about: quotes (an open triple quote turns the rest of the file into a
// string), comments, imports, calls that rules start from, operators.
const INSERTS = [
  'x', '\n', '"', "'", '"""', '#', ' # c\n', '(', ')', 'x.cumsum(1)', ' == ', ' & ', '@', ' += 1', 'x[m] += v\n',
  '\nimport torch.nn.functional as G\n', '\nfrom torch import nn as N\n', 'torch.uint8', 'torch.bool', '.byte()',
  '\n\nclass Z(nn.Module):\n    def forward(self, a, b):\n        m = a > b\n        return a[m] @ b.long()\n',
  'y = x.ne(1).int().cumsum(1)\n', '\\', '"""doc"""\n', '\nm = a >= b\n', '    k = q[a < b] | ~c\n',
];

function edits(text: string, seed: number, count: number) {
  return randomEdits(text, seed, count, INSERTS, { maxDelete: 30, emptyOneIn: 4 });
}

/** The golden inputs and torchvision's model files, named by file name (the name seeds the edits). */
function sources(): { name: string; text: string }[] {
  return modelSources().map((s) => ({ name: path.basename(s.name), text: s.text }));
}

/** Characters whose overtyping changes what the scans see without moving anything: quotes, comments, brackets. */
const OVERTYPE = '"\'#()[]x =\n&|<>:';

function checkIncrementalDiagnostics(editsOf: (text: string, seed: number) => Iterable<TextEdit>): void {
  const all = sources();
  assert.ok(all.length > 0, 'no sources found');
  for (const { name, text: original } of all) {
    let text = original;
    let tree = parsePython(text);
    let index = buildModelIndex(tree, text);
    runRules(index, tree, text);
    for (const e of editsOf(original, name.length * 7919 + original.length)) {
      let start: number;
      ({ text, tree, start } = applyEdit(text, tree, e));
      index = buildModelIndex(tree, text, index);
      const incremental = runRules(index, tree, text);
      const freshTree = parsePython(text);
      const fresh = runRules(buildModelIndex(freshTree, text), freshTree, text);
      assert.deepStrictEqual(incremental, fresh, `${name}: diagnostics differ after inserting ${JSON.stringify(e.insert)} at ${start}`);
      // Without an index the rules scan the whole text in one piece: the same diagnostics.
      assert.deepStrictEqual(runRules(null, freshTree, text), runRules(null, tree, text), `${name}: diagnostics without an index differ`);
    }
  }
}

test('incremental diagnostics equal a fresh analysis after each edit, over real model files', () => {
  checkIncrementalDiagnostics((text, seed) => edits(text, seed, 12));
});

test('incremental diagnostics equal a fresh analysis after edits that keep the length (nothing moves)', () => {
  checkIncrementalDiagnostics((text, seed) => sameLengthEdits(text, seed, 12, OVERTYPE));
});

function checkPiecewiseScan(editsOf: (text: string, seed: number) => Iterable<TextEdit>): void {
  const words = new Set(['cumsum', 'where', 'ne', 'bool', 'byte', 'matmul', 'export', 'dropout', 'cat']);
  for (const { name, text: original } of sources()) {
    let text = original;
    let tree = parsePython(text);
    let index = buildModelIndex(tree, text);
    for (const e of editsOf(original, original.length)) {
      let start: number;
      ({ text, tree, start } = applyEdit(text, tree, e));
      index = buildModelIndex(tree, text, index);
      const starts = statementStarts(index, text);
      assert.ok(starts, 'the index knows its statement starts');
      const pieces = scanText(text, words, starts, documentCaches(index));
      const whole = scanText(text, words);
      const sorted = (xs: number[]) => xs.slice().sort((a, b) => a - b);
      const facts = (s: typeof whole) => ({
        nonCode: s.nonCodeRanges(), callHits: s.callHits, operators: s.operators, comparisons: s.comparisons,
        boolLiterals: sorted(s.boolLiterals), uint8Words: s.uint8Words, plusAssigns: s.plusAssigns, aliases: s.aliases,
      });
      const what = `${name}: scans differ after inserting ${JSON.stringify(e.insert)} at ${start}`;
      assert.deepStrictEqual(facts(pieces), facts(whole), what);
      // isCode on every offset where code and strings/comments meet, and a stride through the rest.
      const ranges = whole.nonCodeRanges();
      const probes = new Set<number>([-1, 0, text.length - 1, text.length]);
      for (const x of ranges) for (const d of [-1, 0, 1]) probes.add(x + d);
      for (let at = 0; at < text.length; at += 97) probes.add(at);
      for (const at of probes) assert.equal(pieces.isCode(at), whole.isCode(at), `${what}: isCode(${at})`);
    }
  }
}

test('the piecewise text scan equals the scan of the whole text', () => {
  checkPiecewiseScan((text, seed) => edits(text, seed, 20));
});

test('the piecewise text scan equals the scan of the whole text after edits that keep the length', () => {
  checkPiecewiseScan((text, seed) => sameLengthEdits(text, seed, 20, OVERTYPE));
});
