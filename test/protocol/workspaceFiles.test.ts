// Issue 14 D1: opening an untrusted project must not hang or exhaust the server. The workspace files the server
// reads (pyproject.toml, qdq-out/calibration.json, report.json) may be FIFOs, device symlinks or huge files.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { readWorkspaceFile, WorkspaceFileError } from '../../server/src/features/workspaceFiles';
import { TestClient, fileUri, FULL_CAPABILITIES } from './lspClient';

function tmpProject(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-hostile-'));
}

function mkfifo(file: string): void {
  const r = spawnSync('mkfifo', [file]);
  assert.equal(r.status, 0, `mkfifo ${file}: ${r.stderr}`);
}

const MODEL = [
  'import torch',
  'from torch import nn',
  '',
  'class Net(nn.Module):',
  '    def __init__(self):',
  '        super().__init__()',
  '        self.fc = nn.Linear(4, 2)',
  '',
  '    def forward(self, x):',
  '        return self.fc(x)',
  '',
].join('\n');

/** Rejects when `promise` takes longer than `ms` (the bug hangs forever: the test must fail, not time out the run). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms).unref()),
  ]);
}

test('readWorkspaceFile: FIFO, device and oversized files are refused at once; absent is undefined', async () => {
  const dir = tmpProject();
  try {
    mkfifo(path.join(dir, 'fifo.json'));
    fs.symlinkSync('/dev/zero', path.join(dir, 'zero.json'));
    const big = path.join(dir, 'big.json');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 2 * 1024 * 1024); // sparse: costs no disk
    fs.writeFileSync(path.join(dir, 'ok.json'), '{"a": 1}');
    await assert.rejects(
      within(readWorkspaceFile(path.join(dir, 'fifo.json'), 1024), 3000, 'FIFO'),
      (e) => e instanceof WorkspaceFileError && /not a regular file/.test(e.message),
    );
    await assert.rejects(
      within(readWorkspaceFile(path.join(dir, 'zero.json'), 1024), 3000, '/dev/zero'),
      (e) => e instanceof WorkspaceFileError && /not a regular file/.test(e.message),
    );
    await assert.rejects(readWorkspaceFile(big, 1024 * 1024), /over the 1048576-byte limit/);
    assert.equal(await readWorkspaceFile(path.join(dir, 'ok.json'), 1024), '{"a": 1}');
    assert.equal(await readWorkspaceFile(path.join(dir, 'missing.json'), 1024), undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

for (const [name, plant] of [
  ['calibration.json is a FIFO', (dir: string) => mkfifo(path.join(dir, 'qdq-out', 'calibration.json'))],
  [
    'calibration.json is a symlink to /dev/zero',
    (dir: string) => fs.symlinkSync('/dev/zero', path.join(dir, 'qdq-out', 'calibration.json')),
  ],
  [
    'pyproject.toml is a FIFO and report.json a symlink to /dev/zero',
    (dir: string) => {
      fs.rmSync(path.join(dir, 'pyproject.toml'));
      mkfifo(path.join(dir, 'pyproject.toml'));
      fs.symlinkSync('/dev/zero', path.join(dir, 'qdq-out', 'report.json'));
    },
  ],
] as const) {
  test(`an untrusted project whose ${name} opens, hovers and reports without hanging`, async () => {
    const dir = tmpProject();
    fs.writeFileSync(path.join(dir, 'pyproject.toml'), '[tool.qdq]\nmodel = "model:Net"\n');
    fs.mkdirSync(path.join(dir, 'qdq-out'));
    plant(dir);
    const model = path.join(dir, 'model.py');
    fs.writeFileSync(model, MODEL);
    const client = await TestClient.start({
      capabilities: FULL_CAPABILITIES,
      initializationOptions: { workspaceTrusted: false },
    });
    try {
      const uri = fileUri(model);
      await client.open(uri, MODEL);
      await within(client.waitForVersion(uri, 1), 10_000, 'diagnostics');
      const hover = client.request('textDocument/hover', {
        textDocument: { uri },
        position: { line: 6, character: 14 },
      });
      await within(hover, 10_000, 'hover');
      const report = await within(client.request('qdq/report', { uri }), 10_000, 'qdq/report');
      assert.equal(report, null, 'a report that is no regular file is no report');
      assert.equal(client.exited, undefined, 'the server is still running');
    } finally {
      await client.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
