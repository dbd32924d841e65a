// The Python backend (`python -m qdq_backend`) as a child process speaking newline-delimited JSON-RPC 2.0
// over stdin/stdout (docs/backend-protocol.md). stderr is log text.
import { spawn, ChildProcessWithoutNullStreams } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { QdqError, QdqErrorKind, CancelToken } from './errors';

export interface ProgressEvent {
  step: string;
  done: number;
  total: number | null;
  message: string;
}
export type ProgressCallback = (p: ProgressEvent) => void;

export interface BackendOptions {
  python: string;
  projectDir: string;
  /** Folder holding the `qdq_backend` package (default: <repo>/backend). */
  backendDir?: string;
  env?: NodeJS.ProcessEnv;
  onLog?: (line: string) => void;
  /** How long a cancelled request may take to answer before the process is killed. */
  cancelGraceMs?: number;
}

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: QdqError) => void;
  onProgress?: ProgressCallback;
}

const KNOWN_KINDS = new Set([
  'config',
  'import',
  'user_code',
  'no_data',
  'shape',
  'nan',
  'oom',
  'cancelled',
  'export',
  'internal',
]);

export function repoRoot(): string {
  // Compiled to out/server/src/pipeline; sources live at server/src/pipeline. Both are three levels down.
  for (const up of ['../../../..', '../../..']) {
    const r = path.resolve(__dirname, up);
    if (fs.existsSync(path.join(r, 'package.json')) && fs.existsSync(path.join(r, 'backend'))) return r;
  }
  return path.resolve(__dirname, '../../../..');
}

export function defaultBackendDir(): string {
  return path.join(repoRoot(), 'backend');
}

export class BackendClient {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private buffer = '';
  private stderrTail: string[] = [];
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private exitWaiters: (() => void)[] = [];
  private killedForCancel = false;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly opts: BackendOptions,
  ) {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => this.onStdout(chunk));
    let errBuf = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      errBuf += chunk;
      const lines = errBuf.split('\n');
      errBuf = lines.pop() ?? '';
      for (const l of lines) this.onStderrLine(l);
    });
    child.on('error', (e) => this.onExit(null, null, e.message));
    child.on('close', (code, signal) => {
      if (errBuf) this.onStderrLine(errBuf);
      this.onExit(code, signal);
    });
    // A closed pipe after the child died surfaces as EPIPE on stdin; the exit handler reports it.
    child.stdin.on('error', () => undefined);
  }

  static start(opts: BackendOptions): BackendClient {
    const backendDir = opts.backendDir ?? defaultBackendDir();
    const env = { ...(opts.env ?? process.env) };
    env.PYTHONPATH = env.PYTHONPATH ? `${backendDir}${path.delimiter}${env.PYTHONPATH}` : backendDir;
    env.PYTHONUNBUFFERED = '1';
    const child = spawn(opts.python, ['-m', 'qdq_backend'], {
      cwd: opts.projectDir,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new BackendClient(child, opts);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }
  get alive(): boolean {
    return this.exited === null;
  }
  /** The last lines the backend wrote to stderr (for error reports). */
  get log(): string[] {
    return this.stderrTail.slice();
  }

  private onStderrLine(line: string): void {
    this.stderrTail.push(line);
    if (this.stderrTail.length > 40) this.stderrTail.shift();
    this.opts.onLog?.(line);
  }

  private onStdout(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: any;
    try {
      msg = JSON.parse(line);
    } catch {
      // Something in the user's code printed to stdout; keep it as log text rather than failing.
      this.onStderrLine(`[stdout] ${line}`);
      return;
    }
    if (msg.method === 'progress' && msg.params) {
      const p = this.pending.get(msg.params.requestId);
      p?.onProgress?.({
        step: msg.params.step,
        done: msg.params.done,
        total: msg.params.total ?? null,
        message: msg.params.message ?? '',
      });
      return;
    }
    if (msg.id === undefined || msg.id === null) {
      if (msg.error) this.onStderrLine(`[backend] ${msg.error.message}`);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.error) p.reject(toQdqError(msg.error, p.method));
    else p.resolve(msg.result);
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null, spawnError?: string): void {
    if (this.exited) return;
    this.exited = { code, signal };
    const tail = this.stderrTail
      .filter((l) => l.trim())
      .slice(-8)
      .join('\n');
    for (const [, p] of this.pending) {
      if (this.killedForCancel) {
        p.reject(
          new QdqError(
            'cancelled',
            `${p.method} cancelled (the backend did not stop within ${Math.round((this.opts.cancelGraceMs ?? 5000) / 1000)} s and was stopped)`,
            'run the command again when you are ready',
          ),
        );
      } else if (spawnError) {
        p.reject(
          new QdqError(
            'interpreter',
            `cannot start the Python backend with ${this.opts.python}: ${spawnError}`,
            'check the interpreter path (--python or the qdq.python setting)',
          ),
        );
      } else {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        p.reject(
          new QdqError(
            'backend_died',
            `the Python backend ${how} during ${p.method}`,
            signal === 'SIGKILL'
              ? 'the system may have run out of memory; try fewer or smaller batches'
              : 'see the backend log above; run again, and report it if it repeats',
            tail || undefined,
          ),
        );
      }
    }
    this.pending.clear();
    for (const w of this.exitWaiters.splice(0)) w();
  }

  private send(msg: Record<string, unknown>): void {
    if (this.exited) return;
    this.child.stdin.write(JSON.stringify(msg) + '\n');
  }

  request<T = unknown>(
    method: string,
    params: Record<string, unknown> = {},
    opts: { onProgress?: ProgressCallback; cancel?: CancelToken } = {},
  ): Promise<T> {
    if (this.exited) {
      return Promise.reject(
        new QdqError(
          'backend_died',
          `the Python backend is not running (cannot send ${method})`,
          'run the command again',
        ),
      );
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      let killTimer: NodeJS.Timeout | undefined;
      let unsubscribe: () => void = () => undefined;
      const finish = () => {
        if (killTimer) clearTimeout(killTimer);
        unsubscribe();
      };
      this.pending.set(id, {
        method,
        onProgress: opts.onProgress,
        resolve: (v) => {
          finish();
          resolve(v as T);
        },
        reject: (e) => {
          finish();
          reject(e);
        },
      });
      this.send({ jsonrpc: '2.0', id, method, params });
      if (opts.cancel) {
        unsubscribe = opts.cancel.onCancel(() => {
          if (!this.pending.has(id)) return;
          this.send({ jsonrpc: '2.0', method: '$/cancelRequest', params: { id } });
          killTimer = setTimeout(() => {
            if (!this.pending.has(id)) return;
            this.killedForCancel = true;
            this.kill();
          }, this.opts.cancelGraceMs ?? 5000);
        });
      }
    });
  }

  /** Asks the backend to exit; kills it if it does not within `graceMs`. */
  async shutdown(graceMs = 3000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((r) => this.exitWaiters.push(r));
    this.request('shutdown').catch(() => undefined);
    this.child.stdin.end();
    const timer = setTimeout(() => this.kill(), graceMs);
    await exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  waitForExit(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((r) => this.exitWaiters.push(r));
  }
}

function toQdqError(error: any, method: string): QdqError {
  const data = error && typeof error.data === 'object' && error.data ? error.data : {};
  const kind = (
    typeof data.kind === 'string' && KNOWN_KINDS.has(data.kind)
      ? data.kind
      : error?.code === -32601
        ? 'protocol'
        : 'internal'
  ) as QdqErrorKind;
  const message = typeof data.message === 'string' ? data.message : String(error?.message ?? `${method} failed`);
  const hint =
    typeof data.hint === 'string'
      ? data.hint
      : kind === 'protocol'
        ? 'the backend is older or newer than this qdq; reinstall qdq'
        : 'see the backend log';
  return new QdqError(kind, message, hint, typeof data.detail === 'string' ? data.detail : undefined);
}
