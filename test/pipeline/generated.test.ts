// Files generated from a one-home declaration are up to date, and every surface of a knob says the same:
// - backend protocol: protocol.schema.json -> backendProtocol.generated.ts and protocol_types.py;
// - knobs: server/src/common/knobs.ts -> backend/qdq_backend/knobs.py, the editor settings (package.json
//   contributes.configuration), [tool.qdq] defaults and ranges, the CLI flags;
// - commands: server/src/protocol/commands.ts -> package.json contributes.commands.
// Regenerate with: npx tsc -p . && node out/server/src/pipeline/backendProtocolGen.js && node out/client/src/syncManifest.js
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { generate, KNOBS_FILE, PY_FILE, TS_FILE } from '../../server/src/pipeline/backendProtocolGen';
import { settingsContribution, defaultSettings, validateSettings } from '../../server/src/settings';
import { commandsContribution } from '../../server/src/protocol/commands';
import { validateConfigText } from '../../server/src/pipeline/config';
import { parseCommandLine } from '../../server/src/common/commandLine';
import { BATCHES, DEFAULT_TRT_VERSION, METHOD, OPSET, OUT_DIR, PERCENTILE } from '../../server/src/common/knobs';

const ROOT = process.cwd();
const REGENERATE = 'npx tsc -p . && node out/server/src/pipeline/backendProtocolGen.js';
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

test('the backend protocol types and the Python knob defaults are generated from their homes', () => {
  const fresh = generate(ROOT);
  assert.equal(read(TS_FILE), fresh.ts, `${TS_FILE} is stale: ${REGENERATE}`);
  assert.equal(read(PY_FILE), fresh.py, `${PY_FILE} is stale: ${REGENERATE}`);
  assert.equal(read(KNOBS_FILE), fresh.knobs, `${KNOBS_FILE} is stale: ${REGENERATE}`);
});

test('package.json contributes the settings and commands the server declares', () => {
  const pkg = JSON.parse(read('package.json'));
  const sync = 'npx tsc -p . && node out/client/src/syncManifest.js';
  assert.deepEqual(pkg.contributes.configuration.properties, settingsContribution(), `run ${sync}`);
  assert.deepEqual(pkg.contributes.commands, commandsContribution(), `run ${sync}`);
});

test('a knob has one default and one range in the editor settings, [tool.qdq], the CLI and package.json', () => {
  const settings = defaultSettings();
  const toml = validateConfigText('[tool.qdq]\nmodel = "model.py:build_model"\ninput-shapes = [[1, 4]]\n');
  assert.ok(toml.config, JSON.stringify(toml.diagnostics));
  const config = toml.config;
  assert.equal(settings.calibrationMethod, METHOD.default);
  assert.equal(config.method, METHOD.default);
  assert.equal(settings.percentile, PERCENTILE.default);
  assert.equal(config.percentile, PERCENTILE.default);
  assert.equal(settings.calibrationBatches, BATCHES.default);
  assert.equal(config.batches, BATCHES.default);
  assert.equal(settings.opset, OPSET.default);
  assert.equal(config.opset, OPSET.default);
  assert.equal(settings.outDir, OUT_DIR.default);
  assert.equal(config.outDir, OUT_DIR.default);
  assert.equal(settings.trtVersion, DEFAULT_TRT_VERSION);

  // The percentile range is (0, 100] everywhere: 0.5 is accepted, 0 refused.
  const percentile = (v: number) =>
    validateConfigText(`[tool.qdq]\nmodel = "m.py:f"\npercentile = ${v}\nmethod = "percentile"\n`);
  assert.equal(percentile(0.5).diagnostics.filter((d) => d.key === 'percentile').length, 0);
  assert.equal(percentile(0).diagnostics.filter((d) => d.key === 'percentile').length, 1);
  assert.deepEqual(validateSettings({ percentile: 0.5 }).problems, []);
  assert.equal(validateSettings({ percentile: 0 }).problems.length, 1);
  assert.equal(settingsContribution()['qdq.percentile'].exclusiveMinimum, PERCENTILE.min);
  const cli = (v: string) => parseCommandLine('calibrate', ['--percentile', v]);
  assert.doesNotThrow(() => cli('0.5'));
  assert.throws(() => cli('0'), /\(0, 100\]/);
});

test('the backend reads its defaults from the generated knobs.py', () => {
  const knobs = read(KNOBS_FILE);
  assert.match(knobs, new RegExp(`^BATCHES_DEFAULT = ${BATCHES.default}$`, 'm'));
  assert.match(knobs, new RegExp(`^METHOD_DEFAULT = "${METHOD.default}"$`, 'm'));
  // No literal default left in the modules that apply them.
  const calibrate = read('backend/qdq_backend/calibrate.py');
  assert.doesNotMatch(calibrate, /else 8\b|percentile = 99\.99/);
  assert.match(calibrate, /knobs\.BATCHES_DEFAULT/);
  assert.match(read('backend/qdq_backend/export.py'), /knobs\.OPSET_DEFAULT/);
});
