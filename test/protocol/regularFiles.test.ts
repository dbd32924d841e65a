// Every file the server reads from a workspace is read as a regular file of bounded size, without blocking
// (issue 14, after D1): a FIFO with no writer or a link to /dev/zero named like a project file must be refused at
// once, by each kind of read (the guarded readers themselves, pyproject.toml through loadConfig, the model source of
// a pipeline run, ONNX models, the evaluation inputs, the CLI's model file). The pipeline runs inside the language
// server too: its reads of pyproject.toml and the model file are asynchronous. The server's own reads of
// calibration.json, report.json and pyproject.toml are covered by workspaceFiles.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
// The module object itself (not a namespace copy), so the spies below see every caller's calls.
import nodeFs = require('fs');
import {
  readRegularBytes,
  readRegularBytesSync,
  readRegularFile,
  readRegularFileSync,
  RegularFileError,
} from '../../server/src/common/files';
import { loadConfig, loadConfigAsync, ConfigError } from '../../server/src/pipeline/config';
import { quantizeModelSource, readModelSource, runPipeline } from '../../server/src/pipeline/run';
import { DataType, loadModel, makeNode, readModel, writeModel } from '../../server/src/onnx/model';
import { loadEvalFile, readEvalFile } from '../../server/src/onnx/verify';
import { importedWeightedLayers } from '../../server/src/fixes/importedLayers';
import { InputError, readModelFile } from '../../server/src/cli/source';
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
    await assert.rejects(
      within(5000, () => readRegularBytes(file, 1024)),
      /not a regular file/,
      'asynchronous bytes',
    );
    await within(5000, () => assert.throws(() => readRegularBytesSync(file, 1024), /not a regular file/, 'bytes'));
  });

  test(`ONNX models and evaluation inputs are refused as a ${kind === 'fifo' ? 'FIFO' : 'link to /dev/zero'}`, async () => {
    const dir = hostile(kind, 'model.onnx');
    await within(5000, () => assert.throws(() => readModel(path.join(dir, 'model.onnx')), /not a regular file/));
    const evalDir = hostile(kind, 'eval.json');
    await within(5000, () => assert.throws(() => readEvalFile(path.join(evalDir, 'eval.json')), /not a regular file/));
    // eval.json fine, eval.bin hostile.
    const binDir = hostile(kind, 'eval.bin');
    fs.writeFileSync(path.join(binDir, 'eval.json'), JSON.stringify({ batches: [] }));
    await within(5000, () => assert.throws(() => readEvalFile(path.join(binDir, 'eval.json')), /not a regular file/));
  });

  test(`the CLI refuses a model file that is a ${kind === 'fifo' ? 'FIFO' : 'link to /dev/zero'}`, async () => {
    const dir = hostile(kind, 'model.py');
    await within(5000, () =>
      assert.throws(
        () => readModelFile('model.py', dir),
        (e: Error) => e instanceof InputError && /not a regular file/.test(e.message),
      ),
    );
  });

  test(`loadConfigAsync refuses pyproject.toml as a ${kind === 'fifo' ? 'FIFO' : 'link to /dev/zero'}`, async () => {
    const dir = hostile(kind, 'pyproject.toml');
    await assert.rejects(
      within(5000, () => loadConfigAsync(dir)),
      (e: Error) => e instanceof ConfigError && /pyproject\.toml is not a regular file/.test(e.message),
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
    await assert.rejects(
      within(5000, () => quantizeModelSource(dir, cfg, path.join(dir, 'qdq-out'), false, [])),
      /not a regular file/,
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

/** Calls of the synchronous fs readers on paths under `dir` while `f` runs. */
async function syncReadsUnder<T>(
  dir: string,
  f: () => Promise<T>,
  patched: readonly ('openSync' | 'readFileSync' | 'statSync' | 'existsSync')[] = ['openSync', 'readFileSync'],
): Promise<{ result: T; reads: string[] }> {
  const reads: string[] = [];
  const originals = patched.map((name) => nodeFs[name]);
  patched.forEach((name, i) => {
    (nodeFs as unknown as Record<string, unknown>)[name] = (file: unknown, ...rest: unknown[]) => {
      if (typeof file === 'string' && file.startsWith(dir)) reads.push(`${name} ${file}`);
      return (originals[i] as (...a: unknown[]) => unknown)(file, ...rest);
    };
  });
  try {
    return { result: await f(), reads };
  } finally {
    patched.forEach((name, i) => ((nodeFs as unknown as Record<string, unknown>)[name] = originals[i]));
  }
}

test('the pipeline reads pyproject.toml and the model file asynchronously (it runs inside the language server)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-reads-async-'));
  fs.writeFileSync(path.join(dir, 'pyproject.toml'), '[tool.qdq]\nmodel = "model.py:build"\ninput-shapes = [[1, 4]]\n');
  fs.writeFileSync(path.join(dir, 'model.py'), 'import torch\n\ndef build():\n    return torch.nn.Linear(4, 4)\n');
  // The event loop turns while the files are read: a timer set before the read fires before it is done.
  let ticked = false;
  setImmediate(() => (ticked = true));
  const { result, reads } = await syncReadsUnder(dir, async () => {
    const cfg = await loadConfigAsync(dir);
    return { cfg, source: await readModelSource(dir, cfg) };
  });
  assert.ok(ticked, 'the reads blocked the event loop');
  assert.deepEqual(reads, []);
  assert.equal(result.cfg.model, 'model.py:build');
  assert.match(result.source.original, /Linear/);
  // The same through runPipeline: pyproject.toml as a FIFO is refused without a synchronous read of it.
  const fifoDir = hostile('fifo', 'pyproject.toml');
  const run = await syncReadsUnder(fifoDir, () =>
    within(5000, () => runPipeline({ projectDir: fifoDir, steps: ['calibrate'] })).then(
      () => assert.fail('runPipeline accepted a FIFO as pyproject.toml'),
      (e: Error) => e,
    ),
  );
  assert.match(run.result.message, /not a regular file/);
  assert.deepEqual(run.reads, []);
});

test('ONNX models, evaluation inputs and the library modules a model imports are read asynchronously', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-reads-async-'));
  const x = { name: 'x', type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_value: 1 }] } } } };
  writeModel(
    {
      ir_version: 8,
      opset_import: [{ domain: '', version: 13 }],
      graph: {
        name: 'g',
        node: [makeNode('Identity', ['x'], ['y'], 'id')],
        input: [x],
        output: [{ ...x, name: 'y' }],
        initializer: [],
        value_info: [],
      },
    },
    path.join(dir, 'model.onnx'),
  );
  const input = { name: 'x', dtype: 'float32', shape: [1], offset: 0, length: 4 };
  fs.writeFileSync(path.join(dir, 'eval.json'), JSON.stringify({ batches: [{ inputs: [input] }] }));
  fs.writeFileSync(path.join(dir, 'eval.bin'), Buffer.from(new Float32Array([2]).buffer));
  fs.mkdirSync(path.join(dir, 'lib'));
  fs.writeFileSync(path.join(dir, 'lib', '__init__.py'), 'from .layers import Linear\n');
  fs.writeFileSync(
    path.join(dir, 'lib', 'layers.py'),
    'import torch.nn as nn\n\n\nclass Linear(nn.Linear):\n    pass\n',
  );
  const src = 'from lib import Linear\n\nhead = Linear(4, 2)\n';
  fs.writeFileSync(path.join(dir, 'model.py'), src);
  const { result, reads } = await syncReadsUnder(
    dir,
    async () => ({
      model: await loadModel(path.join(dir, 'model.onnx')),
      batches: await loadEvalFile(path.join(dir, 'eval.json')),
      layers: await importedWeightedLayers(path.join(dir, 'model.py'), src),
    }),
    ['openSync', 'readFileSync', 'statSync', 'existsSync'],
  );
  assert.deepEqual(reads, []);
  assert.equal(result.model.graph.node[0].op_type, 'Identity');
  assert.deepEqual(Array.from(result.batches[0].inputs[0].data as Float32Array), [2]);
  assert.deepEqual(result.layers, { Linear: 'nn.Linear' });
  // The same readers refuse a FIFO at once; an imported module that is one is left unknown.
  const fifo = hostile('fifo', 'model.onnx');
  await assert.rejects(
    within(5000, () => loadModel(path.join(fifo, 'model.onnx'))),
    /not a regular file/,
  );
  execFileSync('mkfifo', [path.join(fifo, 'layers.py')]);
  const layers = await within(5000, () =>
    importedWeightedLayers(path.join(fifo, 'm.py'), 'from layers import L\nL(1, 2)\n'),
  );
  assert.deepEqual(layers, {});
});
