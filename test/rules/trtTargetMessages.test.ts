// Issue 16 item 4: every rule re-checked against the TensorRT 11.x target. On the default (11.x) target no message,
// rule doc or hover cites 10.x facts ("up to 10.15", "from 10.0"); --trt-version 10.15 still gets the 10.x wording.
// The corpus (test/fixtures/trt-target/all_rules.py) triggers every registered rule, so a new rule needs a trigger
// there and is checked the same way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { parsePython } from '../../server/src/analysis/parser';
import { buildModelIndex } from '../../server/src/analysis/model';
import { allRules, runRules, DEFAULT_TRT_VERSION } from '../../server/src/rules';
import { rulesMarkdown } from '../../server/src/cli/rulesDoc';
import { describeForHover, TORCH_LAYER_TO_ONNX, TORCH_OP_TO_ONNX } from '../../server/src/knowledge';

const CORPUS = fs.readFileSync(path.join(__dirname, '../../../test/fixtures/trt-target/all_rules.py'), 'utf8');
const CITES_10 = /\b10\.(?:\d+|x)\b|TensorRT 10\b/;

function messages(trtVersion: string) {
  const tree = parsePython(CORPUS);
  return runRules(buildModelIndex(tree, CORPUS), tree, CORPUS, { trtVersion });
}

test('on the 11.x target every rule fires on the corpus and no message cites TensorRT 10.x', () => {
  assert.match(DEFAULT_TRT_VERSION, /^11\./);
  for (const target of [DEFAULT_TRT_VERSION, '11.0']) {
    const found = messages(target);
    const fired = new Set(found.map((d) => d.code));
    assert.deepEqual(
      allRules.map((r) => r.code).filter((c) => !fired.has(c)),
      [],
      'rules without a trigger in the corpus',
    );
    const cites = found.filter((d) => CITES_10.test(d.message) || CITES_10.test(d.fix?.title ?? ''));
    assert.deepEqual(
      cites.map((d) => `${d.code} line ${d.range.start.line + 1}: ${d.message}`),
      [],
    );
  }
});

test('a 10.x target still gets the 10.x wording (the check above can fail)', () => {
  const found = messages('10.15');
  assert.ok(found.some((d) => /up to 10\.15/.test(d.message)));
  assert.ok(found.some((d) => d.code === 'TRT025' && /from TensorRT 10\.0/.test(d.message)));
});

test('rule docs and hovers speak of the 11.x line, not "up to 10.15"', () => {
  assert.doesNotMatch(rulesMarkdown(), /up to 10\.15|in 10\.15/);
  const names = [...Object.keys(TORCH_LAYER_TO_ONNX), ...Object.keys(TORCH_OP_TO_ONNX)];
  assert.ok(names.length > 50);
  for (const name of names) {
    // The † footnote names where a carried-over row comes from; it is provenance, not a 10.x claim.
    const hover = (describeForHover(name) ?? '').replace(/^† carried over from TensorRT 10\.15.*$/m, '');
    assert.doesNotMatch(hover, /up to 10\.15|TensorRT 10\.15/, name);
    assert.match(describeForHover(name) ?? 'TensorRT 11', /TensorRT 11\./, name);
  }
});
