import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { candidates, findInterpreter } from '../../server/src/pipeline/interpreter';
import { QdqError } from '../../server/src/pipeline/errors';

// Fake interpreters: shell scripts that answer the probe like a Python with or without torch.
function fakePython(dir: string, name: string, torch: string | null): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  const body = torch
    ? `#!/bin/sh\necho "${file}"\necho 3.11.9\necho "${torch}"\n`
    : `#!/bin/sh\necho "${file}"\necho 3.10.2\necho "Traceback (most recent call last):" >&2\necho "ModuleNotFoundError: No module named 'torch'" >&2\nexit 1\n`;
  fs.writeFileSync(file, body, { mode: 0o755 });
  return file;
}

function sandbox() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-interp-'));
  return { root, bin: path.join(root, 'bin'), venv: path.join(root, 'venv'), conda: path.join(root, 'conda') };
}

test('the first candidate that imports torch wins: venv before PATH', async () => {
  const s = sandbox();
  fakePython(s.bin, 'python3', '2.5.0');
  fakePython(path.join(s.venv, 'bin'), 'python', '2.4.1');
  const env = { PATH: s.bin, VIRTUAL_ENV: s.venv };
  const got = await findInterpreter({ env });
  assert.equal(got.source, 'virtualenv');
  assert.equal(got.torchVersion, '2.4.1');
  assert.equal(got.path, path.join(s.venv, 'bin', 'python'));
});

test('a venv without torch is skipped for python3 on PATH; conda comes before PATH', async () => {
  const s = sandbox();
  fakePython(path.join(s.venv, 'bin'), 'python', null);
  fakePython(path.join(s.conda, 'bin'), 'python', null);
  fakePython(s.bin, 'python3', null);
  fakePython(s.bin, 'python', '2.3.0');
  const env = { PATH: s.bin, VIRTUAL_ENV: s.venv, CONDA_PREFIX: s.conda };
  assert.deepEqual(
    candidates({ env }).map((c) => c.source),
    ['virtualenv', 'conda', 'PATH', 'PATH', 'system'],
  );
  const got = await findInterpreter({ env });
  assert.equal(got.path, path.join(s.bin, 'python'));
  assert.equal(got.torchVersion, '2.3.0');
});

test('an explicit interpreter is the only candidate', async () => {
  const s = sandbox();
  fakePython(s.bin, 'python3', '2.5.0');
  const mine = fakePython(path.join(s.root, 'other'), 'py', '1.13.1');
  const got = await findInterpreter({ explicit: mine, env: { PATH: s.bin } });
  assert.equal(got.source, 'setting');
  assert.equal(got.torchVersion, '1.13.1');
  const noTorch = fakePython(path.join(s.root, 'other'), 'bare', null);
  await assert.rejects(
    findInterpreter({ explicit: noTorch, env: { PATH: s.bin } }),
    (e: unknown) =>
      e instanceof QdqError &&
      /the Python interpreter you named cannot import torch/.test(e.message) &&
      /No module named 'torch'/.test(e.message),
  );
});

test('when none has torch, the error lists every interpreter tried with what it said, and how to install torch', async (t) => {
  const s = sandbox();
  fakePython(path.join(s.venv, 'bin'), 'python', null);
  fakePython(s.bin, 'python3', null);
  const env = { PATH: s.bin, VIRTUAL_ENV: s.venv };
  // /usr/bin/python3 is always the last candidate; when it has torch here, the search succeeds instead.
  const list = candidates({ env });
  assert.equal(list[list.length - 1].command, '/usr/bin/python3');
  try {
    const got = await findInterpreter({ env, timeoutMs: 60_000 });
    assert.equal(got.path, '/usr/bin/python3');
    t.diagnostic('/usr/bin/python3 has torch on this machine: the failure message is checked without it below');
  } catch (e) {
    assert.ok(e instanceof QdqError);
  }
  // Without the system interpreter in the list: exclude it by checking the message on the venv/PATH part.
  const err = await findInterpreter({ env: { PATH: s.bin }, explicit: path.join(s.bin, 'python3') }).catch((x) => x);
  assert.ok(err instanceof QdqError);
  assert.equal(err.kind, 'interpreter');
  assert.match(err.message, /python3 \[setting\]: Python 3\.10\.2: ModuleNotFoundError: No module named 'torch'/);
  assert.match(err.hint, /pip install torch/);
  assert.match(err.hint, /apt-get install python3-torch/);
});

test('missing and hanging interpreters are reported, not waited on forever', async () => {
  const s = sandbox();
  fs.mkdirSync(s.bin, { recursive: true });
  const hang = path.join(s.bin, 'hang');
  fs.writeFileSync(hang, '#!/bin/sh\nexec /bin/sleep 30\n', { mode: 0o755 });
  const e1 = await findInterpreter({ explicit: hang, env: { PATH: s.bin }, timeoutMs: 500 }).catch((x) => x);
  assert.match(e1.message, /did not answer within/);
  const e2 = await findInterpreter({ explicit: path.join(s.bin, 'nope'), env: { PATH: s.bin } }).catch((x) => x);
  assert.match(e2.message, /nope \[setting\]: does not exist or is not executable/);
  const e3 = await findInterpreter({ explicit: 'no-such-python', env: { PATH: s.bin } }).catch((x) => x);
  assert.match(e3.message, /no-such-python \[setting\]: not found on PATH/);
});
