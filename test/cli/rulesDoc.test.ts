// docs/rules.md is what diagnostics link to (codeDescription); it must match the rule registry.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import { rulesMarkdown, rulesDocPath } from '../../server/src/cli/rulesDoc';
import { allRules } from '../../server/src/rules';
import { CALIBRATION_CHECKS } from '../../server/src/rules/calibrationChecks';

test('docs/rules.md is generated from the current rules (regenerate: node out/server/src/cli/rulesDoc.js)', () => {
  const file = rulesDocPath(process.cwd());
  assert.ok(fs.existsSync(file), `${file} is missing`);
  assert.equal(fs.readFileSync(file, 'utf8'), rulesMarkdown());
});

test('every rule code has an anchor that the diagnostic links resolve to', () => {
  const text = rulesMarkdown();
  for (const r of [...allRules, ...CALIBRATION_CHECKS])
    assert.ok(text.includes(`<a id="${r.code.toLowerCase()}"></a>`), r.code);
});
