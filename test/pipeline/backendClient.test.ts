// The JSON-RPC client against the real Python backend (python -m qdq_backend): results, error kinds,
// cancellation and a killed backend. Skips where no interpreter here can import torch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BackendClient, ProgressEvent } from '../../server/src/pipeline/backendClient';
import { QdqError, CancelToken } from '../../server/src/pipeline/errors';
import { projectCopy, torchPython } from './backendSetup';

const fixture = path.join(process.cwd(), 'test/fixtures/pipeline/tiny');
const torch = torchPython();

function project(): string {
  return projectCopy(fixture, 'qdq-backend-client-');
}

function quantizedSource(dir: string): { file: string; source: string } {
  const file = path.join(dir, 'model.py');
  const text = fs
    .readFileSync(file, 'utf8')
    .replace('from torch import nn\n', 'from torch import nn\nimport qdq_quant  # qdq\n')
    .replace(/nn\.Linear\((\d+), (\d+)\)/g, 'qdq_quant.quant(nn.Linear($1, $2))');
  return { file, source: text };
}

async function withBackend(
  t: { skip(msg: string): void },
  fn: (c: BackendClient, dir: string) => Promise<void>,
): Promise<void> {
  const python = torch.python;
  if (!python) {
    t.skip(torch.skipReason);
    return;
  }
  const dir = project();
  const c = BackendClient.start({ python, projectDir: dir, cancelGraceMs: 5000 });
  try {
    await fn(c, dir);
  } finally {
    await c.shutdown(2000);
  }
}

const load = (c: BackendClient, dir: string, extra: Record<string, unknown> = {}) =>
  c.request<any>('load', {
    project_dir: dir,
    model: 'model.py:build_model',
    example_inputs: 'model.py:example_inputs',
    calibration_data: 'model.py:calibration_data',
    model_source_override: quantizedSource(dir),
    ...extra,
  });

test('initialize, load and calibrate answer with results and progress', async (t) => {
  await withBackend(t, async (c, dir) => {
    const init = await c.request<any>('initialize', {});
    assert.match(init.torch_version, /^\d+\.\d+/);
    const loaded = await load(c, dir);
    assert.equal(loaded.model_class, 'Tiny');
    assert.equal(loaded.quantizers.length, 4);
    const events: ProgressEvent[] = [];
    const cal = await c.request<any>(
      'calibrate',
      { method: 'max', batches: 4, out_dir: path.join(dir, 'qdq-out') },
      { onProgress: (p) => events.push(p) },
    );
    assert.equal(cal.batches_seen, 4);
    assert.ok(cal.quantizers.every((q: any) => q.amax !== null));
    assert.ok(events.some((e) => e.step === 'calibrate'));
    assert.ok(fs.existsSync(cal.calibration_file));
  });
});

test('error objects become QdqError with the backend kind, message and hint', async (t) => {
  await withBackend(t, async (c, dir) => {
    const kindOf = (p: Promise<unknown>) =>
      p.then(
        () => 'no error',
        (e) => (e instanceof QdqError ? `${e.kind}: ${e.message} | ${e.hint}` : String(e)),
      );
    assert.match(
      await kindOf(
        c.request('load', {
          project_dir: dir,
          model: 'broken.py:build_model',
          example_inputs: 'model.py:example_inputs',
        }),
      ),
      /^import: .*this_module_does_not_exist/,
    );
    assert.match(
      await kindOf(load(c, dir, { model: 'model.py:raising_factory' })),
      /^user_code: .*factory exploded on purpose/,
    );
    assert.match(
      await kindOf(c.request('calibrate', { method: 'max', batches: 2, out_dir: path.join(dir, 'o') })),
      /^config: /,
    );
    await load(c, dir, { calibration_data: 'model.py:empty_batches' });
    assert.match(
      await kindOf(c.request('calibrate', { method: 'max', batches: 2, out_dir: path.join(dir, 'o') })),
      /^no_data: /,
    );
    await load(c, dir, { calibration_data: 'model.py:nan_batches' });
    assert.match(
      await kindOf(c.request('calibrate', { method: 'entropy', batches: 2, out_dir: path.join(dir, 'o') })),
      /^nan: /,
    );
    assert.match(await kindOf(c.request('no_such_method', {})), /^protocol: method not found/);
    // Still alive and answering after every error.
    assert.ok((await c.request<any>('initialize', {})).torch_version);
  });
});

test('cancellation stops a long calibration with kind cancelled and the backend keeps serving', async (t) => {
  await withBackend(t, async (c, dir) => {
    await load(c, dir, { calibration_data: 'model.py:slow_batches' });
    const cancel = new CancelToken();
    let batches = 0;
    const p = c.request(
      'calibrate',
      { method: 'entropy', batches: 100000, out_dir: path.join(dir, 'o') },
      {
        cancel,
        onProgress: (e) => {
          if (e.step === 'calibrate' && ++batches === 3) cancel.cancel();
        },
      },
    );
    await assert.rejects(p, (e: unknown) => e instanceof QdqError && e.kind === 'cancelled');
    assert.ok(c.alive, 'answered the cancel itself, so it was not killed');
    assert.ok(!fs.existsSync(path.join(dir, 'o', 'calibration.json')), 'a cancelled calibration writes no results');
    assert.ok((await c.request<any>('initialize', {})).torch_version);
  });
});

test('a killed backend fails the pending request with backend_died, and later requests fail fast', async (t) => {
  await withBackend(t, async (c, dir) => {
    await load(c, dir, { calibration_data: 'model.py:slow_batches' });
    let killed = false;
    const p = c.request(
      'calibrate',
      { method: 'max', batches: 100000, out_dir: path.join(dir, 'o') },
      {
        onProgress: () => {
          if (!killed) {
            killed = true;
            process.kill(c.pid!, 'SIGKILL');
          }
        },
      },
    );
    await assert.rejects(
      p,
      (e: unknown) =>
        e instanceof QdqError && e.kind === 'backend_died' && /killed by SIGKILL during calibrate/.test(e.message),
    );
    await assert.rejects(
      c.request('initialize', {}),
      (e: unknown) => e instanceof QdqError && e.kind === 'backend_died',
    );
  });
});

test('a backend that ignores cancellation is killed after the grace period', async (t) => {
  const python = torch.python;
  if (!python) {
    t.skip(torch.skipReason);
    return;
  }
  // A stand-in "backend" that reads requests and never answers: PYTHONPATH points at a fake package.
  const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-fake-backend-'));
  fs.mkdirSync(path.join(fake, 'qdq_backend'));
  fs.writeFileSync(path.join(fake, 'qdq_backend', '__init__.py'), '');
  fs.writeFileSync(
    path.join(fake, 'qdq_backend', '__main__.py'),
    'import sys, time\nfor line in sys.stdin:\n    time.sleep(0.01)\n',
  );
  const c = BackendClient.start({ python, projectDir: fake, backendDir: fake, cancelGraceMs: 300 });
  const cancel = new CancelToken();
  const p = c.request('calibrate', {}, { cancel });
  setTimeout(() => cancel.cancel(), 100);
  await assert.rejects(
    p,
    (e: unknown) => e instanceof QdqError && e.kind === 'cancelled' && /was stopped/.test(e.message),
  );
  await c.waitForExit();
  assert.equal(c.alive, false);
});
