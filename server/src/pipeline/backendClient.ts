// The Python backend (`python -m qdq_backend`) as a child process speaking newline-delimited JSON-RPC 2.0
// over stdin/stdout (docs/backend-protocol.md). stderr is log text.
// Every message is declared once in backend/qdq_backend/protocol.schema.json and checked here on the way in:
// a malformed result, progress or error is a `protocol` error naming the field.
import { spawn, ChildProcessWithoutNullStreams } from 'child_process';
import * as fs from 'fs';
import { QdqError, QdqErrorKind, CancelToken } from './errors';
import { findViolation } from './backendProtocol';
import { defaultBackendDir, withBackendOnPath } from '../common/paths';
import {
  BackendMethod,
  BackendMethods,
  ERROR_KINDS,
  ErrorData,
  Progress,
  PROTOCOL_SCHEMA,
} from './backendProtocol.generated';

export type ProgressEvent = Omit<Progress, 'requestId'>;
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

const KNOWN_KINDS = new Set<string>(ERROR_KINDS);

interface RpcMessage {
  id?: number | null;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: { code?: number; message?: string; data?: unknown };
}

type Params<M extends BackendMethod> = BackendMethods[M]['params'];
type Result<M extends BackendMethod> = BackendMethods[M]['result'];
export interface RequestOptions {
  onProgress?: ProgressCallback;
  cancel?: CancelToken;
}

/** The problem with a message from the backend against the schema definition `name`, or null. */
function violation(name: string, value: unknown, where: string): string | null {
  return findViolation(PROTOCOL_SCHEMA, name, value, where);
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
    const settle = (code: number | null, signal: NodeJS.Signals | null) => {
      if (this.exited) return;
      if (errBuf) this.onStderrLine(errBuf);
      errBuf = '';
      // A process the model started may still hold the pipes open: stop reading rather than wait for their EOF.
      child.stdout.destroy();
      child.stderr.destroy();
      this.onExit(code, signal);
    };
    child.on('exit', (code, signal) => {
      // Whatever the backend left in its process group is orphaned work (a model's `sleep 60`, a data loader).
      killProcessGroup(child.pid);
      // 'close' normally follows at once (the last replies and log lines read); do not wait past a short drain.
      setTimeout(() => settle(code, signal), STDIO_DRAIN_MS).unref();
    });
    child.on('close', (code, signal) => settle(code, signal));
    // A closed pipe after the child died surfaces as EPIPE on stdin; the exit handler reports it.
    child.stdin.on('error', () => undefined);
  }

  static start(opts: BackendOptions): BackendClient {
    const env = withBackendOnPath(opts.env ?? process.env, opts.backendDir ?? defaultBackendDir());
    env.PYTHONUNBUFFERED = '1';
    const child = spawn(opts.python, ['-m', 'qdq_backend'], {
      cwd: opts.projectDir,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group (POSIX): a terminal's Ctrl-C reaches only the CLI, which cancels the request over
      // the protocol, and kill() can end everything the backend started with one signal to the group.
      detached: process.platform !== 'win32',
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
    let msg: RpcMessage;
    try {
      msg = JSON.parse(line) as RpcMessage;
    } catch {
      // Something in the user's code printed to stdout; keep it as log text rather than failing.
      this.onStderrLine(`[stdout] ${line}`);
      return;
    }
    if (msg === null || typeof msg !== 'object') return this.onStderrLine(`[stdout] ${line}`);
    if (msg.method === 'progress') return this.onProgressMessage(msg.params);
    if (msg.id === undefined || msg.id === null) {
      if (msg.error) this.onStderrLine(`[backend] ${msg.error.message}`);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.error) return p.reject(toQdqError(msg.error, p.method));
    const shape = (PROTOCOL_SCHEMA['x-methods'] as Record<string, { result: string } | undefined>)[p.method];
    const problem = shape ? violation(shape.result, msg.result ?? null, `${p.method} result`) : null;
    if (problem) p.reject(protocolError(problem));
    else p.resolve(msg.result);
  }

  private onProgressMessage(params: unknown): void {
    const problem = violation('Progress', params, 'progress');
    if (problem) return this.onStderrLine(`[backend] malformed message: ${problem}`);
    const { requestId, ...event } = params as Progress;
    this.pending.get(requestId)?.onProgress?.(event);
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

  // -- one typed method per backend method (the schema's x-methods) -------------------------------------
  initialize(opts: RequestOptions = {}): Promise<Result<'initialize'>> {
    return this.call('initialize', {}, opts);
  }
  load(params: Params<'load'>, opts: RequestOptions = {}): Promise<Result<'load'>> {
    return this.call('load', params, opts);
  }
  calibrate(params: Params<'calibrate'>, opts: RequestOptions = {}): Promise<Result<'calibrate'>> {
    return this.call('calibrate', params, opts);
  }
  setMethod(params: Params<'set_method'>, opts: RequestOptions = {}): Promise<Result<'set_method'>> {
    return this.call('set_method', params, opts);
  }
  export(params: Params<'export'>, opts: RequestOptions = {}): Promise<Result<'export'>> {
    return this.call('export', params, opts);
  }
  restoreModules(opts: RequestOptions = {}): Promise<Result<'restore_modules'>> {
    return this.call('restore_modules', {}, opts);
  }
  moduleSource(params: Params<'module_source'>, opts: RequestOptions = {}): Promise<Result<'module_source'>> {
    return this.call('module_source', params, opts);
  }
  qat(params: Params<'qat'>, opts: RequestOptions = {}): Promise<Result<'qat'>> {
    return this.call('qat', params, opts);
  }
  sensitivity(params: Params<'sensitivity'>, opts: RequestOptions = {}): Promise<Result<'sensitivity'>> {
    return this.call('sensitivity', params, opts);
  }
  tune(params: Params<'tune'>, opts: RequestOptions = {}): Promise<Result<'tune'>> {
    return this.call('tune', params, opts);
  }

  /** Any method by name, typed by the schema (`x-methods`): for callers that pick the method at run time. */
  call<M extends BackendMethod>(method: M, params: Params<M>, opts: RequestOptions = {}): Promise<Result<M>> {
    return this.request<Result<M>>(method, params as unknown as Record<string, unknown>, opts);
  }

  /**
   * The JSON-RPC transport under the typed methods, for protocol tests that send what the schema does not allow;
   * results of known methods are checked against the schema. Pipeline code calls the typed methods instead.
   */
  request<T = unknown>(method: string, params: Record<string, unknown> = {}, opts: RequestOptions = {}): Promise<T> {
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
    // Taken now: once the backend exits, a child in a session of its own is re-parented and cannot be found.
    const below = this.child.pid === undefined ? [] : descendants(this.child.pid);
    const exited = new Promise<void>((r) => this.exitWaiters.push(r));
    this.call('shutdown', {}).catch(() => undefined);
    this.child.stdin.end();
    const timer = setTimeout(() => this.kill(), graceMs);
    await exited;
    clearTimeout(timer);
    killAll(below);
  }

  /** Kills the backend and every process it started: its group, and (Linux) descendants in their own sessions. */
  kill(): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    const below = descendants(pid);
    if (!this.exited) this.child.kill('SIGKILL');
    killProcessGroup(pid);
    killAll(below);
  }

  waitForExit(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((r) => this.exitWaiters.push(r));
  }
}

/** How long to keep reading stdout/stderr after the backend exited, for lines still in the pipe. */
const STDIO_DRAIN_MS = 200;

function killProcessGroup(pid: number | undefined): void {
  if (pid === undefined || process.platform === 'win32') return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* no such group: nothing left in it */
  }
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
}

/** Processes below `pid`, found through /proc (Linux; elsewhere none): those in a new session escape the group. */
export function descendants(pid: number): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const e of entries) {
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
    } catch {
      /* exited meanwhile */
    }
  }
  const found: number[] = [];
  const stack = [pid];
  while (stack.length) {
    for (const c of children.get(stack.pop() as number) ?? []) {
      found.push(c);
      stack.push(c);
    }
  }
  return found;
}

function protocolError(problem: string): QdqError {
  return new QdqError(
    'protocol',
    `malformed message from the Python backend: ${problem}`,
    'the qdq pipeline and its Python backend disagree on the protocol (a bug in qdq); reinstall qdq, and report it if it repeats',
  );
}

function toQdqError(error: NonNullable<RpcMessage['error']>, method: string): QdqError {
  if (error.code === -32601) {
    return new QdqError(
      'protocol',
      String(error.message ?? `${method} failed`),
      'the backend is older or newer than this qdq; reinstall qdq',
    );
  }
  if (error.code !== -32000) {
    return new QdqError(
      'protocol',
      `${method}: ${String(error.message ?? 'invalid request')}`,
      'this is a bug in qdq; report it',
    );
  }
  const problem = violation('ErrorData', error.data, `${method} error.data`);
  if (problem) return protocolError(problem);
  const data = error.data as ErrorData;
  const kind = (KNOWN_KINDS.has(data.kind) ? data.kind : 'internal') as QdqErrorKind;
  return new QdqError(kind, data.message, data.hint, data.detail);
}
