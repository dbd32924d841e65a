// Issue 14 D2: the analysis costs the length of the file for any shape of input. Long operator chains and deep
// nesting make trees as deep as the file is long; asking tree-sitter for a parent or a descendant costs the depth,
// so asking once per operator or call cost the square of the length (8,000 terms: 2.6 s per keystroke). Parents
// and descendants now come from a cursor per tree (server/src/analysis/nodeFinder.ts): these tests check that its
// answers are tree-sitter's, node for node, and that the cost of a full analysis grows linearly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePython, buildModelIndex, type SyntaxNode, type Tree } from '../../server/src/analysis';
import { getParser, nativeNodeCalls } from '../../server/src/analysis/parser';
import { finderStats } from '../../server/src/analysis/nodeFinder';
import { runRules } from '../../server/src/rules';
import { SHAPES, termsFor } from '../../bench/pathological';
import { modelSources } from './editing';

/** Every node of the tree, in document order, read with the binding's own cursor moves. */
function allNodes(tree: Tree): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  const c = tree.walk();
  for (;;) {
    out.push(c.currentNode);
    if (c.gotoFirstChild()) continue;
    while (!c.gotoNextSibling()) if (!c.gotoParent()) return out;
  }
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const out = xs.slice();
  let x = seed;
  for (let i = out.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

test("parents and descendants through the cursor are tree-sitter's, in document and in random order", () => {
  getParser();
  const nativeParent = nativeNodeCalls.parent;
  const nativeDescendant = nativeNodeCalls.descendantForIndex;
  assert.ok(nativeParent && nativeDescendant, 'parser.ts did not install the cursor lookups');
  const sources = [
    ...modelSources().slice(0, 8),
    ...SHAPES.map((s) => ({ name: s.name, text: s.make(60) })),
    { name: 'broken', text: 'def f(x:\n    return (a +\nclass C(:\n  y = [1, 2\n' },
    { name: 'empty', text: '' },
  ];
  let compared = 0;
  for (const { name, text } of sources) {
    const nodes = allNodes(parsePython(text));
    for (const [order, list] of [
      ['document', nodes],
      ['random', shuffled(nodes, 7)],
    ] as const) {
      const tree = parsePython(text); // a fresh tree (and cursor) per order
      const root = tree.rootNode;
      const fresh = allNodes(tree);
      const position = new Map(nodes.map((n, i) => [n, i]));
      for (const n0 of list) {
        const n = fresh[position.get(n0)!];
        const want = nativeParent(n);
        const got = n.parent;
        assert.equal(got?.id, want?.id, `${name} (${order}): parent of ${n.type} at ${n.startIndex}`);
        if (n.endIndex > n.startIndex) {
          const d = root.descendantForIndex(n.startIndex, n.endIndex);
          const w: SyntaxNode = nativeDescendant(root, n.startIndex, n.endIndex);
          assert.equal(d.id, w.id, `${name} (${order}): descendant for ${n.startIndex}-${n.endIndex}`);
        }
        compared++;
      }
    }
  }
  assert.ok(compared > 10000, `only ${compared} nodes compared`);
});

function analyse(text: string): number {
  const tree = parsePython(text);
  return runRules(buildModelIndex(tree, text), tree, text, {}).length;
}

/** Fastest of `runs` analyses, in ms. */
function fastest(text: string, runs: number): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    analyse(text);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return best;
}

test('analysis cost grows linearly with chains, nesting and long lines (16x the text: cursor moves and time)', () => {
  const small: string[] = [];
  const large: string[] = [];
  for (const shape of SHAPES) {
    const n = termsFor(shape, 2048);
    small.push(shape.make(n));
    large.push(shape.make(16 * n));
  }
  // Cursor moves per analysis: linear means at most about 16x (1.5x slack for the fixed parts). Levels of the path
  // compared per question: a binary search, at most log2 of the depth (scanning up from the cursor's level cost
  // the distance, thousands of levels per question in the nested calls).
  for (let i = 0; i < SHAPES.length; i++) {
    const before = { ...finderStats };
    analyse(small[i]);
    const s = finderStats.steps - before.steps;
    const mid = { ...finderStats };
    const diags = analyse(large[i]);
    const l = finderStats.steps - mid.steps;
    const probes = finderStats.probes - mid.probes;
    const questions = finderStats.questions - mid.questions;
    assert.ok(l <= 24 * Math.max(s, 50), `${SHAPES[i].name}: ${l} cursor moves at 16x the text, ${s} at 1x`);
    const perQuestion = Math.log2(large[i].length) + 1;
    assert.ok(
      probes <= perQuestion * questions,
      `${SHAPES[i].name}: ${probes} path levels compared for ${questions} questions`,
    );
    if (SHAPES[i].name.includes('cumsum')) assert.ok(diags > 500, `${SHAPES[i].name}: ${diags} diagnostics`);
  }
  // Time over all shapes, fastest of three for the small ones: a square cost gives 256x at 16x the text (the code
  // before the cursor lookups took 96x over these five shapes, its slowest shape 335x), a linear one 16x plus the
  // binding's per-node overhead, which grows with the nodes alive (about 20x here). The bound leaves room for a
  // busy machine.
  for (const t of small) analyse(t);
  const t1 = small.reduce((sum, t) => sum + fastest(t, 3), 0);
  const t16 = large.reduce((sum, t) => sum + fastest(t, 1), 0);
  assert.ok(
    t16 < 48 * t1,
    `16x the text took ${(t16 / t1).toFixed(1)}x the time (${t1.toFixed(0)} -> ${t16.toFixed(0)} ms)`,
  );
});

test('20,000 nested calls and 16,000-term chains are analysed without running out of stack', () => {
  for (const shape of SHAPES.filter((s) => s.name === 'nested calls (f)' || s.name.startsWith('`+`'))) {
    const text = shape.make(shape.name.includes('nested') ? 20000 : 16000);
    assert.doesNotThrow(() => analyse(text), shape.name);
  }
});
