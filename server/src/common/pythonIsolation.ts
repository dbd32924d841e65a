// Running `python -c` without picking up the workspace: with `-c`, Python puts the current folder first on
// sys.path, so a workspace `torch.py` (or a package named like the one asked for) would be imported and run.
// Every short probe runs from a folder no one else can write (the file system root), drops the current
// folder from sys.path before any import, and sets PYTHONSAFEPATH (3.11+) so Python does not add it at all.
// Unlike `-I`, this keeps site-packages, user site-packages and PYTHONPATH: the interpreter finds what the
// user installed, only not what happens to lie in the folder qdq was started from.
import * as os from 'os';
import * as path from 'path';

/** A folder to run probes in: the root of the temp folder's file system (`/` on POSIX). */
export function neutralCwd(): string {
  return path.parse(os.tmpdir()).root;
}

/** First statement of every `-c` program: the current folder off sys.path, before anything is imported. */
export const SYS_PATH_WITHOUT_CWD = 'import sys; sys.path[:] = [p for p in sys.path if p not in ("", ".")]';

/** The environment for a probe: the caller's, with PYTHONSAFEPATH set. */
export function probeEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, PYTHONSAFEPATH: '1' };
}

/** `python -c` arguments for `program`, with the current folder kept off sys.path. */
export function isolatedArgs(program: string, ...args: string[]): string[] {
  return ['-c', `${SYS_PATH_WITHOUT_CWD}\n${program}`, ...args];
}
