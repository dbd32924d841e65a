// `qdq` through its launcher, as a user runs it: node bin/qdq.js, spawned without a shell.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const REPO = process.cwd();
const BIN = path.join(REPO, 'bin', 'qdq.js');
const MODEL = fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'protocol', 'model.py'), 'utf8');
const HELPER = fs.readFileSync(path.join(REPO, 'backend', 'qdq_backend', 'qdq_quant.py'), 'utf8');
const INT_MATMUL = [
  'import torch',
  'from torch import nn',
  '',
  '',
  'class Scorer(nn.Module):',
  '    def forward(self, a, b):',
  '        ai = a.long()',
  '        return torch.matmul(ai, b.long())',
  '',
].join('\n');

let tmp: string;

function qdq(args: string[], cwd = tmp): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 60000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function write(name: string, text: string | Buffer): string {
  const file = path.join(tmp, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/** No stack trace ever reaches the user. */
function assertNoStack(stderr: string) {
  assert.doesNotMatch(stderr, /^\s+at .+:\d+:\d+\)?$/m, `stack trace in: ${stderr}`);
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-cli-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('help lists every command; no arguments is a usage error', () => {
  const help = qdq(['help']);
  assert.equal(help.code, 0);
  for (const c of ['check', 'quantize', 'unquantize', 'fix', 'calibrate', 'export', 'run'])
    assert.match(help.stdout, new RegExp(`qdq ${c}\\b`));
  assert.equal(qdq(['--help']).code, 0);
  assert.match(qdq(['check', '--help']).stdout, /--format text\|json/);
  const none = qdq([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /Usage/);
});

test('check: warnings only exit 0, with file:line:col, code and message', () => {
  write('warn/model.py', MODEL);
  const r = qdq(['check', 'warn/model.py']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^warn\/model\.py:14:21: warning TRT001 cumsum over an integer tensor/m);
  assert.match(r.stderr, /1 problem \(0 errors\) in 1 file/);
});

test('check: an error-severity diagnostic exits 1; --format json is machine-readable', () => {
  write('err/scorer.py', INT_MATMUL);
  write('err/model.py', MODEL);
  const r = qdq(['check', 'err/scorer.py', 'err/model.py', '--format', 'json']);
  assert.equal(r.code, 1, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.errors, 1);
  assert.deepEqual(
    report.files.map((f: { file: string }) => f.file),
    ['err/scorer.py', 'err/model.py'],
  );
  const d = report.files[0].diagnostics[0];
  assert.equal(d.code, 'TRT017');
  assert.equal(d.severity, 'error');
  assert.equal(d.line, 8);
  assert.equal(report.files[1].diagnostics[0].fix.safety, 'safe');
});

test('check --trt-version reaches the rules', () => {
  write('ver/model.py', MODEL);
  const current = qdq(['check', 'ver/model.py']);
  assert.match(current.stdout, /warning TRT001/);
  assert.equal(current.code, 0);
  // Integer CumSum crashes conversion on TensorRT 8.x: an error there, so the exit code says so.
  const r = qdq(['check', 'ver/model.py', '--trt-version=8.6']);
  assert.match(r.stdout, /error TRT001 .*TensorRT 8\.6/);
  assert.match(r.stderr, /checked against TensorRT 8\.6/);
  assert.equal(r.code, 1);
});

test('check defaults to TensorRT 11.x: a TensorRT 10 build script gets the migration errors (warnings on 10.x)', () => {
  write(
    'build_engine.py',
    'import tensorrt as trt\n\ndef build(builder, network):\n    config = builder.create_builder_config()\n    config.set_flag(trt.BuilderFlag.FP16)\n    return builder.build_serialized_network(network, config)\n',
  );
  const r = qdq(['check', 'build_engine.py']);
  assert.match(r.stderr, /checked against TensorRT 11\.\d+/);
  assert.match(r.stdout, /error TRT060 .*removed in TensorRT 11/);
  assert.equal(r.code, 1);
  const on10 = qdq(['check', 'build_engine.py', '--trt-version=10.15']);
  assert.match(on10.stdout, /warning TRT060 .*deprecated/);
  assert.equal(on10.code, 0);
});

test('bad input: missing file, folder, not Python, binary, unknown flag, bad values -> exit 2 with a message and no stack', () => {
  write('data.txt', 'hello');
  write('blob.py', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 1]));
  fs.mkdirSync(path.join(tmp, 'folder.py'), { recursive: true });
  const cases: [string[], RegExp][] = [
    [['check', 'missing.py'], /missing\.py: no such file/],
    [['check', 'folder.py'], /is a folder/],
    [['check', 'data.txt'], /not a Python file/],
    [['check', 'blob.py'], /NUL bytes/],
    [['check', 'x.py', '--colour'], /unknown option "--colour" for "qdq check"/],
    [['check', '--format', 'xml', 'x.py'], /--format must be text or json/],
    [['check', '--format'], /--format needs a value/],
    [['check', 'x.py', '--trt-version', 'latest'], /--trt-version must look like/],
    [['check'], /needs FILE/],
    [['quantize', 'a.py', 'b.py'], /takes one file, got 2/],
    [['quantize', 'a.py', '--write=yes'], /--write takes no value/],
    [['quantize', '-w', 'a.py'], /unknown option "-w"/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ];
  for (const [args, message] of cases) {
    const r = qdq(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assertNoStack(r.stderr);
  }
});

test('quantize prints the new source and leaves the file alone; --write writes it and adds qdq_quant.py', () => {
  const file = write('q/model.py', MODEL);
  const dry = qdq(['quantize', 'q/model.py']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /self\.conv1 = qdq_quant\.quant\(nn\.Conv2d\(3, 8, 3, padding=1\)\)/);
  assert.match(dry.stderr, /not written; add --write/);
  assert.equal(fs.readFileSync(file, 'utf8'), MODEL);
  assert.ok(!fs.existsSync(path.join(tmp, 'q', 'qdq_quant.py')));

  const w = qdq(['quantize', 'q/model.py', '--write']);
  assert.equal(w.code, 0, w.stderr);
  assert.equal(fs.readFileSync(file, 'utf8'), dry.stdout);
  assert.equal(fs.readFileSync(path.join(tmp, 'q', 'qdq_quant.py'), 'utf8'), HELPER);
  assert.deepEqual(fs.readdirSync(path.join(tmp, 'q')).sort(), ['model.py', 'qdq_quant.py'], 'no temp files left');

  const again = qdq(['quantize', 'q/model.py', '--write']);
  assert.equal(again.code, 0);
  assert.equal(fs.readFileSync(file, 'utf8'), dry.stdout, 'quantizing twice equals once');
  assert.match(again.stderr, /nothing left to quantize/);

  const un = qdq(['unquantize', 'q/model.py', '--write']);
  assert.equal(un.code, 0, un.stderr);
  assert.equal(fs.readFileSync(file, 'utf8'), MODEL, 'byte for byte');
  assert.ok(fs.existsSync(path.join(tmp, 'q', 'qdq_quant.py')), "the helper is the user's now");
});

test('a user-edited qdq_quant.py is never overwritten', () => {
  write('own/model.py', MODEL);
  const helper = write('own/qdq_quant.py', '# my own edits\n' + HELPER);
  assert.equal(qdq(['quantize', 'own/model.py', '--write']).code, 0);
  assert.match(fs.readFileSync(helper, 'utf8'), /^# my own edits/);
});

test('fix applies the safe TensorRT patches (stdout, then --write) and keeps the file mode', () => {
  const file = write('f/model.py', MODEL);
  fs.chmodSync(file, 0o640);
  const dry = qdq(['fix', 'f/model.py']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /torch\.cumsum\(mask\.float\(\), dim=1\)/);
  assert.match(dry.stderr, /TRT001 14:21/);
  assert.equal(qdq(['fix', 'f/model.py', '--write']).code, 0);
  assert.equal(fs.readFileSync(file, 'utf8'), dry.stdout);
  assert.equal(fs.statSync(file).mode & 0o777, 0o640);
  const check = qdq(['check', 'f/model.py']);
  assert.doesNotMatch(check.stdout, /TRT001/);
});

test('a file that is not valid UTF-8 is checked with a warning, but never rewritten', () => {
  const bytes = Buffer.concat([Buffer.from('# caf'), Buffer.from([0xe9]), Buffer.from('\n'), Buffer.from(MODEL)]);
  const file = write('latin1/model.py', bytes);
  const c = qdq(['check', 'latin1/model.py']);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stderr, /not valid UTF-8/);
  assert.match(c.stdout, /TRT001/);
  const w = qdq(['quantize', 'latin1/model.py', '--write']);
  assert.equal(w.code, 2);
  assert.match(w.stderr, /not valid UTF-8.*nothing was written/);
  assert.deepEqual(fs.readFileSync(file), bytes);
});

test('a byte order mark and CRLF line endings survive quantize + unquantize', () => {
  const original = '\ufeff' + MODEL.replace(/\n/g, '\r\n');
  const file = write('crlf/model.py', original);
  assert.equal(qdq(['quantize', 'crlf/model.py', '--write']).code, 0);
  const quantized = fs.readFileSync(file, 'utf8');
  assert.match(quantized, /qdq_quant\.quant\(nn\.Conv2d/);
  assert.equal(qdq(['unquantize', 'crlf/model.py', '--write']).code, 0);
  assert.deepEqual(fs.readFileSync(file), Buffer.from(original, 'utf8'));
});

test('pipeline commands are dispatched to the pipeline (a folder without pyproject.toml is refused)', () => {
  fs.mkdirSync(path.join(tmp, 'empty-project'));
  for (const cmd of ['calibrate', 'export', 'run']) {
    const r = qdq([cmd, 'empty-project']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /has no pyproject\.toml/);
    assertNoStack(r.stderr);
  }
});
