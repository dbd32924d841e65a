// Sensitivity in the editor through the language server (issue 17 item 3, issue 18's palette command): code lenses,
// hovers and qdq/sensitivity from the results on disk (hostile files ignored, never hanging), Apply Precision Plan
// as a workspace edit, the trust gate, and the palette commands run for real (sensitivity, tune, QAT with cancel
// and resume) on the digits MLP fixture with the Python backend.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import type { CodeLens, Hover, WorkspaceEdit } from 'vscode-languageserver-protocol';
import { SensitivityRequest, type EditCommandResult } from '../../server/src/protocol/lsp_ext';
import { TestClient, applyWorkspaceEdit, fileUri, REPO } from '../protocol/lspClient';
import { mobilenetSensitivity } from './sensitivityFixture';

function torchPython(): string | undefined {
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import torch, sklearn'], { encoding: 'utf8', timeout: 120000 });
    if (r.status === 0) return py;
  }
  return undefined;
}
const PYTHON = torchPython();
const SKIP = PYTHON ? false : 'no Python interpreter here can import torch and scikit-learn, so the backend cannot run';

function mobilenetProject(): { dir: string; model: string; text: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-sens-lsp-'));
  const model = path.join(dir, 'model.py');
  const text = fs.readFileSync(path.join(REPO, 'examples', 'digits-mobilenet', 'model.py'), 'utf8');
  fs.writeFileSync(model, text);
  fs.writeFileSync(
    path.join(dir, 'pyproject.toml'),
    '[tool.qdq]\nmodel = "model.py:build_model"\nout-dir = "qdq-out"\n',
  );
  fs.mkdirSync(path.join(dir, 'qdq-out'));
  fs.writeFileSync(path.join(dir, 'qdq-out', 'sensitivity.json'), JSON.stringify(mobilenetSensitivity(model)));
  const floatSites = [
    `${model}::InvertedResidual.project.input_quantizer`,
    `${model}::InvertedResidual.project.weight_quantizer`,
  ];
  fs.writeFileSync(
    path.join(dir, 'qdq-out', 'tune.json'),
    JSON.stringify({ mixed: { accuracy: 98.05, float_sites: floatSites }, within_budget: true }),
  );
  return { dir, model, text };
}

const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle));

test('untrusted workspace: lenses, hovers, the view and the plan from the files; the measuring commands refused', async () => {
  const { dir, model, text } = mobilenetProject();
  const client = await TestClient.start({ initializationOptions: { workspaceTrusted: false } });
  try {
    const uri = fileUri(model);
    await client.open(uri, text);
    const lenses = await client.request<CodeLens[]>('textDocument/codeLens', { textDocument: { uri } });
    const project = lineOf(text, 'self.project = nn.Conv2d');
    assert.deepEqual(
      lenses.map((l) => [l.range.start.line, l.command?.title]).sort((a, b) => Number(a[0]) - Number(b[0])),
      [
        [lineOf(text, 'self.expand = nn.Conv2d'), 'INT8: -0.28 pt'],
        [project, 'INT8: -1.42 pt (plan: keep float)'],
        [lineOf(text, 'nn.Conv2d(1, 16'), 'INT8: ±0.00 pt'],
      ],
    );
    const hover = await client.request<Hover>('textDocument/hover', {
      textDocument: { uri },
      position: { line: project, character: 30 },
    });
    const value = (hover.contents as { value: string }).value;
    assert.match(value, /nn\.Conv2d/, 'the layer hover is still there');
    assert.match(value, /only this INT8 \(rest FP32\): -1\.42 pt[\s\S]*only this float \(rest INT8\): \+1\.20 pt/);

    const view = await client.request(SensitivityRequest, { uri });
    assert.ok(view);
    assert.deepEqual(
      view.groups.map((g) => [g.label, g.locations[0]?.line, g.inPlan]),
      [
        ['InvertedResidual.project', project, true],
        ['InvertedResidual.add0 + InvertedResidual.expand', lineOf(text, 'self.expand = nn.Conv2d'), false],
        ['DigitsMobileNet.stem.0', lineOf(text, 'nn.Conv2d(1, 16'), false],
      ],
    );
    assert.equal(view.plan?.floatSites.length, 2);

    await assert.rejects(
      client.request('workspace/executeCommand', { command: 'qdq.sensitivity', arguments: [{ uri }] }),
      /not trusted/,
    );
    const applied = await client.request<EditCommandResult>('workspace/executeCommand', {
      command: 'qdq.applyPrecisionPlan',
      arguments: [{ uri }],
    });
    assert.equal(applied.applied, true);
    assert.match(applied.message ?? '', /quantized the file and kept 2 site\(s\) in float in model\.py/);
    const files = new Map([[uri, text]]);
    applyWorkspaceEdit(files, client.appliedEdits.at(-1) as WorkspaceEdit);
    const after = files.get(uri)!;
    assert.match(after, /self\.project = qdq_quant\.keep_float\(nn\.Conv2d\(expanded/);
    assert.match(after, /self\.expand = qdq_quant\.quant\(nn\.Conv2d/);
    assert.match(after, /^import qdq_quant {2}# qdq$/m);
    assert.ok(fs.existsSync(path.join(dir, 'qdq_quant.py')), 'the helper the edit imports is next to the model');
  } finally {
    await client.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('hostile result files (FIFO, oversized, not JSON, wrong shape) are ignored without hanging', async () => {
  const { dir, model, text } = mobilenetProject();
  const file = path.join(dir, 'qdq-out', 'sensitivity.json');
  const client = await TestClient.start({ initializationOptions: { workspaceTrusted: false } });
  try {
    const uri = fileUri(model);
    await client.open(uri, text);
    const cases: [string, () => void][] = [
      ['fifo', () => spawnSync('mkfifo', [file])],
      ['oversized', () => fs.writeFileSync(file, ' '.repeat(9 * 1024 * 1024))],
      ['not json', () => fs.writeFileSync(file, '{"metric": "top1", ')],
      ['wrong shape', () => fs.writeFileSync(file, JSON.stringify({ ...mobilenetSensitivity(model), groups: 'all' }))],
    ];
    for (const [name, make] of cases) {
      fs.rmSync(file, { force: true });
      make();
      assert.equal(await client.request(SensitivityRequest, { uri }), null, name);
      assert.deepEqual(await client.request('textDocument/codeLens', { textDocument: { uri } }), [], name);
    }
    assert.ok(client.logs.some((l) => /not a regular file/.test(l)));
    assert.ok(client.logs.some((l) => /over the \d+-byte limit/.test(l)));
    assert.ok(client.logs.some((l) => /not a sensitivity result/.test(l)));
  } finally {
    await client.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('palette commands for real: sensitivity, tune, then QAT cancelled and resumed', { skip: SKIP }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-sens-real-'));
  fs.cpSync(path.join(REPO, 'test', 'qat', 'fixtures', 'digits-mlp'), dir, { recursive: true });
  const client = await TestClient.start({ settings: { pythonInterpreter: PYTHON } });
  const updates: unknown[] = [];
  client.conn.onNotification('qdq/sensitivityUpdated', (p: unknown) => {
    updates.push(p);
  });
  try {
    const uri = fileUri(path.join(dir, 'model.py'));
    const text = fs.readFileSync(path.join(dir, 'model.py'), 'utf8');
    await client.open(uri, text);
    const sensitivity = await client.request<{ reportPath: string; report: { groups: unknown[] } }>(
      'workspace/executeCommand',
      { command: 'qdq.sensitivity', arguments: [{ uri }] },
    );
    assert.equal(sensitivity.reportPath, path.join(dir, 'qdq-out', 'sensitivity.json'));
    assert.ok(sensitivity.report.groups.length >= 3);
    assert.equal(updates.length, 1);
    const progress = [...client.progress.values()].flat();
    assert.ok(progress.some((p) => p.kind === 'begin' && p.title === 'QDQ: Sensitivity analysis'));
    assert.ok(
      progress.some((p) => /only .* (INT8|float)/.test(p.message ?? '')),
      'per-group progress',
    );
    const lenses = await client.request<CodeLens[]>('textDocument/codeLens', { textDocument: { uri } });
    assert.deepEqual(
      lenses.map((l) => l.range.start.line),
      ['self.fc1', 'self.fc2', 'self.head'].map((n) => lineOf(text, n)),
    );
    assert.ok(lenses.every((l) => /^INT8: [-+±]\d+\.\d\d pt/.test(l.command?.title ?? '')));

    const tune = await client.request<{ report: { mixed: { float_sites: string[] }; within_budget: boolean } }>(
      'workspace/executeCommand',
      { command: 'qdq.tune', arguments: [{ uri, maxDrop: '0.5' }] },
    );
    assert.equal(tune.report.within_budget, true);
    assert.ok(fs.existsSync(path.join(dir, 'qdq-out', 'tune.json')));
    assert.equal(fs.readFileSync(path.join(dir, 'model.py'), 'utf8'), text, 'tune from the editor writes a copy only');

    let cancelled = false;
    client.onProgress = (token, value) => {
      if (!cancelled && /QAT: epoch (1\/2|2 step)/.test(value.message ?? '')) {
        cancelled = true;
        void client.conn.sendNotification('window/workDoneProgress/cancel', { token });
      }
    };
    await assert.rejects(
      client.request('workspace/executeCommand', { command: 'qdq.qat', arguments: [{ uri }] }),
      (err: { code: number; message: string }) =>
        err.code === -32800 && /Fine-tuning \(QAT\) was cancelled/.test(err.message),
    );
    assert.ok(fs.existsSync(path.join(dir, 'qdq-out', 'qat', 'checkpoint.pt')), 'the checkpoint is kept');
    client.onProgress = undefined;
    const qat = await client.request<{ report: { resumed_from_step: number | null; steps: number; qat: number } }>(
      'workspace/executeCommand',
      { command: 'qdq.qat', arguments: [{ uri, resume: true }] },
    );
    assert.ok(qat.report.resumed_from_step !== null && qat.report.resumed_from_step >= 22);
    assert.equal(qat.report.steps, 44);
    assert.ok(qat.report.qat > 0.8);
  } finally {
    await client.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
