// The settings schema (server/src/settings.ts): validation of what workspace/configuration returns.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { defaultSettings, settingsContribution, validateSettings, SETTINGS_SCHEMA } from '../../server/src/settings';

test('missing or null settings give the defaults without problems', () => {
  for (const raw of [undefined, null, {}]) {
    const r = validateSettings(raw);
    assert.deepEqual(r.settings, defaultSettings());
    assert.deepEqual(r.problems, []);
  }
});

test('valid values are taken (strings trimmed)', () => {
  const r = validateSettings({
    calibrationMethod: 'percentile',
    percentile: 99.9,
    calibrationBatches: 8,
    opset: 17,
    outDir: ' out ',
    trtVersion: '8.6',
    pythonInterpreter: '/usr/bin/python3',
  });
  assert.deepEqual(r.problems, []);
  assert.equal(r.settings.calibrationMethod, 'percentile');
  assert.equal(r.settings.outDir, 'out');
  assert.equal(r.settings.opset, 17);
});

test('each bad value falls back to its default with a message naming the setting, the problem and the fallback', () => {
  const r = validateSettings({
    calibrationMethod: 'minmax',
    percentile: 120,
    calibrationBatches: 2.5,
    opset: '17',
    outDir: 3,
    unknownKey: true,
  });
  assert.deepEqual(r.settings, defaultSettings());
  assert.equal(r.problems.length, 5);
  assert.match(
    r.problems[0],
    /qdq\.calibrationMethod: expected one of max, entropy, percentile, mse, got "minmax"; using "max"/,
  );
  assert.match(r.problems[1], /qdq\.percentile: expected a value in \(0, 100\], got 120/);
  assert.match(r.problems[2], /qdq\.calibrationBatches: expected a whole number, got 2\.5/);
  assert.match(r.problems[3], /qdq\.opset: expected a number, got "17"/);
  assert.match(r.problems[4], /qdq\.outDir: expected a string, got number 3/);
  assert.match(validateSettings([1]).problems[0], /should be an object, got a list/);
});

test('the package.json contribution is generated from the same schema', () => {
  const c = settingsContribution();
  assert.deepEqual(
    Object.keys(c),
    Object.keys(SETTINGS_SCHEMA).map((k) => `qdq.${k}`),
  );
  assert.deepEqual(c['qdq.calibrationMethod'].enum, ['max', 'entropy', 'percentile', 'mse']);
  assert.equal(c['qdq.opset'].type, 'integer');
  assert.equal(c['qdq.opset'].minimum, 13);
});
