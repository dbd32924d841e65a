// Issue 14 D6 and D11: `--write` changes a file the way an editor's save does (read-only refused, symlinks
// followed, mode/owner/group kept), atomically, and temp files of a killed run do not stay behind.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { removeStaleTempFiles, writeInPlace, writeNewFile, newFileMode } from '../../server/src/common/files';

const REPO = process.cwd();
const BIN = path.join(REPO, 'bin', 'qdq.js');
const MODEL = fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'protocol', 'model.py'), 'utf8');
let tmp: string;

function qdq(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 60000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function project(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.py'), MODEL);
  return path.join(dir, 'model.py');
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-write-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('a read-only file is refused with a clear message and left as it was', () => {
  const file = project('ro');
  fs.chmodSync(file, 0o444);
  const r = qdq(['quantize', 'ro/model.py', '--write']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /ro\/model\.py is read-only.*chmod u\+w/);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  assert.equal(fs.readFileSync(file, 'utf8'), MODEL);
  assert.equal(fs.statSync(file).mode & 0o777, 0o444);
});

test('a symlink stays a symlink; its target gets the new text', () => {
  const real = project('linked');
  const link = path.join(tmp, 'linked', 'via-link.py');
  fs.symlinkSync('model.py', link);
  const r = qdq(['quantize', 'linked/via-link.py', '--write']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(fs.lstatSync(link).isSymbolicLink(), 'the link was replaced by a regular file');
  assert.equal(fs.readlinkSync(link), 'model.py');
  assert.match(fs.readFileSync(real, 'utf8'), /qdq_quant\.quant\(nn\.Conv2d/);
});

test('mode, owner and group survive --write', { skip: process.getuid?.() !== 0 && 'needs root to chgrp' }, () => {
  const file = project('owned');
  fs.chmodSync(file, 0o664);
  fs.chownSync(file, 4242, 4343);
  const r = qdq(['quantize', 'owned/model.py', '--write']);
  assert.equal(r.code, 0, r.stderr);
  const st = fs.statSync(file);
  assert.equal(st.mode & 0o777, 0o664);
  assert.equal(st.uid, 4242);
  assert.equal(st.gid, 4343);
  assert.match(fs.readFileSync(file, 'utf8'), /qdq_quant\.quant/);
});

/** `qdq ARGS` as the unprivileged user nobody (65534), in a folder everyone may write. */
function qdqAsNobody(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, ...args], {
    cwd: tmp,
    encoding: 'utf8',
    timeout: 60000,
  });
  return { code: r.status, stderr: r.stderr };
}
const canSwitchUser = process.getuid?.() === 0 && spawnSync('setpriv', ['--help']).status === 0;

function sharedFolderFile(name: string, mode: number, gid: number): string {
  fs.chmodSync(tmp, 0o755);
  const file = project(name);
  fs.chmodSync(path.dirname(file), 0o777);
  fs.chownSync(file, 0, gid);
  fs.chmodSync(file, mode);
  return file;
}

test("another user's file that a plain write may not change is refused", { skip: !canSwitchUser }, () => {
  const file = sharedFolderFile('shared-ro', 0o644, 0);
  const r = qdqAsNobody(['quantize', 'shared-ro/model.py', '--write']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /read-only/);
  assert.equal(fs.readFileSync(file, 'utf8'), MODEL);
  assert.equal(fs.statSync(file).uid, 0);
});

test("another user's group-writable file keeps its owner and group", { skip: !canSwitchUser }, () => {
  const file = sharedFolderFile('shared-rw', 0o664, 65534);
  const r = qdqAsNobody(['quantize', 'shared-rw/model.py', '--write']);
  assert.equal(r.code, 0, r.stderr);
  const st = fs.statSync(file);
  assert.equal(st.uid, 0);
  assert.equal(st.gid, 65534);
  assert.equal(st.mode & 0o777, 0o664);
  assert.match(fs.readFileSync(file, 'utf8'), /qdq_quant\.quant/);
  assert.deepEqual(
    fs.readdirSync(path.dirname(file)).filter((n) => n.endsWith('.tmp')),
    [],
  );
});

test('writeInPlace keeps the inode owner when called directly', () => {
  const file = project('inode');
  const before = fs.statSync(file);
  writeInPlace(file, MODEL + '# changed\n');
  const after = fs.statSync(file);
  assert.equal(after.uid, before.uid);
  assert.equal(after.gid, before.gid);
  assert.match(fs.readFileSync(file, 'utf8'), /# changed\n$/);
});

test('temp files left by a killed run are removed by the next write; live ones are not', () => {
  const file = project('stale');
  const dir = path.dirname(file);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const deadPid = Number(dead.stdout);
  const stale = [`.model.py.qdq-${deadPid}-0badcafe.tmp`, `.model.onnx.${deadPid}.1700000000000.tmp`];
  for (const s of stale) fs.writeFileSync(path.join(dir, s), 'x'.repeat(1000));
  const live = `.model.py.qdq-${process.pid}-00000000.tmp`;
  fs.writeFileSync(path.join(dir, live), 'mine');
  const r = qdq(['quantize', 'stale/model.py', '--write']);
  assert.equal(r.code, 0, r.stderr);
  const left = fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'));
  assert.deepEqual(left, [live]);
  assert.deepEqual(removeStaleTempFiles(dir), []);
});

test('new files get the umask mode, the same for every file qdq writes', () => {
  const file = path.join(tmp, 'new', 'out.bin');
  writeNewFile(file, Buffer.from([1, 2, 3]));
  assert.equal(fs.statSync(file).mode & 0o777, newFileMode());
  const helper = project('helpermode');
  assert.equal(qdq(['quantize', 'helpermode/model.py', '--write']).code, 0);
  assert.equal(fs.statSync(path.join(path.dirname(helper), 'qdq_quant.py')).mode & 0o777, newFileMode());
});
