// `qdq tune` where the plan keeps a group in float (digits-transformer with method max, --max-drop 0: in the tensorrt
// form its configured entropy calibration loses nothing, so there would be no group to keep): the mixed model is exported
// from the all-INT8 run's calibration (its histograms, no second pass), only the target's form is exported, and the
// search runs no assignment twice. All checked on what tune writes (report.json, tune.json), never on timings.
// Skips where no interpreter here can import torch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { runTune } from '../../server/src/pipeline/tune';
import type { Report } from '../../server/src/pipeline/run';
import { projectCopy, torchPython } from '../pipeline/backendSetup';

const example = path.join(process.cwd(), 'examples', 'digits-transformer');
const torch = torchPython();

const readReport = (file: string): Report => JSON.parse(fs.readFileSync(file, 'utf8')) as Report;

test('digits-transformer --max-drop 0: one float group, mixed model on the same calibration, no repeat', async (t) => {
  const python = torch.python;
  if (!python) return t.skip(torch.skipReason);
  const dir = projectCopy(example, 'qdq-tune-mixed-', /\.(py|toml|pt)$/);
  const { report } = await runTune({ projectDir: dir, python, maxDrop: '0', overrides: { method: 'max' } });
  assert.equal(report.mixed.float_groups.length, 1, JSON.stringify(report.mixed));
  assert.ok(report.within_budget);

  const out = path.join(dir, 'qdq-out');
  const allInt8 = readReport(path.join(out, 'report.json'));
  const mixed = readReport(path.join(out, 'tuned', 'report.json'));
  // The same ranges: every quantizer the mixed model keeps has the all-INT8 calibration's amax, and none is new.
  const amax = new Map(allInt8.quantizers.map((q) => [q.name, JSON.stringify(q.amax)]));
  assert.ok(mixed.quantizers.length > 0 && mixed.quantizers.length < allInt8.quantizers.length);
  for (const q of mixed.quantizers) assert.equal(JSON.stringify(q.amax), amax.get(q.name), String(q.name));
  assert.ok(
    mixed.notes.some((n) => /no new pass over the data/.test(n)),
    mixed.notes.join('\n'),
  );
  // Only the target's form: no ort-cpu second form, no dynamic model, in either run.
  for (const r of [allInt8, mixed]) {
    assert.equal(r.files.int8_ort_cpu_onnx, undefined);
    assert.equal(r.dynamic ?? null, null);
  }

  // One greedy round (every group tried in float once) found the group; the pruning pass then tries it back in
  // INT8, which is the all-INT8 assignment already measured: 2 + groups evaluations, not 3 + groups.
  assert.equal(report.steps.length, 1, JSON.stringify(report.steps));
  assert.equal(report.evaluations, 2 + report.groups);
});
