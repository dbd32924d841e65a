// Tests findable by rule: test/fixtures/rules/<CODE>.py is a file that rule reports on, and
// <CODE>.diagnostics.json the snapshot of everything qdq reports there (all rules, default options, as the
// editor shows it). A new rule needs both files; record or refresh the snapshots with
//   QDQ_UPDATE_SNAPSHOTS=1 node --test out/test/rules/fixtures.test.js
// and read the diff before committing it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { allRules } from '../../server/src/rules';
import { diagnoseAll } from './helpers';

const DIR = path.join(process.cwd(), 'test', 'fixtures', 'rules');
const UPDATE = process.env.QDQ_UPDATE_SNAPSHOTS === '1';
const RECORD = 'QDQ_UPDATE_SNAPSHOTS=1 node --test out/test/rules/fixtures.test.js';

/** What a snapshot keeps of a diagnostic: all a user sees (1-based lines), and the fix's title and safety. */
function snapshotOf(text: string): unknown[] {
  return diagnoseAll(text).map((d) => ({
    code: d.code,
    severity: d.severity,
    at: `${d.range.start.line + 1}:${d.range.start.character + 1}-${d.range.end.line + 1}:${d.range.end.character + 1}`,
    message: d.message,
    ...(d.fix ? { fix: { title: d.fix.title, safety: d.fix.safety, edits: d.fix.edits.length } } : {}),
  }));
}

test('every registered rule code has a fixture and a snapshot under test/fixtures/rules', () => {
  const missing = allRules
    .map((r) => r.code)
    .filter((code) => !fs.existsSync(path.join(DIR, `${code}.py`)))
    .map((code) => `${code}: add test/fixtures/rules/${code}.py (code ${code} reports on), then run ${RECORD}`);
  assert.deepEqual(missing, [], `rules without a fixture:\n${missing.join('\n')}`);
  const unknown = fs
    .readdirSync(DIR)
    .filter((f) => f.endsWith('.py'))
    .map((f) => f.replace(/\.py$/, ''))
    .filter((code) => !allRules.some((r) => r.code === code));
  assert.deepEqual(unknown, [], 'fixtures named after no registered rule');
});

for (const rule of allRules) {
  const file = path.join(DIR, `${rule.code}.py`);
  const snapshot = path.join(DIR, `${rule.code}.diagnostics.json`);
  test(
    `${rule.code} (${rule.title}): its fixture's diagnostics match the snapshot`,
    { skip: !fs.existsSync(file) },
    () => {
      const text = fs.readFileSync(file, 'utf8');
      const got = snapshotOf(text);
      const own = got.filter((d) => (d as { code: string }).code === rule.code) as { message: string }[];
      assert.ok(own.length > 0, `${rule.code} reports nothing in ${path.relative(process.cwd(), file)}`);
      // A message says what breaks where: in TensorRT or in the ONNX export.
      for (const d of own) assert.match(d.message, /TensorRT|ONNX/, `${rule.code}: ${d.message}`);
      if (UPDATE || !fs.existsSync(snapshot)) {
        if (!UPDATE)
          assert.fail(`${rule.code} has no snapshot ${path.relative(process.cwd(), snapshot)}: run ${RECORD}`);
        fs.writeFileSync(snapshot, JSON.stringify(got, null, 2) + '\n');
        return;
      }
      assert.deepEqual(got, JSON.parse(fs.readFileSync(snapshot, 'utf8')), `run ${RECORD} if the change is intended`);
    },
  );
}
