// The bundled examples are real trained models: each loads (or trains at first use) under every interpreter
// that has torch and scikit-learn, reaches its FP32 accuracy on the held-out digits, and keeps INT8 top-1
// within 1% of FP32 once quantizers are inserted and calibrated (the Integer Quantization paper's bar).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const repo = process.cwd();
const examples: { name: string; minAccuracy: number }[] = [
  { name: 'digits-cnn', minAccuracy: 0.95 },
  { name: 'digits-transformer', minAccuracy: 0.9 },
];

// Prints the held-out FP32 accuracy of build_model() as JSON; run with cwd = the example folder.
const EVAL_SCRIPT = `
import json, os, sys, torch
sys.path.insert(0, os.getcwd())
import data, model
m = model.build_model()
assert not m.training, "build_model() must return the model in eval mode"
correct = total = 0
with torch.no_grad():
    for x, y in data.eval_data():
        correct += (m(x).argmax(dim=1) == y).sum().item()
        total += len(y)
print(json.dumps({"accuracy": correct / total, "total": total, "torch": torch.__version__}))
`;

function run(python: string, args: string[], cwd: string, timeoutMs = 360_000) {
  // argv array, no shell; PYTHONDONTWRITEBYTECODE keeps __pycache__ out of the source tree.
  return spawnSync(python, args, {
    cwd,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', OMP_NUM_THREADS: '2' },
  });
}

function lastJson(stdout: string): any {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

function interpreters(): { python: string; skip: string | false }[] {
  return ['python3', '/usr/bin/python3'].map((python) => {
    const probe = run(python, ['-c', 'import torch, sklearn'], repo, 60_000);
    const skip = probe.error
      ? `${python} not found (${probe.error.message})`
      : probe.status !== 0
        ? `${python} cannot import torch and scikit-learn: ${probe.stderr.trim().split('\n').pop()}`
        : false;
    return { python, skip };
  });
}

const pythons = interpreters();

for (const { python, skip } of pythons) {
  for (const ex of examples) {
    const dir = path.join(repo, 'examples', ex.name);

    test(`${ex.name}: committed weights reach FP32 accuracy >= ${ex.minAccuracy} under ${python}`, { skip }, () => {
      const r = run(python, ['-c', EVAL_SCRIPT], dir);
      assert.equal(r.status, 0, `eval failed: ${r.stderr}`);
      const out = lastJson(r.stdout);
      assert.equal(out.total, 360, 'the held-out split is 20% of the 1,797 digits');
      assert.ok(out.accuracy >= ex.minAccuracy, `accuracy ${out.accuracy} < ${ex.minAccuracy} (torch ${out.torch})`);
    });
  }
}

// Training at first use and INT8 accuracy: once, with the first interpreter that works (they take seconds each).
const first = pythons.find((p) => !p.skip);
const firstSkip = first
  ? false
  : `no interpreter with torch and scikit-learn: ${pythons.map((p) => p.skip).join('; ')}`;

for (const ex of examples) {
  test(
    `${ex.name}: build_model() trains when weights.pt is missing and writes it atomically`,
    { skip: firstSkip },
    () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `qdq-${ex.name}-`));
      try {
        for (const f of ['model.py', 'data.py', 'train.py', 'pyproject.toml']) {
          fs.copyFileSync(path.join(repo, 'examples', ex.name, f), path.join(tmp, f));
        }
        const r = run(first!.python, ['-c', EVAL_SCRIPT], tmp);
        assert.equal(r.status, 0, `training at first use failed: ${r.stderr}`);
        const out = lastJson(r.stdout);
        assert.ok(out.accuracy >= ex.minAccuracy, `freshly trained accuracy ${out.accuracy} < ${ex.minAccuracy}`);
        assert.ok(fs.statSync(path.join(tmp, 'weights.pt')).size > 10_000, 'weights.pt was written');
        const leftovers = fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp'));
        assert.deepEqual(leftovers, [], 'no temporary file is left behind');
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    },
  );

  test(`${ex.name}: INT8 top-1 within 1% of FP32 for every calibration method`, { skip: firstSkip }, () => {
    const r = run(
      first!.python,
      [path.join(repo, 'bench', 'py', 'examples_int8.py'), path.join(repo, 'examples', ex.name)],
      repo,
    );
    assert.equal(r.status, 0, `INT8 check failed: ${r.stderr}`);
    const out = lastJson(r.stdout);
    assert.ok(out.quantizers > 0, 'quantizers were inserted');
    assert.deepEqual(Object.keys(out.int8_accuracy).sort(), ['entropy', 'max', 'mse', 'percentile']);
    for (const [method, int8] of Object.entries(out.int8_accuracy) as [string, number][]) {
      const drop = out.fp32_accuracy - int8;
      assert.ok(drop <= 0.01, `${method}: INT8 ${int8} vs FP32 ${out.fp32_accuracy}: drop ${drop} > 1%`);
    }
  });
}
