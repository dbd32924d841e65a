// modelMatches (a walk over node types) stands in for the combined query of grammars/model-*.scm because the
// binding's query cursor is slow; the .scm files stay the definition. Both must give the same matches, in the
// same order (the model index breaks ties between matches that start together by their order).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { parsePython } from '../../server/src/analysis';
import { modelMatches, modelQuery, type ModelMatch } from '../../server/src/analysis/queries';
import { modelSources } from './editing';

const DIST = '/usr/lib/python3/dist-packages';
const DIRS = [
  'torchvision/models',
  'torchvision/models/detection',
  'torchvision/models/quantization',
  'torch/nn/modules',
];

function pythonFiles(): { name: string; text: string }[] {
  const out = modelSources().filter((s) => !s.name.startsWith('/'));
  for (const d of DIRS.map((d) => path.join(DIST, d))) {
    if (!fs.existsSync(d)) continue;
    for (const f of fs
      .readdirSync(d)
      .filter((f) => f.endsWith('.py'))
      .sort())
      out.push({ name: path.join(d, f), text: fs.readFileSync(path.join(d, f), 'utf8') });
  }
  return out;
}

/** A match as text: pattern, then its captures (name and range) in a fixed order. */
function describe(m: Pick<ModelMatch, 'pattern' | 'captures'>): string {
  return (
    `${m.pattern}:` +
    m.captures
      .map((c) => `${c.name}@${c.node.startIndex}-${c.node.endIndex}`)
      .sort()
      .join(',')
  );
}

test("modelMatches gives the query's matches, in order, for every top-level statement and whole files", () => {
  const files = pythonFiles();
  let statements = 0;
  let matches = 0;
  const sourcesOfTorch = files.filter((f) => f.name.startsWith(DIST)).length;
  for (const { name, text } of files) {
    const tree = parsePython(text);
    for (const node of [tree.rootNode, ...tree.rootNode.namedChildren]) {
      const fast = modelMatches(node, text).map(describe);
      const query = modelQuery().matches(node).map(describe);
      assert.deepStrictEqual(fast, query, `${name}: matches under the node at ${node.startIndex} differ`);
      statements++;
      matches += fast.length;
    }
  }
  assert.ok(statements > 20 && matches > 20, `too little compared: ${statements} statements, ${matches} matches`);
  // Without Debian's python3-torchvision the comparison covers the golden inputs only; say so in the output.
  if (!sourcesOfTorch)
    console.log(
      `# modelMatches compared on the golden inputs only: no torchvision/torch sources under ${DIST} (apt install python3-torchvision)`,
    );
});

test('modelMatches covers every pattern, including the ones a file rarely has', () => {
  const text = [
    'class M(nn.Module):',
    '    def forward(self, a, b):',
    '        self.w: int = 3',
    '        x = a @ b + conv(a)',
    '        x += a.sum()',
    '        obj.attr = f(x)[0]',
    '        return x',
    '',
  ].join('\n');
  const tree = parsePython(text);
  const fast = modelMatches(tree.rootNode, text);
  assert.deepStrictEqual(fast.map(describe), modelQuery().matches(tree.rootNode).map(describe));
  assert.deepStrictEqual([...new Set(fast.map((m) => m.pattern))].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
});

test('a callee is read from the text only when the text leaves no doubt; otherwise the tree answers', async () => {
  const { calleeFromText } = await import('../../server/src/analysis/queries');
  const at = (src: string) => calleeFromText(src, 0, src.length);
  assert.deepStrictEqual(at('nn.Conv2d(3, 64, kernel_size=3)'), { text: 'nn.Conv2d', isName: false });
  assert.deepStrictEqual(at('conv3x3 (a, b)'), { text: 'conv3x3', isName: true });
  assert.deepStrictEqual(at('F.interpolate(x, mode=")(", align_corners=False)'), {
    text: 'F.interpolate',
    isName: false,
  });
  assert.deepStrictEqual(at("f('\\')', x)"), { text: 'f', isName: true });
  assert.equal(at('a.b(c).d(e)'), null, "the first ( is not this call's");
  assert.equal(at('super().__init__()'), null);
  assert.equal(at('f(f"{g(x)}")'), null, 'f-strings hold expressions');
  assert.equal(at('f("""a""")'), null, 'triple quotes');
  assert.equal(at('f(a,  # note\n  b)'), null, 'comments');
  assert.equal(at('x[0](y)'), null);
  assert.equal(at('größe(x)'), null, 'non-ASCII names');
  // Every call the corpus test sees goes through one of the two ways; both give the query's captures.
  const text = 'y = f(x, "(")\nz = a.b(c).d(e)\nw = g[0](h)\n';
  const tree = parsePython(text);
  assert.deepStrictEqual(
    modelMatches(tree.rootNode, text).map(describe),
    modelQuery().matches(tree.rootNode).map(describe),
  );
});
