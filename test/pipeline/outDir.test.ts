// Issue 14 D9/D10: out-dir is a folder inside the project unless the command line says otherwise; a file in
// its place, or a folder outside the project, is a config error with a fix, not "a bug in qdq".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const BIN = path.join(process.cwd(), 'bin', 'qdq.js');

function project(outDir: string): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-outdir-'));
  const dir = path.join(root, 'proj');
  fs.mkdirSync(dir);
  fs.writeFileSync(
    path.join(dir, 'pyproject.toml'),
    `[tool.qdq]\nmodel = "model.py:build_model"\ninput-shapes = [[1, 4]]\nout-dir = ${JSON.stringify(outDir)}\n`,
  );
  fs.writeFileSync(
    path.join(dir, 'model.py'),
    'import torch\n\ndef build_model():\n    return torch.nn.Linear(4, 2)\n',
  );
  return dir;
}

/** Runs with an interpreter that does not exist: everything before the interpreter search is exercised. */
function calibrate(dir: string, ...extra: string[]) {
  const r = spawnSync(process.execPath, [BIN, 'calibrate', dir, '--python', '/nonexistent/python', ...extra], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 60000,
  });
  return { code: r.status, stderr: r.stderr };
}

test('out-dir naming a file is a config error', () => {
  const dir = project('taken');
  fs.writeFileSync(path.join(dir, 'taken'), 'mine');
  const r = calibrate(dir);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /out-dir .*taken is a file, not a folder/);
  assert.match(r.stderr, /hint: point out-dir at a folder/);
  assert.doesNotMatch(r.stderr, /bug in qdq/);
  assert.equal(fs.readFileSync(path.join(dir, 'taken'), 'utf8'), 'mine');
});

for (const outside of ['../outside', '/', '..']) {
  test(`[tool.qdq] out-dir = "${outside}" is refused (outside the project)`, () => {
    const dir = project(outside);
    const r = calibrate(dir);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /out-dir = ".*" is outside the project .*qdq writes only inside the project/);
    assert.match(r.stderr, /--out-dir/);
    assert.ok(!fs.existsSync(path.join(dir, '..', 'outside')));
  });
}

test('--out-dir on the command line may point outside the project, but not at the root or a parent', () => {
  const dir = project('qdq-out');
  const elsewhere = path.join(path.dirname(dir), 'elsewhere');
  const r = calibrate(dir, '--out-dir', elsewhere);
  assert.match(r.stderr, /interpreter you named/, r.stderr);
  assert.ok(fs.statSync(elsewhere).isDirectory());
  for (const bad of ['/', path.dirname(dir)]) {
    const b = calibrate(dir, '--out-dir', bad);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /(file system root|a folder that holds the project); qdq will not write/);
  }
});
