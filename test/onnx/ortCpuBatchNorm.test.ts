// BatchNormalization folding in the ort-cpu rewrite, on a hand-built QDQ graph shaped like the ort-cpu export of
// Conv -> BN -> Relu -> Conv -> BN: activation Q/DQ, INT8 weight initializers -> DQ, Q/DQ on each Conv output
// (calibrated before BN). Runs the graph before and after the rewrite with onnxruntime-node.
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
  intAttr,
  writeModel,
  readModel,
  encodeModel,
  decodeModel,
} from '../../server/src/onnx/model';
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
 * Deterministic INT8 weights in [-127, 127], or [-64, 64] where this CPU's u8 x s8 kernels saturate (cpuInt8.ts:
 * the range qdq writes there, so ORT's integer kernels compute both graphs exactly); WEIGHT_GRID scales the weight
 * scales to match, so the float weights are the same on every CPU.
 */
function int8Weights(n: number, seed: number): Int8Array {
  const max = integerWeightMax();
  return Int8Array.from(randn(n, seed), (v) => Math.max(-max, Math.min(max, Math.round((v * 50 * max) / 127))));
}
const weightGrid = () => 127 / integerWeightMax();

/** Conv(weight INT8 -> DQ) -> Q -> DQ -> BN, appended to nodes/inits; returns the BN output name. */
function convBn(
  nodes: Node[],
  inits: Tensor[],
  p: string,
  input: string,
  cin: number,
  cout: number,
  weightScales: number[],
  outScale: number,
  gamma: number[],
  seed: number,
  outputQdq: boolean,
): string {
  inits.push(
    makeTensor(`${p}.w`, DataType.INT8, [cout, cin, 3, 3], int8Weights(cout * cin * 9, seed)),
    floatTensor(
      `${p}.w_scale`,
      weightScales.length > 1 ? [cout] : [],
      weightScales.map((s) => s * weightGrid()),
    ),
    int8Tensor(`${p}.w_zp`, weightScales.length > 1 ? [cout] : [], new Array(weightScales.length).fill(0)),
    floatTensor(`${p}.out_scale`, [], [outScale]),
    int8Tensor(`${p}.out_zp`, [], [0]),
    floatTensor(`${p}.gamma`, [cout], gamma),
    floatTensor(
      `${p}.beta`,
      [cout],
      Array.from({ length: cout }, (_, c) => 0.3 * Math.sin(c + seed)),
    ),
    floatTensor(
      `${p}.mean`,
      [cout],
      Array.from({ length: cout }, (_, c) => 0.5 * Math.cos(c * 3 + seed)),
    ),
    floatTensor(
      `${p}.var`,
      [cout],
      Array.from({ length: cout }, (_, c) => 0.5 + (c % 3) * 0.7),
    ),
  );
  nodes.push(
    makeNode(
      'DequantizeLinear',
      [`${p}.w`, `${p}.w_scale`, `${p}.w_zp`],
      [`${p}.w_dq`],
      `${p}/weight_DQ`,
      weightScales.length > 1 ? [intAttr('axis', 0)] : [],
    ),
    makeNode('Conv', [input, `${p}.w_dq`], [`${p}.conv`], `${p}/Conv`, [{ name: 'pads', type: 7, ints: [1, 1, 1, 1] }]),
    ...(outputQdq
      ? [
          makeNode('QuantizeLinear', [`${p}.conv`, `${p}.out_scale`, `${p}.out_zp`], [`${p}.q`], `${p}/output_Q`),
          makeNode('DequantizeLinear', [`${p}.q`, `${p}.out_scale`, `${p}.out_zp`], [`${p}.dq`], `${p}/output_DQ`),
        ]
      : []),
    makeNode(
      'BatchNormalization',
      [outputQdq ? `${p}.dq` : `${p}.conv`, `${p}.gamma`, `${p}.beta`, `${p}.mean`, `${p}.var`],
      [`${p}.bn`],
      `${p}/BatchNormalization`,
      [{ name: 'epsilon', type: 1, f: 1e-5 }],
    ),
  );
  return `${p}.bn`;
}

/** outputQdq: Q/DQ on each Conv output before BN, as the ort-cpu export has it (without: as the tensorrt export). */
function buildModel(outputQdq: boolean): Model {
  const nodes: Node[] = [];
  const inits: Tensor[] = [
    floatTensor('x_scale', [], [3 / 127]),
    int8Tensor('x_zp', [], [0]),
    floatTensor('a_scale', [], [6 / 127]),
    int8Tensor('a_zp', [], [0]),
  ];
  nodes.push(
    makeNode('QuantizeLinear', ['x', 'x_scale', 'x_zp'], ['x_q'], 'input_Q'),
    makeNode('DequantizeLinear', ['x_q', 'x_scale', 'x_zp'], ['x_dq'], 'input_DQ'),
  );
  // Conv 1: per-channel weight scales, one negative gamma (the INT8 channel is negated, not rescaled by < 0).
  const bn1 = convBn(
    nodes,
    inits,
    'c1',
    'x_dq',
    3,
    8,
    Array.from({ length: 8 }, (_, c) => 0.004 + 0.001 * c),
    16 / 127,
    [1.2, 0.8, -0.9, 1.5, 0.6, 1.1, 0.7, 1.3],
    11,
    outputQdq,
  );
  nodes.push(
    makeNode('Relu', [bn1], ['r1'], 'relu1'),
    makeNode('QuantizeLinear', ['r1', 'a_scale', 'a_zp'], ['r1_q'], 'c2/input_Q'),
    makeNode('DequantizeLinear', ['r1_q', 'a_scale', 'a_zp'], ['r1_dq'], 'c2/input_DQ'),
  );
  // Conv 2: a per-tensor weight scale (turned into per-channel scales by the fold), then a residual block's end:
  // Add(BN, block input) -> Relu -> MaxPool -> Q -> DQ.
  const bn2 = convBn(
    nodes,
    inits,
    'c2',
    'r1_dq',
    8,
    8,
    [0.005],
    24 / 127,
    [0.9, 1.4, 0.5, 1.1, 1.2, 0.8, 1.0, 0.6],
    23,
    outputQdq,
  );
  inits.push(floatTensor('y_scale', [], [20 / 127]), int8Tensor('y_zp', [], [0]));
  nodes.push(
    makeNode('Add', [bn2, 'r1_dq'], ['sum'], 'residual/Add'),
    makeNode('Relu', ['sum'], ['sum_relu'], 'residual/Relu'),
    makeNode('MaxPool', ['sum_relu'], ['pooled'], 'pool', [
      { name: 'kernel_shape', type: 7, ints: [2, 2] },
      { name: 'strides', type: 7, ints: [2, 2] },
    ]),
    makeNode('QuantizeLinear', ['pooled', 'y_scale', 'y_zp'], ['y_q'], 'output_Q'),
    makeNode('DequantizeLinear', ['y_q', 'y_scale', 'y_zp'], ['y'], 'output_DQ'),
  );
  return {
    ir_version: 8,
    producer_name: 'qdq-test',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'conv_bn_qdq',
      node: nodes,
      initializer: inits,
      value_info: [],
      input: [valueInfo('x', ['batch', 3, 8, 8])],
      output: [valueInfo('y', ['batch', 8, 4, 4])],
    },
  };
}

async function runModel(file: string, x: Float32Array, shape: number[], optimized?: string): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file, {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...(optimized ? { optimizedModelFilePath: optimized } : {}),
  });
  const r = await s.run({ x: new ort.Tensor('float32', x, shape) });
  await s.release();
  return r.y.data as Float32Array;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let d = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-ortcpu-bn-'));
}

/** Writes the model before and after the rewrite; returns both paths and the rewrite result. */
function foldToFiles(dir: string, name: string, model: Model) {
  const unfolded = path.join(dir, `${name}.onnx`);
  writeModel(model, unfolded);
  const m = decodeModel(encodeModel(readModel(unfolded)));
  const result = optimizeForOrtCpu(m);
  const folded = path.join(dir, `${name}_folded.onnx`);
  writeModel(m, folded);
  return { unfolded, folded, m, result };
}

const shape = [4, 3, 8, 8];
const x = randn(
  shape.reduce((a, b) => a * b, 1),
  5,
);

// The integer forms follow this CPU's kernels (cpuInt8.ts): ask it before building any.
before(() => probeU8S8Saturation());
test('BN fold without Conv output quantizers (tensorrt-style graph) is exact up to the INT32 bias grid', async () => {
  // The output Q is the same before and after, so outputs agree up to an occasional one-step rounding flip.
  const { unfolded, folded, m, result } = foldToFiles(tmpDir(), 'conv_bn_plain', buildModel(false));
  assert.equal(result.batchNormsFolded, 2, JSON.stringify(result));
  assert.equal(m.graph.node.filter((n) => n.op_type === 'BatchNormalization').length, 0, 'BN nodes removed');
  const before = await runModel(unfolded, x, shape);
  const after = await runModel(folded, x, shape);
  const cos = cosine(before, after);
  assert.ok(cos >= 0.9999, `cosine folded vs unfolded INT8 graph ${cos}`);
  let maxDiff = 0;
  for (let i = 0; i < before.length; i++) maxDiff = Math.max(maxDiff, Math.abs(before[i] - after[i]));
  assert.ok(maxDiff <= 20 / 127 + 1e-6, `max |diff| ${maxDiff}`);
});

test('BN fold in the ort-cpu graph: DQ -> Conv -> Q with no BN, integer Conv and Add in ORT, no accuracy lost', async () => {
  const dir = tmpDir();
  const { unfolded, folded, m, result } = foldToFiles(dir, 'conv_bn_qdq', buildModel(true));
  assert.equal(result.batchNormsFolded, 2, JSON.stringify(result));
  assert.equal(m.graph.node.filter((n) => n.op_type === 'BatchNormalization').length, 0, 'BN nodes removed');
  // Each Conv reads DQ-fed input, weight and bias, and a Q reads its output directly.
  for (const conv of m.graph.node.filter((n) => n.op_type === 'Conv')) {
    assert.equal(conv.input.length, 3, 'folded Conv has a bias');
    for (const i of conv.input)
      assert.equal(m.graph.node.find((n) => n.output.includes(i))?.op_type, 'DequantizeLinear', i);
    const readers = m.graph.node.filter((n) => n.input.includes(conv.output[0]));
    assert.deepEqual(
      readers.map((n) => n.op_type),
      ['QuantizeLinear'],
    );
  }
  const optimized = path.join(dir, 'conv_bn_qdq_folded.optimized.onnx');
  const before = await runModel(unfolded, x, shape);
  const after = await runModel(folded, x, shape, optimized);
  // The fold drops the quantizer torch placed before BN and requantizes after it, so the two INT8 graphs
  // round differently; judged against the graph without Conv output quantizers, the folded one is no worse.
  const reference = await runModel(foldToFiles(dir, 'conv_bn_reference', buildModel(false)).unfolded, x, shape);
  const cosFolded = cosine(after, reference),
    cosUnfolded = cosine(before, reference);
  assert.ok(cosine(before, after) >= 0.999, `cosine folded vs unfolded INT8 graph ${cosine(before, after)}`);
  assert.ok(cosFolded >= cosUnfolded - 1e-4, `vs reference: folded ${cosFolded}, unfolded ${cosUnfolded}`);
  // What the rewrite is for: ORT's CPU provider runs both convolutions and the residual Add as integer kernels,
  // with no BN left.
  assert.equal(result.addsQuantized, 1, JSON.stringify(result));
  const ops = readModel(optimized).graph.node.map((n) => n.op_type);
  assert.equal(ops.filter((o) => o === 'QLinearConv').length, 2, ops.join(','));
  assert.equal(ops.filter((o) => o === 'QLinearAdd').length, 1, ops.join(','));
  assert.ok(!ops.includes('BatchNormalization'), ops.join(','));
  // The Relu between the convolutions feeds conv 2 and the residual Add: its UINT8 (zero point 0) requantization
  // is dropped, so neither it nor a float DQ -> Relu -> Q round trip is left between the integer kernels.
  assert.equal(result.relusDropped, 1, JSON.stringify(result));
  assert.ok(!ops.includes('Relu'), ops.join(','));
  assert.equal(ops.filter((o) => o === 'DequantizeLinear').length, 1, `only the output DQ: ${ops.join(',')}`);
});

test('ort-cpu rewrite leaves BatchNormalization after an FP32-weight Conv alone', () => {
  const m = buildModel(true);
  // Replace conv 1's INT8 weight -> DQ by a plain FP32 initializer: nothing to fold into.
  const dq = m.graph.node.find((n) => n.name === 'c1/weight_DQ')!;
  m.graph.node = m.graph.node.filter((n) => n !== dq);
  m.graph.initializer.push(floatTensor(dq.output[0], [8, 3, 3, 3], randn(8 * 27, 3)));
  const r = optimizeForOrtCpu(m);
  assert.equal(r.batchNormsFolded, 1, JSON.stringify(r));
  assert.deepEqual(
    m.graph.node.filter((n) => n.op_type === 'BatchNormalization').map((n) => n.name),
    ['c1/BatchNormalization'],
  );
});

test('a last residual block whose sum goes on in float (Add -> Relu -> GlobalAveragePool) runs as QLinearAdd', async () => {
  const dir = tmpDir();
  const m = buildModel(true);
  // Replace the tail Relu -> MaxPool -> Q -> DQ with Relu -> GlobalAveragePool, as a classifier's last block.
  const tail = new Set(['pool', 'output_Q', 'output_DQ']);
  m.graph.node = m.graph.node.filter((n) => !tail.has(n.name ?? ''));
  m.graph.node.push(makeNode('GlobalAveragePool', ['sum_relu'], ['y'], 'gap'));
  m.graph.output = [valueInfo('y', ['batch', 8, 1, 1])];
  const { unfolded, folded, result } = foldToFiles(dir, 'last_block', m);
  assert.equal(result.addsQuantized, 1, JSON.stringify(result));
  const optimized = path.join(dir, 'last_block.optimized.onnx');
  const before = await runModel(unfolded, x, shape);
  const after = await runModel(folded, x, shape, optimized);
  // The sum's UINT8 grid spans both inputs' grids, so nothing is clipped but the Relu's negative half.
  assert.ok(cosine(before, after) >= 0.999, `cosine ${cosine(before, after)}`);
  const ops = readModel(optimized).graph.node.map((n) => n.op_type);
  assert.equal(ops.filter((o) => o === 'QLinearAdd').length, 1, ops.join(','));
  assert.ok(!ops.includes('Relu') && !ops.includes('Add'), ops.join(','));
});

test('a folded BN with no Relu or Q after it takes the calibrated BN range when the backend gives one', () => {
  // Conv 2's BN feeds the residual Add: no next quantizer to borrow, so the grid's worst case (every value the
  // unfolded graph could produce) unless the backend calibrated the BN output (bn_ranges.py).
  const scaleOf = (m: Model) => {
    const q = m.graph.node.find((n) => n.name === 'c2_Conv_output_QuantizeLinear')!;
    const t = m.graph.initializer.find((i) => i.name === q.input[1])!;
    return new Float32Array(new Uint8Array(t.raw_data!).slice().buffer)[0] ?? t.float_data![0];
  };
  const grid = buildModel(true);
  const r0 = optimizeForOrtCpu(grid);
  assert.equal(r0.batchNormsCalibrated, 0);
  const calibrated = buildModel(true);
  const r1 = optimizeForOrtCpu(calibrated, {}, { batchNormOutputAmax: { 'c2.gamma': 3 } });
  assert.equal(r1.batchNormsCalibrated, 1, JSON.stringify(r1));
  assert.ok(Math.abs(scaleOf(calibrated) - 3 / 127) < 1e-7, `${scaleOf(calibrated)}`);
  assert.ok(scaleOf(grid) > 3 / 127, `grid scale ${scaleOf(grid)}`);
  // A calibrated range wider than the grid's bound is capped by it (nothing beyond it can occur).
  const wide = buildModel(true);
  const r2 = optimizeForOrtCpu(wide, {}, { batchNormOutputAmax: { 'c2.gamma': 1e6 } });
  assert.equal(r2.batchNormsCalibrated, 0);
  assert.equal(scaleOf(wide), scaleOf(grid));
});

test('a stem Conv -> BN -> Relu -> MaxPool -> Q takes the next Q range through the MaxPool and loses the Relu', async () => {
  const dir = tmpDir();
  const nodes: Node[] = [];
  const inits: Tensor[] = [
    floatTensor('x_scale', [], [3 / 127]),
    int8Tensor('x_zp', [], [0]),
    floatTensor('a_scale', [], [4 / 127]),
    int8Tensor('a_zp', [], [0]),
  ];
  nodes.push(
    makeNode('QuantizeLinear', ['x', 'x_scale', 'x_zp'], ['x_q'], 'input_Q'),
    makeNode('DequantizeLinear', ['x_q', 'x_scale', 'x_zp'], ['x_dq'], 'input_DQ'),
  );
  const bn = convBn(
    nodes,
    inits,
    'stem',
    'x_dq',
    3,
    8,
    [0.005],
    16 / 127,
    [1, 1.2, 0.8, 1.1, 0.9, 1.3, 0.7, 1],
    7,
    true,
  );
  nodes.push(
    makeNode('Relu', [bn], ['r'], 'stem/Relu'),
    makeNode('MaxPool', ['r'], ['pooled'], 'stem/MaxPool', [
      { name: 'kernel_shape', type: 7, ints: [2, 2] },
      { name: 'strides', type: 7, ints: [2, 2] },
    ]),
    makeNode('QuantizeLinear', ['pooled', 'a_scale', 'a_zp'], ['y_q'], 'next/input_Q'),
    makeNode('DequantizeLinear', ['y_q', 'a_scale', 'a_zp'], ['y'], 'next/input_DQ'),
  );
  const model: Model = {
    ir_version: 8,
    producer_name: 'qdq-test',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'stem',
      node: nodes,
      initializer: inits,
      value_info: [],
      input: [valueInfo('x', ['batch', 3, 8, 8])],
      output: [valueInfo('y', ['batch', 8, 4, 4])],
    },
  };
  const { unfolded, folded, m, result } = foldToFiles(dir, 'stem', model);
  assert.equal(result.batchNormsFolded, 1, JSON.stringify(result));
  assert.ok(!m.graph.node.some((n) => n.op_type === 'Relu'), 'the Relu after the UINT8 quantizer is gone');
  // The Conv's output quantizer is the next Q's range as UINT8 (zero point 0), not the grid's worst case.
  const q = m.graph.node.find((n) => n.name === 'stem_Conv_output_QuantizeLinear')!;
  const zp = m.graph.initializer.find((i) => i.name === q.input[2])!;
  assert.equal(zp.data_type, DataType.UINT8);
  const before = await runModel(unfolded, x, shape);
  const after = await runModel(folded, x, shape);
  assert.ok(cosine(before, after) >= 0.999, `cosine ${cosine(before, after)}`);
});
