// Issue 14 D8: a misspelt [tool.qdq] key stops the CLI with a did-you-mean, instead of running with the default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { validateConfigText } from '../../server/src/pipeline/config';

const BIN = path.join(process.cwd(), 'bin', 'qdq.js');

function projectWith(extra: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-keys-'));
  fs.writeFileSync(
    path.join(dir, 'pyproject.toml'),
    `[tool.qdq]\nmodel = "model.py:build_model"\ninput-shapes = [[1, 4]]\n${extra}\n`,
  );
  fs.writeFileSync(
    path.join(dir, 'model.py'),
    'import torch\n\ndef build_model():\n    return torch.nn.Linear(4, 2)\n',
  );
  return dir;
}

test('qdq calibrate refuses a misspelt key, names the line and the key it meant', () => {
  const dir = projectWith('mehtod = "entropy"');
  // A fake interpreter: the run must stop at the config, before any Python is looked for.
  const r = spawnSync(process.execPath, [BIN, 'calibrate', dir, '--python', '/nonexistent/python'], {
    encoding: 'utf8',
    timeout: 60000,
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /pyproject\.toml:4: \[tool\.qdq\] mehtod: unknown key; did you mean "method"\?/);
  assert.doesNotMatch(r.stderr, /interpreter/);
  assert.ok(!fs.existsSync(path.join(dir, 'qdq-out')), 'nothing written');
});

test('the python key is explained: the interpreter comes from --python or the editor, never the project', () => {
  const r = validateConfigText(
    '[tool.qdq]\nmodel = "model.py:build_model"\ninput-shapes = [[1, 4]]\npython = "/usr/bin/python3"\n',
  );
  assert.equal(r.config, null);
  const d = r.diagnostics.find((x) => x.key === 'python');
  assert.equal(d?.severity, 'error');
  assert.match(d!.message, /not read from pyproject\.toml.*--python.*qdq\.pythonInterpreter/);
});
