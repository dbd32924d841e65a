// Sensitivity results in the editor (issue 17 item 3), the pure parts: sensitivity.json / tune.json validated as
// untrusted input, per-layer lenses and hovers located in the source, the view's rows worst first, and the
// precision plan as keep_float edits through the fix engine (the same text `qdq tune --write` writes).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { buildModelIndex, parsePython } from '../../server/src/analysis';
import {
  formatDelta,
  layerAt,
  layerSensitivities,
  parsePrecisionPlan,
  parseSensitivity,
  sensitivityHoverMarkdown,
  sensitivityLenses,
  viewGroups,
  type PrecisionResults,
} from '../../server/src/features/sensitivity';
import { lineEdits, planText } from '../../server/src/features/precisionPlan';
import { applyKeepFloat } from '../../server/src/pipeline/tune';
import { quantizeFile } from '../../server/src/fixes';
import { applyTextEdits } from '../protocol/lspClient';
import { renderSensitivityHtml } from '../../client/src/sensitivityHtml';
import { precisionSummary } from '../../client/src/precisionText';
import { mobilenetSensitivity } from './sensitivityFixture';

const PROJECT = path.join(process.cwd(), 'examples', 'digits-mobilenet');
const MODEL = path.join(PROJECT, 'model.py');
const TEXT = fs.readFileSync(MODEL, 'utf8');

const results = (plan?: string[]): PrecisionResults => ({
  sensitivity: { data: parseSensitivity(JSON.stringify(mobilenetSensitivity()))!, path: 'sensitivity.json' },
  ...(plan ? { plan: { data: { floatSites: plan, accuracy: 98.0, withinBudget: true }, path: 'tune.json' } } : {}),
});

test('sensitivity.json and tune.json: the written shapes parse, anything else is refused', () => {
  assert.equal(parseSensitivity(JSON.stringify(mobilenetSensitivity()))?.groups.length, 3);
  const bad = [
    'not json',
    '[]',
    '{"metric":"top1"}',
    JSON.stringify({ ...mobilenetSensitivity(), metric: 7 }),
    JSON.stringify({ ...mobilenetSensitivity(), metric: '' }),
    JSON.stringify({ ...mobilenetSensitivity(), fp32: 'high' }),
    JSON.stringify({ ...mobilenetSensitivity(), groups: [{ label: 'x', sites: [1], only_int8: 1, only_float: 1 }] }),
    JSON.stringify({ ...mobilenetSensitivity(), groups: [{ label: 'x', sites: [], only_int8: null, only_float: 1 }] }),
  ];
  for (const raw of bad) assert.equal(parseSensitivity(raw), undefined, raw.slice(0, 60));
  assert.deepEqual(parsePrecisionPlan('{"mixed":{"accuracy":98.1,"float_sites":["a::B.c"]},"within_budget":true}'), {
    floatSites: ['a::B.c'],
    accuracy: 98.1,
    withinBudget: true,
  });
  assert.equal(parsePrecisionPlan('{"mixed":{"accuracy":"x","float_sites":[]}}'), undefined);
  assert.equal(parsePrecisionPlan('{"mixed":{"accuracy":1,"float_sites":"a"}}'), undefined);
});

test('each measured layer gets a lens "INT8: -1.42 pt" on its line, and a hover with both numbers', () => {
  const index = buildModelIndex(parsePython(TEXT), TEXT);
  const layers = layerSensitivities(results(), PROJECT, MODEL, index, TEXT);
  const line = (needle: string) => TEXT.split('\n').findIndex((l) => l.includes(needle));
  const byLine = new Map(layers.map((l) => [l.range.start.line, l]));
  assert.equal(byLine.get(line('self.project = nn.Conv2d'))?.group.label, 'InvertedResidual.project');
  assert.equal(
    byLine.get(line('self.expand = nn.Conv2d'))?.group.label,
    'InvertedResidual.add0 + InvertedResidual.expand',
  );
  assert.equal(byLine.get(line('nn.Conv2d(1, 16'))?.group.label, 'DigitsMobileNet.stem.0');
  assert.equal(layers.length, 3, 'input and weight quantizers of one layer give one lens');
  const lenses = sensitivityLenses(layers, 'top1', 'file:///m.py');
  const project = lenses.find((l) => l.range.start.line === line('self.project = nn.Conv2d'));
  assert.equal(project?.command?.title, 'INT8: -1.42 pt');
  assert.equal(project?.command?.command, 'qdq.showSensitivity');
  assert.equal(formatDelta('sqnr_db', 2.5), '+2.50 dB');

  const at = layerAt(layers, line('self.project = nn.Conv2d'), 30);
  assert.ok(at);
  const md = sensitivityHoverMarkdown(at, results().sensitivity!.data);
  assert.match(md, /#1 of 3/);
  assert.match(md, /only this INT8 \(rest FP32\): -1\.42 pt/);
  assert.match(md, /only this float \(rest INT8\): \+1\.20 pt/);
  assert.match(md, /360 eval-data samples/);
  // a file the sites do not name gets nothing
  assert.deepEqual(layerSensitivities(results(), PROJECT, path.join(PROJECT, 'data.py'), index, TEXT), []);
});

test('the view lists groups worst first with a source location each, marking the plan', () => {
  const index = buildModelIndex(parsePython(TEXT), TEXT);
  const { siteRange } =
    require('../../server/src/features/calibration') as typeof import('../../server/src/features/calibration');
  const groups = viewGroups(
    results([`${MODEL}::InvertedResidual.project.input_quantizer`]),
    PROJECT,
    (file, cls, attr) => {
      const r = file === MODEL ? siteRange(index, TEXT, cls, attr) : undefined;
      return r && { uri: 'file:///m.py', line: r.start.line, character: r.start.character };
    },
  );
  assert.deepEqual(
    groups.map((g) => [g.label, Number(g.int8Delta.toFixed(2)), g.inPlan]),
    [
      ['InvertedResidual.project', -1.42, true],
      ['InvertedResidual.add0 + InvertedResidual.expand', -0.28, false],
      ['DigitsMobileNet.stem.0', 0, false],
    ],
  );
  assert.ok(groups.every((g) => g.locations.length === 1));
  const html = renderSensitivityHtml(
    {
      projectDir: PROJECT,
      path: 'sensitivity.json',
      metric: 'top1',
      samples: 360,
      fp32: 98.33,
      allInt8: 96.9,
      groups: [{ ...groups[0], label: '<img src=x>' }, ...groups.slice(1)],
      plan: { floatSites: ['x'], accuracy: 98.1, withinBudget: true, path: 'tune.json' },
    },
    { cspSource: 'vscode-resource:', nonce: 'abc' },
  );
  assert.ok(!html.includes('<img'), 'labels are escaped');
  assert.ok(!/style="/.test(html), 'no inline style attributes (the policy allows only the nonce stylesheet)');
  assert.match(html, /command:qdq\.openSource\?/);
  assert.match(html, /command:qdq\.applyPrecisionPlan\?/);
  assert.ok(html.indexOf('−1.42 pt') < html.indexOf('−0.28 pt'), 'worst first');
});

test('the precision plan: the same text as `qdq tune --write`, as small line edits of the open file', () => {
  const sites = [
    `${MODEL}::InvertedResidual.project.input_quantizer`,
    `${MODEL}::InvertedResidual.project.weight_quantizer`,
    `${MODEL}::DigitsMobileNet.stem.0.weight_quantizer`,
  ];
  const fromPlain = planText(TEXT, MODEL, sites);
  const tuneWrite = applyKeepFloat(quantizeFile(TEXT, { scope: { kind: 'file' } }).text, MODEL, sites);
  assert.equal(fromPlain.text, tuneWrite.text);
  assert.ok(fromPlain.quantized && fromPlain.missing.length === 0);
  assert.match(fromPlain.text, /self\.project = qdq_quant\.keep_float\(nn\.Conv2d\(expanded/);
  assert.match(fromPlain.text, /qdq_quant\.keep_float\(nn\.Conv2d\(1, 16/);
  assert.match(fromPlain.text, /self\.expand = qdq_quant\.quant\(nn\.Conv2d/);
  // an already quantized file is not quantized again: only the float sites change
  const quantized = quantizeFile(TEXT, { scope: { kind: 'file' } }).text;
  const fromQuantized = planText(quantized, MODEL, sites);
  assert.equal(fromQuantized.text, tuneWrite.text);
  assert.ok(!fromQuantized.quantized);
  const edits = lineEdits(quantized, fromQuantized.text);
  assert.equal(applyTextEdits(quantized, edits), fromQuantized.text);
  assert.equal(edits.length, 2, 'one edit per changed line');
  assert.equal(applyTextEdits(TEXT, lineEdits(TEXT, fromPlain.text)), fromPlain.text);
});

test('lineEdits reproduces the target for random line insertions, deletions and changes', () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const base = TEXT.split('\n').slice(0, 80);
  for (let round = 0; round < 200; round++) {
    const lines = [...base];
    for (let k = 0; k < 1 + rand(6); k++) {
      const at = rand(lines.length + 1);
      const op = rand(3);
      if (op === 0) lines.splice(at, 0, `# inserted ${round}.${k}`);
      else if (op === 1 && lines.length > 1) lines.splice(Math.min(at, lines.length - 1), 1);
      else if (lines.length) lines[Math.min(at, lines.length - 1)] += ' # changed';
    }
    const before = base.join('\n');
    const after = rand(2) ? lines.join('\n') : lines.join('\n') + '\n';
    assert.equal(applyTextEdits(before, lineEdits(before, after)), after, `round ${round}`);
  }
});

test('the finished message names the figures of each command', () => {
  const sens = precisionSummary('qdq.sensitivity', { report: mobilenetSensitivity() });
  assert.match(sens ?? '', /FP32 98\.33, all INT8 96\.90; most sensitive: InvertedResidual\.project \(-1\.42 pt/);
  const tune = precisionSummary('qdq.tune', {
    report: {
      fp32: { accuracy: 98.33 },
      all_int8: { accuracy: 96.9 },
      mixed: { accuracy: 98.05, float_groups: ['InvertedResidual.project'] },
      within_budget: true,
    },
  });
  assert.match(tune ?? '', /mixed 98\.05.*1 group\(s\) kept in float: InvertedResidual\.project/);
  const qat = precisionSummary('qdq.qat', {
    report: { fp32: 0.98, ptq: 0.96, qat: 0.979, eval_samples: 360, epochs: 2 },
  });
  assert.match(qat ?? '', /FP32 98\.00%, PTQ 96\.00%, QAT 97\.90%/);
  assert.equal(precisionSummary('qdq.calibrate', { report: {} }), undefined);
});

test("a project's own metric function ([tool.qdq] metric) is shown without a unit and named", () => {
  const custom = { ...mobilenetSensitivity(), metric: 'metric.py:score' };
  const data = parseSensitivity(JSON.stringify(custom));
  assert.equal(data?.metric, 'metric.py:score');
  assert.equal(formatDelta('metric.py:score', -0.5), '-0.50');
  const index = buildModelIndex(parsePython(TEXT), TEXT);
  const layers = layerSensitivities({ sensitivity: { data: data!, path: 's' } }, PROJECT, MODEL, index, TEXT);
  assert.equal(sensitivityLenses(layers, data!.metric, 'file:///m.py')[0].command?.title.startsWith('INT8: '), true);
  assert.match(
    sensitivityHoverMarkdown(layers[0], data!),
    /metric\.py:score \(\[tool\.qdq\] metric, higher is better\)/,
  );
});
