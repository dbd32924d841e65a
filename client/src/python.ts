// The interpreter the Python extension (ms-python.python) has selected, read through its public API.
// The Python extension is optional: without it (or when its API throws) qdq falls back to its own
// discovery on the server side, so nothing here may fail activation.
import * as vscode from 'vscode';

const PYTHON_EXTENSION_ID = 'ms-python.python';

/** The subset of ms-python.python's exported API qdq uses (its `environments` API, stable since 2023.x). */
interface PythonEnvironmentsApi {
  getActiveEnvironmentPath(resource?: vscode.Uri): { id: string; path: string } | undefined;
  onDidChangeActiveEnvironmentPath: vscode.Event<{ id: string; path: string; resource?: unknown }>;
}

async function environmentsApi(log: (line: string) => void): Promise<PythonEnvironmentsApi | undefined> {
  const extension = vscode.extensions.getExtension<{ environments?: PythonEnvironmentsApi }>(PYTHON_EXTENSION_ID);
  if (!extension) return undefined;
  try {
    const exports = extension.isActive ? extension.exports : await extension.activate();
    return exports?.environments;
  } catch (err) {
    log(
      `Python extension present but its API failed (${(err as Error).message}); using qdq's own interpreter discovery.`,
    );
    return undefined;
  }
}

/** Path of the Python extension's active interpreter for `resource`, or undefined when there is none. */
export async function selectedPythonInterpreter(
  log: (line: string) => void,
  resource?: vscode.Uri,
): Promise<string | undefined> {
  const api = await environmentsApi(log);
  if (!api) return undefined;
  try {
    const env = api.getActiveEnvironmentPath(resource);
    // The API answers with the bare name "python" when nothing is selected; that is no choice at all.
    return env && env.path && env.path !== 'python' ? env.path : undefined;
  } catch (err) {
    log(`Python extension: getActiveEnvironmentPath failed: ${(err as Error).message}`);
    return undefined;
  }
}

/** Calls `listener` whenever the Python extension's selected interpreter changes (no-op without it). */
export async function onPythonInterpreterChanged(
  log: (line: string) => void,
  listener: () => void,
): Promise<vscode.Disposable | undefined> {
  const api = await environmentsApi(log);
  if (!api || typeof api.onDidChangeActiveEnvironmentPath !== 'function') return undefined;
  return api.onDidChangeActiveEnvironmentPath(() => listener());
}
