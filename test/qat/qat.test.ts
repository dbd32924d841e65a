// `qdq qat`: the command line's flags, and a real run (Python backend with torch, onnxruntime-node) on the
// digits MLP fixture: qat.json's figures, the exported and verified model, cancel then --resume, a failing
// train-step. Skips the runs where no interpreter here can import torch.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseQatArgs, runQat, runQatCommand, QatOptions } from '../../server/src/pipeline/qat';
import { findInterpreter } from '../../server/src/pipeline/interpreter';
import { CancelToken, QdqError } from '../../server/src/pipeline/errors';

const fixture = path.join(process.cwd(), 'test/qat/fixtures/digits-mlp');
let python: string | null = null;
let skipReason = '';

before(async () => {
  try {
    python = (await findInterpreter({ timeoutMs: 60_000 })).path;
  } catch (e) {
    skipReason = `no Python with torch: ${(e as Error).message.split('\n')[0]}`;
  }
});

function project(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-qat-'));
  for (const f of fs.readdirSync(fixture)) {
    if (f.endsWith('.py') || f.endsWith('.toml')) fs.copyFileSync(path.join(fixture, f), path.join(dir, f));
  }
  return dir;
}

function options(dir: string, extra: Partial<QatOptions> = {}): QatOptions {
  return { projectDir: dir, python: python ?? undefined, nproc: 1, resume: false, torchrunArgs: [], ...extra };
}

test('flags: --nproc, --epochs, --lr, --learn-amax, --resume and rendezvous flags for several nodes', () => {
  const o = parseQatArgs(['proj', '--nproc', '2', '--epochs=3', '--lr', '1e-4', '--learn-amax', '--resume']);
  assert.equal(o.dir, 'proj');
  assert.deepEqual([o.nproc, o.epochs, o.lr, o.learnAmax, o.resume], [2, 3, 1e-4, true, true]);
  assert.deepEqual(o.torchrunArgs, []);
  const m = parseQatArgs(['--nnodes', '2', '--node-rank', '1', '--rdzv-endpoint', 'host0:29400']);
  assert.deepEqual(m.torchrunArgs, [
    '--rdzv_backend=c10d',
    '--nnodes=2',
    '--node_rank=1',
    '--rdzv_endpoint=host0:29400',
  ]);
  assert.throws(() => parseQatArgs(['--nnodes', '2']), /rdzv-endpoint/);
  assert.throws(() => parseQatArgs(['--nproc', '0']), /positive integer/);
  assert.throws(() => parseQatArgs(['--lr', 'fast']), /--lr/);
  assert.throws(() => parseQatArgs(['--method', 'max']), /unknown option "--method"/);
});

test('a usage mistake exits 2 with the usage line', async () => {
  let err = '';
  const code = await runQatCommand(['--nproc', 'x'], {
    out: () => undefined,
    err: { write: (s) => ((err += s), true) },
  });
  assert.equal(code, 2);
  assert.match(err, /usage: qdq qat/);
});

test('qdq qat: fp32/ptq/qat on eval-data in qat.json, the fine-tuned model exported and verified', async (t) => {
  if (!python) return t.skip(skipReason);
  const dir = project();
  const r = await runQat(options(dir, { epochs: 1 }));
  const written = JSON.parse(fs.readFileSync(path.join(dir, 'qdq-out', 'qat.json'), 'utf8'));
  assert.deepEqual(written, JSON.parse(JSON.stringify(r.qat)));
  assert.equal(written.eval_samples, 397);
  for (const k of ['fp32', 'ptq', 'qat']) assert.ok(written[k] > 0.8 && written[k] <= 1, `${k} ${written[k]}`);
  assert.ok(written.qat >= written.ptq - 0.005, `QAT ${written.qat} vs PTQ ${written.ptq}`);
  assert.equal(written.epochs, 1);
  assert.equal(written.processes, 1);
  assert.equal(written.steps, 22);
  assert.ok(written.seconds.train > 0 && written.seconds.pipeline >= written.seconds.train);
  assert.ok(fs.existsSync(written.onnx.int8));
  // onnxruntime's INT8 top-1 of the exported model is the backend's fake-quantized QAT figure, within a sample
  assert.ok(Math.abs(written.onnx.accuracy.int8 - written.qat) <= 1.5 / 397, JSON.stringify(written.onnx));
  assert.ok(fs.existsSync(written.checkpoint));
});

test('cancel saves the step and --resume finishes; a failing train-step names it and keeps the checkpoint', async (t) => {
  if (!python) return t.skip(skipReason);
  const dir = project();
  const cancel = new CancelToken();
  await assert.rejects(
    runQat(
      options(dir, { epochs: 2 }),
      (p) => {
        // progress is throttled to ~20 a second, so the first message of epoch 2 or its end-of-epoch-1 line may be the cue
        if (/QAT: epoch (1\/2|2 step)/.test(p.message)) cancel.cancel();
      },
      cancel,
    ),
    (e: QdqError) => e.kind === 'cancelled' && /step \d+ of 44/.test(e.message) && /--resume/.test(e.hint),
  );
  const resumed = await runQat(options(dir, { epochs: 2, resume: true }));
  assert.ok(resumed.qat.resumed_from_step !== null && resumed.qat.resumed_from_step >= 22);
  assert.equal(resumed.qat.steps, 44);

  await assert.rejects(runQat(options(dir, { epochs: 2, trainStep: 'steps.py:failing_step' })), (e: QdqError) => {
    assert.equal(e.kind, 'user_code');
    assert.match(e.message, /corrupt batch in the user's step/);
    assert.match(e.message, /step 22\) is kept/);
    return true;
  });
});
