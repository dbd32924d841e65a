// qdq/fileState (issue 19 item 9): "Quantize File" is offered only while something is left to quantize, and
// "Remove All Quantizers" only while there are quantizers (the client turns this into menu context keys).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { WorkspaceEdit } from 'vscode-languageserver-protocol';
import { FileStateRequest } from '../../server/src/protocol/lsp_ext';
import { COMMANDS } from '../../server/src/protocol/commands';
import { TestClient, FULL_CAPABILITIES, applyWorkspaceEdit, fileUri, REPO } from './lspClient';

const MODEL = [
  'import torch',
  'from torch import nn',
  '',
  'class Net(nn.Module):',
  '    def __init__(self):',
  '        super().__init__()',
  '        self.fc = nn.Linear(4, 2)',
  '',
  '    def forward(self, x):',
  '        return self.fc(x)',
  '',
].join('\n');

test('qdq/fileState follows the document: plain, quantized, not Python', async () => {
  const client = await TestClient.start({ capabilities: FULL_CAPABILITIES });
  try {
    const uri = fileUri(path.join(REPO, 'test-results', 'fileState', 'model.py'));
    await client.open(uri, MODEL);
    await client.waitForVersion(uri, 1);
    assert.deepEqual(await client.request(FileStateRequest, { textDocument: { uri } }), {
      canQuantize: true,
      canRemove: false,
    });
    await client.request('workspace/executeCommand', { command: 'qdq.quantizeFile', arguments: [{ uri }] });
    const files = new Map([[uri, MODEL]]);
    applyWorkspaceEdit(files, client.appliedEdits.at(-1) as WorkspaceEdit);
    await client.change(uri, 2, [{ text: files.get(uri)! }]);
    await client.waitForVersion(uri, 2);
    assert.deepEqual(await client.request(FileStateRequest, { textDocument: { uri } }), {
      canQuantize: false,
      canRemove: true,
    });
    assert.equal(await client.request(FileStateRequest, { textDocument: { uri: 'file:///not/open.py' } }), null);
  } finally {
    await client.stop();
  }
});

test('the menus hide the file commands through the context keys the client sets', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  const menus: { command: string; when?: string }[] = [
    ...pkg.contributes.menus.commandPalette,
    ...pkg.contributes.menus['editor/context'],
  ];
  const quantize = menus.filter((m) => m.command === 'qdq.quantizeFile');
  const remove = menus.filter((m) => m.command === 'qdq.removeAllQuantizers');
  assert.ok(quantize.length === 2 && quantize.every((m) => m.when?.includes('!qdq.nothingToQuantize')));
  assert.ok(remove.length === 2 && remove.every((m) => m.when?.includes('!qdq.noQuantizers')));
  assert.ok(COMMANDS.some((c) => c.id === 'qdq.quantizeFile'));
});
