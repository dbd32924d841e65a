// Issue 14 D9: a model whose code calls os._exit() ends the backend without a Python error; the message says
// that the user's code ended it, not "report it".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runQdq, pythonWith } from './helpers';

const py = pythonWith(['torch']);

test(
  'os._exit in the model factory is named as the cause',
  { skip: py ? false : 'needs a Python with torch' },
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-exit-'));
    fs.writeFileSync(
      path.join(dir, 'pyproject.toml'),
      '[tool.qdq]\nmodel = "model.py:build_model"\ninput-shapes = [[1, 4]]\n',
    );
    fs.writeFileSync(
      path.join(dir, 'model.py'),
      'import os\nimport torch\n\n\ndef build_model():\n    os._exit(3)\n    return torch.nn.Linear(4, 2)\n',
    );
    const run = await runQdq(['calibrate', dir, '--python', py!]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /stopped with exit code 3 while running your model's code \(load\)/);
    assert.match(run.stderr, /os\._exit\(\)/);
    assert.doesNotMatch(run.stderr, /report it/);
  },
);
