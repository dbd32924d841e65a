// Inputs that must never take the server down: each gets a result or nothing, and the server keeps answering.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { CodeAction, Hover } from 'vscode-languageserver-protocol';
import { TestClient, fileUri, REPO } from './lspClient';

const MODEL = fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'protocol', 'model.py'), 'utf8');

let tmp: string;
let client: TestClient;
let n = 0;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-robust-'));
  client = await TestClient.start();
});

after(async () => {
  await client.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Opens `text`, waits for its diagnostics, and probes hover and code actions on every `step`-th line. */
async function exercise(text: string, step = 1, resolvePerLine = 2): Promise<{ diagnostics: number; actions: number }> {
  const uri = fileUri(path.join(tmp, `case${n++}.py`));
  await client.open(uri, text);
  const published = await client.waitForVersion(uri, 1);
  const lines = text.split('\n');
  let actions = 0;
  for (let line = 0; line < lines.length; line += step) {
    const character = Math.floor(lines[line].length / 2);
    const h = await client.request<Hover | null>('textDocument/hover', {
      textDocument: { uri },
      position: { line, character },
    });
    assert.ok(h === null || typeof h === 'object');
    const list = await client.request<CodeAction[]>('textDocument/codeAction', {
      textDocument: { uri },
      range: { start: { line, character: 0 }, end: { line, character } },
      context: { diagnostics: published.diagnostics },
    });
    actions += list.length;
    for (const a of list.filter((x) => !x.edit).slice(0, resolvePerLine)) await client.request('codeAction/resolve', a);
  }
  // Positions past the end are answered too.
  await client.request('textDocument/hover', {
    textDocument: { uri },
    position: { line: lines.length + 5, character: 3 },
  });
  assert.equal(client.exited, undefined, `server exited; stderr: ${client.stderr}`);
  return { diagnostics: published.diagnostics.length, actions };
}

test('an empty file', async () => {
  const r = await exercise('');
  assert.equal(r.diagnostics, 0);
  assert.equal(r.actions, 0);
});

test('a file mid-edit: unterminated call, string and class body', async () => {
  const cut =
    MODEL.slice(0, MODEL.indexOf('padding=1)') + 4) +
    '\n    def forward(self, x:\n        return torch.cumsum(x.int(), dim=\n"""unterminated\n';
  await exercise(cut);
});

test('every prefix of a model file, as typed character by character in one document', async () => {
  const uri = fileUri(path.join(tmp, 'typing.py'));
  await client.open(uri, '');
  await client.waitForVersion(uri, 1);
  let version = 1;
  let line = 0;
  let character = 0;
  // Incremental single-character inserts, the way an editor sends typing; a chunk of the file keeps it quick.
  const typed = MODEL.slice(0, 700);
  for (const ch of typed) {
    version++;
    await client.change(uri, version, [{ range: { start: { line, character }, end: { line, character } }, text: ch }]);
    if (ch === '\n') {
      line++;
      character = 0;
    } else character++;
  }
  const last = await client.waitForVersion(uri, version);
  assert.ok(Array.isArray(last.diagnostics));
  const fresh = fileUri(path.join(tmp, 'typed-fresh.py'));
  await client.open(fresh, typed);
  const reference = await client.waitForVersion(fresh, 1);
  assert.deepEqual(
    last.diagnostics.map((d) => [d.code, d.range]),
    reference.diagnostics.map((d) => [d.code, d.range]),
  );
});

test('a 10,000-line file', async () => {
  const block = MODEL.replace(/class (\w+)/g, (_m, name) => `class ${name}__N`);
  let big = '';
  let i = 0;
  while (big.split('\n').length < 10000) big += block.replace(/__N/g, String(i++)) + '\n';
  // Resolving re-runs the fix engine over the whole file, so one resolve per probed line is enough here.
  const r = await exercise(big, 2477, 1);
  assert.ok(r.diagnostics >= i, `one TRT001 per copy at least (${r.diagnostics} for ${i} copies)`);
});

test('non-UTF-8 bytes as the client decodes them (replacement characters) and lone surrogates', async () => {
  const bytes = Buffer.concat([
    Buffer.from('import torch\nx = "'),
    Buffer.from([0xff, 0xfe, 0xc3]),
    Buffer.from('"\n'),
    Buffer.from(MODEL),
  ]);
  await exercise(bytes.toString('utf8'), 3);
  await exercise('y = "\ud800\udfff\ud800"\n' + MODEL.replace('nn.Linear(dim, dim)', 'nn.Linear(dim, \udc00dim)'), 3);
});

test('a module class with no __init__, and one with only a docstring', async () => {
  const text = [
    'import torch',
    'from torch import nn',
    '',
    'class NoInit(nn.Module):',
    '    def forward(self, a, b):',
    '        return torch.matmul(a, b) + a',
    '',
    'class OnlyDoc(nn.Module):',
    '    """Nothing here."""',
    '',
  ].join('\n');
  const r = await exercise(text);
  assert.ok(r.actions > 0, 'quantize actions are offered for the matmul');
});

test('deeply nested code: 300 nested parentheses, 100 nested ifs, nested classes', async () => {
  let nested = 'import torch\nx = ' + '('.repeat(300) + '1' + ')'.repeat(300) + '\n';
  let body = '';
  for (let d = 0; d < 100; d++) body += '    '.repeat(d) + `if x > ${d}:\n`;
  body += '    '.repeat(100) + 'y = torch.cumsum(x.int(), 0)\n';
  nested += body;
  let classes = '';
  for (let d = 0; d < 40; d++) classes += '    '.repeat(d) + `class C${d}(torch.nn.Module):\n`;
  classes += '    '.repeat(40) + 'pass\n';
  await exercise(nested + classes, 7);
});

test('odd requests: unknown document, closed document, out-of-range positions', async () => {
  const ghost = fileUri(path.join(tmp, 'never-opened.py'));
  assert.equal(
    await client.request('textDocument/hover', { textDocument: { uri: ghost }, position: { line: 0, character: 0 } }),
    null,
  );
  assert.deepEqual(
    await client.request('textDocument/codeAction', {
      textDocument: { uri: ghost },
      range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
      context: { diagnostics: [] },
    }),
    [],
  );
  const uri = fileUri(path.join(tmp, 'closing.py'));
  await client.open(uri, MODEL);
  await client.waitForVersion(uri, 1);
  await client.conn.sendNotification('textDocument/didClose', { textDocument: { uri } });
  const cleared = await client.waitForDiagnostics(uri, (p) => p.diagnostics.length === 0);
  assert.deepEqual(cleared.diagnostics, []);
  assert.equal(
    await client.request('textDocument/hover', { textDocument: { uri }, position: { line: -1, character: -5 } }),
    null,
  );
  assert.equal(client.exited, undefined);
});
