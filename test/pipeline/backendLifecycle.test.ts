// The backend process's life (issue 14 D5, D7) and the typed boundary (issue 13) against the real Python backend:
// a model that starts child processes neither stalls shutdown nor leaves them running; Ctrl-C reaching the
// backend cancels the request cleanly; a malformed message is a `protocol` error naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BackendClient } from '../../server/src/pipeline/backendClient';
import { QdqError, CancelToken } from '../../server/src/pipeline/errors';
import { projectCopy, torchPython } from './backendSetup';

const spawner = path.join(process.cwd(), 'backend/tests/fixtures/spawner');
const torch = torchPython();

function project(): string {
  return projectCopy(spawner, 'qdq-backend-life-', /^model\.py$/);
}

/** Processes whose command line is `sleep <seconds>`: the fixture's children, found by their unique duration. */
function sleepers(seconds: string): number[] {
  const found: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') === `sleep\0${seconds}\0`) found.push(Number(pid));
    } catch {
      /* gone */
    }
  }
  return found;
}

/** The fixture's children are exec'd asynchronously: on a loaded machine the second may not exist yet. */
async function awaitSleepers(seconds: string, count: number, limitMs = 15000): Promise<number[]> {
  const deadline = Date.now() + limitMs;
  let found = sleepers(seconds);
  while (found.length < count && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    found = sleepers(seconds);
  }
  return found;
}

function uniqueSeconds(): string {
  return `${600 + (process.pid % 1000)}.${Date.now() % 100000}`;
}

async function startSpawner(env: NodeJS.ProcessEnv): Promise<{ c: BackendClient; dir: string }> {
  const dir = project();
  const c = BackendClient.start({ python: torch.python!, projectDir: dir, env, cancelGraceMs: 5000 });
  await c.initialize();
  await c.load({ project_dir: dir, model: 'model.py:build', input_shapes: [[2, 4]] });
  return { c, dir };
}

const linux = process.platform === 'linux';

test(
  'a model that starts child processes: shutdown returns at once and no child is left',
  { skip: !linux },
  async (t) => {
    const python = torch.python;
    if (!python) return t.skip(torch.skipReason);
    const seconds = uniqueSeconds();
    const { c } = await startSpawner({ ...process.env, QDQ_TEST_SLEEP: seconds });
    // A failed assertion must not leave the backend (and so this test file's process) running.
    t.after(() => c.kill());
    assert.equal((await awaitSleepers(seconds, 2)).length, 2, 'the fixture started its two children');
    const started = Date.now();
    await c.shutdown(10_000);
    // Before the fix shutdown waited for the children to close the inherited stderr pipe (the sleep's duration).
    assert.ok(Date.now() - started < 10_000, `shutdown took ${Date.now() - started} ms`);
    assert.equal(c.alive, false);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(sleepers(seconds), [], 'children of the backend left running');
  },
);

test(
  'kill() takes along what the backend started, in its group or in a session of its own',
  { skip: !linux },
  async (t) => {
    const python = torch.python;
    if (!python) return t.skip(torch.skipReason);
    const seconds = uniqueSeconds();
    const { c } = await startSpawner({ ...process.env, QDQ_TEST_SLEEP: seconds });
    t.after(() => c.kill());
    assert.equal((await awaitSleepers(seconds, 2)).length, 2);
    c.kill();
    await c.waitForExit();
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(sleepers(seconds), []);
  },
);

test(
  'SIGINT reaching the backend (Ctrl-C in a terminal) answers the request as cancelled',
  { skip: !linux },
  async (t) => {
    const python = torch.python;
    if (!python) return t.skip(torch.skipReason);
    const seconds = uniqueSeconds();
    const dir = project();
    const c = BackendClient.start({ python, projectDir: dir, env: { ...process.env, QDQ_TEST_SLEEP: seconds } });
    try {
      await c.load({ project_dir: dir, model: 'model.py:build', calibration_data: 'model.py:slow_batches' });
      let sent = false;
      const p = c.calibrate(
        { method: 'max', batches: 100_000, out_dir: path.join(dir, 'out') },
        {
          onProgress: (e) => {
            if (!sent && e.step === 'calibrate' && e.done >= 2) {
              sent = true;
              process.kill(c.pid!, 'SIGINT');
            }
          },
        },
      );
      await assert.rejects(p, (e: unknown) => e instanceof QdqError && e.kind === 'cancelled');
      assert.ok(c.alive, 'the backend answered and kept running');
      assert.ok(!c.log.some((l) => /Traceback|KeyboardInterrupt/.test(l)), c.log.join('\n'));
      assert.ok((await c.initialize()).torch_version);
    } finally {
      await c.shutdown(5000);
    }
  },
);

test('a malformed request is a protocol error naming the field, and the backend keeps serving', async (t) => {
  const python = torch.python;
  if (!python) return t.skip(torch.skipReason);
  const dir = project();
  const c = BackendClient.start({ python, projectDir: dir });
  try {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['load', { project_dir: 3 }, /params\.project_dir: expected string, got integer/],
      ['load', { project_dir: dir, patch_modules: [{ module: 'x' }] }, /params\.patch_modules\[0\]\.source: missing/],
      ['calibrate', { out_dir: dir, mehtod: 'max' }, /params\.mehtod: not a field of this message/],
      ['export', { out_dir: dir, opset: '13' }, /params\.opset: expected integer or null, got string/],
    ];
    for (const [method, params, pattern] of cases) {
      await assert.rejects(
        c.request(method, params),
        (e: unknown) => e instanceof QdqError && e.kind === 'protocol' && pattern.test(e.message),
        `${method} ${JSON.stringify(params)}`,
      );
    }
    assert.ok((await c.initialize()).python_version);
  } finally {
    await c.shutdown(5000);
  }
});

test('a malformed result or error from the backend is a protocol error, never a crash', async (t) => {
  const python = torch.python;
  if (!python) return t.skip(torch.skipReason);
  // A stand-in backend answering every request with the wrong shapes.
  const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-fake-backend-'));
  fs.mkdirSync(path.join(fake, 'qdq_backend'));
  fs.writeFileSync(path.join(fake, 'qdq_backend', '__init__.py'), '');
  fs.writeFileSync(
    path.join(fake, 'qdq_backend', '__main__.py'),
    [
      'import json, sys',
      'for line in sys.stdin:',
      '    m = json.loads(line)',
      '    if m["method"] == "initialize":',
      '        r = {"id": m["id"], "result": {"python": 3}}',
      '    elif m["method"] == "load":',
      '        r = {"id": m["id"], "error": {"code": -32000, "message": "x", "data": {"kind": "config"}}}',
      '    else:',
      '        r = {"id": m["id"], "result": None}',
      '    sys.stdout.write(json.dumps(dict(r, jsonrpc="2.0")) + "\\n")',
      '    sys.stdout.flush()',
    ].join('\n') + '\n',
  );
  const c = BackendClient.start({ python, projectDir: fake, backendDir: fake });
  try {
    await assert.rejects(
      c.initialize(),
      (e: unknown) => e instanceof QdqError && e.kind === 'protocol' && /initialize result\.\w+/.test(e.message),
    );
    await assert.rejects(
      c.load({ project_dir: fake, model: 'm.py:f' }),
      (e: unknown) =>
        e instanceof QdqError && e.kind === 'protocol' && /load error\.data\.message: missing/.test(e.message),
    );
    const cancel = new CancelToken();
    await assert.rejects(
      c.calibrate({ out_dir: fake }, { cancel }),
      (e: unknown) =>
        e instanceof QdqError && e.kind === 'protocol' && /calibrate result: expected object, got null/.test(e.message),
    );
  } finally {
    c.kill();
    await c.waitForExit();
  }
});
