// The ort-cpu form of linears (server/src/onnx/ortCpuLinear.ts): one com.microsoft MatMulIntegerToFloat per
// INT8 linear reading the quantized activation, bias inside, float output; the cost model's float fallback; and
// the static shapes it decides with. Real onnxruntime-node runs every rewritten graph.
import { before, test } from 'node:test';
import { probeU8S8Saturation } from '../../server/src/onnx/cpuInt8';
import assert from 'node:assert/strict';
import * as path from 'path';
import {
  readModel,
  writeModel,
  DataType,
  Model,
  Node,
  indexGraph,
  constantTensor,
  tensorToInts,
} from '../../server/src/onnx/model';
import { foldWeights } from '../../server/src/onnx/foldWeights';
import { optimizeForOrtCpu } from '../../server/src/onnx/ortCpu';
import { inferShapes, matMulMacsPerItem } from '../../server/src/onnx/shapes';
import { verifyModels, EvalBatch } from '../../server/src/onnx/verify';
import { qdqStats } from '../../server/src/onnx/qdqStats';
import { fixtureModels, randn } from './helpers';

const fx = fixtureModels();
const skip = 'skip' in fx ? fx.skip : false;
const dir = 'dir' in fx ? fx.dir : '';

function batchesFor(shape: number[], count = 3): EvalBatch[] {
  const n = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: count }, (_, i) => ({
    inputs: [{ name: 'x', dtype: 'float32' as const, shape, data: randn(n, i + 11) }],
  }));
}

/** Op types of the graph ORT actually runs (graph optimization level all, as the product's sessions use). */
async function opsOrtRuns(file: string): Promise<Record<string, number>> {
  const ort = require('onnxruntime-node');
  const optimized = file.replace(/\.onnx$/, '.optimized.onnx');
  const s = await ort.InferenceSession.create(file, {
    graphOptimizationLevel: 'all',
    optimizedModelFilePath: optimized,
    logSeverityLevel: 3,
  });
  await s.release();
  const hist: Record<string, number> = {};
  for (const n of readModel(optimized).graph.node) hist[n.op_type] = (hist[n.op_type] ?? 0) + 1;
  return hist;
}

const count = (m: Model, op: string) => m.graph.node.filter((n) => n.op_type === op).length;

// The integer forms follow this CPU's kernels (cpuInt8.ts): ask it before building any.
before(() => probeU8S8Saturation());
test(
  'ort-cpu linears: INT8 MatMul + bias Add become MatMulIntegerToFloat on the UINT8 activation, ORT runs just Q + 2 integer kernels',
  { skip },
  async () => {
    const src = path.join(dir, 'qdq_linear3d.onnx');
    const m = readModel(src);
    foldWeights(m);
    const r = optimizeForOrtCpu(m);
    assert.deepEqual(
      r.linears.integer.map((l) => [l.k, l.n]),
      [
        [32, 48],
        [32, 48],
      ],
      JSON.stringify(r.linears),
    );
    assert.equal(r.linears.float.length, 0);
    const idx = indexGraph(m.graph);
    const linears = m.graph.node.filter((n) => n.op_type === 'MatMulIntegerToFloat');
    assert.equal(linears.length, 2);
    for (const l of linears) {
      assert.equal(l.domain, 'com.microsoft');
      const q = idx.producer.get(l.input[0]) as Node;
      assert.equal(q.op_type, 'QuantizeLinear', 'reads the quantized activation, not a DQ');
      // INT8 symmetric activations stored as UINT8 with zero point 128 (same values; ORT's x86 kernels are u8 x s8).
      const zp = constantTensor(idx, l.input[4])!;
      assert.equal(zp.data_type, DataType.UINT8);
      assert.deepEqual(tensorToInts(zp), [128]);
      assert.equal(l.input[4], q.input[2], 'the same zero point as its Q');
      assert.equal(constantTensor(idx, l.input[1])!.data_type, DataType.INT8);
      assert.equal(l.input.length, 7, 'bias is the 7th input');
      assert.equal(idx.producer.get(l.input[6]), undefined, 'bias is an initializer');
    }
    // Bias Adds, weight Transposes and the output Q/DQ pairs (nothing integer reads them) are gone.
    assert.equal(count(m, 'Transpose'), 0);
    assert.equal(count(m, 'DequantizeLinear'), 0);
    assert.equal(count(m, 'QuantizeLinear'), 1);
    assert.ok(m.opset_import.some((o) => o.domain === 'com.microsoft'));
    // The report's QDQ figures count the integer linears as quantized weighted ops (INT8 weights folded).
    const stats = qdqStats(m);
    assert.equal(stats.weighted_ops, 2);
    assert.equal(stats.unquantized_weighted_ops.length, 0);
    assert.equal(stats.folded_weights, 2);
    const out = path.join(dir, 'qdq_linear3d_mmitf.onnx');
    writeModel(m, out);
    const ops = await opsOrtRuns(out);
    assert.equal(ops.MatMulIntegerToFloat, 2, JSON.stringify(ops));
    assert.equal(ops.QuantizeLinear, 1, JSON.stringify(ops));
    for (const op of ['QLinearMatMul', 'DequantizeLinear', 'MatMul', 'Transpose'])
      assert.equal(ops[op], undefined, `${op} left: ${JSON.stringify(ops)}`);
    // Same results as the QDQ graph as exported (which still rounds the outputs to their quantizers' grids).
    const v = await verifyModels(src, out, batchesFor([2, 6, 32]), { latencyRuns: 1, warmup: 0 });
    assert.ok(v.cosine_min > 0.999, `cosine ${v.cosine_min}`);
  },
);

test(
  'ort-cpu cost model: linears below minMacsPerItem stay float (weights dequantized ahead of time), with the reason',
  { skip },
  async () => {
    const src = path.join(dir, 'qdq_linear3d.onnx');
    const m = readModel(src);
    foldWeights(m);
    const r = optimizeForOrtCpu(m, { minMacsPerItem: 10_000 });
    assert.equal(r.linears.integer.length, 0);
    assert.equal(r.linears.float.length, 2);
    // 6 tokens x K 32 x N 48 = 9216 multiply-adds per batch item.
    for (const f of r.linears.float)
      assert.match(f.reason, /9216 multiply-adds per batch item \(K 32, N 48\), below 10000/);
    assert.equal(count(m, 'QuantizeLinear') + count(m, 'DequantizeLinear'), 0, 'no Q/DQ left: nothing runs in integer');
    assert.equal(count(m, 'MatMul'), 2);
    for (const t of m.graph.initializer)
      if (/weight_float/.test(t.name || '')) assert.equal(t.data_type, DataType.FLOAT);
    const out = path.join(dir, 'qdq_linear3d_float.onnx');
    writeModel(m, out);
    const v = await verifyModels(src, out, batchesFor([2, 6, 32]), { latencyRuns: 1, warmup: 0 });
    assert.ok(v.cosine_min > 0.999, `cosine ${v.cosine_min}`);
  },
);

test(
  'ort-cpu linears: a CNN keeps its DQ-fed Conv; its 2-D classifier Gemm (K 512, N 10) becomes MatMulIntegerToFloat',
  { skip },
  async () => {
    const src = path.join(dir, 'qdq_cnn.onnx');
    const m = readModel(src);
    foldWeights(m);
    const r = optimizeForOrtCpu(m);
    const idx = indexGraph(m.graph);
    const conv = m.graph.node.find((n) => n.op_type === 'Conv')!;
    assert.deepEqual(
      conv.input.slice(0, 2).map((i) => idx.producer.get(i)?.op_type),
      ['DequantizeLinear', 'DequantizeLinear'],
    );
    assert.deepEqual(
      r.linears.integer.map((l) => [l.k, l.n]),
      [[512, 10]],
      JSON.stringify(r.linears),
    );
    const out = path.join(dir, 'qdq_cnn_mmitf.onnx');
    writeModel(m, out);
    const ops = await opsOrtRuns(out);
    assert.equal(ops.MatMulIntegerToFloat, 1, JSON.stringify(ops));
    const v = await verifyModels(src, out, batchesFor([2, 1, 8, 8]), { latencyRuns: 1, warmup: 0 });
    assert.ok(v.cosine_min > 0.999, `cosine ${v.cosine_min}`);
  },
);

test('static shapes for the cost model: dynamic batch taken as 1, runtime Reshape targets evaluated', { skip }, () => {
  const m = readModel(path.join(dir, 'mlp3d.onnx'));
  const info = inferShapes(m.graph);
  const mms = m.graph.node.filter((n) => n.op_type === 'MatMul');
  assert.ok(mms.length >= 2);
  for (const mm of mms) {
    const a = info.shapes.get(mm.input[0]),
      b = info.shapes.get(mm.input[1]);
    assert.ok(a && b, `shapes of ${mm.name}: ${JSON.stringify([a, b])}`);
    assert.equal(a![0], 1, 'batch dimension taken as 1');
    assert.equal(a![a!.length - 1], b![b!.length - 2], `${mm.name}: K matches`);
    const macs = matMulMacsPerItem(info, mm.input[0], mm.input[1])!;
    assert.equal(macs, a!.slice(1).reduce((x, y) => x * y, 1) * b![b!.length - 1]);
  }
  const cnn = readModel(path.join(dir, 'qdq_cnn.onnx'));
  const ci = inferShapes(cnn.graph);
  const conv = cnn.graph.node.find((n) => n.op_type === 'Conv')!;
  assert.deepEqual(ci.shapes.get(conv.output[0]), [1, 8, 8, 8]);
});
