// Which Python runs the backend: the first interpreter, in a fixed order, that can import torch.
// A machine often has several (a venv, pyenv, Debian's), and only one may have torch.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { QdqError } from './errors';
import { isolatedArgs, neutralCwd, probeEnv } from './pythonIsolation';

export type InterpreterSource = 'setting' | 'virtualenv' | 'conda' | 'PATH' | 'system';

export interface Candidate {
  command: string;
  source: InterpreterSource;
  resolved: string | null;
}
export interface Interpreter {
  path: string;
  source: InterpreterSource;
  executable: string;
  pythonVersion: string;
  torchVersion: string;
}
export interface ProbeFailure {
  candidate: Candidate;
  reason: string;
}

export interface DiscoveryOptions {
  /** `--python` or the editor setting: when given, it is the only candidate. */
  explicit?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  cwd?: string;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** A bare command name looked up on PATH the way a shell would, or null. */
export function whichOnPath(name: string, env: NodeJS.ProcessEnv): string | null {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const f = path.join(dir, name);
    if (isExecutable(f)) return f;
  }
  return null;
}

export function candidates(opts: DiscoveryOptions = {}): Candidate[] {
  const env = opts.env ?? process.env;
  if (opts.explicit) {
    const cmd = opts.explicit;
    const abs = cmd.includes('/') ? path.resolve(opts.cwd ?? process.cwd(), cmd) : null;
    const resolved = abs ? (isExecutable(abs) ? abs : null) : whichOnPath(cmd, env);
    return [{ command: abs ?? cmd, source: 'setting', resolved }];
  }
  const list: Candidate[] = [];
  const add = (command: string, source: InterpreterSource, resolved: string | null) => {
    const key = resolved ?? command;
    if (!list.some((c) => (c.resolved ?? c.command) === key)) list.push({ command, source, resolved });
  };
  if (env.VIRTUAL_ENV) {
    const p = path.join(env.VIRTUAL_ENV, 'bin', 'python');
    add(p, 'virtualenv', isExecutable(p) ? p : null);
  }
  if (env.CONDA_PREFIX) {
    const p = path.join(env.CONDA_PREFIX, 'bin', 'python');
    add(p, 'conda', isExecutable(p) ? p : null);
  }
  for (const name of ['python3', 'python']) add(name, 'PATH', whichOnPath(name, env));
  add('/usr/bin/python3', 'system', isExecutable('/usr/bin/python3') ? '/usr/bin/python3' : null);
  return list;
}

const PROBE =
  'import sys, platform\nprint(sys.executable)\nprint(platform.python_version())\nimport torch\nprint(torch.__version__)';

/** Runs the candidate with a short timeout and no shell; resolves to its versions or to why it cannot serve. */
export function probe(c: Candidate, opts: DiscoveryOptions = {}): Promise<{ ok: Interpreter } | { reason: string }> {
  if (!c.resolved)
    return Promise.resolve({
      reason: c.command.includes('/') ? 'does not exist or is not executable' : 'not found on PATH',
    });
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve) => {
    let out = '',
      err = '',
      done = false;
    const child = spawn(c.resolved!, isolatedArgs(PROBE), {
      cwd: neutralCwd(),
      env: probeEnv(opts.env ?? process.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      child.kill('SIGKILL');
      resolve({ reason: `did not answer within ${Math.round(timeoutMs / 1000)} s` });
    }, timeoutMs);
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', (e) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ reason: `cannot run: ${e.message}` });
    });
    child.on('close', (code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const lines = out.trim().split('\n');
      if (code === 0 && lines.length >= 3) {
        resolve({
          ok: {
            path: c.resolved!,
            source: c.source,
            executable: lines[0],
            pythonVersion: lines[1],
            torchVersion: lines[2].trim(),
          },
        });
        return;
      }
      // The last line of a traceback says what went wrong ("ModuleNotFoundError: No module named 'torch'").
      const last = err.trim().split('\n').filter(Boolean).pop() ?? `exited with code ${code}`;
      const version = lines.length >= 2 ? `Python ${lines[1]}: ` : '';
      resolve({ reason: `${version}${last}` });
    });
  });
}

export const INSTALL_HINT =
  'install PyTorch into one of them (`pip install torch`, or on Debian/Ubuntu `apt-get install python3-torch`), ' +
  'or name an interpreter that has it with --python /path/to/python (editor setting qdq.python)';

export async function findInterpreter(opts: DiscoveryOptions = {}): Promise<Interpreter> {
  const failures: ProbeFailure[] = [];
  for (const c of candidates(opts)) {
    const r = await probe(c, opts);
    if ('ok' in r) return r.ok;
    failures.push({ candidate: c, reason: r.reason });
  }
  const lines = failures.map((f) => {
    const shown =
      f.candidate.resolved && f.candidate.resolved !== f.candidate.command
        ? `${f.candidate.command} (${f.candidate.resolved})`
        : f.candidate.command;
    return `  ${shown} [${f.candidate.source}]: ${f.reason}`;
  });
  const what = opts.explicit
    ? `the Python interpreter you named cannot import torch`
    : `no Python interpreter that can import torch was found`;
  throw new QdqError('interpreter', `${what}; tried:\n${lines.join('\n')}`, INSTALL_HINT);
}
