// Every file the server reads from a workspace is read as a regular file of bounded size, without blocking
// (issue 14, after D1): a FIFO with no writer or a link to /dev/zero named like a project file must be refused at
// once, by each kind of read (the guarded reader itself, pyproject.toml through loadConfig, the model source of
// a pipeline run). The server's own reads of calibration.json, report.json and pyproject.toml are covered by
// workspaceFiles.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readRegularFile, readRegularFileSync, RegularFileError } from '../../server/src/common/files';
import { loadConfig, ConfigError } from '../../server/src/pipeline/config';
import { quantizeModelSource } from '../../server/src/pipeline/run';
import type { QdqConfig } from '../../server/src/pipeline/config';

/** A folder with `name` made a FIFO, a link to /dev/zero, or an oversized regular file. */
function hostile(kind: 'fifo' | 'zero', name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `qdq-reads-${kind}-`));
  const file = path.join(dir, name);
  if (kind === 'fifo') execFileSync('mkfifo', [file]);
  else fs.symlinkSync('/dev/zero', file);
  return dir;
}

/** Fails the test instead of hanging when `f` does not settle within `ms`. */
async function within<T>(ms: number, f: () => Promise<T> | T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.resolve().then(f), limit]);
  } finally {
    clearTimeout(timer);
  }
}

for (const kind of ['fifo', 'zero'] as const) {
  test(`the guarded readers refuse a ${kind === 'fifo' ? 'FIFO' : 'link to /dev/zero'} at once`, async () => {
    const dir = hostile(kind, 'calibration.json');
    const file = path.join(dir, 'calibration.json');
    await assert.rejects(
      within(5000, () => readRegularFile(file, 1024)),
      (e: Error) => e instanceof RegularFileError && /not a regular file/.test(e.message),
    );
    await within(5000, () =>
      assert.throws(() => readRegularFileSync(file, 1024), /not a regular file/, 'synchronous reader'),
    );
  });

  test(`loadConfig refuses pyproject.toml as a ${kind === 'fifo' ? 'FIFO' : 'link to /dev/zero'}`, async () => {
    const dir = hostile(kind, 'pyproject.toml');
    await within(5000, () =>
      assert.throws(
        () => loadConfig(dir),
        (e: Error) => e instanceof ConfigError && /pyproject\.toml is not a regular file/.test(e.message),
      ),
    );
  });

  test(`a pipeline run refuses a model source that is a ${kind === 'fifo' ? 'FIFO' : 'link to /dev/zero'}`, async () => {
    const dir = hostile(kind, 'model.py');
    const cfg = { model: 'model.py:build' } as QdqConfig;
    await within(5000, () =>
      assert.throws(() => quantizeModelSource(dir, cfg, path.join(dir, 'qdq-out'), false, []), /not a regular file/),
    );
  });
}

test('the guarded readers read regular files, cap their size and report a missing file as absent', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-reads-'));
  const file = path.join(dir, 'a.txt');
  fs.writeFileSync(file, 'héllo');
  assert.equal(await readRegularFile(file, 100), 'héllo');
  assert.equal(readRegularFileSync(file, 100), 'héllo');
  assert.equal(await readRegularFile(path.join(dir, 'none'), 100), undefined);
  assert.equal(readRegularFileSync(path.join(dir, 'none'), 100), undefined);
  await assert.rejects(readRegularFile(file, 3), /over the 3-byte limit/);
  assert.throws(() => readRegularFileSync(file, 3), /over the 3-byte limit/);
  assert.throws(() => readRegularFileSync(dir, 100), /not a regular file/);
});
