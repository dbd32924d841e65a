// `qdq tune` end to end on a bundled example where INT8 already holds (digits-cnn): the real backend searches,
// the pipeline exports and verifies, and the result keeps nothing in float, says so, leaves the model file alone,
// and fills tune.json's latencies from onnxruntime-node. Skips where no interpreter here can import torch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { runTune } from '../../server/src/pipeline/tune';
import { QdqError } from '../../server/src/pipeline/errors';
import { projectCopy, torchPython } from '../pipeline/backendSetup';

const example = path.join(process.cwd(), 'examples', 'digits-cnn');
const torch = torchPython();

function project(): string {
  return projectCopy(example, 'qdq-tune-', /\.(py|toml|pt)$/);
}

test('no budget anywhere: a config error naming --max-drop, before any Python runs', async () => {
  const dir = project();
  await assert.rejects(
    runTune({ projectDir: dir, python: '/nonexistent/python' }),
    (e: QdqError) => e.kind === 'config' && /budget/.test(e.message) && /--max-drop/.test(e.hint ?? ''),
  );
});

test('digits-cnn: INT8 holds, so tune keeps nothing in float, says so, and measures the latencies', async (t) => {
  const python = torch.python;
  if (!python) return t.skip(torch.skipReason);
  const dir = project();
  const modelBefore = fs.readFileSync(path.join(dir, 'model.py'), 'utf8');
  const { report, path: out, notes } = await runTune({ projectDir: dir, python, maxDrop: '0.5' });
  assert.equal(report.metric, 'top1');
  assert.equal(report.samples, 360);
  assert.ok(report.within_budget);
  assert.ok(report.all_int8.accuracy >= report.fp32.accuracy - 0.5, JSON.stringify(report));
  assert.deepEqual(report.mixed.float_sites, []);
  assert.equal(report.model_file, null);
  assert.ok(
    notes.some((n) => /nothing kept in float/.test(n)),
    notes.join('\n'),
  );
  assert.equal(fs.readFileSync(path.join(dir, 'model.py'), 'utf8'), modelBefore);
  assert.ok(!fs.existsSync(path.join(dir, 'qdq-out', 'tuned')));
  for (const v of [report.fp32, report.all_int8, report.mixed])
    assert.ok(typeof v.latency_ms === 'number' && v.latency_ms > 0, JSON.stringify(v));
  assert.equal(report.mixed.latency_ms, report.all_int8.latency_ms);
  assert.equal(report.target, 'tensorrt');
  assert.ok(report.onnxruntime_top1.all_int8 !== null && report.onnxruntime_top1.all_int8 > 90);
  assert.deepEqual(JSON.parse(fs.readFileSync(out, 'utf8')), JSON.parse(JSON.stringify(report)));
});
