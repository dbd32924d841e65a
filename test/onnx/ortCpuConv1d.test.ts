// transformers' Conv1D (GPT-2's attention and MLP projections) in the ort-cpu form (server/src/onnx/ortCpuLinear.ts):
// torch exports it as input Q -> DQ -> Reshape([-1, K]) -> Gemm(INT8 [K, N] weight -> DQ, bias) -> Reshape back.
// The Reshape moves onto the quantized tensor so the Gemm becomes MatMulIntegerToFloat on UINT8 activations.
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
  int64Tensor,
  intAttr,
  writeModel,
  readModel,
  indexGraph,
  constantTensor,
  tensorToInts,
} from '../../server/src/onnx/model';
import { optimizeForOrtCpu } from '../../server/src/onnx/ortCpu';
import { verifyModels } from '../../server/src/onnx/verify';
import { randn } from './helpers';

const [B, T, K, N] = [2, 8, 32, 48];

function valueInfo(name: string, shape: number[]) {
  return {
    name,
    type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: shape.map((d) => ({ dim_value: d })) } } },
  };
}

/** x [B, T, K] -> Q -> DQ -> Reshape [-1, K] -> Gemm(DQ(INT8 [K, N], axis 1), bias) -> Reshape [B, T, N]. */
function conv1dModel(): Model {
  const inits: Tensor[] = [
    floatTensor('x_scale', [], [3 / 127]),
    int8Tensor('x_zp', [], [0]),
    makeTensor(
      'w',
      DataType.INT8,
      [K, N],
      Int8Array.from(randn(K * N, 5), (v) => Math.max(-127, Math.min(127, Math.round(v * 40)))),
    ),
    floatTensor(
      'w_scale',
      [N],
      Array.from({ length: N }, (_, j) => 0.004 + 0.0001 * j),
    ),
    int8Tensor('w_zp', [N], new Array(N).fill(0)),
    floatTensor('bias', [N], randn(N, 6)),
    int64Tensor('flat', [2], [-1, K]),
    int64Tensor('unflat', [3], [B, T, N]),
  ];
  const nodes: Node[] = [
    makeNode('QuantizeLinear', ['x', 'x_scale', 'x_zp'], ['xq'], '/c_attn/input_quantizer/Q'),
    makeNode('DequantizeLinear', ['xq', 'x_scale', 'x_zp'], ['xdq'], '/c_attn/input_quantizer/DQ'),
    makeNode('DequantizeLinear', ['w', 'w_scale', 'w_zp'], ['wdq'], '/c_attn/weight_quantizer/DQ', [
      intAttr('axis', 1),
    ]),
    makeNode('Reshape', ['xdq', 'flat'], ['x2d'], '/c_attn/Reshape'),
    makeNode('Gemm', ['x2d', 'wdq', 'bias'], ['y2d'], '/c_attn/Gemm'),
    makeNode('Reshape', ['y2d', 'unflat'], ['y'], '/c_attn/Reshape_1'),
  ];
  return {
    ir_version: 8,
    producer_name: 'qdq-test',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'conv1d',
      node: nodes,
      initializer: inits,
      value_info: [],
      input: [valueInfo('x', [B, T, K])],
      output: [valueInfo('y', [B, T, N])],
    },
  };
}

// The integer forms follow this CPU's kernels (cpuInt8.ts): ask it before building any.
before(() => probeU8S8Saturation());
test('ort-cpu: a Conv1D (Reshape -> Gemm) becomes MatMulIntegerToFloat on the reshaped UINT8 activation', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-ortcpu-conv1d-'));
  try {
    const before = path.join(dir, 'before.onnx'),
      after = path.join(dir, 'after.onnx');
    writeModel(conv1dModel(), before);
    const m = readModel(before);
    const r = optimizeForOrtCpu(m);
    assert.deepEqual(r.linears.integer, [{ node: '/c_attn/Gemm', k: K, n: N }], JSON.stringify(r.linears));
    const idx = indexGraph(m.graph);
    const mm = m.graph.node.filter((n) => n.op_type === 'MatMulIntegerToFloat');
    assert.equal(mm.length, 1);
    const reshape = idx.producer.get(mm[0].input[0])!;
    assert.equal(reshape.op_type, 'Reshape');
    assert.equal(idx.producer.get(reshape.input[0])?.op_type, 'QuantizeLinear', 'the Reshape reads the Q output');
    const zp = constantTensor(idx, mm[0].input[4])!;
    assert.equal(zp.data_type, DataType.UINT8, 'activations stored as UINT8 (zero point 128)');
    assert.deepEqual(tensorToInts(zp), [128]);
    assert.equal(m.graph.node.filter((n) => n.op_type === 'DequantizeLinear').length, 0, 'no DQ left');
    writeModel(m, after);
    const batches = [0, 1].map((i) => ({
      inputs: [{ name: 'x', dtype: 'float32' as const, shape: [B, T, K], data: randn(B * T * K, 20 + i) }],
    }));
    const v = await verifyModels(before, after, batches, { latencyRuns: 1, warmup: 0 });
    assert.ok(v.cosine_min > 0.999, `cosine ${v.cosine_min}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
