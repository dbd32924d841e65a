// 7-bit integer weights for CPUs whose u8 x s8 kernels saturate (server/src/onnx/ortCpuNarrowWeights.ts,
// cpuInt8.ts): the narrowed graph computes what the 8-bit one means, on this CPU whatever its kernels.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  DataType,
  Model,
  NameAllocator,
  constantTensor,
  floatTensor,
  indexGraph,
  int8Tensor,
  intAttr,
  makeNode,
  makeTensor,
  tensorToFloat32,
  tensorToInts,
  writeModel,
} from '../../server/src/onnx/model';
import { narrowIntegerWeights } from '../../server/src/onnx/ortCpuNarrowWeights';
import { FULL_WEIGHT_MAX, NARROW_WEIGHT_MAX, probeU8S8Saturation } from '../../server/src/onnx/cpuInt8';
import { quantizeDynamic } from '../../server/src/onnx/dynamic';
import { randn } from './helpers';

const ort = require('onnxruntime-node');

const info = (name: string, shape: number[]) => ({
  name,
  type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: shape.map((d) => ({ dim_value: d })) } } },
});

/** x -> Q -> DQ -> Conv(DQ of full-range INT8 weights, DQ of an INT32 bias) -> y, 16 -> 8 channels. */
function convModel(): Model {
  const w = Int8Array.from(randn(8 * 16 * 9, 7), (v) => Math.max(-127, Math.min(127, Math.round(v * 60))));
  const wScale = Array.from({ length: 8 }, (_, c) => 0.002 + 0.0004 * c);
  const xScale = 4 / 127;
  return {
    ir_version: 8,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'narrow',
      node: [
        makeNode('QuantizeLinear', ['x', 'x_scale', 'x_zp'], ['x_q'], 'x_Q'),
        makeNode('DequantizeLinear', ['x_q', 'x_scale', 'x_zp'], ['x_dq'], 'x_DQ'),
        makeNode('DequantizeLinear', ['w', 'w_scale'], ['w_dq'], 'w_DQ', [intAttr('axis', 0)]),
        makeNode('DequantizeLinear', ['b', 'b_scale'], ['b_dq'], 'b_DQ', [intAttr('axis', 0)]),
        makeNode('Conv', ['x_dq', 'w_dq', 'b_dq'], ['y'], 'conv', [{ name: 'pads', type: 7, ints: [1, 1, 1, 1] }]),
      ],
      initializer: [
        floatTensor('x_scale', [], [xScale]),
        int8Tensor('x_zp', [], [0]),
        makeTensor('w', DataType.INT8, [8, 16, 3, 3], w),
        floatTensor('w_scale', [8], wScale),
        makeTensor(
          'b',
          DataType.INT32,
          [8],
          Int32Array.from({ length: 8 }, (_, c) => (c - 4) * 1000),
        ),
        floatTensor(
          'b_scale',
          [8],
          wScale.map((s) => Math.fround(s * xScale)),
        ),
      ],
      input: [info('x', [2, 16, 6, 6])],
      output: [info('y', [2, 8, 6, 6])],
      value_info: [],
    },
  };
}

/** The graph's meaning, without ORT's integer kernels (no fusion: DequantizeLinear and Conv in float). */
async function runFloat(model: Model, x: Float32Array): Promise<Float32Array> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-narrow-')), 'm.onnx');
  writeModel(model, file);
  const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  const r = await s.run({ x: new ort.Tensor('float32', x, [2, 16, 6, 6]) });
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

before(() => probeU8S8Saturation());

test('narrowing: weights to |q| <= 64 with the scale doubled, the INT32 bias halved to match, the same function', async () => {
  const m = convModel();
  const x = Float32Array.from(randn(2 * 16 * 36, 3), (v) => Math.abs(v));
  const reference = await runFloat(m, x);
  assert.equal(narrowIntegerWeights(m.graph, new NameAllocator(m.graph)), 1);
  const idx = indexGraph(m.graph);
  const [wDq, bDq] = ['w_DQ', 'b_DQ'].map((n) => m.graph.node.find((node) => node.name === n)!);
  const q = tensorToInts(constantTensor(idx, wDq.input[0])!);
  assert.ok(Math.max(...q.map(Math.abs)) <= NARROW_WEIGHT_MAX, 'weights within 7 bits');
  assert.ok(Math.max(...q.map(Math.abs)) >= NARROW_WEIGHT_MAX - 1, 'and using the range');
  const scale = tensorToFloat32(constantTensor(idx, wDq.input[1])!);
  assert.ok(Math.abs(scale[3] - 2 * (0.002 + 0.0004 * 3)) < 1e-9, 'the weight scale doubled');
  assert.deepEqual(tensorToInts(constantTensor(idx, bDq.input[0])!).slice(0, 2), [-2000, -1500]);
  const narrowed = await runFloat(m, x);
  assert.ok(cosine(reference, narrowed) >= 0.999, `cosine ${cosine(reference, narrowed)}`);
  assert.equal(narrowIntegerWeights(m.graph, new NameAllocator(m.graph)), 0, 'idempotent');
});

test('dynamic quantization takes the weight range it is given (64 where u8 x s8 kernels saturate)', () => {
  const build = (): Model => ({
    ir_version: 8,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'mm',
      node: [makeNode('MatMul', ['x', 'w'], ['y'], 'mm')],
      initializer: [floatTensor('w', [32, 8], randn(256, 5))],
      input: [info('x', [1, 32])],
      output: [info('y', [1, 8])],
      value_info: [],
    },
  });
  for (const max of [FULL_WEIGHT_MAX, NARROW_WEIGHT_MAX]) {
    const m = build();
    quantizeDynamic(m, 'integer', max);
    const w = m.graph.initializer.find((t) => t.data_type === DataType.INT8)!;
    assert.equal(Math.max(...tensorToInts(w).map(Math.abs)), max);
  }
});
