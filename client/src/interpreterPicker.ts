// The interpreter picker of "QDQ: Select Python Interpreter": candidates with the full path each name resolves
// to on PATH (nothing is run here; the server probes the one picked and answers with its torch version).
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import { selectedPythonInterpreter } from './python';
import { resolveOnPath } from './pathLookup';

function withTimeout<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  return Promise.race([promise, new Promise<T>((resolve) => setTimeout(() => resolve(fallback), ms).unref?.())]);
}

/** Shows the picker; resolves to the chosen interpreter's path, or undefined when the user backs out. */
export async function pickInterpreter(log: (line: string) => void): Promise<string | undefined> {
  const fromExtension = await withTimeout(selectedPythonInterpreter(log), 5000, undefined);
  const configured = vscode.workspace.getConfiguration('qdq').get<string>('pythonInterpreter');
  const seen = new Set<string>();
  const items: (vscode.QuickPickItem & { value?: string })[] = [];
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
      detail: resolved ? undefined : 'not found',
    });
  }
  items.push({ label: '$(folder-opened) Browse…', value: undefined });
  const pick = await vscode.window.showQuickPick(items, {
    title: 'QDQ: Python interpreter with PyTorch (used for calibration and export; its torch version is checked next)',
  });
  if (!pick) return undefined;
  if (pick.value) return pick.value;
  const files = await vscode.window.showOpenDialog({ canSelectMany: false, title: 'Python interpreter' });
  return files?.[0]?.fsPath;
}
