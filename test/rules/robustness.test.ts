// Rules never throw: empty, mid-edit, huge, deeply nested and odd inputs give diagnostics or nothing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { parsePython } from '../../server/src/analysis/parser';
import { buildModelIndex } from '../../server/src/analysis/model';
import { allRules, runRuleStrict, runRules } from '../../server/src/rules';
import { applyTrtFixes } from '../../server/src/fixes/trtFixes';
import { spawnSync } from 'child_process';

function everyRuleStrict(text: string): number {
  const tree = parsePython(text);
  const index = buildModelIndex(tree, text);
  let n = 0;
  for (const rule of allRules) {
    assert.doesNotThrow(() => {
      n += runRuleStrict(rule, index, tree, text).length;
    }, rule.code);
  }
  assert.ok(Array.isArray(runRules(index, tree, text, {})));
  assert.ok(Array.isArray(runRules(null, tree, text, {})));
  return n;
}

const ROBERTA =
  'import torch\ndef pos(input_ids, pad):\n    mask = input_ids.ne(pad).int()\n    inc = torch.cumsum(mask, dim=1).type_as(mask) * mask\n    return inc.long() + pad\n';

describe('rules on hostile input', () => {
  it('empty file and whitespace-only file', () => {
    assert.equal(everyRuleStrict(''), 0);
    assert.equal(everyRuleStrict('\n\n   \n'), 0);
  });

  it('every prefix of a file (typing it character by character)', () => {
    const text = ROBERTA + 'x = torch.unique(torch.nonzero(mask))\nq = self.a_quantizer(x) @ y\n';
    for (let i = 0; i <= text.length; i += 3) everyRuleStrict(text.slice(0, i));
  });

  it('a file mid-edit still gets diagnostics for the intact parts', () => {
    const text = ROBERTA + 'def broken(x:\n    return torch.unique(x\n';
    const tree = parsePython(text);
    assert.equal(tree.rootNode.hasError, true);
    const ds = runRules(buildModelIndex(tree, text), tree, text, {});
    assert.ok(
      ds.some((d) => d.code === 'TRT001'),
      JSON.stringify(ds.map((d) => d.code)),
    );
  });

  it('a 10,000-line file', () => {
    const block =
      ROBERTA.replace('def pos', 'def pos_N') +
      'class M(torch.nn.Module):\n    def forward(self, x):\n        return torch.unique(x)\n';
    const text = Array.from({ length: 1000 }, (_, i) => block.replace('pos_N', `pos_${i}`)).join('\n');
    assert.ok(text.split('\n').length >= 9000);
    const n = everyRuleStrict(text);
    assert.ok(n >= 2000, `found ${n}`);
  });

  it('deeply nested code and expressions', () => {
    const nestedCalls = 'import torch\nx = ' + 'torch.sqrt('.repeat(300) + 'torch.arange(3)' + ')'.repeat(300) + '\n';
    everyRuleStrict(nestedCalls);
    let blocks = 'import torch\n';
    for (let i = 0; i < 60; i++) blocks += '    '.repeat(i) + `def f${i}(a):\n`;
    blocks += '    '.repeat(60) + 'return torch.cumsum(a.int(), 0)\n';
    assert.ok(everyRuleStrict(blocks) >= 1);
    everyRuleStrict('import torch\ny = ' + '('.repeat(500) + 'a & b' + ')'.repeat(500) + '\n');
  });

  it('non-UTF-8 bytes decoded with replacement characters, NUL bytes, lone surrogates and CRLF', () => {
    const bytes = Buffer.concat([
      Buffer.from('import torch\n# caf'),
      Buffer.from([0xe9, 0xff, 0xfe]),
      Buffer.from('\nm = torch.tensor([1]).int()\ny = torch.cumsum(m, 0)\n'),
    ]);
    assert.ok(everyRuleStrict(bytes.toString('utf8')) >= 1);
    everyRuleStrict('import torch\nx = "\u0000\ud800"\ny = torch.unique(x)\n');
    assert.ok(everyRuleStrict(ROBERTA.replace(/\n/g, '\r\n')) >= 1);
  });

  it('a class with no __init__ and quantizer-looking code without declarations', () => {
    everyRuleStrict(
      'import torch\nimport qdq_quant  # qdq\nclass M(torch.nn.Module):\n    def forward(self, a, b):\n        return torch.cat([self.x_quantizer(a), self.y_quantizer(b)]) + self.fc(self.q_quantizer(a))\n',
    );
  });

  it('diagnostic ranges lie inside the document and fixes never overlap themselves', () => {
    const text =
      ROBERTA +
      'def g(a, b):\n    m = a.gt(0)\n    k = b.lt(0)\n    return (m + k), torch.floor(a.long()), a.long().sqrt()\n';
    const lines = text.split('\n');
    const tree = parsePython(text);
    for (const d of runRules(buildModelIndex(tree, text), tree, text, {})) {
      for (const p of [d.range.start, d.range.end]) {
        assert.ok(p.line < lines.length && p.character <= lines[p.line].length, `${d.code} ${JSON.stringify(d.range)}`);
      }
    }
  });

  it('applyTrtFixes on broken input returns text (never half-applied garbage) and is idempotent', () => {
    const text = ROBERTA + 'def broken(x:\n';
    const r = applyTrtFixes(text);
    assert.equal(applyTrtFixes(r.text).text, r.text);
    assert.ok(r.text.endsWith('def broken(x:\n'));
  });
});

describe('real third-party model sources', () => {
  const candidates = [
    '/usr/lib/python3/dist-packages/torchvision/models/resnet.py',
    '/usr/lib/python3/dist-packages/torchvision/models/swin_transformer.py',
    '/usr/lib/python3/dist-packages/torchvision/models/detection/roi_heads.py',
    '/usr/lib/python3/dist-packages/torch/nn/modules/transformer.py',
    '/usr/lib/python3/dist-packages/torch/nn/functional.py',
  ].filter((p) => fs.existsSync(p));
  it(
    'has real sources to read',
    { skip: candidates.length ? false : 'Debian python3-torch/python3-torchvision are not installed' },
    () => {
      assert.ok(candidates.length > 0);
    },
  );
  for (const file of candidates) {
    it(`runs every rule on ${path.basename(file)} and the safe fixes keep it parseable and idempotent`, () => {
      const text = fs.readFileSync(file, 'utf8');
      everyRuleStrict(text);
      const r = applyTrtFixes(text);
      assert.equal(parsePython(r.text).rootNode.hasError, parsePython(text).rootNode.hasError);
      assert.equal(applyTrtFixes(r.text).text, r.text);
    });
  }
  it(
    'finds the known TensorRT problems in torchvision roi_heads (nonzero / boolean masks)',
    {
      skip: fs.existsSync('/usr/lib/python3/dist-packages/torchvision/models/detection/roi_heads.py')
        ? false
        : 'torchvision not installed',
    },
    () => {
      const text = fs.readFileSync('/usr/lib/python3/dist-packages/torchvision/models/detection/roi_heads.py', 'utf8');
      const tree = parsePython(text);
      const codes = new Set(runRules(buildModelIndex(tree, text), tree, text, {}).map((d) => d.code));
      assert.ok(codes.has('TRT004') || codes.has('TRT005'), [...codes].join(','));
    },
  );
});

describe('HF transformers RoBERTa (installed copy)', () => {
  const probe = spawnSync(
    'python3',
    [
      '-c',
      'import importlib.util as u; s = u.find_spec("transformers"); print(s.submodule_search_locations[0] if s else "")',
    ],
    { encoding: 'utf8' },
  );
  const root = probe.status === 0 ? probe.stdout.trim() : '';
  const file = root ? path.join(root, 'models', 'roberta', 'modeling_roberta.py') : '';
  const present = !!file && fs.existsSync(file);
  it(
    'flags create_position_ids_from_input_ids and patches only its .int() to .float()',
    { skip: present ? false : 'transformers is not installed for python3' },
    () => {
      const text = fs.readFileSync(file, 'utf8');
      const tree = parsePython(text);
      const ds = runRules(buildModelIndex(tree, text), tree, text, {}).filter((d) => d.code === 'TRT001');
      assert.equal(ds.length, 1);
      const r = applyTrtFixes(text);
      assert.equal(r.applied.length, 1);
      const before = text.split('\n');
      const after = r.text.split('\n');
      const changed = before.map((l, i) => (l !== after[i] ? i : -1)).filter((i) => i >= 0);
      assert.equal(changed.length, 1);
      assert.match(before[changed[0]], /mask = input_ids\.ne\(padding_idx\)\.int\(\)/);
      assert.equal(after[changed[0]], before[changed[0]].replace('.int()', '.float()'));
      const ast = spawnSync('python3', ['-c', 'import ast,sys; ast.parse(sys.stdin.read())'], {
        input: r.text,
        encoding: 'utf8',
      });
      assert.equal(ast.status, 0, ast.stderr);
    },
  );
});
