// The editor's sensitivity, tune and QAT jobs take the editor settings the way the CLI takes [tool.qdq] and its
// flags (features/precisionJobs.ts jobOptions): with qdq.outDir, qdq.calibrationBatches and qdq.target set, every
// job's outputs land in that folder, its calibration ran that many batches and its export is for that target, QAT
// included. The real server and Python
// backend on the digits MLP fixture (one QAT epoch); skips where no interpreter here can import torch.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { jobOptions } from '../../server/src/features/precisionJobs';
import { defaultSettings } from '../../server/src/settings';
import { TestClient, fileUri, REPO } from '../protocol/lspClient';
import { projectCopy, torchPython } from '../pipeline/backendSetup';

const torch = torchPython();
const OUT = 'editor-out';
const BATCHES = 3;
const TARGET = 'ort-cpu';

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;

test('jobOptions: every runner gets the settings as overrides and the arguments the CLI would pass', () => {
  const settings = { ...defaultSettings(), outDir: OUT, calibrationBatches: BATCHES, target: TARGET } as const;
  const o = jobOptions(
    { maxDrop: '1%', nproc: 2, resume: true },
    { projectDir: '/p', python: '/py', settings, log: () => undefined },
  );
  for (const r of [o.sensitivity, o.tune, o.qat]) {
    assert.deepEqual(r.overrides, { outDir: OUT, batches: BATCHES, target: TARGET });
    assert.equal(r.projectDir, '/p');
    assert.equal(r.python, '/py');
    assert.equal(r.nproc, 2);
  }
  assert.equal(o.tune.maxDrop, '1%');
  assert.equal(o.tune.write, false);
  assert.equal(o.qat.resume, true);
  assert.equal(jobOptions({}, { projectDir: '/p', settings, log: () => undefined }).qat.nproc, 1);
});

test('editor jobs with qdq.outDir, calibrationBatches and target set: outputs there, calibrated and exported so', async (t) => {
  const python = torch.python;
  if (!python) return t.skip(torch.skipReason);
  const dir = projectCopy(path.join(REPO, 'test', 'qat', 'fixtures', 'digits-mlp'), 'qdq-editor-jobs-');
  // One epoch keeps QAT short; the fixture's [tool.qdq] says batches = 8 and out-dir = "qdq-out".
  const toml = path.join(dir, 'pyproject.toml');
  fs.writeFileSync(toml, fs.readFileSync(toml, 'utf8').replace(/^epochs = \d+$/m, 'epochs = 1'));
  const client = await TestClient.start({
    settings: { pythonInterpreter: python, outDir: OUT, calibrationBatches: BATCHES, target: TARGET },
  });
  const out = path.join(dir, OUT);
  try {
    const uri = fileUri(path.join(dir, 'model.py'));
    await client.open(uri, fs.readFileSync(path.join(dir, 'model.py'), 'utf8'));
    const run = <T>(command: string, args: object = {}) =>
      client.request<T>('workspace/executeCommand', { command, arguments: [{ uri, ...args }] });

    const sensitivity = await run<{ reportPath: string }>('qdq.sensitivity');
    assert.equal(sensitivity.reportPath, path.join(out, 'sensitivity.json'));
    assert.equal(readJson(path.join(out, 'calibration.json')).batches_seen, BATCHES);

    const tune = await run<{ reportPath: string; report: { target: string } }>('qdq.tune', { maxDrop: '100' });
    assert.equal(tune.reportPath, path.join(out, 'tune.json'));
    assert.equal(tune.report.target, TARGET);
    assert.equal(readJson(path.join(out, 'report.json')).batches_seen, BATCHES);

    fs.rmSync(path.join(out, 'report.json'));
    const qat = await run<{ reportPath: string; report: { epochs: number } }>('qdq.qat');
    assert.equal(qat.reportPath, path.join(out, 'qat.json'));
    assert.equal(qat.report.epochs, 1);
    assert.ok(fs.existsSync(path.join(out, 'qat', 'checkpoint.pt')), 'the checkpoint goes into the set out-dir');
    const report = readJson(path.join(out, 'report.json'));
    assert.equal(report.batches_seen, BATCHES);
    assert.equal(report.target, TARGET);

    assert.ok(!fs.existsSync(path.join(dir, 'qdq-out')), "nothing went to [tool.qdq]'s out-dir");
  } finally {
    await client.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
