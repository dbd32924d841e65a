// Documents the client opens for the user: a report link's source line (qdq.openSource) and the quantized
// source of a library module (qdq.showQuantizedSource, read-only through a content provider).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { QuantizedModuleSourceRequest, type QuantizedModuleSourceParams } from '../../server/src/protocol/lsp_ext';

export const QUANTIZED_SCHEME = 'qdq-quantized';
const quantizedTexts = new Map<string, string>();
export const quantizedSources: vscode.TextDocumentContentProvider = {
  provideTextDocumentContent: (uri) => quantizedTexts.get(uri.toString()) ?? '',
};

/** qdq.showQuantizedSource: asks the server for the patched library module and opens it read-only. */
export async function showQuantizedSource(
  client: LanguageClient | undefined,
  args: QuantizedModuleSourceParams,
): Promise<void> {
  if (!client) return;
  try {
    const result = await client.sendRequest(QuantizedModuleSourceRequest, args);
    const uri = vscode.Uri.from({ scheme: QUANTIZED_SCHEME, path: `/${result.module}.quantized.py` });
    quantizedTexts.set(uri.toString(), result.text);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.languages.setTextDocumentLanguage(doc, 'python');
    await vscode.window.showTextDocument(doc, { preview: true });
    void vscode.window.showInformationMessage(result.message);
  } catch (err) {
    void vscode.window.showErrorMessage(`QDQ: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export interface SourceLink {
  file?: string;
  line?: number;
  cls?: string;
  attr?: string;
  projectDir?: string;
}

/** qdq.openSource: a report link's file and line (or the `self.<attr> =` line of its class when it has none). */
export async function openSource(ref: SourceLink): Promise<void> {
  if (!ref?.file) return;
  let file = ref.file;
  if (!path.isAbsolute(file)) {
    const base = ref.projectDir ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '';
    file = path.join(base, file);
  }
  if (!fs.existsSync(file)) {
    void vscode.window.showWarningMessage(`QDQ: ${file} no longer exists.`);
    return;
  }
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
  const line = Math.max(
    0,
    Math.min((ref.line ?? siteLine(doc.getText(), ref.cls, ref.attr) ?? 1) - 1, doc.lineCount - 1),
  );
  const range = new vscode.Range(line, 0, line, 0);
  await vscode.window.showTextDocument(doc, { selection: range, preview: false });
}

/** 1-based line of `self.<attr> = ...` inside `class <cls>` when the report has no line number, else undefined. */
export function siteLine(text: string, cls?: string, attr?: string): number | undefined {
  // Names come from report.json: only plain Python identifiers are searched for.
  if (!attr || !/^\w+/.test(attr) || (cls && !/^\w+$/.test(cls))) return undefined;
  const lines = text.split(/\r?\n/);
  const start = cls
    ? Math.max(
        0,
        lines.findIndex((l) => new RegExp(`^\\s*class\\s+${cls}\\b`).test(l)),
      )
    : 0;
  const name = attr.split('.')[0];
  const at = lines.findIndex((l, i) => i >= start && new RegExp(`self\\.${name}\\s*=`).test(l));
  return at >= 0 ? at + 1 : undefined;
}
