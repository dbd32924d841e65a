// Issue 13: the fix engine says which sites are quantizable and the code actions only render that, so a lightbulb
// action never resolves to no edit. Every code action offered on every line of the bundled examples and the test
// fixtures (the golden quantize inputs and outputs included) is resolved and must carry a non-empty edit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { QdqDocument } from '../../server/src/features/documents';
import {
  EditCapabilities,
  fileHasWork,
  isActionData,
  listCodeActions,
  resolveAction,
} from '../../server/src/features/codeActions';
import { quantizableSites } from '../../server/src/fixes';
import { quantizeFile } from '../../server/src/fixes';
import type { CodeAction, WorkspaceEdit } from 'vscode-languageserver-protocol';

const ROOTS = ['examples', 'test/fixtures', 'test/golden/quantize'];
const CAPS: EditCapabilities = { documentChanges: true, createFiles: true, resolveEdits: true };

function pythonFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.py') && !f.split(path.sep).includes('qdq-out'))
    .map((f) => path.join(dir, f));
}

function editsFor(edit: WorkspaceEdit | undefined, uri: string): number {
  if (!edit) return 0;
  if (edit.changes) return (edit.changes[uri] ?? []).length;
  let n = 0;
  for (const c of edit.documentChanges ?? [])
    if ('textDocument' in c && c.textDocument.uri === uri) n += c.edits.length;
  return n;
}

test('every offered quantize / remove / keep-float action resolves to an edit of the file', () => {
  const files = ROOTS.flatMap((r) => pythonFiles(path.join(process.cwd(), r)));
  assert.ok(files.length >= 20, `found only ${files.length} Python files under ${ROOTS.join(', ')}`);
  const empty: string[] = [];
  let offered = 0;
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    if (text.length > 200_000) continue;
    const uri = `file://${file}`;
    const doc = new QdqDocument(TextDocument.create(uri, 'python', 1, text));
    const lineCount = doc.getLines().starts.length;
    const seen = new Set<string>();
    for (let line = 0; line < lineCount; line++) {
      const range = { start: { line, character: 0 }, end: { line, character: 0 } };
      const actions: CodeAction[] = listCodeActions(
        doc,
        { textDocument: { uri }, range, context: { diagnostics: [] } },
        CAPS,
      );
      for (const a of actions) {
        if (!isActionData(a.data)) continue;
        const key = `${a.title}|${JSON.stringify(a.data.scope)}`;
        if (seen.has(key)) continue;
        seen.add(key);
        offered++;
        const resolved = resolveAction(doc, a.data, CAPS);
        if (editsFor(resolved.edit, uri) === 0)
          empty.push(`${path.relative(process.cwd(), file)}:${line + 1} "${a.title}"`);
      }
    }
  }
  assert.ok(offered > 100, `only ${offered} actions offered: the walk found too little`);
  assert.deepEqual(empty, [], `actions offered that resolve to no edit:\n${empty.join('\n')}`);
});

test('no Quantize action where the engine would not quantize: a matmul with no module to hold its quantizer', () => {
  const text = [
    'import torch',
    'from torch import nn',
    '',
    '',
    'def attend(q, k):',
    '    return torch.matmul(q, k)',
    '',
    '',
    'class Block(nn.Module):',
    '    def __init__(self):',
    '        super().__init__()',
    '        self.proj = nn.Linear(4, 4)',
    '',
    '    def forward(self, x, y):',
    '        return torch.matmul(self.proj(x), y)',
    '',
  ].join('\n');
  const uri = 'file:///tmp/qdq-actions/model.py';
  const doc = new QdqDocument(TextDocument.create(uri, 'python', 1, text));
  const titles = (line: number) =>
    listCodeActions(
      doc,
      {
        textDocument: { uri },
        range: { start: { line, character: 0 }, end: { line, character: 0 } },
        context: { diagnostics: [] },
      },
      CAPS,
    ).map((a) => a.title);
  assert.ok(!titles(5).some((t) => t.startsWith('Quantize this op')), titles(5).join(', '));
  assert.ok(titles(14).includes('Quantize this op: torch.matmul'), titles(14).join(', '));
});

/** Every action title listed on any line of `doc`. */
function allTitles(doc: QdqDocument, uri: string): string[] {
  const titles = new Set<string>();
  for (let line = 0; line < doc.getLines().starts.length; line++)
    for (const a of listCodeActions(
      doc,
      {
        textDocument: { uri },
        range: { start: { line, character: 0 }, end: { line, character: 0 } },
        context: { diagnostics: [] },
      },
      CAPS,
    ))
      titles.add(a.title);
  return [...titles];
}

test('fileHasWork, the code actions and quantizeFile agree when the only candidates are non-tensor operands', () => {
  // Residual adds by their shape (`name = name + self.call(...)`), whose other side the operand filter rejects:
  // integer positions (torch.arange) and an additive bias (ALiBi). No weighted layer.
  const lines = [
    'import torch',
    'from torch import nn',
    '',
    '',
    'class Block(nn.Module):',
    '    def __init__(self):',
    '        super().__init__()',
    '        self.shift = nn.Identity()',
    '',
    '    def forward(self, x):',
    '        ids = torch.arange(x.shape[0])',
    '        ids = ids + self.shift(ids)',
    '        x = x + self.get_alibi(x)',
    '        return x, ids',
    '',
  ];
  const text = lines.join('\n');
  const uri = 'file:///tmp/qdq-actions/positions.py';
  const doc = new QdqDocument(TextDocument.create(uri, 'python', 1, text));
  const index = doc.getIndex();
  const adds = index.classes.flatMap((c) => c.ops).filter((op) => op.residual);
  assert.equal(adds.length, 2, 'the index finds both adds as residual by their shape');
  const sites = quantizableSites(index, doc.getTree(), doc.getText());
  for (const op of adds) assert.ok(sites.skipOperands(op), `the operand filter keeps ${op.callee} at ${op.span.start}`);
  assert.equal(fileHasWork(index, doc.getTree(), doc.getText()).quantize, false);
  const titles = allTitles(doc, uri);
  assert.ok(!titles.some((t) => t.startsWith('Quantize')), titles.join(', '));
  assert.equal(quantizeFile(text).edits.length, 0, 'the fix engine leaves the file alone too');

  // Control: a real residual add in the same file is offered by all three.
  const withResidual = text.replace('        return x, ids', '        x = x + self.shift(x)\n        return x, ids');
  const doc2 = new QdqDocument(TextDocument.create(uri, 'python', 2, withResidual));
  assert.equal(fileHasWork(doc2.getIndex(), doc2.getTree(), doc2.getText()).quantize, true);
  assert.ok(allTitles(doc2, uri).includes('Quantize file'));
  assert.ok(quantizeFile(withResidual).edits.length > 0);
});
