// The QDQ placement lints on the three quantizer styles: qdq's generated code, NVIDIA pytorch-quantization
// and torch.ao fake quantization.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { diagnose, diagnoseAll, py } from './helpers';

describe('QDQ lints', () => {
  it('stay silent on files without any quantizer', () => {
    const text = py`
      import torch
      from torch import nn
      class M(nn.Module):
          def __init__(self):
              super().__init__()
              self.fc = nn.Linear(4, 4)
          def forward(self, x, y):
              return torch.cat([self.fc(x), y]) + x
    `;
    assert.deepEqual(
      diagnoseAll(text).filter((d) => d.code.startsWith('QDQ')),
      [],
    );
  });

  it('QDQ001: torch.ao FakeQuantize with quint8 / [0, 255] and a non-zero zero point', () => {
    const text = py`
      import torch
      from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver
      fq = FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8)
      ok = FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
      def f(x):
          return torch.fake_quantize_per_tensor_affine(x, 0.1, 3, -128, 127)
    `;
    const ds = diagnose('QDQ001', text);
    assert.deepEqual(
      ds.map((d) => d.range.start.line),
      [2, 5],
    );
    assert.match(ds[0].message, /quint8/);
    assert.match(ds[1].message, /zero_point=3/);
  });

  it('QDQ004: per-channel fake quantization of a weight on axis 1', () => {
    const text =
      'import torch\nclass L(torch.nn.Linear):\n    def forward(self, x):\n        w = torch.fake_quantize_per_channel_affine(self.weight, self.s, self.z, 1, -128, 127)\n        return x @ w.t()\n';
    const ds = diagnose('QDQ004', text);
    assert.equal(ds.length, 1);
    assert.match(ds[0].message, /axis 1/);
  });

  it("QDQ005: disabling one of a QuantLinear's quantizers", () => {
    const text = py`
      from pytorch_quantization import nn as quant_nn
      fc = quant_nn.QuantLinear(16, 16)
      fc.weight_quantizer.disable()
      fc.input_quantizer.enable()
    `;
    const ds = diagnose('QDQ005', text);
    assert.equal(ds.length, 1);
    assert.match(ds[0].message, /only the input quantized/);
  });

  it('QDQ005: a quantizer feeding a plain nn.Linear', () => {
    const text = py`
      from torch import nn
      from pytorch_quantization.nn import TensorQuantizer
      from pytorch_quantization.tensor_quant import QuantDescriptor
      class M(nn.Module):
          def __init__(self):
              super().__init__()
              self.fc = nn.Linear(8, 8)
              self.x_quantizer = TensorQuantizer(QuantDescriptor(num_bits=8))
          def forward(self, x):
              return self.fc(self.x_quantizer(x))
    `;
    const ds = diagnose('QDQ005', text);
    assert.equal(ds.length, 1);
    assert.match(ds[0].message, /self\.fc/);
  });

  it('QDQ003 reads the axis from a QuantDescriptor and ignores quantizers applied to weights', () => {
    const text = py`
      from torch import nn
      from pytorch_quantization.nn import TensorQuantizer
      from pytorch_quantization.tensor_quant import QuantDescriptor
      class M(nn.Module):
          def __init__(self):
              super().__init__()
              self.act_quantizer = TensorQuantizer(QuantDescriptor(num_bits=8, axis=(1,)))
              self.w_quantizer = TensorQuantizer(QuantDescriptor(num_bits=8, axis=(0,)))
          def forward(self, x):
              return self.act_quantizer(x) @ self.w_quantizer(self.weight)
    `;
    const ds = diagnose('QDQ003', text);
    assert.equal(ds.length, 1);
    assert.match(ds[0].message, /self\.act_quantizer/);
  });

  it('QDQ007 leaves an add after a Linear alone: HF LayerNorm(dense(h) + input_tensor) stays float for TensorRT', () => {
    const text = py`
      from torch import nn
      import qdq_quant  # qdq
      class SelfOutput(nn.Module):
          def __init__(self, d):
              super().__init__()
              self.dense = qdq_quant.quant(nn.Linear(d, d))
              self.LayerNorm = nn.LayerNorm(d)
          def forward(self, hidden_states, input_tensor):
              hidden_states = self.dense(hidden_states)
              return self.LayerNorm(hidden_states + input_tensor)
    `;
    // The tensorrt export keeps no residual quantizer on an add that follows no convolution (residual_fusion.py).
    assert.deepEqual(diagnose('QDQ007', text), []);
  });

  it('QDQ007 follows the branch back through BatchNorm to a convolution, and not through an activation', () => {
    const block = (tail: string) => py`
      from torch import nn
      import qdq_quant  # qdq
      class Block(nn.Module):
          def __init__(self):
              super().__init__()
              self.conv2 = qdq_quant.quant(nn.Conv2d(4, 4, 3, padding=1))
              self.bn2 = nn.BatchNorm2d(4)
              self.relu = nn.ReLU()
          def forward(self, x):
              identity = x
              out = self.conv2(x)
              out = self.bn2(out)
              ${tail}
              out += identity
              return out
    `;
    assert.equal(diagnose('QDQ007', block('pass')).length, 1);
    assert.deepEqual(diagnose('QDQ007', block('out = self.relu(out)')), []);
  });

  it('QDQ007 names the skip operand of `out + x` and `out += identity` (never a placeholder in backticks)', () => {
    for (const [line, skip] of [
      ['out = out + x', 'x'],
      ['out += identity', 'identity'],
    ]) {
      const text = py`
        from torch import nn
        import qdq_quant  # qdq
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = qdq_quant.quant(nn.Conv2d(4, 4, 3, padding=1))
            def forward(self, x):
                identity = x
                out = self.conv(x)
                ${line}
                return out
      `;
      const ds = diagnose('QDQ007', text);
      assert.equal(ds.length, 1, line);
      assert.match(ds[0].message, new RegExp(`with the skip input \`${skip}\` unquantized`), ds[0].message);
      assert.doesNotMatch(ds[0].message, /`the skip input`/);
    }
  });

  it('QDQ008: a declared quantizer nothing calls, and a called one nothing declares', () => {
    const text = py`
      import torch
      from torch import nn
      import qdq_quant  # qdq
      class Attn(nn.Module):
          def __init__(self):
              super().__init__()
              self.matmul0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
              self.matmul0_b_quantizer = qdq_quant.TensorQuantizer()  # qdq
          def forward(self, q, k):
              # self.matmul0_b_quantizer(k) was here
              s = torch.matmul(self.matmul0_a_quantizer(q), k)
              return self.add0_residual_quantizer(s) + q
    `;
    const ds = diagnose('QDQ008', text);
    assert.equal(ds.length, 2, JSON.stringify(ds.map((d) => d.message)));
    const orphan = ds.find((d) => d.message.includes('matmul0_b_quantizer'))!;
    assert.match(orphan.message, /declared in Attn but nothing calls it/);
    assert.equal(orphan.range.start.line, 7);
    assert.deepEqual(orphan.fix?.edits, [
      { range: { start: { line: 7, character: 0 }, end: { line: 8, character: 0 } }, newText: '' },
    ]);
    const missing = ds.find((d) => d.message.includes('add0_residual_quantizer'))!;
    assert.match(missing.message, /called in Attn but never declared: the model fails with AttributeError/);
    assert.equal(missing.range.start.line, 11);
  });

  it('QDQ008 stays silent on what qdq quantize writes', () => {
    const fs = require('node:fs') as typeof import('node:fs');
    const { quantizeFile } = require('../../server/src/fixes') as typeof import('../../server/src/fixes');
    for (const example of ['digits-transformer', 'digits-cnn']) {
      const text = fs.readFileSync(`examples/${example}/model.py`, 'utf8');
      const quantized = quantizeFile(text, { scope: { kind: 'file' } }).text;
      assert.deepEqual(diagnose('QDQ008', quantized), [], example);
    }
  });

  it('QDQ010: a concat mixing quantized and float inputs', () => {
    const text = py`
      import torch
      import qdq_quant  # qdq
      class M(torch.nn.Module):
          def __init__(self):
              super().__init__()
              self.a_quantizer = qdq_quant.TensorQuantizer()  # qdq
          def forward(self, a, b):
              return torch.cat((self.a_quantizer(a), b), 1)
    `;
    const ds = diagnose('QDQ010', text);
    assert.equal(ds.length, 1);
    assert.match(ds[0].message, /Only some inputs/);
  });
});
