// Bad inputs through the real CLI: each gets a clear message (never a stack trace), exit code 1, and
// leaves nothing half-written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { copyProject, runQdq, pythonWith, repoRoot, leftoverTempFiles, CliRun } from './helpers';

const py = pythonWith(['torch']);
const skip = py ? false : 'needs a Python with torch (python3 or /usr/bin/python3)';
const tiny = path.join(repoRoot, 'test/fixtures/pipeline/tiny');

function project(settings: Record<string, string>): string {
  const dir = copyProject(tiny);
  let text = fs.readFileSync(path.join(dir, 'pyproject.toml'), 'utf8');
  for (const [k, v] of Object.entries(settings)) {
    const line = `${k} = ${v}`;
    const re = new RegExp(`^${k} = .*$`, 'm');
    text = re.test(text) ? text.replace(re, line) : text.replace('[tool.qdq]\n', `[tool.qdq]\n${line}\n`);
  }
  fs.writeFileSync(path.join(dir, 'pyproject.toml'), text);
  return dir;
}

function assertCleanFailure(run: CliRun, dir: string, pattern: RegExp): void {
  assert.equal(run.code, 1, `exit code 1 expected:\n${run.stderr}`);
  assert.match(run.stderr, pattern);
  assert.match(run.stderr, /hint: /);
  assert.doesNotMatch(run.stderr, /^\s+at .+:\d+:\d+\)?$/m, 'no JavaScript stack trace');
  assert.ok(!fs.existsSync(path.join(dir, 'qdq-out', 'report.json')), 'no report from a failed run');
  assert.deepEqual(leftoverTempFiles(path.join(dir, 'qdq-out')), []);
  assert.equal(
    fs.readFileSync(path.join(dir, 'model.py'), 'utf8'),
    fs.readFileSync(path.join(tiny, 'model.py'), 'utf8'),
    'model.py untouched',
  );
}

test('an interpreter without torch: lists what was tried and how to install torch', async () => {
  const dir = project({});
  const fake = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-notorch-')), 'python');
  fs.writeFileSync(
    fake,
    '#!/bin/sh\necho "$0"\necho 3.11.0\necho "ModuleNotFoundError: No module named \'torch\'" >&2\nexit 1\n',
    { mode: 0o755 },
  );
  const run = await runQdq(['run', dir, '--python', fake]);
  assertCleanFailure(run, dir, /cannot import torch; tried:\n.*No module named 'torch'/);
  assert.match(run.stderr, /pip install torch/);
});

test('bad [tool.qdq] values are named with their line', async () => {
  const dir = project({ method: '"fastest"' });
  const run = await runQdq(['calibrate', dir]);
  assertCleanFailure(
    run,
    dir,
    /pyproject.toml:\d+: \[tool.qdq\] method must be one of "max", "entropy", "percentile", "mse" \(got "fastest"\)/,
  );
});

test('usage mistakes exit 2 with the usage line', async () => {
  const run = await runQdq(['run', '--method', 'best']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--method must be max, entropy, percentile or mse \(got "best"\)\nusage: qdq run/);
});

const cases: [string, Record<string, string>, RegExp][] = [
  ['a model file that does not import', { model: '"broken.py:build_model"' }, /this_module_does_not_exist/],
  ['a factory that raises', { model: '"model.py:raising_factory"' }, /factory exploded on purpose/],
  ['a forward that raises mid-calibration', { model: '"model.py:build_flaky"' }, /forward failed on purpose at call 4/],
  ['empty calibration data', { 'calibration-data': '"model.py:empty_batches"' }, /no|empty/i],
  [
    'mismatched input shapes',
    {
      'example-inputs': '"model.py:example_inputs"',
      'calibration-data': '"model.py:calibration_data"',
      'input-shapes': '[[2, 7]]',
    },
    /shape|size|mat1/i,
  ],
  ['NaN activations', { 'calibration-data': '"model.py:nan_batches"', method: '"entropy"' }, /NaN|Inf/],
];

for (const [what, settings, pattern] of cases) {
  test(`${what}: a clear error, nothing half-written`, { skip }, async () => {
    const dir = project(settings);
    if (what === 'mismatched input shapes') {
      // input-shapes disagreeing with the model: drop example-inputs and calibration-data so the shapes are used.
      const p = path.join(dir, 'pyproject.toml');
      fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace(/^(example-inputs|calibration-data) = .*\n/gm, ''));
    }
    const run = await runQdq(['run', dir, '--python', py!]);
    assertCleanFailure(run, dir, pattern);
  });
}

test(
  'Ctrl-C during calibration cancels cleanly: exit 1, no report, no calibration results, no temp files',
  { skip },
  async () => {
    const dir = project({ 'calibration-data': '"model.py:slow_batches"', batches: '100000' });
    let sent = false;
    const run = await runQdq(['run', dir, '--python', py!], {
      onStderr: (chunk, child) => {
        if (!sent && /calibrat/.test(chunk)) {
          sent = true;
          setTimeout(() => child.kill('SIGINT'), 1500);
        }
      },
    });
    assert.ok(sent, run.stderr);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /cancelled/);
    assert.ok(!fs.existsSync(path.join(dir, 'qdq-out', 'calibration.json')));
    assert.ok(!fs.existsSync(path.join(dir, 'qdq-out', 'report.json')));
    assert.deepEqual(leftoverTempFiles(path.join(dir, 'qdq-out')), []);
  },
);

test('a killed backend: a clear error naming the signal', { skip }, async () => {
  const dir = project({ 'calibration-data': '"model.py:slow_batches"', batches: '100000' });
  let killed = false;
  const run = await runQdq(['run', dir, '--python', py!], {
    onStderr: (chunk) => {
      if (killed || !/calibrat/.test(chunk)) return;
      // The backend is the python process whose working folder is this project.
      for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          if (
            fs.readlinkSync(`/proc/${pid}/cwd`) === fs.realpathSync(dir) &&
            fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('qdq_backend')
          ) {
            process.kill(Number(pid), 'SIGKILL');
            killed = true;
          }
        } catch {
          /* process gone or not ours */
        }
      }
    },
  });
  assert.ok(killed, 'found and killed the backend');
  assertCleanFailure(run, dir, /backend was killed by SIGKILL during calibrate/);
});
