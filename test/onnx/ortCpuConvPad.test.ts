// Zero-padded input channels for integer convolutions (server/src/onnx/ortCpuConvPad.ts), on hand-built QDQ
// graphs shaped like the ort-cpu export of a CNN's first layers, run before and after with onnxruntime-node.
import { before, test } from 'node:test';
import { integerWeightMax, probeU8S8Saturation } from '../../server/src/onnx/cpuInt8';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  Model,
  Node,
  Tensor,
  DataType,
  makeNode,
  makeTensor,
  floatTensor,
  int8Tensor,
  uint8Tensor,
  intAttr,
  writeModel,
  readModel,
  NameAllocator,
  dims,
  tensorToInts,
} from '../../server/src/onnx/model';
import { padConvInputChannels } from '../../server/src/onnx/ortCpuConvPad';
import { optimizeForOrtCpu } from '../../server/src/onnx/ortCpu';
import { randn } from './helpers';

const ort = require('onnxruntime-node');

function valueInfo(name: string, shape: (number | string)[]) {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: DataType.FLOAT,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

/**
 * x [batch, cin, 8, 8] -> Q -> DQ -> Conv(INT8 weight [cout, cin, 3, 3], per-channel scales, pads 1) -> Q(UINT8) -> DQ.
 * `sharedInput`: the input's DQ is also read by an Add (a residual), so the pad must not change what the Add sees.
 */
function buildModel(cin: number, cout: number, sharedInput = false, k = 3): Model {
  // within the range qdq writes on this CPU (cpuInt8.ts), so ORT's integer kernels compute both graphs exactly
  const max = integerWeightMax();
  const w = Int8Array.from(randn(cout * cin * k * k, 3), (v) =>
    Math.max(-max, Math.min(max, Math.round((v * 60 * max) / 127))),
  );
  const inits: Tensor[] = [
    floatTensor('x_scale', [], [3 / 127]),
    int8Tensor('x_zp', [], [0]),
    makeTensor('w', DataType.INT8, [cout, cin, k, k], w),
    floatTensor(
      'w_scale',
      [cout],
      Array.from({ length: cout }, (_, c) => 0.002 + 0.0005 * (c % 5)),
    ),
    int8Tensor('w_zp', [cout], new Array(cout).fill(0)),
    floatTensor('y_scale', [], [0.05]),
    uint8Tensor('y_zp', [], [0]),
  ];
  const nodes: Node[] = [
    makeNode('QuantizeLinear', ['x', 'x_scale', 'x_zp'], ['x_q'], 'input_Q'),
    makeNode('DequantizeLinear', ['x_q', 'x_scale', 'x_zp'], ['x_dq'], 'input_DQ'),
    makeNode('DequantizeLinear', ['w', 'w_scale', 'w_zp'], ['w_dq'], 'stem/weight_DQ', [intAttr('axis', 0)]),
    makeNode('Conv', ['x_dq', 'w_dq'], ['conv'], 'stem/Conv', [
      { name: 'pads', type: 7, ints: new Array(4).fill((k - 1) / 2) },
    ]),
    makeNode('QuantizeLinear', ['conv', 'y_scale', 'y_zp'], ['y_q'], 'output_Q'),
    makeNode('DequantizeLinear', ['y_q', 'y_scale', 'y_zp'], ['y'], 'output_DQ'),
  ];
  const outputs = [valueInfo('y', ['batch', cout, 8, 8])];
  if (sharedInput) {
    nodes.push(makeNode('Add', ['x_dq', 'x_dq'], ['x2'], 'residual/Add'));
    outputs.push(valueInfo('x2', ['batch', cin, 8, 8]));
  }
  return {
    ir_version: 8,
    producer_name: 'qdq-test',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'stem',
      node: nodes,
      initializer: inits,
      value_info: [],
      input: [valueInfo('x', ['batch', cin, 8, 8])],
      output: outputs,
    },
  };
}

async function run(
  file: string,
  x: Float32Array,
  shape: number[],
  optimized?: string,
): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(file, {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...(optimized ? { optimizedModelFilePath: optimized } : {}),
  });
  const r = await s.run({ x: new ort.Tensor('float32', x, shape) });
  await s.release();
  return Object.fromEntries(Object.entries(r).map(([k, v]: [string, any]) => [k, v.data as Float32Array]));
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-ortcpu-pad-'));
}

// The integer forms follow this CPU's kernels (cpuInt8.ts): ask it before building any.
before(() => probeU8S8Saturation());
test('a 1-channel Conv gets zero channels up to 4: Pad before its Q, zero filters in the weight, same output from ORT', async () => {
  const dir = tmp();
  const before = path.join(dir, 'before.onnx'),
    after = path.join(dir, 'after.onnx'),
    optimized = path.join(dir, 'after.optimized.onnx');
  const m = buildModel(1, 16);
  writeModel(m, before);
  const padded = padConvInputChannels(m.graph, new NameAllocator(m.graph));
  assert.deepEqual(padded, [{ node: 'stem/Conv', from: 1, to: 4 }]);
  const pad = m.graph.node.find((n) => n.op_type === 'Pad')!;
  assert.equal(pad.input[0], 'x', 'the float input is padded, in front of its Q');
  assert.deepEqual(m.graph.node.find((n) => n.name === 'input_Q')!.input[0], pad.output[0]);
  const wDq = m.graph.node.find((n) => n.name === 'stem/weight_DQ')!;
  const w = m.graph.initializer.find((t) => t.name === wDq.input[0])!;
  assert.deepEqual(dims(w), [16, 4, 3, 3]);
  const q = tensorToInts(w);
  const original = tensorToInts(buildModel(1, 16).graph.initializer.find((t) => t.name === 'w')!);
  for (let o = 0; o < 16; o++) {
    assert.deepEqual(
      q.slice(o * 36, o * 36 + 9),
      original.slice(o * 9, o * 9 + 9),
      `filter ${o}: the real channel first`,
    );
    assert.ok(
      q.slice(o * 36 + 9, o * 36 + 36).every((v) => v === 0),
      `filter ${o}: zeros for the new channels`,
    );
  }
  writeModel(m, after);
  const shape = [5, 1, 8, 8];
  const x = randn(5 * 64, 9);
  const [a, b] = [await run(before, x, shape), await run(after, x, shape, optimized)];
  // The same integer sums; ORT's two kernels requantize alike, so at most one output step apart.
  let maxDiff = 0;
  for (let i = 0; i < a.y.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.y[i] - b.y[i]));
  assert.ok(maxDiff <= 0.05 + 1e-6, `max |diff| ${maxDiff} (one step is 0.05)`);
  assert.ok(
    a.y.some((v) => v > 0),
    'the output is not all zeros',
  );
  // ORT still runs it as one integer convolution.
  const ops = readModel(optimized).graph.node.map((n) => n.op_type);
  assert.equal(ops.filter((o) => o === 'QLinearConv').length, 1, ops.join(','));
  assert.ok(!ops.includes('Conv'), ops.join(','));
});

test('a padded Conv whose input DQ has another reader gets its own Q -> DQ; the other reader sees the unpadded tensor', async () => {
  const dir = tmp();
  const before = path.join(dir, 'before.onnx'),
    after = path.join(dir, 'after.onnx');
  const m = buildModel(3, 16, true);
  writeModel(m, before);
  assert.deepEqual(padConvInputChannels(m.graph, new NameAllocator(m.graph)), [{ node: 'stem/Conv', from: 3, to: 4 }]);
  const conv = m.graph.node.find((n) => n.op_type === 'Conv')!;
  assert.notEqual(conv.input[0], 'x_dq');
  assert.deepEqual(m.graph.node.find((n) => n.name === 'input_Q')!.input[0], 'x', 'the shared Q still reads x');
  writeModel(m, after);
  const shape = [2, 3, 8, 8];
  const x = randn(2 * 3 * 64, 4);
  const [a, b] = [await run(before, x, shape), await run(after, x, shape)];
  assert.deepEqual(Array.from(b.x2), Array.from(a.x2), 'the residual reader is unchanged');
  for (let i = 0; i < a.y.length; i++)
    assert.ok(Math.abs(a.y[i] - b.y[i]) <= 0.05 + 1e-6, `y[${i}]: ${a.y[i]} vs ${b.y[i]}`);
});

test('no pad where the symmetric kernel would not take the Conv anyway, or already does', () => {
  for (const [cin, cout] of [
    [16, 16],
    [4, 32],
    [1, 8],
    [3, 12],
  ]) {
    const m = buildModel(cin, cout);
    assert.deepEqual(padConvInputChannels(m.graph, new NameAllocator(m.graph)), [], `${cin} -> ${cout}`);
    assert.ok(!m.graph.node.some((n) => n.op_type === 'Pad'), `${cin} -> ${cout}`);
  }
  const padsOf = (m: Model) => padConvInputChannels(m.graph, new NameAllocator(m.graph));
  // A long filter (ResNet's 7x7 stem on RGB: 147 per output channel) runs well enough as it is; 3x3 on RGB (27) not.
  assert.deepEqual(padsOf(buildModel(3, 64, false, 7)), []);
  assert.deepEqual(padsOf(buildModel(3, 64, false, 3)), [{ node: 'stem/Conv', from: 3, to: 4 }]);
  // Grouped convolutions are left alone.
  const grouped = buildModel(1, 16);
  grouped.graph.node.find((n) => n.op_type === 'Conv')!.attribute.push(intAttr('group', 1));
  assert.equal(
    padConvInputChannels(grouped.graph, new NameAllocator(grouped.graph)).length,
    1,
    'group 1 spelled out is still group 1',
  );
  const twoGroups = buildModel(2, 16);
  twoGroups.graph.node.find((n) => n.op_type === 'Conv')!.attribute.push(intAttr('group', 2));
  assert.equal(padConvInputChannels(twoGroups.graph, new NameAllocator(twoGroups.graph)).length, 0, 'group 2');
});

test('optimizeForOrtCpu reports the padded Conv, and a second run changes nothing', () => {
  const m = buildModel(1, 16);
  const first = optimizeForOrtCpu(m);
  assert.deepEqual(first.convInputsPadded, [{ node: 'stem/Conv', from: 1, to: 4 }]);
  const nodes = m.graph.node.length;
  const second = optimizeForOrtCpu(m);
  assert.deepEqual(second.convInputsPadded, []);
  assert.equal(m.graph.node.length, nodes);
  assert.ok(!m.graph.initializer.some((t) => t.name === 'w'), 'the unpadded weight is gone');
});
