// Issue 15 items 2 and 3 at the source level: weighted layers built indirectly are wrapped (aliases, partial(),
// conditionals, subclasses, imported factories, HF Conv1D), and operands that are not float activations (ints,
// sizes, bools, tuples, masks, biases) get no quantizer. Every result unquantizes back byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { keepFloat, quantizeFile, unquantizeFile } from '../../server/src/fixes';
import { importedWeightedLayers } from '../../server/src/fixes/importedLayers';
import { floatWeightedLayers } from '../../server/src/fixes/floatLayers';

function quantized(src: string, opts: Parameters<typeof quantizeFile>[1] = {}): string {
  const out = quantizeFile(src, opts).text;
  assert.equal(unquantizeFile(out).text, src, 'unquantize restores the original');
  assert.equal(quantizeFile(out, opts).text, out, 'quantize is idempotent');
  return out;
}

const MLP = `import torch
from functools import partial
from torch import nn as nn
from transformers.pytorch_utils import Conv1D


class Linear(nn.Linear):
    def forward(self, x):
        return super().forward(x)


class Mlp(nn.Module):
    def __init__(self, dim, use_conv=False, conv_layer=partial(nn.Conv2d, kernel_size=1)):
        super().__init__()
        linear_layer = partial(nn.Conv2d, kernel_size=1) if use_conv else nn.Linear
        self.fc1 = linear_layer(dim, dim * 4)
        self.fc2 = linear_layer(dim * 4, dim)
        self.head = Linear(dim, 10)
        self.proj = conv_layer(dim, dim)
        self.c_attn = Conv1D(3 * dim, dim)
        self.act = nn.GELU()
        layer = nn.Identity
        self.skip = layer()
`;

test('aliases, partial(), conditionals, subclasses and HF Conv1D are wrapped; other calls are not', () => {
  const out = quantized(MLP);
  for (const call of [
    'linear_layer(dim, dim * 4)',
    'linear_layer(dim * 4, dim)',
    'Linear(dim, 10)',
    'conv_layer(dim, dim)',
    'Conv1D(3 * dim, dim)',
  ])
    assert.ok(out.includes(`qdq_quant.quant(${call})`), `${call} wrapped:\n${out}`);
  assert.ok(!out.includes('quant(nn.GELU())') && !out.includes('quant(layer())'), out);
  assert.ok(!out.includes('quant(partial('), 'partial() itself builds nothing');
});

test('keep float works on a layer built through an alias', () => {
  const q = quantized(MLP);
  const at = q.indexOf('linear_layer(dim * 4, dim)');
  const kept = keepFloat(q, at).text;
  assert.ok(kept.includes('qdq_quant.keep_float(linear_layer(dim * 4, dim))'), kept);
});

test('imported subclasses and factories are resolved through the package on disk', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-imported-'));
  const pkg = path.join(root, 'lib', 'layers');
  fs.mkdirSync(pkg, { recursive: true });
  fs.writeFileSync(path.join(root, 'lib', '__init__.py'), '');
  fs.writeFileSync(path.join(pkg, '__init__.py'), 'from .linear import Linear\nfrom .factory import create_conv2d\n');
  fs.writeFileSync(path.join(pkg, 'linear.py'), 'from torch import nn\n\n\nclass Linear(nn.Linear):\n    pass\n');
  fs.writeFileSync(
    path.join(pkg, 'factory.py'),
    'from torch import nn\nfrom .same import Conv2dSame\n\n\ndef create_conv2d(i, o, k, same=False):\n' +
      '    if same:\n        m = Conv2dSame(i, o, k)\n    else:\n        m = nn.Conv2d(i, o, k)\n    return m\n',
  );
  fs.writeFileSync(path.join(pkg, 'same.py'), 'import torch.nn as nn\n\n\nclass Conv2dSame(nn.Conv2d):\n    pass\n');
  const model = path.join(root, 'lib', 'model.py');
  const src =
    'import torch.nn as nn\nfrom lib.layers import Linear, create_conv2d\nfrom .layers.linear import Linear as L2\n\n\n' +
    'class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n' +
    '        self.stem = create_conv2d(3, 8, 3)\n        self.head = Linear(8, 2)\n        self.aux = L2(8, 2)\n';
  fs.writeFileSync(model, src);
  const external = await importedWeightedLayers(model, src);
  assert.deepEqual(external, { Linear: 'nn.Linear', create_conv2d: 'nn.Conv2d', L2: 'nn.Linear' });
  const out = quantized(src, { externalLayers: external });
  for (const call of ['create_conv2d(3, 8, 3)', 'Linear(8, 2)', 'L2(8, 2)'])
    assert.ok(out.includes(`qdq_quant.quant(${call})`), `${call} wrapped:\n${out}`);
  // Without the resolution the names mean nothing to the quantize pass.
  assert.ok(!quantizeFile(src).text.includes('quant(Linear('));
  fs.rmSync(root, { recursive: true, force: true });
});

const OPS = `import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.Linear(dim, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, 4, dim))

    def forward(self, x, attention_mask, past_seen_tokens: int = 0):
        positions = torch.arange(x.shape[1], dtype=torch.long)[:, None] + past_seen_tokens
        n = x.shape[1] + 1
        x = x + self.pos_embed.to(x.dtype)
        scores = torch.matmul(x, x.transpose(-1, -2))
        scores = scores + attention_mask.to(scores.dtype)
        scores = scores + self.get_rel_pos_bias()
        pad = (x > 0).long() * 4
        y = x
        x = x + self.attn(self.norm(x))
        return self.norm(y + x), positions, n, pad
`;

test('ints, sizes, masks, biases and position terms get no quantizer; residuals and matmuls do', () => {
  const out = quantized(OPS);
  assert.ok(!/_quantizer\(past_seen_tokens\)/.test(out), out);
  assert.ok(!/_quantizer\(torch\.arange/.test(out), out);
  assert.ok(!/_quantizer\(attention_mask|_quantizer\(scores\) \+ attention_mask/.test(out), out);
  assert.ok(!/_quantizer\(scores\) \+ self\.get_rel_pos_bias/.test(out), out);
  assert.ok(!/_quantizer\(x\) \+ self\.pos_embed/.test(out), out);
  assert.ok(/torch\.matmul\(self\.matmul0_a_quantizer\(x\), self\.matmul0_b_quantizer\(/.test(out), out);
  assert.ok(/x = self\.add\d_residual_quantizer\(x\) \+ self\.attn/.test(out), out);
  assert.ok(
    /self\.norm\(self\.add\d_local_quantizer\(y\) \+ self\.add\d_residual_quantizer\(x\)\)|self\.norm\(self\.add\d_residual_quantizer\(y\) \+ self\.add\d_local_quantizer\(x\)\)/.test(
      out,
    ),
    out,
  );
});

test('what stays float is named with its line and reason', () => {
  const src = [
    'import torch.nn as nn',
    'from somewhere_unreadable import ConvLayer',
    '',
    '',
    'class Block(nn.Module):',
    '    def __init__(self, dim, conv_layer, linear_layer=nn.Linear):',
    '        super().__init__()',
    '        self.a = conv_layer(dim, dim, 1)',
    '        self.b = linear_layer(dim, dim)',
    '        self.c = ConvLayer(dim, dim)',
    '        self.d = nn.Linear(dim, dim)',
    '',
  ].join('\n');
  const q = quantizeFile(src).text;
  const kept = keepFloat(q, q.indexOf('nn.Linear(dim, dim)')).text;
  const float = floatWeightedLayers(kept);
  assert.deepEqual(
    float.map((f) => [f.line, f.cls, f.attr, f.callee]),
    [
      [9, 'Block', 'a', 'conv_layer'],
      [11, 'Block', 'c', 'ConvLayer'],
      [12, 'Block', 'd', 'nn.Linear'],
    ],
  );
  assert.match(float[0].reason, /parameter `conv_layer`, whose class is known only at run time/);
  assert.match(float[1].reason, /imported from somewhere_unreadable/);
  assert.match(float[2].reason, /keep_float/);
});
