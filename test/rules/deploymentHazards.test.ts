// Issue 16 item 5: the deployment-hazard rules' quick fixes rewrite the source into a form the rule accepts, and
// their findings depend on what the source shows (literals, the rank, the opset, the target version).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diagnose, diagnoseAll, py, textAt } from './helpers';
import { LineIndex } from '../../server/src/analysis/parser';
import type { QdqDiagnostic } from '../../server/src/rules/types';
import { trtOperatorSupport } from '../../server/src/knowledge';
import { MAX_K } from '../../server/src/rules/trt022TopK';

/** The text after a diagnostic's fix (edits applied back to front). */
function applyFix(text: string, d: QdqDiagnostic): string {
  assert.ok(d.fix, `${d.code} has a fix`);
  const lines = new LineIndex(text);
  const edits = d.fix.edits
    .map((e) => ({ start: lines.offsetAt(e.range.start), end: lines.offsetAt(e.range.end), text: e.newText }))
    .sort((a, b) => b.start - a.start);
  for (const e of edits) text = text.slice(0, e.start) + e.text + text.slice(e.end);
  return text;
}

const STEM = py`
  import torch.nn as nn
  import qdq_quant  # qdq
  class Net(nn.Module):
      def __init__(self, classes=3):
          super().__init__()
          self.stem = qdq_quant.quant(nn.Conv2d(in_channels=3, out_channels=32, kernel_size=3))
          self.body = nn.Sequential(qdq_quant.quant(nn.Conv2d(32, 32, 3)), qdq_quant.quant(nn.Conv2d(1, 32, 3)))
          self.head = qdq_quant.quant(nn.Linear(32, 3))
          self.wide = qdq_quant.quant(nn.Linear(32, 64))
          self.dyn = qdq_quant.quant(nn.Linear(32, classes))
`;

test('TRT062/TRT065: literals decide, keyword arguments and containers count, the fix keeps the layer in float', () => {
  const convs = diagnose('TRT062', STEM);
  assert.deepEqual(
    convs.map((d) => textAt(STEM, d)),
    ['nn.Conv2d(in_channels=3, out_channels=32, kernel_size=3)', 'nn.Conv2d(1, 32, 3)'],
  );
  const gemms = diagnose('TRT065', STEM);
  assert.deepEqual(
    gemms.map((d) => textAt(STEM, d)),
    ['nn.Linear(32, 3)'],
  );
  for (const [code, d] of [
    ['TRT062', convs[0]],
    ['TRT065', gemms[0]],
  ] as const) {
    assert.equal(d.fix?.safety, 'unsafe');
    const fixed = applyFix(STEM, d);
    assert.match(
      fixed,
      code === 'TRT062' ? /keep_float\(nn\.Conv2d\(in_channels=3/ : /keep_float\(nn\.Linear\(32, 3\)\)/,
    );
    assert.equal(diagnose(code, fixed).length, (code === 'TRT062' ? convs : gemms).length - 1);
  }
});

test('TRT062 on pytorch-quantization layers: reported without a fix (there is no keep_float wrapper to write)', () => {
  const text = py`
    from pytorch_quantization import nn as quant_nn
    import torch.nn as nn
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = quant_nn.QuantConv2d(3, 16, 3)
  `;
  const [d] = diagnose('TRT062', text);
  assert.ok(d);
  assert.equal(d.fix, undefined);
});

test('TRT063: rank 4 from a Conv2d output and a 4-argument view; a 3-D view is fine', () => {
  const text = py`
    import torch.nn as nn
    import qdq_quant  # qdq
    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3)
            self.fc = qdq_quant.quant(nn.Linear(c, c))
            self.proj = qdq_quant.quant(nn.Linear(c, c))
        def forward(self, x):
            a = self.fc(self.conv(x))
            y = x.view(x.shape[0], 7, 7, -1)
            b = self.proj(y)
            z = x.view(x.shape[0], 49, -1)
            return a, b, self.proj(z)
  `;
  const found = diagnose('TRT063', text);
  assert.deepEqual(
    found.map((d) => textAt(text, d)),
    ['self.fc(self.conv(x))', 'self.proj(y)'],
  );
  assert.match(found[0].message, /NCHW output of the Conv2d `self\.conv`/);
});

test('TRT064: only with a LayerNorm in the file; the fix exports at opset 17', () => {
  const text = py`
    import torch
    import torch.nn.functional as F
    def norm(x):
        return F.layer_norm(x, x.shape[-1:])
    torch.onnx.export(model, args, "m.onnx", opset_version=14)
  `;
  const [d] = diagnose('TRT064', text);
  assert.ok(d);
  const fixed = applyFix(text, d);
  assert.match(fixed, /opset_version=17\)/);
  assert.deepEqual(diagnose('TRT064', fixed), []);
  assert.deepEqual(diagnose('TRT064', text.replace('F.layer_norm(x, x.shape[-1:])', 'x')), []);
});

test('TRT066: severity by target (a K from the shape needs 8.6); list.sort() statements are not tensors', () => {
  const text = 'import torch\ndef f(x, names):\n    names.sort()\n    return x.argsort(dim=-1), torch.sort(x)\n';
  assert.deepEqual(
    diagnose('TRT066', text)
      .sort((a, b) => a.range.start.character - b.range.start.character)
      .map((d) => [textAt(text, d), d.severity]),
    [
      ['x.argsort(dim=-1)', 'information'],
      ['torch.sort(x)', 'information'],
    ],
  );
  assert.ok(diagnose('TRT066', text, { trtVersion: '8.5' }).every((d) => d.severity === 'error'));
  // The K limit in the messages is the one of the 11.x and 10.x operator matrices.
  for (const v of ['11.5', '10.15'])
    assert.match(trtOperatorSupport('TopK', v)!.restrictions, new RegExp(`less than ${MAX_K}\\b`));
  assert.match(diagnose('TRT066', text)[0].message, new RegExp(`K < ${MAX_K}`));
});

test('TRT067: the dtype fix accumulates in float32 and casts back; TRT001 stays quiet on both sites', () => {
  const text =
    'import torch\ndef f(mask):\n    a = mask.cumsum(-1, dtype=torch.long)\n    b = torch.flip(mask, [1]).cumsum(1)\n    return a, b\n';
  const found = diagnoseAll(text).filter((d) => d.code === 'TRT067' || d.code === 'TRT001');
  assert.deepEqual(
    found.map((d) => [d.code, d.range.start.line]),
    [
      ['TRT067', 2],
      ['TRT067', 3],
    ],
  );
  assert.equal(found[0].fix?.safety, 'safe');
  assert.match(applyFix(text, found[0]), /a = mask\.cumsum\(-1, dtype=torch\.float32\)\.long\(\)/);
  assert.match(applyFix(text, found[1]), /torch\.flip\(mask\.float\(\), \[1\]\)\.cumsum\(1\)/);
  // A float dtype is fine, and a mask the source shows as float is not an integer cumsum.
  assert.deepEqual(
    diagnose(
      'TRT067',
      'def f(m):\n    m = m.float()\n    return m.flip(1).cumsum(1, dtype=torch.float32), m.flip(1).cumsum(1)\n',
    ),
    [],
  );
});
