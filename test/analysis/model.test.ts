import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModelIndex, parsePython } from '../../server/src/analysis';
import type { ModelIndex } from '../../server/src/analysis';

function index(text: string): ModelIndex {
  return buildModelIndex(parsePython(text), text);
}
const cls = (ix: ModelIndex, name: string) => {
  const c = ix.classes.find((k) => k.name === name);
  assert.ok(c, `class ${name} not indexed`);
  return c!;
};

test('module classes through every import alias and local subclassing', () => {
  const ix = index(`
import torch
import torch.nn as tnn
from torch import nn
from torch.nn import Module, Conv2d as C2


class A(nn.Module):
    pass


class B(tnn.Module):
    pass


class C(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c = C2(1, 1, 1)


class D(Module):
    pass


class E(C):
    pass


class NotAModule(object):
    def forward(self, x):
        return x
`);
  for (const n of ['A', 'B', 'C', 'D', 'E']) assert.equal(cls(ix, n).isModule, true, n);
  assert.equal(cls(ix, 'NotAModule').isModule, false);
  assert.equal(cls(ix, 'C').layers[0].ctor, 'nn.Conv2d');
  assert.equal(cls(ix, 'C').layers[0].attr, 'c');
  assert.equal(cls(ix, 'C').superInitLine, 17);
});

test('layers in Sequential, ModuleList comprehensions and helper functions', () => {
  const ix = index(`
from torch import nn


def conv3x3(i, o):
    return nn.Conv2d(i, o, 3, padding=1, bias=False)


class Net(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.stem = conv3x3(3, d)
        self.body = nn.Sequential(nn.Linear(d, d), nn.GELU())
        self.blocks = nn.ModuleList([nn.Linear(d, d) for _ in range(3)])
        self.norm = nn.LayerNorm(d)
`);
  const net = cls(ix, 'Net');
  const byCtor = (c: string) => net.layers.filter((l) => l.ctor === c);
  const stem = net.layers.find((l) => l.attr === 'stem')!;
  assert.equal(stem.inHelper, 'conv3x3');
  assert.equal(stem.ctor, 'nn.Conv2d');
  assert.equal(stem.kind, 'conv');
  assert.deepEqual(
    byCtor('nn.Linear').map((l) => l.container),
    ['nn.Sequential', 'nn.ModuleList'],
  );
  assert.equal(byCtor('nn.GELU')[0].kind, 'activation');
  assert.equal(net.layers.find((l) => l.attr === 'norm')!.kind, 'norm');
  const helper = ix.functions.find((f) => f.name === 'conv3x3')!;
  assert.equal(helper.returnsLayer, true);
  assert.equal(helper.layers[0].kwargs.bias, 'False');
});

test('ops in forward: matmul forms, parameters excluded, residual adds, other calls', () => {
  const text = `
import torch
import torch.nn.functional as F
from torch import nn


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(8)
        self.w = nn.Parameter(torch.ones(8, 8))

    def forward(self, q, k, v, mask, input_tensor):
        identity = q
        s = torch.matmul(q, k.transpose(-1, -2)) + mask
        p = s.softmax(-1) @ v
        r = torch.bmm(p, v)
        e = torch.einsum("ij,jk->ik", p, v)
        lin = F.linear(q, self.w)
        pw = q @ self.w
        out = self.LayerNorm(r + input_tensor)
        out += identity
        y = torch.cumsum(out, dim=1)
        return F.max_pool2d(y, 2)
`;
  const a = cls(index(text), 'Attn');
  const ops = (k: string) => a.ops.filter((o) => o.kind === k);
  const operandText = (o: { operandSpans: { start: number; end: number }[] }) =>
    o.operandSpans.map((s) => text.slice(s.start, s.end));
  assert.deepEqual(ops('matmul').map(operandText), [
    ['q', 'k.transpose(-1, -2)'],
    ['s.softmax(-1)', 'v'],
    ['q', 'self.w'],
  ]);
  assert.deepEqual(ops('matmul')[2].operandIsParam, [false, true]);
  assert.deepEqual(operandText(ops('bmm')[0]), ['p', 'v']);
  assert.deepEqual(operandText(ops('einsum')[0]), ['p', 'v']);
  assert.deepEqual(operandText(ops('linear')[0]), ['q']);
  const adds = ops('add');
  const maskAdd = adds.find((o) => text.slice(o.span.start, o.span.end).includes('mask'))!;
  assert.ok(!maskAdd.residual, 'attention-mask add is not a skip connection');
  const normAdd = adds.find((o) => o.feedsNorm)!;
  assert.equal(normAdd.feedsNorm, 'self.LayerNorm');
  assert.deepEqual(operandText(normAdd), ['r', 'input_tensor']);
  const iadd = ops('iadd')[0];
  assert.equal(iadd.residual, true);
  assert.deepEqual(operandText(iadd), ['identity']);
  assert.equal(ops('pool')[0].callee, 'F.max_pool2d');
  const cumsum = a.ops.find((o) => o.callee === 'torch.cumsum')!;
  assert.equal(cumsum.kind, 'call');
  assert.equal(text.slice(cumsum.span.start, cumsum.span.end), 'torch.cumsum(out, dim=1)');
  assert.equal(cumsum.method, 'forward');
});

test('module-receiving functions are delegates of the classes that hand themselves over', () => {
  const ix = index(`
import torch
from torch import nn


def eager_attention_forward(module: nn.Module, query, key, value):
    w = torch.matmul(query, key.transpose(2, 3))
    return torch.matmul(w.softmax(-1), value)


class SelfAttention(nn.Module):
    def forward(self, q, k, v):
        fn = pick(self.impl, eager_attention_forward)
        return fn(self, q, k, v)
`);
  assert.deepEqual(cls(ix, 'SelfAttention').delegates, [{ func: 'eager_attention_forward', paramName: 'module' }]);
  const f = ix.functions.find((x) => x.name === 'eager_attention_forward')!;
  assert.deepEqual(
    f.ops.filter((o) => o.kind === 'matmul').map((o) => o.owner),
    ['module', 'module'],
  );
});

test('imports: insertion line, relative imports, CRLF', () => {
  const ix = index('"""doc"""\r\nfrom __future__ import annotations\r\nimport os\r\nfrom .x import y\r\n\r\nz = 1\r\n');
  assert.equal(ix.imports.insertAfterLine, 3);
  assert.equal(ix.imports.usesRelativeImports, true);
  assert.equal(ix.eol, '\r\n');
  assert.equal(index('"""doc"""\nx = 1\n').imports.insertAfterLine, 0);
  assert.equal(index('#!/usr/bin/env python\n# comment\nx = 1\n').imports.insertAfterLine, 1);
});

test('a layer-class parameter called in the body is a layer (torchvision ConvNormActivation)', () => {
  const text = [
    'import torch',
    'from typing import Callable',
    '',
    'class ConvNormActivation(torch.nn.Sequential):',
    '    def __init__(self, cin, cout, conv_layer: Callable[..., torch.nn.Module] = torch.nn.Conv2d, act=None):',
    '        layers = [conv_layer(cin, cout, 3), act(inplace=True)]',
    '        super().__init__(*layers)',
    '',
  ].join('\n');
  const index = buildModelIndex(parsePython(text), text);
  const layers = index.classes[0].layers;
  assert.deepEqual(
    layers.map((l) => l.ctor),
    ['nn.Conv2d'],
    'conv_layer(...) is an nn.Conv2d; act(...) is not a layer',
  );
});
