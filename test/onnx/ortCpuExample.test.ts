// examples/digits-transformer and digits-cnn through the real pipeline (torch export, calibration, QDQ export, weight folding)
// with target ort-cpu: the graph onnxruntime-node runs has integer linears and no Q/DQ round trips, and the
// INT8 model keeps top-1 within 1% of FP32 on the 360 held-out digits. Speed is measured by `npm run bench`
// (bench/models.ts), not here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readModel } from '../../server/src/onnx/model';
import { verifyModels, readEvalFile } from '../../server/src/onnx/verify';
import { runPipeline } from '../../server/src/pipeline/run';
import { repoRoot, torchPython } from './helpers';

const python = torchPython();
const hasSklearn =
  python !== null &&
  require('child_process').spawnSync(python, ['-c', 'import sklearn'], { stdio: 'ignore' }).status === 0;
const skip = !python
  ? 'no Python with torch here (python3, /usr/bin/python3): cannot run the pipeline'
  : !hasSklearn
    ? `${python} has no scikit-learn: the example's data cannot load`
    : false;

/**
 * Runs the pipeline's export on an example with target ort-cpu, hands the rewrite report and the op counts of the
 * graph ORT runs (its optimized model) to `check`, then checks top-1 within 1% of FP32 on the 360 held-out digits.
 */
async function exportOrtCpu(
  example: string,
  check: (rewrite: any, ops: Record<string, number>, notes: string[]) => void,
): Promise<void> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-ortcpu-example-'));
  try {
    const r = await runPipeline({
      projectDir: path.join(repoRoot, 'examples', example),
      steps: ['export'],
      python: python!,
      overrides: { target: 'ort-cpu', outDir: out, dynamicBatch: true },
      onLog: () => undefined,
    });
    const int8 = r.report.files.int8_onnx;
    const ort = require('onnxruntime-node');
    const optimized = path.join(out, 'model.int8.optimized.onnx');
    const s = await ort.InferenceSession.create(int8, {
      graphOptimizationLevel: 'all',
      optimizedModelFilePath: optimized,
      logSeverityLevel: 3,
    });
    await s.release();
    const ops: Record<string, number> = {};
    for (const n of readModel(optimized).graph.node) ops[n.op_type] = (ops[n.op_type] ?? 0) + 1;
    check((r.report as any).ort_cpu_rewrite, ops, r.report.notes);
    const v = await verifyModels(r.report.files.fp32_onnx, int8, readEvalFile(r.report.files.eval), {
      latencyRuns: 1,
      warmup: 0,
    });
    assert.ok(v.accuracy, 'the example has labelled eval data');
    assert.equal(v.samples, 360);
    assert.ok(v.accuracy!.int8 >= v.accuracy!.fp32 - 0.01, `top-1 ${v.accuracy!.int8} vs FP32 ${v.accuracy!.fp32}`);
    assert.ok(v.cosine_min > 0.999, `cosine ${v.cosine_min}`);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

test(
  'digits-transformer, target ort-cpu: 12 MatMulIntegerToFloat in the graph ORT runs, small ops in float, top-1 within 1% of FP32',
  { skip, timeout: 300_000 },
  async () => {
    await exportOrtCpu('digits-transformer', (rewrite, ops) => {
      // embed (8 tokens x 8 x 48 = 3072 multiply-adds per image), the classifier (48 x 10) and the four attention
      // matmuls (4 heads x 8 x 12 x 8 = 3072) fall below the cost model's 4096; q/k/v/out (8 x 48 x 48) and the
      // FFN (8 x 48 x 96) run in integer.
      assert.equal(rewrite.linears.integer.length, 12, JSON.stringify(rewrite.linears));
      assert.deepEqual(rewrite.linears.float.map((f: any) => f.node).sort(), [
        '/classifier/Gemm',
        '/embed/MatMul',
        '/layers.0/attn/MatMul',
        '/layers.0/attn/MatMul_1',
        '/layers.1/attn/MatMul',
        '/layers.1/attn/MatMul_1',
      ]);
      assert.equal(ops.MatMulIntegerToFloat, 12, JSON.stringify(ops));
      // One Q per distinct activation (q/k/v share theirs), no DQ, no QLinearMatMul, GELU fused as in FP32.
      assert.equal(ops.QuantizeLinear, 8, JSON.stringify(ops));
      for (const op of ['DequantizeLinear', 'QLinearMatMul', 'Erf'])
        assert.equal(ops[op], undefined, `${op} in ${JSON.stringify(ops)}`);
      assert.equal(ops.Gelu, 2, JSON.stringify(ops));
    });
  },
);

test(
  'digits-cnn, target ort-cpu: every Conv an integer QLinearConv (the 1-channel stem padded to 4), residual Adds integer, top-1 within 1% of FP32',
  { skip, timeout: 300_000 },
  async () => {
    await exportOrtCpu('digits-cnn', (rewrite, ops, notes) => {
      assert.equal(rewrite.batchNormsFolded, 6, JSON.stringify(rewrite));
      assert.deepEqual(rewrite.convInputsPadded, [{ node: '/stem/stem.0/Conv', from: 1, to: 4 }]);
      assert.ok(
        notes.some((n) => n.includes('zero-padded') && n.includes('/stem/stem.0/Conv 1 -> 4')),
        notes.join('\n'),
      );
      assert.equal(ops.QLinearConv, 6, JSON.stringify(ops));
      assert.equal(ops.QLinearAdd, 2, JSON.stringify(ops));
      for (const op of ['Conv', 'BatchNormalization', 'Relu'])
        assert.equal(ops[op], undefined, `${op} in ${JSON.stringify(ops)}`);
      // The input's Q, and one DQ where the last block's sum goes on in float to the pooling and the classifier.
      assert.equal(ops.QuantizeLinear, 1, JSON.stringify(ops));
      assert.equal(ops.DequantizeLinear, 1, JSON.stringify(ops));
    });
  },
);
