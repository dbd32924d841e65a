import { before, test } from 'node:test';
import { probeU8S8Saturation } from '../../server/src/onnx/cpuInt8';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { readModel, writeModel, encodeModel, decodeModel, DataType, opsetVersion } from '../../server/src/onnx/model';
import { foldWeights } from '../../server/src/onnx/foldWeights';
import { quantizeDynamic } from '../../server/src/onnx/dynamic';
import { qdqStats, modulePathFromNodeName } from '../../server/src/onnx/qdqStats';
import { trtCheck } from '../../server/src/onnx/trtCheck';
import { verifyModels, EvalBatch, createSession, runBatch, pairedMedianLatency } from '../../server/src/onnx/verify';
import { fixtureModels, randn } from './helpers';

function batchesFor(shape: number[], count = 3): EvalBatch[] {
  const n = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: count }, (_, i) => ({
    inputs: [{ name: 'x', dtype: 'float32' as const, shape, data: randn(n, i + 7) }],
  }));
}

const fx = fixtureModels();
const skip = 'skip' in fx ? fx.skip : false;
const dir = 'dir' in fx ? fx.dir : '';

// The integer forms follow this CPU's kernels (cpuInt8.ts): ask it before building any.
before(() => probeU8S8Saturation());
test('read/write round trip keeps the graph and its outputs', { skip }, async () => {
  const src = path.join(dir, 'qdq_cnn.onnx');
  const m = readModel(src);
  assert.ok(m.graph.node.length > 5);
  assert.equal(opsetVersion(m), 13);
  const again = decodeModel(encodeModel(m));
  assert.deepEqual(
    again.graph.node.map((n) => [n.op_type, n.input, n.output]),
    m.graph.node.map((n) => [n.op_type, n.input, n.output]),
  );
  const out = path.join(dir, 'roundtrip.onnx');
  writeModel(m, out);
  const r = await verifyModels(src, out, batchesFor([2, 1, 8, 8]), { latencyRuns: 1, warmup: 0 });
  assert.equal(r.max_abs_diff, 0);
});

test(
  'weight folding turns FP32 weight -> Q -> DQ into INT8 initializer -> DQ, same outputs, smaller file',
  { skip },
  async () => {
    const src = path.join(dir, 'qdq_cnn.onnx');
    const m = readModel(src);
    const before = qdqStats(m);
    const { folded } = foldWeights(m);
    assert.deepEqual(folded.sort(), ['conv.weight', 'fc.weight']);
    for (const t of m.graph.initializer)
      if (/weight/.test(t.name || '')) assert.equal(t.data_type, DataType.INT8, t.name);
    assert.ok(!m.graph.node.some((n) => n.op_type === 'QuantizeLinear' && /weight/.test(n.input[0])));
    const after = qdqStats(m);
    assert.equal(after.qdq_pairs, before.qdq_pairs);
    assert.equal(after.folded_weights, 2);
    assert.equal(after.unquantized_weighted_ops.length, 0);
    const out = path.join(dir, 'qdq_cnn_folded.onnx');
    writeModel(m, out);
    assert.ok(
      fs.statSync(out).size < 0.4 * fs.statSync(src).size,
      `${fs.statSync(out).size} vs ${fs.statSync(src).size}`,
    );
    const r = await verifyModels(src, out, batchesFor([2, 1, 8, 8]), { latencyRuns: 1, warmup: 0 });
    assert.ok(r.max_abs_diff < 1e-4, `max abs diff ${r.max_abs_diff}`);
  },
);

for (const form of ['fused', 'integer'] as const) {
  test(
    `dynamic quantization (${form}) of Gemm transB=1 and MatMul weights runs in ORT with cosine >= 0.999`,
    { skip },
    async () => {
      for (const [file, shape, expected] of [
        ['mlp2d.onnx', [4, 64], 2],
        ['mlp3d.onnx', [2, 6, 32], 3],
      ] as const) {
        const src = path.join(dir, file);
        const m = readModel(src);
        const res = quantizeDynamic(m, form);
        assert.equal(res.quantized.length, expected, JSON.stringify(res));
        // No float MatMul/Gemm with a constant weight is left.
        const inits = new Set(m.graph.initializer.map((t) => t.name));
        assert.ok(!m.graph.node.some((n) => (n.op_type === 'MatMul' || n.op_type === 'Gemm') && inits.has(n.input[1])));
        if (file === 'mlp3d.onnx')
          assert.equal(res.skipped.length, 2, 'the two activation x activation matmuls stay float');
        const out = path.join(dir, `${path.basename(file, '.onnx')}_dyn_${form}.onnx`);
        writeModel(m, out);
        const r = await verifyModels(src, out, batchesFor([...shape]), { latencyRuns: 1, warmup: 0 });
        assert.ok(r.cosine_min >= 0.999, `${file}: cosine ${r.cosine_min}`);
        assert.ok(r.sizes_bytes.int8 < r.sizes_bytes.fp32 * 0.5);
      }
    },
  );
}

test('qdqStats lists weighted ops not fed by DequantizeLinear with their module path', { skip }, () => {
  const s = qdqStats(readModel(path.join(dir, 'mlp2d.onnx')), [
    { name: 'fc1.input_quantizer', site: { file: 'model.py', cls: 'Mlp', attr: 'fc1' } },
  ]);
  assert.equal(s.qdq_pairs, 0);
  assert.deepEqual(
    s.unquantized_weighted_ops.map((u) => [u.op, u.module]),
    [
      ['Gemm', 'fc1'],
      ['MatMul', 'fc2'],
    ],
  );
  assert.deepEqual(s.unquantized_weighted_ops[0].site, { file: 'model.py', cls: 'Mlp', attr: 'fc1' });
  const q = qdqStats(readModel(path.join(dir, 'qdq_cnn.onnx')));
  assert.equal(q.qdq_pairs, 4);
  assert.equal(q.unquantized_weighted_ops.length, 0);
});

test('module path from TorchScript exporter node names', () => {
  assert.equal(modulePathFromNodeName('/layer1/layer1.0/conv1/Conv'), 'layer1.0.conv1');
  assert.equal(modulePathFromNodeName('/fc/Gemm'), 'fc');
  assert.equal(modulePathFromNodeName('/encoder/layers.0/attn/MatMul_1'), 'encoder.layers.0.attn');
  assert.equal(modulePathFromNodeName('/MatMul'), null);
  assert.equal(modulePathFromNodeName('node_3'), null);
});

test('trtCheck reports ops the matrix lacks, custom-domain ops included', { skip }, () => {
  const m = readModel(path.join(dir, 'mlp3d.onnx'));
  const supported = new Set(['MatMul', 'Add', 'Transpose']);
  const r = trtCheck(m, (op) => ({ supported: supported.has(op) }));
  assert.deepEqual(
    r.unsupported.map((u) => u.op),
    ['Softmax'],
  );
  quantizeDynamic(m, 'fused');
  const r2 = trtCheck(m, (op) => ({ supported: supported.has(op) || op === 'Softmax' }));
  assert.deepEqual(
    r2.unsupported.map((u) => u.op),
    ['com.microsoft.DynamicQuantizeMatMul'],
  );
});

test('verify gives top-1 agreement and accuracy on labelled batches', { skip }, async () => {
  const src = path.join(dir, 'mlp2d.onnx');
  const s = await createSession(src);
  const batches = batchesFor([8, 64], 2);
  // Labels = the FP32 model's own predictions, so FP32 accuracy is exactly 1.
  for (const b of batches) {
    const out = (await runBatch(s, b))[s.outputNames[0]];
    const d = out.data as Float32Array;
    const labels = new BigInt64Array(8);
    for (let r = 0; r < 8; r++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (d[r * 10 + c] > d[r * 10 + best]) best = c;
      labels[r] = BigInt(best);
    }
    b.labels = labels;
  }
  await s.release();
  const m = readModel(src);
  quantizeDynamic(m);
  const out = path.join(dir, 'mlp2d_dyn_acc.onnx');
  writeModel(m, out);
  const r = await verifyModels(src, out, batches, { latencyRuns: 3, warmup: 1 });
  assert.equal(r.accuracy?.fp32, 1);
  assert.ok(r.accuracy!.int8 >= 0.8);
  assert.equal(r.samples, 16);
  assert.ok(r.top1_agreement! >= 0.8);
  assert.ok(r.latency_ms.fp32 > 0 && r.latency_ms.int8 > 0);
});

test('paired latency times the sessions in alternating blocks, each after an untimed run', async () => {
  // Fake sessions record the order of run() calls; a real one takes longer in each block it is slowed.
  const calls: string[] = [];
  const fake = (name: string, ms: number) =>
    ({
      inputNames: ['x'],
      outputNames: ['y'],
      run: async () => {
        calls.push(name);
        await new Promise((r) => setTimeout(r, ms));
        return {};
      },
    }) as any;
  const [a, b] = await pairedMedianLatency([fake('a', 1), fake('b', 12)], batchesFor([1, 4], 1)[0], 7, 2);
  // 2 warmups each; then blocks of 5 and 2 timed runs, each block after one untimed run.
  assert.equal(calls.join(''), 'aabb' + 'a'.repeat(6) + 'b'.repeat(6) + 'aaa' + 'bbb');
  assert.ok(b > a, `the slower session has the larger median (${a} vs ${b} ms)`);
});

test(
  'trtCheck with the real TensorRT matrix: a QDQ CNN passes, DynamicQuantizeLinear/MatMulInteger are flagged',
  { skip },
  () => {
    const r = trtCheck(readModel(path.join(dir, 'qdq_cnn.onnx')));
    assert.equal(r.checked, true);
    assert.deepEqual(r.unsupported, []);
    const m = readModel(path.join(dir, 'mlp2d.onnx'));
    quantizeDynamic(m, 'integer');
    const ops = trtCheck(m).unsupported.map((u) => u.op);
    assert.ok(ops.includes('MatMulInteger') || ops.includes('DynamicQuantizeLinear'), ops.join(','));
  },
);

test(
  'ort-cpu QLinearMatMul form (linear rewrite off): weight Transposes folded, MatMul outputs quantized, one DQ per reader, same results',
  { skip },
  async () => {
    const src = path.join(dir, 'qdq_linear3d.onnx');
    const m = readModel(src);
    foldWeights(m);
    const { optimizeForOrtCpu } = await import('../../server/src/onnx/ortCpu');
    const r = optimizeForOrtCpu(m, false);
    assert.equal(r.transposesFolded, 2, JSON.stringify(r));
    assert.equal(r.outputsQuantized, 2);
    const idx = new Map(m.graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
    for (const mm of m.graph.node.filter((n) => n.op_type === 'MatMul')) {
      assert.deepEqual(
        mm.input.map((i) => idx.get(i)?.op_type),
        ['DequantizeLinear', 'DequantizeLinear'],
        'DQ feeds the MatMul directly',
      );
      assert.equal(m.graph.node.filter((n) => n.input.includes(mm.output[0]))[0].op_type, 'QuantizeLinear');
    }
    assert.equal(qdqStats(m).unquantized_weighted_ops.length, 0);
    const out = path.join(dir, 'qdq_linear3d_ort.onnx');
    writeModel(m, out);
    const v = await verifyModels(src, out, batchesFor([2, 6, 32]), { latencyRuns: 1, warmup: 0 });
    assert.ok(v.cosine_min > 0.999, `cosine ${v.cosine_min}`);
    // What the rewrite is for: ORT's CPU provider now fuses both projections into integer kernels.
    const ort = require('onnxruntime-node');
    const optimized = path.join(dir, 'qdq_linear3d_ort.optimized.onnx');
    const s = await ort.InferenceSession.create(out, {
      graphOptimizationLevel: 'all',
      optimizedModelFilePath: optimized,
      logSeverityLevel: 3,
    });
    await s.release();
    assert.equal(readModel(optimized).graph.node.filter((n) => n.op_type === 'QLinearMatMul').length, 2);
  },
);
