// The setup shared by the tests that run the real Python backend: the interpreter (looked for once per test file,
// with the reason to skip where no interpreter here can import torch) and throwaway copies of a project, so that
// out-dir writes never land in the source tree.
import { before } from 'node:test';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { findInterpreter } from '../../server/src/pipeline/interpreter';

export interface TorchPython {
  /** The interpreter that imports torch, or null (then `skipReason` says why). Set by the file's before hook. */
  python: string | null;
  skipReason: string;
}

/** Registers a before hook that finds the interpreter; read the result inside tests, not at module level. */
export function torchPython(): TorchPython {
  const found: TorchPython = { python: null, skipReason: 'the interpreter lookup has not run' };
  before(async () => {
    try {
      found.python = (await findInterpreter({ timeoutMs: 60_000 })).path;
      found.skipReason = '';
    } catch (e) {
      found.skipReason = `no Python with torch: ${(e as Error).message.split('\n')[0]}`;
    }
  });
  return found;
}

/** A copy of the files of `source` (those `keep` accepts, all by default) in a new temporary directory. */
export function projectCopy(source: string, prefix: string, keep: RegExp = /./): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  for (const f of fs.readdirSync(source))
    if (keep.test(f) && fs.statSync(path.join(source, f)).isFile())
      fs.copyFileSync(path.join(source, f), path.join(dir, f));
  return dir;
}
