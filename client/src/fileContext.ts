// Context keys that keep "Quantize File" / "Remove All Quantizers" out of the menus when they would change
// nothing: qdq.nothingToQuantize and qdq.noQuantizers, from the server's qdq/fileState for the active editor.
// Unknown (no answer yet, not Python) leaves both unset, so the commands stay offered.
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { FileStateRequest, type FileStateResult } from '../../server/src/protocol/lsp_ext';

/** Quiet time after typing before asking again (the server has the edit by then). */
const REFRESH_MS = 300;

async function setKeys(state: FileStateResult | null): Promise<void> {
  await vscode.commands.executeCommand('setContext', 'qdq.nothingToQuantize', state ? !state.canQuantize : false);
  await vscode.commands.executeCommand('setContext', 'qdq.noQuantizers', state ? !state.canRemove : false);
}

export function trackFileState(client: LanguageClient, subscriptions: vscode.Disposable[]): void {
  let timer: NodeJS.Timeout | undefined;
  const refresh = async () => {
    const doc = vscode.window.activeTextEditor?.document;
    if (!doc || doc.languageId !== 'python' || doc.uri.scheme !== 'file') return setKeys(null);
    const state = await client
      .sendRequest(FileStateRequest, { textDocument: { uri: doc.uri.toString() } })
      .catch(() => null);
    if (vscode.window.activeTextEditor?.document === doc) await setKeys(state);
  };
  const schedule = (delay: number) => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void refresh(), delay);
  };
  subscriptions.push(
    vscode.window.onDidChangeActiveTextEditor(() => schedule(0)),
    vscode.workspace.onDidChangeTextDocument((e) => {
      if (e.document === vscode.window.activeTextEditor?.document) schedule(REFRESH_MS);
    }),
    { dispose: () => timer && clearTimeout(timer) },
  );
  schedule(0);
}
