// `qdq quantize --module M` / `qdq check --module M` through the real launcher: the installed transformers
// source is read (never written) and printed exactly as patch-modules would run it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { runQdq } from '../e2e/helpers';
import { patchLibrarySource } from '../../server/src/library/patch';

const PYTHON = 'python3';
const ROBERTA = 'transformers.models.roberta.modeling_roberta';
const lookup = spawnSync(
  PYTHON,
  ['-c', 'import importlib.util, sys; print(importlib.util.find_spec(sys.argv[1]).origin)', ROBERTA],
  { encoding: 'utf8' },
);
const robertaFile = lookup.status === 0 ? lookup.stdout.trim() : null;
const skip = robertaFile ? false : 'needs PyPI transformers for python3 (Debian /usr/bin/python3 has none)';

test(
  'qdq quantize --module prints the patched source (TRT fixes + quantizers) and leaves site-packages alone',
  { skip },
  async () => {
    const before = fs.statSync(robertaFile as string).mtimeMs;
    const original = fs.readFileSync(robertaFile as string, 'utf8');
    const run = await runQdq(['quantize', '--module', ROBERTA, '--python', PYTHON]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, patchLibrarySource(ROBERTA, original).text, 'stdout is exactly what patch-modules runs');
    assert.match(run.stderr, /TRT001/);
    assert.match(run.stderr, /nothing written/);
    assert.equal(fs.readFileSync(robertaFile as string, 'utf8'), original);
    assert.equal(fs.statSync(robertaFile as string).mtimeMs, before);
  },
);

test('qdq check --module reports the TensorRT diagnostics of the installed code', { skip }, async () => {
  const run = await runQdq(['check', '--module', ROBERTA, '--python', PYTHON, '--format', 'json']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.files.length, 1);
  assert.equal(report.files[0].file, robertaFile);
  assert.ok(
    report.files[0].diagnostics.some((d: { code: string }) => d.code === 'TRT001'),
    'the integer cumsum is reported',
  );
});

test('--write with --module is refused; unknown modules and FILE + --module get clear messages', async () => {
  const write = await runQdq(['quantize', '--module', ROBERTA, '--write']);
  assert.equal(write.code, 2);
  assert.match(write.stderr, /--write cannot be used with --module: qdq never writes into installed packages/);
  assert.doesNotMatch(write.stderr, /\n\s+at /, 'no stack trace');
  const both = await runQdq(['quantize', 'model.py', '--module', ROBERTA]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /takes FILE or --module M, not both/);
  if (skip) return;
  const missing = await runQdq([
    'quantize',
    '--module',
    'transformers.models.no_such_model.modeling_x',
    '--python',
    PYTHON,
  ]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(
    missing.stderr,
    /cannot find module 'transformers\.models\.no_such_model\.modeling_x'.*\(asked .*python/,
  );
  assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
});
