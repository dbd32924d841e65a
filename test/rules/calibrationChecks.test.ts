// Issue 16 item 5, dead quantizers: amax 0 or NaN/inf after calibration is QDQ-CAL001 (on all channels an error),
// whether the results say NaN as report.json does ("NaN"), as a number, or as Python's bare NaN token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseQuantizers,
  rangeProblems,
  formatAmax,
  type CalibratedQuantizer,
} from '../../server/src/features/calibration';
import { lsp } from '../../server/src/features/lsp';
import { quoteNonFiniteTokens } from '../../server/src/rules/calibrationChecks';

const q = (amax: CalibratedQuantizer['amax'], axis: number | null = null): CalibratedQuantizer => ({
  name: 'blocks.0.fc1.input_quantizer',
  site: null,
  axis,
  amax,
  method: 'max',
});

test('NaN and infinite amax make a dead quantizer (QDQ-CAL001), per tensor an error, per channel a warning', () => {
  for (const amax of [NaN, 'NaN', 'Infinity', '-Infinity', Infinity]) {
    const [p, ...rest] = rangeProblems(q(amax));
    assert.equal(p.code, 'QDQ-CAL001', String(amax));
    assert.equal(p.severity, lsp.DiagnosticSeverity.Error);
    assert.match(p.message, /dead quantizer/);
    assert.deepEqual(rest, []);
  }
  const [p] = rangeProblems(q([0.5, 'NaN', 0.25, 0.3], 0));
  assert.equal(p.code, 'QDQ-CAL001');
  assert.equal(p.severity, lsp.DiagnosticSeverity.Warning);
  assert.match(p.message, /on 1 of 4 channels/);
  // A live range is not reported, amax 0 keeps its own message.
  assert.deepEqual(rangeProblems(q(2.5)), []);
  assert.match(rangeProblems(q(0))[0].message, /has amax 0/);
  assert.match(formatAmax(q('NaN')), /amax NaN/);
});

test("results with Python's bare NaN/Infinity tokens are read (strings that contain the words are left alone)", () => {
  const raw =
    '{"quantizers": [{"name": "a NaN name", "amax": NaN, "site": null, "axis": null, "method": "max"}, {"name": "b", "amax": [1.0, -Infinity], "site": null, "axis": 0, "method": "max"}]}';
  assert.throws(() => JSON.parse(raw));
  const list = parseQuantizers(raw)!;
  assert.equal(list.length, 2);
  assert.equal(list[0].name, 'a NaN name');
  assert.equal(rangeProblems(list[0])[0].code, 'QDQ-CAL001');
  assert.equal(rangeProblems(list[1])[0].code, 'QDQ-CAL001');
  assert.equal(quoteNonFiniteTokens('{"s": "NaN]"}'), '{"s": "NaN]"}');
});
