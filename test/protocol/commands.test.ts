// Backend commands through the language server with the real Python backend and PyTorch: work-done progress,
// calibration results feeding hovers, and cancellation that really stops the backend.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Hover } from 'vscode-languageserver-protocol';
import { TestClient, fileUri, REPO } from './lspClient';

function torchPython(): string | undefined {
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8', timeout: 120000 });
    if (r.status === 0) return py;
  }
  return undefined;
}
const PYTHON = torchPython();
const SKIP = PYTHON ? false : 'no Python interpreter here can import torch, so the backend cannot run';

let tmp: string;
let project: string;
let modelText: string;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-commands-'));
  project = path.join(tmp, 'digits-cnn');
  fs.cpSync(path.join(REPO, 'examples', 'digits-cnn'), project, {
    recursive: true,
    filter: (src) => !/qdq-out|__pycache__/.test(src),
  });
  modelText = fs.readFileSync(path.join(project, 'model.py'), 'utf8');
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function pos(needle: string, delta = 0) {
  const i = modelText.indexOf(needle) + delta;
  const lines = modelText.slice(0, i).split('\n');
  return { line: lines.length - 1, character: lines[lines.length - 1].length };
}

/** Python processes whose parent is `pid` (the backend the server spawned). */
function childPythons(pid: number): string[] {
  const r = spawnSync('ps', ['-o', 'pid=,comm=', '--ppid', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => /python/.test(l));
}

test(
  'qdq.calibrate reports cancellable progress, stores the results, and hovers then show amax and scale',
  { skip: SKIP },
  async () => {
    const client = await TestClient.start({ settings: { calibrationBatches: 2, pythonInterpreter: PYTHON } });
    try {
      const uri = fileUri(path.join(project, 'model.py'));
      await client.open(uri, modelText);
      await client.waitForVersion(uri, 1);
      const result = await client.request<{
        reportPath: string;
        report: { batches_seen: number; quantizers: unknown[] };
      }>('workspace/executeCommand', {
        command: 'qdq.calibrate',
        arguments: [{ uri }],
      });
      assert.equal(result.report.batches_seen, 2, 'the calibrationBatches setting reached the backend');
      assert.ok(fs.existsSync(result.reportPath));
      const [values] = [...client.progress.values()];
      assert.ok(values, 'a work-done progress was created');
      assert.equal(values[0].kind, 'begin');
      assert.equal(values[0].cancellable, true);
      assert.ok(
        values.some((v) => v.kind === 'report' && /batch|calibrat/i.test(v.message ?? '')),
        JSON.stringify(values),
      );
      assert.equal(values[values.length - 1].kind, 'end');
      const pct = values.filter((v) => typeof v.percentage === 'number').map((v) => v.percentage!);
      assert.deepEqual(
        pct,
        [...pct].sort((a, b) => a - b),
        'progress only moves forward',
      );
      const updated = client.notifications.get('qdq/calibrationUpdated') as { files: string[] }[];
      assert.ok(updated?.[0].files.includes(path.join(project, 'model.py')));

      const h = await client.request<Hover>('textDocument/hover', {
        textDocument: { uri },
        position: pos('nn.Conv2d(channels', 4),
      });
      const md = (h.contents as { value: string }).value;
      assert.match(md, /\*\*Calibration\*\*/);
      assert.match(md, /block1\.conv1\.input_quantizer`: amax [\d.]+, scale [\d.e-]+ \(max\)/);
      assert.match(md, /weight_quantizer`: per-channel \(axis 0, 16 channels\)/);
      const stem = await client.request<Hover>('textDocument/hover', {
        textDocument: { uri },
        position: pos('nn.Conv2d(1, width', 4),
      });
      assert.match((stem.contents as { value: string }).value, /stem\.0\.input_quantizer`: amax 1, scale/);
      assert.deepEqual(childPythons(client.child.pid!), [], 'the backend exited after the command');

      const report = await client.request<{ reportPath: string; report: { method: string } }>(
        'workspace/executeCommand',
        { command: 'qdq.showReport', arguments: [{ uri }] },
      );
      assert.equal(report.reportPath, result.reportPath);
      assert.equal(report.report.method, 'max');
      const info = await client.request<{ python: string; torchVersion?: string; problem?: string }>(
        'workspace/executeCommand',
        {
          command: 'qdq.selectInterpreter',
          arguments: [{ uri, python: PYTHON }],
        },
      );
      assert.equal(info.problem, undefined);
      assert.match(info.torchVersion ?? '', /^\d+\.\d+/);
      const status = client.notifications.get('qdq/backendStatus') as { state: string; torchVersion?: string }[];
      assert.equal(status[status.length - 1].state, 'ready');
      assert.equal(status[status.length - 1].torchVersion, info.torchVersion);
      const bad = await client.request<{ problem?: string }>('workspace/executeCommand', {
        command: 'qdq.selectInterpreter',
        arguments: [{ uri, python: path.join(tmp, 'no-such-python') }],
      });
      assert.match(bad.problem ?? '', /cannot import torch|not found|no such/i);

      // The report's calibration explorer: another method from the saved histograms, exported and verified.
      const switched = await client.request<{ report: { method: string; notes: string[]; compare?: unknown } }>(
        'workspace/executeCommand',
        { command: 'qdq.useCalibrationMethod', arguments: [{ uri, method: 'mse' }] },
      );
      assert.equal(switched.report.method, 'mse');
      assert.ok(switched.report.compare, 'exported and verified');
      assert.ok(
        switched.report.notes.some((n) =>
          /from the histograms saved by the last calibration \(2 batches\): no new pass/.test(n),
        ),
        JSON.stringify(switched.report.notes),
      );
      await assert.rejects(
        client.request('workspace/executeCommand', {
          command: 'qdq.useCalibrationMethod',
          arguments: [{ uri, method: 'kl' }],
        }),
        /needs method: one of max, entropy, percentile, mse/,
      );
      // The next test checks that a cancelled run exports nothing.
      fs.rmSync(path.join(project, 'qdq-out'), { recursive: true, force: true });
    } finally {
      await client.stop();
    }
  },
);

test('cancelling the progress stops the backend and answers RequestCancelled', { skip: SKIP }, async () => {
  const client = await TestClient.start({ settings: { calibrationBatches: 100000, pythonInterpreter: PYTHON } });
  try {
    const uri = fileUri(path.join(project, 'model.py'));
    await client.open(uri, modelText);
    let sawBackend: string[] = [];
    let cancelled = false;
    client.onProgress = (token, value) => {
      // Cancel once calibration batches are running: the backend is busy in a loop over the data.
      if (!cancelled && value.kind === 'report' && /batch/.test(value.message ?? '')) {
        cancelled = true;
        sawBackend = childPythons(client.child.pid!);
        void client.conn.sendNotification('window/workDoneProgress/cancel', { token });
      }
    };
    await assert.rejects(
      client.request('workspace/executeCommand', { command: 'qdq.calibrateAndExport', arguments: [{ uri }] }),
      (err: { code: number; message: string }) =>
        err.code === -32800 && /cancelled; the backend was stopped/.test(err.message),
    );
    assert.ok(cancelled, 'calibration progress arrived before the cancel');
    assert.equal(sawBackend.length, 1, 'the backend was running when the cancel was sent');
    // The pipeline kills the backend when it answers (or fails to answer) the cancel; give the kill a moment.
    const deadline = Date.now() + 10000;
    while (childPythons(client.child.pid!).length && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(childPythons(client.child.pid!), [], 'no backend process left');
    assert.ok(!fs.existsSync(path.join(project, 'qdq-out', 'model.int8.onnx')), 'nothing exported');
    const [values] = [...client.progress.values()];
    assert.equal(values[values.length - 1].kind, 'end');
    // The server is still fine.
    const h = await client.request<Hover | null>('textDocument/hover', {
      textDocument: { uri },
      position: pos('nn.Linear', 4),
    });
    assert.ok(h);
  } finally {
    await client.stop();
  }
});
