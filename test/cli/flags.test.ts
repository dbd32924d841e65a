// The CLI flag schema (server/src/cli/flags.ts): parsing, validation and help text.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseCommandLine, usage, UsageError, CLI_COMMANDS } from '../../server/src/cli/flags';

test('flags in any order, --flag=value and --flag value, -- ends options', () => {
  const a = parseCommandLine('check', ['a.py', '--format', 'json', 'b.py', '--trt-version=8.6']);
  assert.deepEqual(a.files, ['a.py', 'b.py']);
  assert.equal(a.flags.format, 'json');
  assert.equal(a.flags['trt-version'], '8.6');
  const b = parseCommandLine('quantize', ['--', '--weird-name.py']);
  assert.deepEqual(b.files, ['--weird-name.py']);
  assert.equal(b.flags.write, false);
  assert.equal(parseCommandLine('check', ['x.py']).flags.format, 'text');
});

test('mistakes are UsageErrors that name the problem', () => {
  const cases: [keyof typeof CLI_COMMANDS, string[], RegExp][] = [
    ['check', ['x.py', '--fmt', 'json'], /unknown option "--fmt"/],
    ['check', ['x.py', '--format'], /--format needs a value/],
    ['check', ['x.py', '--format', '--trt-version'], /--format needs a value/],
    ['fix', ['x.py', '--trt-version', '10.x'], /--trt-version must look like 8\.6/],
    ['unquantize', [], /needs FILE/],
    ['unquantize', ['a.py', 'b.py'], /takes one file, got 2/],
  ];
  for (const [cmd, argv, message] of cases) {
    assert.throws(
      () => parseCommandLine(cmd, argv),
      (e: unknown) => e instanceof UsageError && message.test(e.message),
      argv.join(' '),
    );
  }
});

test('help is generated from the schema: every command and flag appears', () => {
  const text = usage();
  for (const [name, spec] of Object.entries(CLI_COMMANDS)) {
    assert.match(text, new RegExp(`qdq ${name} `));
    for (const flag of Object.keys(spec.flags)) assert.ok(text.includes(`--${flag}`), `${name} --${flag}`);
  }
  assert.match(usage('fix'), /^Usage:\n {2}qdq fix FILE/);
});
