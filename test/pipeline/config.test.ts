import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { validateConfigText, loadConfig, ConfigError } from '../../server/src/pipeline/config';

const GOOD = `[project]
name = "x"

[tool.qdq]
model = "model.py:build_model"
input-shapes = [[1, 3, 32, 32]]
method = "entropy"
batches = 8
`;

test('a valid [tool.qdq] gives typed values with defaults filled in', () => {
  const r = validateConfigText(GOOD);
  assert.deepEqual(r.diagnostics, []);
  assert.equal(r.config?.model, 'model.py:build_model');
  assert.deepEqual(r.config?.inputShapes, [[1, 3, 32, 32]]);
  assert.equal(r.config?.method, 'entropy');
  assert.equal(r.config?.batches, 8);
  assert.equal(r.config?.opset, 13);
  assert.equal(r.config?.target, 'tensorrt');
  assert.equal(r.config?.outDir, 'qdq-out');
  assert.equal(r.config?.patchModules, undefined); // unset: the modules defining the model's classes (library/auto.ts)
});

test('each bad value is named with the key, the fix and its line', () => {
  const text = GOOD.replace('method = "entropy"', 'method = "minmax"').replace(
    'batches = 8',
    'batches = 0\nopset = 11\ntarget = "trt"',
  );
  const r = validateConfigText(text);
  assert.equal(r.config, null);
  const byKey = Object.fromEntries(r.diagnostics.map((d) => [d.key, d]));
  assert.match(byKey.method.message, /method must be one of "max", "entropy", "percentile", "mse" \(got "minmax"\)/);
  assert.equal(byKey.method.range.start.line, 6);
  assert.match(byKey.batches.message, /batches must be an integer from 1/);
  assert.match(byKey.opset.message, /opset must be an integer from 13/);
  assert.equal(byKey.opset.range.start.line, 8);
  assert.match(byKey.target.message, /"tensorrt", "tensorrt10", "ort-cpu"/);
});

test('missing model and inputs, unknown keys and misspellings', () => {
  const r = validateConfigText('[tool.qdq]\nmehtod = "max"\ninput_shapes = [[1, 4]]\ncolour = 1\n');
  const msgs = r.diagnostics.map((d) => d.message);
  assert.ok(
    msgs.some((m) => /model is missing: add model = "model.py:build_model"/.test(m)),
    msgs.join('\n'),
  );
  assert.ok(msgs.some((m) => /mehtod: unknown key; did you mean "method"\?/.test(m)));
  assert.ok(msgs.some((m) => /colour: unknown key; known keys: model, example-inputs/.test(m)));
  // input_shapes (underscore) is accepted as input-shapes, so no "needs the model's inputs" error
  assert.ok(!msgs.some((m) => /needs the model's inputs/.test(m)));
  assert.equal(r.diagnostics.find((d) => d.key === 'mehtod')?.range.start.line, 1);
});

test('model spec format, input shapes and patch-modules types', () => {
  const r = validateConfigText(
    '[tool.qdq]\nmodel = "model.py"\ninput-shapes = [1, 3]\npatch-modules = "torchvision"\n',
  );
  const msgs = r.diagnostics.map((d) => d.message).join('\n');
  assert.match(msgs, /model must be "file.py:function"/);
  assert.match(msgs, /input-shapes must be a list of shapes/);
  assert.match(msgs, /patch-modules must be a list of module names/);
});

test('invalid TOML and no [tool.qdq] table', () => {
  const bad = validateConfigText('[tool.qdq]\nmodel = "a.py:f\n');
  assert.match(bad.diagnostics[0].message, /not valid TOML/);
  assert.equal(bad.diagnostics[0].range.start.line, 1);
  const none = validateConfigText('[project]\nname = "x"\n');
  assert.equal(none.found, false);
  assert.match(none.diagnostics[0].message, /no \[tool.qdq\] table/);
});

test('loadConfig applies overrides and reports problems as ConfigError with a hint', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-config-'));
  assert.throws(
    () => loadConfig(dir),
    (e: unknown) => e instanceof ConfigError && /no pyproject.toml/.test(e.message) && /\[tool.qdq\]/.test(e.hint),
  );
  fs.writeFileSync(path.join(dir, 'pyproject.toml'), GOOD);
  const c = loadConfig(dir, { method: 'mse', batches: undefined });
  assert.equal(c.method, 'mse');
  assert.equal(c.batches, 8);
  fs.writeFileSync(path.join(dir, 'pyproject.toml'), GOOD.replace('batches = 8', 'batches = "eight"'));
  assert.throws(
    () => loadConfig(dir),
    (e: unknown) =>
      e instanceof ConfigError && /pyproject.toml:8: \[tool.qdq\] batches must be an integer/.test(e.message),
  );
});
