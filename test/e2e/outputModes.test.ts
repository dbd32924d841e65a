// Issue 14 D11: every file of a run has the same mode (the backend's used to be 0600, the rest 0644).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { copyProject, runQdq, pythonWith, repoRoot } from './helpers';
import { newFileMode } from '../../server/src/common/files';

const torchPy = pythonWith(['torch', 'sklearn']);

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : [p];
  });
}

test(
  'qdq export writes every output with the same mode (0666 less the umask)',
  { skip: torchPy ? false : 'needs a Python with torch and scikit-learn' },
  async () => {
    const dir = copyProject(path.join(repoRoot, 'examples', 'digits-cnn'));
    const run = await runQdq(['export', dir, '--batches', '1', '--python', torchPy!]);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const modes = filesUnder(path.join(dir, 'qdq-out')).map(
      (f) => `${path.relative(dir, f)} ${(fs.statSync(f).mode & 0o777).toString(8)}`,
    );
    const want = newFileMode().toString(8);
    assert.deepEqual(
      modes.filter((m) => !m.endsWith(` ${want}`)),
      [],
      `all ${want}: ${modes.join(', ')}`,
    );
  },
);
