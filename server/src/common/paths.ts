// Where qdq's own files are: the repository root (package.json + backend/) from the compiled or the source tree.
import * as fs from 'fs';
import * as path from 'path';

export function repoRoot(): string {
  // Compiled to out/server/src/common; sources live at server/src/common. Three or four levels down.
  for (const up of ['../../../..', '../../..']) {
    const r = path.resolve(__dirname, up);
    if (fs.existsSync(path.join(r, 'package.json')) && fs.existsSync(path.join(r, 'backend'))) return r;
  }
  return path.resolve(__dirname, '../../../..');
}

/** The Python backend package's folder (what goes on PYTHONPATH). */
export function defaultBackendDir(): string {
  return path.join(repoRoot(), 'backend');
}

/** `env` with the backend package first on PYTHONPATH: how every process qdq starts finds `qdq_backend`. */
export function withBackendOnPath(env: NodeJS.ProcessEnv, backendDir = defaultBackendDir()): NodeJS.ProcessEnv {
  return { ...env, PYTHONPATH: env.PYTHONPATH ? `${backendDir}${path.delimiter}${env.PYTHONPATH}` : backendDir };
}

/** The helper module every generated file imports; the backend's copy is the single source (DESIGN.md). */
export const HELPER_FILE = 'qdq_quant.py';
export function helperTemplatePath(): string {
  return path.join(defaultBackendDir(), 'qdq_backend', HELPER_FILE);
}
