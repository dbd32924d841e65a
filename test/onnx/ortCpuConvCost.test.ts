// The ort-cpu cost model for convolutions (server/src/onnx/ortCpuConvCost.ts), on a hand-built QDQ graph shaped
// like a MobileNet block: pointwise expand -> depthwise 3x3 -> pointwise project -> dense 3x3. Runs the graph
// before and after the rewrite with onnxruntime-node.
import { before, test } from 'node:test';
import { probeU8S8Saturation } from '../../server/src/onnx/cpuInt8';
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

/** Q -> DQ on `input`, then Conv(INT8 weight -> DQ per channel) with `group`; returns the Conv output name. */
function qConv(
  nodes: Node[],
  inits: Tensor[],
  p: string,
  input: string,
  cin: number,
  cout: number,
  k: number,
  group: number,
  amax: number,
  seed: number,
): string {
  const wShape = [cout, cin / group, k, k];
  const n = wShape.reduce((a, b) => a * b, 1);
  inits.push(
    floatTensor(`${p}.x_scale`, [], [amax / 127]),
    int8Tensor(`${p}.x_zp`, [], [0]),
    makeTensor(
      `${p}.w`,
      DataType.INT8,
      wShape,
      Int8Array.from(randn(n, seed), (v) => Math.max(-127, Math.min(127, Math.round(v * 40)))),
    ),
    floatTensor(
      `${p}.w_scale`,
      [cout],
      Array.from({ length: cout }, (_, c) => (0.02 + 0.001 * c) / Math.sqrt(n / cout)),
    ),
    int8Tensor(`${p}.w_zp`, [cout], new Array(cout).fill(0)),
  );
  nodes.push(
    makeNode('QuantizeLinear', [input, `${p}.x_scale`, `${p}.x_zp`], [`${p}.xq`], `${p}/input_Q`),
    makeNode('DequantizeLinear', [`${p}.xq`, `${p}.x_scale`, `${p}.x_zp`], [`${p}.xdq`], `${p}/input_DQ`),
    makeNode('DequantizeLinear', [`${p}.w`, `${p}.w_scale`, `${p}.w_zp`], [`${p}.wdq`], `${p}/weight_DQ`, [
      intAttr('axis', 0),
    ]),
    makeNode('Conv', [`${p}.xdq`, `${p}.wdq`], [`${p}.y`], `${p}/Conv`, [
      intAttr('group', group),
      { name: 'pads', type: 7, ints: new Array(4).fill(k >> 1) },
    ]),
  );
  return `${p}.y`;
}

function buildBlock(): Model {
  const nodes: Node[] = [];
  const inits: Tensor[] = [];
  const expand = qConv(nodes, inits, 'expand', 'x', 16, 32, 1, 1, 3, 1);
  nodes.push(makeNode('Relu', [expand], ['expand.r'], 'expand/Relu'));
  const dw = qConv(nodes, inits, 'dw', 'expand.r', 32, 32, 3, 32, 4, 2);
  nodes.push(makeNode('Relu', [dw], ['dw.r'], 'dw/Relu'));
  const project = qConv(nodes, inits, 'project', 'dw.r', 32, 64, 1, 1, 4, 3);
  const dense = qConv(nodes, inits, 'dense', project, 64, 64, 3, 1, 4, 4);
  nodes.push(makeNode('Identity', [dense], ['y'], 'out'));
  return {
    ir_version: 8,
    producer_name: 'qdq-test',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'mobilenet_block',
      node: nodes,
      initializer: inits,
      value_info: [],
      input: [valueInfo('x', ['batch', 16, 12, 12])],
      output: [valueInfo('y', ['batch', 64, 12, 12])],
    },
  };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

async function run(file: string, x: Float32Array, shape: number[]): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  const r = await s.run({ x: new ort.Tensor('float32', x, shape) });
  await s.release();
  return r.y.data as Float32Array;
}

// The integer forms follow this CPU's kernels (cpuInt8.ts): ask it before building any.
before(() => probeU8S8Saturation());
test('ort-cpu: the depthwise conv and the cheap pointwise convs beside it run in float, the dense 3x3 stays integer', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-ortcpu-convcost-'));
  const before = path.join(dir, 'before.onnx'),
    after = path.join(dir, 'after.onnx');
  writeModel(buildBlock(), before);
  const m = readModel(before);
  const r = optimizeForOrtCpu(m);
  writeModel(m, after);
  const floatOps = r.linears.float.map((f) => f.node).sort();
  assert.deepEqual(floatOps, ['dw/Conv', 'expand/Conv', 'project/Conv'], JSON.stringify(r.linears.float));
  assert.match(r.linears.float.find((f) => f.node === 'dw/Conv')!.reason, /depthwise convolution with 9 multiply-adds/);
  assert.match(r.linears.float.find((f) => f.node === 'project/Conv')!.reason, /beside a convolution left in float/);
  const producer = (v: string) => m.graph.node.find((n) => n.output.includes(v));
  for (const conv of m.graph.node.filter((n) => n.op_type === 'Conv')) {
    const weightFromDq = producer(conv.input[1])?.op_type === 'DequantizeLinear';
    assert.equal(weightFromDq, conv.name === 'dense/Conv', `${conv.name}: weight DQ-fed only where integer pays`);
  }
  // Float convs read a float copy of the dequantized weight and skip their input quantizer: against the same
  // graph with no activation quantizers at all, the rewritten one is no further off than the unrewritten one.
  const reference = buildBlock();
  const out = new Map(reference.graph.node.filter((n) => n.op_type === 'QuantizeLinear').map((q) => [q.output[0], q]));
  for (const n of reference.graph.node) {
    const q = n.op_type === 'DequantizeLinear' ? out.get(n.input[0]) : undefined;
    if (q) for (const r of reference.graph.node) r.input = r.input.map((i) => (i === n.output[0] ? q.input[0] : i));
  }
  const floatFile = path.join(dir, 'reference.onnx');
  writeModel(reference, floatFile);
  const shape = [2, 16, 12, 12];
  const x = randn(
    shape.reduce((p, q) => p * q, 1),
    9,
  );
  const ref = await run(floatFile, x, shape);
  const cosBefore = cosine(await run(before, x, shape), ref),
    cosAfter = cosine(await run(after, x, shape), ref);
  assert.ok(cosAfter >= cosBefore - 1e-4, `vs float: rewritten ${cosAfter}, unrewritten ${cosBefore}`);
});

test('ort-cpu: a network without grouped convolutions keeps every convolution integer', () => {
  const m = buildBlock();
  // Make the depthwise conv dense: nothing is then cheap enough and beside a float conv.
  const dw = m.graph.node.find((n) => n.name === 'dw/Conv')!;
  dw.attribute = dw.attribute.map((a) => (a.name === 'group' ? intAttr('group', 1) : a));
  const w = m.graph.initializer.find((t) => t.name === 'dw.w')!;
  m.graph.initializer = m.graph.initializer.filter((t) => t !== w);
  m.graph.initializer.push(makeTensor('dw.w', DataType.INT8, [32, 32, 3, 3], new Int8Array(32 * 32 * 9).fill(1)));
  const r = optimizeForOrtCpu(m);
  assert.deepEqual(r.linears.float, []);
});
