// The runtime helper qdq_quant.py that generated code imports. Single source of truth:
// backend/qdq_backend/qdq_quant.py, copied next to the model file by the first quantize action.
import * as fs from 'fs';
import * as path from 'path';
import { fileURLToPath, pathToFileURL } from 'url';

/** backend/qdq_backend/qdq_quant.py in this installation (compiled file lives in out/server/src/fixes). */
export function helperSourcePath(): string {
  const candidates = [
    path.resolve(__dirname, '../../../../backend/qdq_backend/qdq_quant.py'),
    path.resolve(__dirname, '../../../backend/qdq_backend/qdq_quant.py'),
  ];
  return candidates.find((p) => fs.existsSync(p)) ?? candidates[0];
}

export function helperFileText(): string {
  const p = helperSourcePath();
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    throw new Error(
      `qdq: the runtime helper ${p} is missing, so qdq_quant.py cannot be added to your project; reinstall qdq (the file ships in backend/qdq_backend/).`,
    );
  }
}

/** LSP workspace-edit parts that create qdq_quant.py next to the model file, or null when it already exists. */
export function helperFileEdit(modelFileUri: string): {
  uri: string;
  create: { kind: 'create'; uri: string; options: { ignoreIfExists: true } };
  edit: { range: { start: { line: 0; character: 0 }; end: { line: 0; character: 0 } }; newText: string };
} | null {
  let modelPath: string;
  try {
    modelPath = fileURLToPath(modelFileUri);
  } catch {
    return null; // not a file: URI (an untitled buffer): nothing to place the helper next to
  }
  const target = path.join(path.dirname(modelPath), 'qdq_quant.py');
  if (fs.existsSync(target)) return null;
  const uri = pathToFileURL(target).toString();
  return {
    uri,
    create: { kind: 'create', uri, options: { ignoreIfExists: true } },
    edit: { range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, newText: helperFileText() },
  };
}
