// Issue 14 D9: a file qdq cannot rewrite faithfully is refused with a message naming why, never changed.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const BIN = path.join(process.cwd(), 'bin', 'qdq.js');
let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-bad-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function qdq(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 60000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const BROKEN = [
  'import torch',
  'from torch import nn',
  '',
  'class A(nn.Module):',
  '    def __init__(self):',
  '        super().__init__()',
  '        self.c = nn.Conv2d(1, 1, 1)',
  '',
  '    def forward(self, x)',
  '        return self.c(x)',
  '',
].join('\n');

test('quantize, unquantize and fix on a file with a syntax error name the line, change nothing', () => {
  const file = path.join(tmp, 'broken.py');
  fs.writeFileSync(file, BROKEN);
  for (const cmd of ['quantize', 'unquantize', 'fix']) {
    for (const extra of [[], ['--write']]) {
      const r = qdq([cmd, 'broken.py', ...extra]);
      assert.equal(r.code, 2, `${cmd} ${extra}: ${r.stderr}`);
      assert.match(r.stderr, /broken\.py:9: syntax error .*line \d+ to 9.*fix the Python syntax first/);
      assert.doesNotMatch(r.stderr, /nothing left to quantize/);
      assert.equal(r.stdout, '');
    }
  }
  assert.equal(fs.readFileSync(file, 'utf8'), BROKEN);
});

test('a file that is not valid UTF-8 is not printed with replacement characters either', () => {
  const bytes = Buffer.concat([Buffer.from('# caf'), Buffer.from([0xe9]), Buffer.from('\nimport torch\n')]);
  fs.writeFileSync(path.join(tmp, 'latin1.py'), bytes);
  const r = qdq(['quantize', 'latin1.py']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /latin1\.py is not valid UTF-8, so printing it would change bytes.*convert it to UTF-8/);
  assert.equal(r.stdout, '');
});
