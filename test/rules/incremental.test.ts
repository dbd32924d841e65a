// The rules cache their text scans per top-level statement between versions of a document (rules/scan.ts,
// through the model index's document caches). After any sequence of edits, the diagnostics must be exactly
// those of a fresh analysis of the final text, and the piecewise scan exactly the scan of the whole text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { buildModelIndex, parsePython } from '../../server/src/analysis';
import { applyEdit, modelSources, randomEdits, sameLengthEdits, type TextEdit } from '../analysis/editing';
import { documentCaches, statementLayout } from '../../server/src/analysis/model';
import { runRules } from '../../server/src/rules';
import { scanText } from '../../server/src/rules/scan';

// Many edits are what the text scans care about: quotes (an open triple quote turns the rest of the file into a
// string), comments, imports, calls that rules start from, operators.
const INSERTS = [
  'x',
  '\n',
  '"',
  "'",
  '"""',
  '#',
  ' # c\n',
  '(',
  ')',
  'x.cumsum(1)',
  ' == ',
  ' & ',
  '@',
  ' += 1',
  'x[m] += v\n',
  '\nimport torch.nn.functional as G\n',
  '\nfrom torch import nn as N\n',
  'torch.uint8',
  'torch.bool',
  '.byte()',
  '\n\nclass Z(nn.Module):\n    def forward(self, a, b):\n        m = a > b\n        return a[m] @ b.long()\n',
  'y = x.ne(1).int().cumsum(1)\n',
  '\\',
  '"""doc"""\n',
  '\nm = a >= b\n',
  '    k = q[a < b] | ~c\n',
];

function edits(text: string, seed: number, count: number) {
  return randomEdits(text, seed, count, INSERTS, { maxDelete: 30, emptyOneIn: 4 });
}

/** The golden inputs and torchvision's model files, named by file name (the name seeds the edits). */
function sources(): { name: string; text: string }[] {
  return [...modelSources().map((s) => ({ name: path.basename(s.name), text: s.text })), ...ruleHeavySources()];
}

/**
 * Files full of diagnostics, so that keeping them per statement is really exercised: the golden TRT inputs, and
 * classes, decorated functions, class-level code and module-level code that every statement rule reports on
 * (module-level and class-level sites read module-level names; function sites read their own function).
 */
function ruleHeavySources(): { name: string; text: string }[] {
  const golden = path.join(process.cwd(), 'test/golden/trt');
  const out = fs
    .readdirSync(golden)
    .map((c) => ({ name: `trt-${c}`, text: fs.readFileSync(path.join(golden, c, 'input.py'), 'utf8') }));
  const block = (k: number) =>
    [
      `MASK${k} = torch.arange(10) > ${k}`,
      `POS${k} = torch.arange(8).int().cumsum(0)`,
      `flags${k} = MASK${k} & (torch.ones(10).long() > 0)`,
      '',
      `class Block${k}(nn.Module):`,
      '    ids = torch.arange(4).int()',
      '    doubled = ids.cumsum(0)',
      '',
      '    def __init__(self):',
      '        super().__init__()',
      '        self.proj = nn.Linear(8, 8)',
      '',
      '    def forward(self, input_ids):',
      '        mask = input_ids.ne(1).int()',
      '        pos = torch.cumsum(mask, dim=1) * mask',
      '        keep = mask.nonzero()',
      '        u = torch.unique(input_ids)',
      '        b = input_ids.byte()',
      '        t = torch.zeros(3, dtype=torch.uint8)',
      '        m = input_ids > 0',
      '        s = m + m',
      '        h = input_ids.long() & 3',
      '        v, i = torch.topk(pos.float(), 5000)',
      '        q = mask @ mask',
      '        return pos[m], keep, u, b, t, s, h, v, i, q',
      '',
      '',
      '@decorate',
      `def helper${k}(x: torch.LongTensor):`,
      '    y = x.cumsum(-1)',
      '    z = torch.sqrt(x.int())',
      '    w = x.bincount()',
      '    return x[x > 0], y, z, w',
      '',
      '',
    ].join('\n');
  const heavy = [
    'import torch',
    'import torch.nn as nn',
    '',
    '',
    'def decorate(f):',
    '    return f',
    '',
    '',
    ...[0, 1, 2, 3, 4, 5].map(block),
  ].join('\n');
  out.push({ name: 'rule-heavy', text: heavy });
  return out;
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
      assert.deepStrictEqual(
        incremental,
        fresh,
        `${name}: diagnostics differ after inserting ${JSON.stringify(e.insert)} at ${start}`,
      );
      // Without an index the rules scan the whole text in one piece: the same diagnostics.
      assert.deepStrictEqual(
        runRules(null, freshTree, text),
        runRules(null, tree, text),
        `${name}: diagnostics without an index differ`,
      );
    }
  }
}

test('incremental diagnostics equal a fresh analysis after each edit, over real model files', () => {
  checkIncrementalDiagnostics((text, seed) => edits(text, seed, 12));
});

test('incremental diagnostics equal a fresh analysis after edits that keep the length (nothing moves)', () => {
  checkIncrementalDiagnostics((text, seed) => sameLengthEdits(text, seed, 12, OVERTYPE));
});

test('kept diagnostics move with their statements when lines are added or removed above them', () => {
  // Edits at the start of lines inside method and function bodies of the rule-heavy file: the statements after
  // the edit keep their text but move, so what was kept must be checked again (or shifted), never kept as it was.
  const { text: original } = ruleHeavySources().find((s) => s.name === 'rule-heavy')!;
  // Whole lines at the body's indentation (and blank lines): the file stays valid, the classes stay classes.
  const inserts = ['\n', '        k = 1\n', '        y = k.long().cumsum(0)\n', '\n\n', '        z = 2  # note\n'];
  let x = 7;
  const rnd = (n: number) => ((x = (x * 1103515245 + 12345) % 2147483648), x % n);
  let text = original;
  let tree = parsePython(text);
  let index = buildModelIndex(tree, text);
  runRules(index, tree, text);
  let kept = 0;
  for (let k = 0; k < 40; k++) {
    const lines: number[] = [];
    for (let p = text.indexOf('\n        '); p >= 0; p = text.indexOf('\n        ', p + 1)) lines.push(p + 1);
    const at = lines[rnd(lines.length)];
    // Removing a line removes an inserted one only (`k = 1`, blank lines), so every method keeps a body.
    const line = text.slice(at, text.indexOf('\n', at) + 1);
    const removeLine = rnd(3) === 0 && /^(\s*|\s+k = 1|\s+z = 2 {2}# note)\n$/.test(line);
    const end = removeLine ? at + line.length : at;
    const e = { start: at, end, insert: removeLine ? '' : inserts[rnd(inserts.length)] };
    ({ text, tree } = applyEdit(text, tree, e));
    index = buildModelIndex(tree, text, index);
    const layout = statementLayout(index, text);
    const incremental = runRules(index, tree, text);
    if (layout?.reuse && layout.reuse.tail > 0) kept++;
    const freshTree = parsePython(text);
    assert.deepStrictEqual(
      incremental,
      runRules(buildModelIndex(freshTree, text), freshTree, text),
      `diagnostics differ after edit ${k} (${JSON.stringify(e)})`,
    );
  }
  assert.ok(kept > 30, `statements after the edit were reused in only ${kept} of 40 runs`);
  // What every kept diagnostic may depend on besides its statement: module-level code, import aliases, options.
  // Each keeps the line count, so the statements after it stay on their lines and could be kept.
  const changes: [string, string, string][] = [
    [
      'a module-level name that class-level code reads',
      'POS1 = torch.arange(8).int().cumsum(0)',
      'ids = torch.arange(8).int()',
    ],
    ['an import alias', 'import torch.nn as nn\n', 'import torch.nn as nn; import numpy as torch\n'],
  ];
  for (const [what, from, to] of changes) {
    const at = text.indexOf(from);
    assert.ok(at >= 0, `${what}: ${from} not found`);
    ({ text, tree } = applyEdit(text, tree, { start: at, end: at + from.length, insert: to }));
    index = buildModelIndex(tree, text, index);
    const incremental = runRules(index, tree, text);
    const freshTree = parsePython(text);
    assert.deepStrictEqual(
      incremental,
      runRules(buildModelIndex(freshTree, text), freshTree, text),
      `diagnostics differ after changing ${what}`,
    );
  }
  const freshTree = parsePython(text);
  const fresh = runRules(buildModelIndex(freshTree, text), freshTree, text);
  assert.deepStrictEqual(runRules(index, tree, text), fresh, 'a second run on the same version differs');
  assert.deepStrictEqual(runRules(index, tree, text), fresh, 'a third run on the same version differs');
  assert.deepStrictEqual(
    runRules(index, tree, text, { trtVersion: '8.6' }),
    runRules(buildModelIndex(freshTree, text), freshTree, text, { trtVersion: '8.6' }),
    'diagnostics differ after changing the TensorRT version',
  );
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
      const starts = statementLayout(index, text)?.starts;
      assert.ok(starts, 'the index knows its statement starts');
      const pieces = scanText(text, words, starts, documentCaches(index));
      const whole = scanText(text, words);
      const sorted = (xs: number[]) => xs.slice().sort((a, b) => a - b);
      const facts = (s: typeof whole) => ({
        nonCode: s.nonCodeRanges(),
        callHits: s.callHits,
        operators: s.operators,
        comparisons: s.comparisons,
        boolLiterals: sorted(s.boolLiterals),
        uint8Words: s.uint8Words,
        plusAssigns: s.plusAssigns,
        aliases: s.aliases,
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

test('inferred operand types are kept with the document (its caches), not in the module', () => {
  const { text } = ruleHeavySources().find((s) => s.name === 'rule-heavy')!;
  const tree = parsePython(text);
  const index = buildModelIndex(tree, text);
  runRules(index, tree, text);
  const memo = documentCaches(index)?.dtypeMemo;
  assert.ok(memo && memo.entries > 0, 'the rules inferred types into the document caches');
  // The next version of the same document hands the memo on; another document starts with none.
  const edited = text + '\n# end\n';
  const next = buildModelIndex(parsePython(edited), edited, index);
  assert.equal(documentCaches(next)?.dtypeMemo, memo);
  const other = buildModelIndex(parsePython(text), text);
  assert.equal(documentCaches(other)?.dtypeMemo, undefined);
});
