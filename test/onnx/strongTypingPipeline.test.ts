// The pipeline's default target tensorrt (TensorRT 11, strongly typed) on the bundled examples and the BERT-like
// encoder of bench/encoder: the typed int8 graph passes onnx's strict checker, onnxruntime runs it with cosine >= 0.99
// against FP32 on the eval batches, every Q/DQ scale is in its tensor's type, every weighted op is DQ-fed, and the
// encoder runs at least 70% of its float compute in INT8/FP16. --target tensorrt10 keeps the FP32 + Q/DQ form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readModel, DataType, opsetVersion } from '../../server/src/onnx/model';
import { formatReport } from '../../server/src/pipeline/cli';
import { auditPrecision } from '../../server/src/onnx/precisionAudit';
import { verifyModels, readEvalFile } from '../../server/src/onnx/verify';
import { runPipeline } from '../../server/src/pipeline/run';
import { Target } from '../../server/src/pipeline/config';
import { repoRoot, torchPython } from './helpers';
import { onnxCheck, hasOnnx } from './onnxChecker';

const python = torchPython();
const hasSklearn = python !== null && spawnSync(python, ['-c', 'import sklearn'], { stdio: 'ignore' }).status === 0;
const skip = !python ? 'no Python with torch here (python3, /usr/bin/python3)' : false;

async function exportTyped(project: string, target: Target = 'tensorrt') {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-strong-pipeline-'));
  const r = await runPipeline({
    projectDir: path.join(repoRoot, project),
    steps: ['export'],
    python: python!,
    overrides: { target, outDir: out, dynamicBatch: true },
    onLog: () => undefined,
  });
  return { out, report: r.report };
}

async function checkTyped(project: string, minShare: number): Promise<void> {
  const { out, report } = await exportTyped(project);
  try {
    const p = report.precision!;
    assert.ok(p, 'target tensorrt reports per-layer precision');
    assert.equal(p.float_precision, 'fp16');
    const m = readModel(report.files.int8_onnx);
    const a0 = readModel(report.files.fp32_onnx).graph.node;
    // The report and the CLI's export line give the opset written (typing raises it to 19), not the configured one.
    assert.ok(opsetVersion(m) >= 19, `typed graph at opset ${opsetVersion(m)}`);
    assert.equal(report.opset, opsetVersion(m));
    assert.match(formatReport(report, 'export'), new RegExp(`export: target tensorrt, opset ${opsetVersion(m)},`));
    // Deployment hazards on the exported graph: attention's rank-4 MatMuls are no TRT063 (no weight); the configs
    // export at opset 13, so a model with LayerNorm gets TRT064.
    const hazards = report.deployment_hazards ?? [];
    assert.deepEqual(
      hazards.filter((h) => h.code === 'TRT063'),
      [],
    );
    assert.equal(
      hazards.some((h) => h.code === 'TRT064'),
      a0.some((n) => n.op_type === 'Pow'),
    );
    const a = auditPrecision(m);
    assert.ok(a.low_share >= minShare, `${a.low_precision_ops}/${a.float_compute_ops} float compute ops low`);
    assert.ok(a.scales_ok, JSON.stringify(a.scales.filter((s) => !s.ok)));
    assert.equal(a.dq_fed_weighted_ops, a.weighted_ops, `not DQ-fed: ${a.not_dq_fed.join(', ')}`);
    for (const f of a.fp32_ops)
      assert.ok(f.reason.startsWith('FP32 ('), `${f.node} FP32 without a reason: ${f.reason}`);
    assert.equal(m.graph.input[0].type?.tensor_type?.elem_type, DataType.FLOAT);
    assert.ok(
      p.layers.some((l) => l.precision === 'INT8' && l.site),
      'INT8 layers link to their source site',
    );
    if (hasOnnx) {
      const c = onnxCheck(report.files.int8_onnx);
      assert.ok(c.ok, c.message);
    }
    const v = await verifyModels(report.files.fp32_onnx, report.files.int8_onnx, readEvalFile(report.files.eval), {
      latencyRuns: 1,
      warmup: 0,
    });
    assert.ok(v.cosine_min >= 0.99, `cosine ${v.cosine_min}`);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

test(
  'digits-cnn, target tensorrt: all float compute FP16, checker clean, cosine >= 0.99',
  { skip: skip || (!hasSklearn && 'no scikit-learn'), timeout: 600_000 },
  () => checkTyped('examples/digits-cnn', 0.95),
);

test(
  'digits-transformer, target tensorrt: >= 70% FP16, checker clean, cosine >= 0.99',
  { skip: skip || (!hasSklearn && 'no scikit-learn'), timeout: 600_000 },
  () => checkTyped('examples/digits-transformer', 0.7),
);

test(
  'bench/encoder (BERT-like), target tensorrt: >= 70% of float compute INT8/FP16, cosine >= 0.99',
  { skip, timeout: 900_000 },
  () => checkTyped('bench/encoder', 0.7),
);

test(
  'digits-cnn, target tensorrt10: the FP32 + Q/DQ form, no FP16 anywhere',
  { skip: skip || (!hasSklearn && 'no scikit-learn'), timeout: 600_000 },
  async () => {
    const { out, report } = await exportTyped('examples/digits-cnn', 'tensorrt10');
    try {
      assert.equal(report.precision, undefined);
      const m = readModel(report.files.int8_onnx);
      assert.equal(report.opset, opsetVersion(m));
      assert.match(formatReport(report, 'export'), new RegExp(`opset ${opsetVersion(m)},`));
      const a = auditPrecision(m);
      assert.deepEqual(
        a.layers.filter((l) => l.precision !== 'INT8' && l.precision !== 'FP32'),
        [],
      );
      assert.ok(a.scales.every((s) => s.scale_type === 'FP32'));
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  },
);
