// Client wording and look-ups that run without VS Code (issue 19, items 2 and 9).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { describeCommandError, pyprojectTemplate } from '../../client/src/commandErrors';
import { resolveOnPath } from '../../client/src/pathLookup';
import { describeStatus } from '../../client/src/statusText';
import { validateConfigText } from '../../server/src/pipeline/config';

test('a failed command is one message: the problem, then the fix, as sentences; no hint repeated', () => {
  const message = 'no pyproject.toml in /p run qdq in a project folder, or create pyproject.toml';
  const view = describeCommandError('Calibrate', message, {
    kind: 'config',
    message: 'no pyproject.toml in /p',
    hint: 'run qdq in a project folder, or create pyproject.toml with a [tool.qdq] table',
  });
  assert.equal(
    view.text,
    'QDQ: Calibrate failed. No pyproject.toml in /p. Run qdq in a project folder, or create pyproject.toml with a [tool.qdq] table.',
  );
  assert.equal(view.text.match(/run qdq in a project folder/gi)?.length, 1, 'the hint once');
  assert.deepEqual(view.actions, ['Create pyproject.toml', 'Show Logs']);
  // Without data (a plain error) the message is used as it is, and no config action is offered.
  const plain = describeCommandError('Export ONNX', 'the backend exited', undefined);
  assert.equal(plain.text, 'QDQ: Export ONNX failed. The backend exited.');
  assert.deepEqual(plain.actions, ['Show Logs']);
});

test('the pyproject.toml offered by "Create pyproject.toml" is a valid [tool.qdq] table naming the model file', () => {
  const text = pyprojectTemplate('net.py');
  assert.match(text, /model = "net\.py:build_model"/);
  const r = validateConfigText(text);
  assert.deepEqual(
    r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message),
    [],
  );
  assert.ok(r.config);
});

test('status bar before the first run does not say Python was not found', () => {
  const view = describeStatus({ state: 'unknown' });
  assert.doesNotMatch(view.tooltip, /not found/);
  assert.match(view.tooltip, /click to choose/);
  // A project configuration problem is shown without the backend error look.
  const config = describeStatus({ state: 'unknown', message: 'Project configuration: no pyproject.toml in /p' });
  assert.equal(config.warning, false);
  assert.doesNotMatch(config.text, /backend problem/);
});

test('interpreter picker entries are full paths: bare names are resolved on PATH without running them', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-path-'));
  const exe = path.join(dir, 'python3');
  fs.writeFileSync(exe, '#!/bin/sh\n', { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'python'), 'not executable', { mode: 0o644 });
  assert.equal(resolveOnPath('python3', `/nonexistent${path.delimiter}${dir}`), exe);
  assert.equal(resolveOnPath('python', dir), undefined, 'not executable');
  assert.equal(resolveOnPath(exe, ''), exe, 'a path is kept');
  fs.rmSync(dir, { recursive: true, force: true });
});
