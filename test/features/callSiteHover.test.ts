// Hovers on calls of a class's own members (issue 19 item 5): `self.head(x)`, `self.matmul0_a_quantizer(q)` and
// `self.fc(x)` say what the member is, what it quantizes and its amax, not just "(call)".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePython, buildModelIndex } from '../../server/src/analysis';
import { hoverMarkdown, targetAt } from '../../server/src/features/hover';
import { CalibrationStore } from '../../server/src/features/calibration';

const FILE = '/proj/model.py';
const TEXT = `import torch
from torch import nn
import qdq_quant  # qdq


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = qdq_quant.quant(nn.Linear(8, 4))

    def forward(self, x):
        return self.fc(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.matmul0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
        self.proj = nn.Linear(8, 8)
        self.head = Head()

    def forward(self, q, k):
        s = torch.matmul(self.matmul0_a_quantizer(q), k)
        return self.head(self.proj(s))
`;

function hoverAt(needle: string, store = new CalibrationStore()): string {
  const index = buildModelIndex(parsePython(TEXT), TEXT);
  const offset = TEXT.indexOf(needle) + 6; // inside `self.<name>`
  const before = TEXT.slice(0, offset).split('\n');
  const target = targetAt(index, { line: before.length - 1, character: before[before.length - 1].length });
  assert.ok(target, needle);
  return hoverMarkdown(target, FILE, store, TEXT, index);
}

test('call-site hovers name the member and what it does', () => {
  const q = hoverAt('self.matmul0_a_quantizer(q)');
  assert.match(q, /\*\*TensorQuantizer\*\* `Net\.matmul0_a_quantizer`, called here/);
  assert.match(q, /Feeds operand `a` of `torch\.matmul` \(matmul\) on line 23/);
  assert.match(q, /Not calibrated yet/);
  assert.doesNotMatch(q, /\(call\)/);
  const head = hoverAt('self.head(self.proj');
  assert.match(head, /\*\*Head\*\* `Net\.head`, called here/);
  assert.match(head, /An instance of `Head` \(line 6\): 1 of 1 weighted layers quantized/);
  const proj = hoverAt('self.proj(s)');
  assert.match(proj, /\*\*nn\.Linear\*\* `Net\.proj`, called here/);
  assert.match(proj, /Built on line 19; not quantized/);
});

test('after calibration the call-site hovers carry the amax of what they call', () => {
  const store = new CalibrationStore();
  store.set({
    projectDir: '/proj',
    quantizers: [
      {
        name: 'matmul0_a_quantizer',
        site: { file: FILE, cls: 'Net', attr: 'matmul0_a_quantizer' },
        axis: null,
        amax: 3.5,
        method: 'entropy',
      },
      {
        name: 'head.fc.input_quantizer',
        site: { file: FILE, cls: 'Head', attr: 'fc.input_quantizer' },
        axis: null,
        amax: 2.25,
        method: 'entropy',
      },
    ],
  });
  assert.match(hoverAt('self.matmul0_a_quantizer(q)', store), /`matmul0_a_quantizer`: amax 3\.5/);
  const head = hoverAt('self.head(self.proj', store);
  assert.match(head, /\*\*Calibration\*\* \(this instance\)/);
  assert.match(head, /`head\.fc\.input_quantizer`: amax 2\.25/);
});
