// The rules cache their text scans per top-level statement between versions of a document (rules/scan.ts,
// through the model index's document caches). After any sequence of edits, the diagnostics must be exactly
// those of a fresh analysis of the final text, and the piecewise scan exactly the scan of the whole text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { buildModelIndex, editFor, LineIndex, parsePython } from '../../server/src/analysis';
import { documentCaches, statementStarts } from '../../server/src/analysis/model';
import { runRules } from '../../server/src/rules';
import { scanText } from '../../server/src/rules/scan';

const TORCHVISION = '/usr/lib/python3/dist-packages/torchvision/models';

function sources(): { name: string; text: string }[] {
  const out: { name: string; text: string }[] = [];
  const golden = path.join(process.cwd(), 'test/golden/quantize');
  if (fs.existsSync(golden)) {
    for (const c of fs.readdirSync(golden)) {
      const f = path.join(golden, c, 'input.py');
      if (fs.existsSync(f)) out.push({ name: c, text: fs.readFileSync(f, 'utf8') });
    }
  }
  if (fs.existsSync(TORCHVISION)) {
    for (const f of fs.readdirSync(TORCHVISION).filter((x) => x.endsWith('.py')).sort()) {
      out.push({ name: f, text: fs.readFileSync(path.join(TORCHVISION, f), 'utf8') });
    }
  }
  return out;
}

// Deterministic pseudo-random edits, many of them what the text scans care about: quotes (an open triple quote
// turns the rest of the file into a string), comments, imports, calls that rules start from, operators.
function* edits(text: string, seed: number, count: number): Generator<{ start: number; end: number; insert: string }> {
  let x = seed;
  const rnd = (n: number) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % Math.max(1, n);
  };
  const inserts = [
    'x', '\n', '"', "'", '"""', '#', ' # c\n', '(', ')', 'x.cumsum(1)', ' == ', ' & ', '@', ' += 1', 'x[m] += v\n',
    '\nimport torch.nn.functional as G\n', '\nfrom torch import nn as N\n', 'torch.uint8', 'torch.bool', '.byte()',
    '\n\nclass Z(nn.Module):\n    def forward(self, a, b):\n        m = a > b\n        return a[m] @ b.long()\n',
    'y = x.ne(1).int().cumsum(1)\n', '\\', '"""doc"""\n', '\nm = a >= b\n', '    k = q[a < b] | ~c\n',
  ];
  for (let i = 0; i < count; i++) {
    const start = rnd(text.length + 1);
    const del = rnd(4) === 0 ? rnd(30) : 0;
    yield { start, end: Math.min(text.length, start + del), insert: rnd(4) === 0 ? '' : inserts[rnd(inserts.length)] };
  }
}

test('incremental diagnostics equal a fresh analysis after each edit, over real model files', () => {
  const all = sources();
  assert.ok(all.length > 0, 'no sources found');
  for (const { name, text: original } of all) {
    let text = original;
    let tree = parsePython(text);
    let index = buildModelIndex(tree, text);
    runRules(index, tree, text);
    for (const e of edits(original, name.length * 7919 + original.length, 12)) {
      const start = Math.min(e.start, text.length);
      const end = Math.min(e.end, text.length);
      const lines = new LineIndex(text);
      const edit = editFor(text, { start: lines.positionAt(start), end: lines.positionAt(end) }, e.insert, lines);
      text = text.slice(0, start) + e.insert + text.slice(end);
      tree = parsePython(text, { tree, edit });
      index = buildModelIndex(tree, text, index);
      const incremental = runRules(index, tree, text);
      const freshTree = parsePython(text);
      const fresh = runRules(buildModelIndex(freshTree, text), freshTree, text);
      assert.deepStrictEqual(incremental, fresh, `${name}: diagnostics differ after inserting ${JSON.stringify(e.insert)} at ${start}`);
      // Without an index the rules scan the whole text in one piece: the same diagnostics.
      assert.deepStrictEqual(runRules(null, freshTree, text), runRules(null, tree, text), `${name}: diagnostics without an index differ`);
    }
  }
});

test('the piecewise text scan equals the scan of the whole text', () => {
  const words = new Set(['cumsum', 'where', 'ne', 'bool', 'byte', 'matmul', 'export', 'dropout', 'cat']);
  for (const { name, text: original } of sources()) {
    let text = original;
    let tree = parsePython(text);
    let index = buildModelIndex(tree, text);
    for (const e of edits(original, original.length, 20)) {
      const start = Math.min(e.start, text.length);
      const end = Math.min(e.end, text.length);
      const lines = new LineIndex(text);
      const edit = editFor(text, { start: lines.positionAt(start), end: lines.positionAt(end) }, e.insert, lines);
      text = text.slice(0, start) + e.insert + text.slice(end);
      tree = parsePython(text, { tree, edit });
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
});
