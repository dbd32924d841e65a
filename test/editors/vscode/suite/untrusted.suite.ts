// Restricted mode: in an untrusted workspace qdq still analyses and edits, but never runs the model's
// code. Run by index.ts when QDQ_TEST_SUITE=untrusted, in a workspace VS Code opened untrusted.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as vscodeApi from 'vscode';

async function poll<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

if (typeof (globalThis as { suite?: unknown }).suite === 'function') {
  const vscode = require('vscode') as typeof vscodeApi;

  suite('qdq extension in an untrusted workspace', () => {
    test('diagnostics work, backend commands are refused and run nothing', async () => {
      assert.equal(vscode.workspace.isTrusted, false, 'the workspace was opened untrusted');
      const projectDir = vscode.workspace.workspaceFolders![0].uri.fsPath;
      const issueUri = vscode.Uri.file(path.join(projectDir, 'trt_issue.py'));
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(issueUri));
      const ext = await poll('the qdq extension', 30_000, () => vscode.extensions.getExtension('qdq.qdq'));
      await poll('activation in restricted mode', 60_000, () => (ext.isActive ? true : undefined));
      await (ext.exports as { ready: Promise<void> }).ready;
      await poll('the TRT004 diagnostic', 60_000, () =>
        vscode.languages
          .getDiagnostics(issueUri)
          .find((d) => d.source === 'qdq' && (typeof d.code === 'object' ? d.code.value : d.code) === 'TRT004'),
      );
      const status = await poll('the untrusted backend status', 30_000, () => {
        const s = (ext.exports as { backendStatus(): { state: string } }).backendStatus();
        return s.state === 'untrusted' ? s : undefined;
      });
      assert.equal(status.state, 'untrusted');
      const modelUri = vscode.Uri.file(path.join(projectDir, 'model.py'));
      const result = await vscode.commands.executeCommand('qdq.calibrateAndExport', { uri: modelUri.toString() });
      assert.equal(result, undefined, 'the command was refused');
      assert.ok(!fs.existsSync(path.join(projectDir, 'qdq-out')), 'nothing ran: no output folder');
    });
  });
}
