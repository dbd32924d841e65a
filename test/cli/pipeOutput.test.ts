// Issue 14 D0: the launcher must not exit before stdout drains. Through a pipe whose reader is slow, a
// process.exit() right after the write kept only the first 64 KiB, with exit code 0.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const BIN = path.join(process.cwd(), 'bin', 'qdq.js');
let tmp: string;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-pipe-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** `qdq ARGS | slow reader`: the reader starts reading after delayMs; resolves to what it read and qdq's exit code. */
function throughSlowPipe(args: string[], delayMs = 700): Promise<{ code: number | null; stdout: Buffer }> {
  return new Promise((resolve, reject) => {
    const qdq = spawn(process.execPath, [BIN, ...args], { cwd: tmp, stdio: ['ignore', 'pipe', 'ignore'] });
    const reader = spawn(process.execPath, ['-e', `setTimeout(() => process.stdin.pipe(process.stdout), ${delayMs})`], {
      stdio: [qdq.stdout, 'pipe', 'inherit'],
    });
    const chunks: Buffer[] = [];
    reader.stdout.on('data', (c: Buffer) => chunks.push(c));
    let code: number | null = null;
    qdq.on('exit', (c) => (code = c));
    qdq.on('error', reject);
    reader.on('close', () => resolve({ code, stdout: Buffer.concat(chunks) }));
  });
}

function manyBlocks(n: number, body: (i: number) => string[]): string {
  const lines = ['import torch', 'from torch import nn', '', ''];
  for (let i = 0; i < n; i++) lines.push(...body(i), '', '');
  return lines.join('\n');
}

test('quantize through a slow pipe delivers the whole source (over 64 KiB)', async () => {
  const text = manyBlocks(1200, (i) => [
    `class Block${i}(nn.Module):`,
    '    def __init__(self):',
    '        super().__init__()',
    '        self.conv = nn.Conv2d(3, 3, 3)',
    '',
    '    def forward(self, x):',
    '        return self.conv(x) + x',
  ]);
  fs.writeFileSync(path.join(tmp, 'big.py'), text);
  const r = await throughSlowPipe(['quantize', 'big.py']);
  assert.equal(r.code, 0);
  assert.ok(r.stdout.length > 4 * 65536, `got ${r.stdout.length} bytes`);
  const out = r.stdout.toString('utf8');
  assert.match(out, /class Block1199\(nn\.Module\)/);
  assert.equal((out.match(/qdq_quant\.quant\(nn\.Conv2d/g) ?? []).length, 1200);
});

test('check --format json through a slow pipe is one valid JSON document', async () => {
  const text = manyBlocks(600, (i) => [
    `class Scorer${i}(nn.Module):`,
    '    def forward(self, a, b):',
    '        ai = a.long()',
    '        return torch.matmul(ai, b.long())',
  ]);
  fs.writeFileSync(path.join(tmp, 'scorers.py'), text);
  const r = await throughSlowPipe(['check', 'scorers.py', '--format', 'json']);
  assert.ok(r.stdout.length > 65536, `got ${r.stdout.length} bytes`);
  const report = JSON.parse(r.stdout.toString('utf8'));
  assert.equal(report.files[0].diagnostics.length >= 600, true);
  assert.equal(r.code, report.errors > 0 ? 1 : 0);
});
