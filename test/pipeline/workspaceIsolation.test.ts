// Issue 14 D12: the interpreter probe and `--module` lookups never import code from the folder qdq runs in
// (a workspace `torch.py`, a local package named like the one asked for).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { findInterpreter } from '../../server/src/pipeline/interpreter';

const BIN = path.join(process.cwd(), 'bin', 'qdq.js');
const hasTorch = spawnSync('python3', ['-c', 'import torch'], { cwd: os.tmpdir() }).status === 0;
const skip = hasTorch ? false : 'needs python3 with torch';

/** A workspace whose torch.py and evilpkg/ leave a marker file when imported. */
function hostileWorkspace(): { dir: string; marker: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-hostile-'));
  const marker = path.join(dir, 'RAN');
  const leave = `open(${JSON.stringify(marker)}, "a").write(__name__ + "\\n")\n`;
  fs.writeFileSync(path.join(dir, 'torch.py'), `${leave}__version__ = "0.0.0-workspace"\n`);
  fs.mkdirSync(path.join(dir, 'evilpkg'));
  fs.writeFileSync(path.join(dir, 'evilpkg', '__init__.py'), leave);
  fs.writeFileSync(path.join(dir, 'evilpkg', 'sub.py'), `${leave}import torch\n`);
  return { dir, marker };
}

test('the interpreter probe does not import a workspace torch.py', { skip }, async () => {
  const w = hostileWorkspace();
  const here = process.cwd();
  process.chdir(w.dir);
  try {
    const py = await findInterpreter({ explicit: 'python3', cwd: w.dir });
    assert.notEqual(py.torchVersion, '0.0.0-workspace');
  } finally {
    process.chdir(here);
  }
  assert.equal(fs.existsSync(w.marker), false, 'workspace code ran');
});

test('qdq quantize --module evilpkg.sub does not run ./evilpkg', { skip }, () => {
  const w = hostileWorkspace();
  const r = spawnSync(process.execPath, [BIN, 'quantize', '--module', 'evilpkg.sub', '--python', 'python3'], {
    cwd: w.dir,
    encoding: 'utf8',
    timeout: 120000,
  });
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /evilpkg/);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  assert.equal(
    fs.existsSync(w.marker),
    false,
    `workspace code ran: ${fs.existsSync(w.marker) && fs.readFileSync(w.marker, 'utf8')}`,
  );
});
