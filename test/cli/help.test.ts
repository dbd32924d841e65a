// Issue 19 item 8: `qdq --help` points to `qdq calibrate --help`, which must work, and `qdq help calibrate`
// prints that command's help, not the general text. One command table gives every command's help.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { CLI_COMMANDS } from '../../server/src/cli/flags';

const BIN = path.join(process.cwd(), 'bin', 'qdq.js');
function qdq(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const cmd of ['calibrate', 'export', 'run']) {
  test(`qdq ${cmd} --help and qdq help ${cmd} print the ${cmd} flags`, () => {
    for (const args of [
      [cmd, '--help'],
      [cmd, '-h'],
      ['help', cmd],
    ]) {
      const r = qdq(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage:\\n {2}qdq ${cmd} \\[DIR\\]`));
      for (const flag of Object.keys(CLI_COMMANDS[cmd as 'run'].flags)) assert.ok(r.stdout.includes(`--${flag}`), flag);
      assert.doesNotMatch(r.stdout, /qdq check/, 'only that command');
    }
  });
}

test('the general help names every command and how to get its help', () => {
  const r = qdq(['--help']);
  assert.equal(r.code, 0);
  for (const cmd of Object.keys(CLI_COMMANDS)) assert.match(r.stdout, new RegExp(`qdq ${cmd} `));
  assert.match(r.stdout, /qdq COMMAND --help/);
});

test('a pipeline flag mistake prints that command usage (exit 2)', () => {
  const r = qdq(['calibrate', '--dynamic']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option "--dynamic" for "qdq calibrate"/);
  assert.match(r.stderr, /Usage:\n {2}qdq calibrate \[DIR\]/);
});
