// The transport VS Code's client uses: the server forked with --node-ipc (Node's IPC channel instead of stdio).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { fork } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { createMessageConnection, IPCMessageReader, IPCMessageWriter } from 'vscode-jsonrpc/node';
import type { InitializeResult, PublishDiagnosticsParams } from 'vscode-languageserver-protocol';
import { FULL_CAPABILITIES, REPO, SERVER, fileUri } from './lspClient';

test('--node-ipc: initialize, open, diagnostics, shutdown', async () => {
  const child = fork(SERVER, ['--node-ipc'], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  const conn = createMessageConnection(new IPCMessageReader(child), new IPCMessageWriter(child));
  const published = new Promise<PublishDiagnosticsParams>((resolve) =>
    conn.onNotification('textDocument/publishDiagnostics', resolve),
  );
  conn.onRequest('workspace/configuration', (p: { items: unknown[] }) => p.items.map(() => null));
  conn.onRequest('client/registerCapability', () => null);
  conn.listen();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const init = await conn.sendRequest<InitializeResult>('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: FULL_CAPABILITIES,
    });
    assert.equal(init.serverInfo?.name, 'qdq-language-server');
    await conn.sendNotification('initialized', {});
    const uri = fileUri(path.join(REPO, 'test', 'fixtures', 'protocol', 'model.py'));
    await conn.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'python', version: 1, text: fs.readFileSync(new URL(uri), 'utf8') },
    });
    const d = await published;
    assert.ok(d.diagnostics.some((x) => x.code === 'TRT001'));
    await conn.sendRequest('shutdown');
    await conn.sendNotification('exit');
    assert.equal(await exited, 0, 'exit after shutdown is a clean exit');
  } finally {
    conn.dispose();
    if (child.exitCode === null) child.kill();
  }
});
