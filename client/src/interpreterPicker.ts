// The interpreter picker of "QDQ: Select Python Interpreter": candidates with the full path each name resolves
// to on PATH and, in a trusted workspace, the torch version the server's probe found (qdq/probeInterpreters).
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { ProbeInterpretersRequest } from '../../server/src/protocol/lsp_ext';
import { selectedPythonInterpreter } from './python';
import { resolveOnPath } from './pathLookup';

function withTimeout<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  return Promise.race([promise, new Promise<T>((resolve) => setTimeout(() => resolve(fallback), ms).unref?.())]);
}

type PickItem = vscode.QuickPickItem & { value?: string };

/** The candidates (Python extension's, the setting, python3/python on PATH, the system one), each once, as paths. */
function candidateItems(fromExtension: string | undefined, configured: string | undefined): PickItem[] {
  const seen = new Set<string>();
  const items: PickItem[] = [];
  for (const [name, source] of [
    [fromExtension, 'selected in the Python extension'],
    [configured, 'qdq.pythonInterpreter setting'],
    ['python3', 'on PATH'],
    ['python', 'on PATH'],
    ['/usr/bin/python3', 'system'],
  ] as const) {
    if (!name) continue;
    const resolved = resolveOnPath(name);
    const key = resolved ? fs.realpathSync(resolved) : name;
    if (seen.has(key) || (!resolved && source !== 'qdq.pythonInterpreter setting')) continue;
    seen.add(key);
    items.push({
      label: resolved ?? name,
      value: resolved ?? name,
      description: resolved && resolved !== name ? `${name}, ${source}` : source,
      detail: resolved ? 'checking torch…' : 'not found',
    });
  }
  return items;
}

/** Fills in each item's torch version (or its problem) from the server's probe; the picker stays usable meanwhile. */
async function annotate(picker: vscode.QuickPick<PickItem>, client: LanguageClient | undefined, uri?: string) {
  const items = picker.items.filter((i) => i.value && i.detail === 'checking torch…');
  if (!client || !vscode.workspace.isTrusted || !items.length) {
    for (const i of items) i.detail = undefined;
    picker.items = [...picker.items];
    return;
  }
  picker.busy = true;
  try {
    const infos = await client.sendRequest(ProbeInterpretersRequest, {
      uri,
      candidates: items.map((i) => i.value!),
    });
    items.forEach((item, k) => {
      const info = infos[k];
      item.detail = info?.problem
        ? `$(warning) ${info.problem.split('\n')[0]}`
        : `torch ${info?.torchVersion ?? '?'}, Python ${info?.pythonVersion ?? '?'}`;
    });
  } catch {
    for (const i of items) i.detail = undefined;
  } finally {
    picker.busy = false;
    picker.items = [...picker.items];
  }
}

/** Shows the picker; resolves to the chosen interpreter's path, or undefined when the user backs out. */
export async function pickInterpreter(
  log: (line: string) => void,
  client?: LanguageClient,
  uri?: string,
): Promise<string | undefined> {
  const fromExtension = await withTimeout(selectedPythonInterpreter(log), 5000, undefined);
  const configured = vscode.workspace.getConfiguration('qdq').get<string>('pythonInterpreter');
  const picker = vscode.window.createQuickPick<PickItem>();
  picker.title = 'QDQ: Python interpreter with PyTorch (used for calibration and export)';
  picker.items = [...candidateItems(fromExtension, configured), { label: '$(folder-opened) Browse…' }];
  const chosen = new Promise<PickItem | undefined>((resolve) => {
    picker.onDidAccept(() => resolve(picker.selectedItems[0]));
    picker.onDidHide(() => resolve(undefined));
  });
  picker.show();
  void annotate(picker, client, uri);
  const pick = await chosen;
  picker.dispose();
  if (!pick) return undefined;
  if (pick.value) return pick.value;
  const files = await vscode.window.showOpenDialog({ canSelectMany: false, title: 'Python interpreter' });
  return files?.[0]?.fsPath;
}
