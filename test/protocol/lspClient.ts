// A minimal LSP client for tests: spawns `node bin/qdq-language-server.js --stdio` (no shell) and talks
// JSON-RPC over its stdio with vscode-jsonrpc, the library VS Code's own client is built on.
import { spawn, ChildProcess } from 'child_process';
import * as path from 'path';
import { pathToFileURL } from 'url';
import {
  createMessageConnection,
  MessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-jsonrpc/node';
import type {
  Diagnostic,
  PublishDiagnosticsParams,
  TextEdit,
  WorkspaceEdit,
  Range,
  Position,
  ClientCapabilities,
  RequestType,
} from 'vscode-languageserver-protocol';

export const REPO = process.cwd();
export const SERVER = path.join(REPO, 'bin', 'qdq-language-server.js');

export interface StartOptions {
  capabilities?: ClientCapabilities;
  initializationOptions?: unknown;
  /** Settings answered to workspace/configuration (section "qdq"). */
  settings?: Record<string, unknown>;
  /** Working directory of the server process (VS Code starts it in the first workspace folder). */
  cwd?: string;
}

/** Full-featured client capabilities, like VS Code's. */
export const FULL_CAPABILITIES: ClientCapabilities = {
  workspace: {
    workspaceEdit: { documentChanges: true, resourceOperations: ['create', 'rename', 'delete'] },
    configuration: true,
    applyEdit: true,
  },
  textDocument: {
    synchronization: { dynamicRegistration: false },
    publishDiagnostics: {
      relatedInformation: true,
      versionSupport: true,
      codeDescriptionSupport: true,
      dataSupport: true,
    },
    hover: { contentFormat: ['markdown', 'plaintext'] },
    codeAction: {
      dataSupport: true,
      resolveSupport: { properties: ['edit'] },
      codeActionLiteralSupport: {
        codeActionKind: { valueSet: ['', 'quickfix', 'refactor', 'refactor.rewrite', 'source', 'source.fixAll'] },
      },
    },
  },
  window: { workDoneProgress: true },
};

export class TestClient {
  readonly diagnostics = new Map<string, PublishDiagnosticsParams>();
  private waiters: {
    uri: string;
    pred: (p: PublishDiagnosticsParams) => boolean;
    resolve: (p: PublishDiagnosticsParams) => void;
  }[] = [];
  readonly logs: string[] = [];
  readonly appliedEdits: WorkspaceEdit[] = [];
  /** Work-done progress the server reported, per token: begin/report/end values in order. */
  readonly progress = new Map<
    string | number,
    { kind: string; title?: string; message?: string; percentage?: number; cancellable?: boolean }[]
  >();
  /** Custom notifications received (method -> params list). */
  readonly notifications = new Map<string, unknown[]>();
  /** Called on every $/progress value (tests use it to cancel at a chosen moment). */
  onProgress?: (token: string | number, value: { kind: string; message?: string }) => void;
  stderr = '';
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(
    readonly child: ChildProcess,
    readonly conn: MessageConnection,
  ) {}

  static async start(opts: StartOptions = {}): Promise<TestClient> {
    const child = spawn(process.execPath, [SERVER, '--stdio'], {
      cwd: opts.cwd ?? REPO,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const conn = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
    const client = new TestClient(child, conn);
    child.stderr!.on('data', (d: Buffer) => (client.stderr += d.toString()));
    child.on('exit', (code, signal) => (client.exited = { code, signal }));
    conn.onNotification('textDocument/publishDiagnostics', (p: PublishDiagnosticsParams) => {
      client.diagnostics.set(p.uri, p);
      client.waiters = client.waiters.filter((w) => {
        if (w.uri === p.uri && w.pred(p)) {
          w.resolve(p);
          return false;
        }
        return true;
      });
    });
    conn.onNotification('window/logMessage', (p: { message: string }) => {
      client.logs.push(p.message);
    });
    conn.onRequest('workspace/configuration', (p: { items: { section?: string }[] }) =>
      p.items.map(() => opts.settings ?? null),
    );
    conn.onRequest('client/registerCapability', () => null);
    conn.onRequest('window/workDoneProgress/create', (p: { token: string | number }) => {
      client.progress.set(p.token, []);
      return null;
    });
    conn.onNotification('$/progress', (p: { token: string | number; value: { kind: string } }) => {
      const list = client.progress.get(p.token) ?? [];
      list.push(p.value);
      client.progress.set(p.token, list);
      client.onProgress?.(p.token, p.value);
    });
    for (const method of ['qdq/backendStatus', 'qdq/calibrationUpdated']) {
      conn.onNotification(method, (p: unknown) => {
        const list = client.notifications.get(method) ?? [];
        list.push(p);
        client.notifications.set(method, list);
      });
    }
    conn.onRequest('workspace/applyEdit', (p: { edit: WorkspaceEdit }) => {
      client.appliedEdits.push(p.edit);
      return { applied: true };
    });
    conn.listen();
    await conn.sendRequest('initialize', {
      processId: process.pid,
      rootUri: pathToFileURL(REPO).toString(),
      capabilities: opts.capabilities ?? FULL_CAPABILITIES,
      initializationOptions: opts.initializationOptions,
      workspaceFolders: null,
    });
    await conn.sendNotification('initialized', {});
    return client;
  }

  open(uri: string, text: string, version = 1): Promise<void> {
    return this.conn.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'python', version, text },
    });
  }

  change(uri: string, version: number, changes: ({ range: Range; text: string } | { text: string })[]): Promise<void> {
    return this.conn.sendNotification('textDocument/didChange', {
      textDocument: { uri, version },
      contentChanges: changes,
    });
  }

  /** Resolves with the first diagnostics for `uri` matching `pred` (already received ones count). */
  waitForDiagnostics(
    uri: string,
    pred: (p: PublishDiagnosticsParams) => boolean = () => true,
    timeoutMs = 20000,
  ): Promise<PublishDiagnosticsParams> {
    const have = this.diagnostics.get(uri);
    if (have && pred(have)) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`no matching diagnostics for ${uri} within ${timeoutMs} ms; stderr: ${this.stderr.slice(-2000)}`),
          ),
        timeoutMs,
      );
      this.waiters.push({
        uri,
        pred,
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
      });
    });
  }

  /** Waits for diagnostics of a given document version (servers publish the version they analysed). */
  waitForVersion(uri: string, version: number): Promise<PublishDiagnosticsParams> {
    return this.waitForDiagnostics(uri, (p) => p.version === version);
  }

  /** Sends a request by method name, or through a typed RequestType of protocol/lsp_ext.ts (then typed both ways). */
  request<P, R>(type: RequestType<P, R, void>, params: P): Promise<R>;
  request<R>(method: string | { method: string }, params: unknown): Promise<R>;
  request<R>(method: string | { method: string }, params: unknown): Promise<R> {
    return this.conn.sendRequest(typeof method === 'string' ? method : method.method, params) as Promise<R>;
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      try {
        await Promise.race([this.conn.sendRequest('shutdown'), new Promise((r) => setTimeout(r, 3000))]);
        await this.conn.sendNotification('exit');
      } catch {
        /* already gone */
      }
      await new Promise<void>((resolve) => {
        if (this.exited) return resolve();
        const t = setTimeout(() => {
          this.child.kill();
          resolve();
        }, 3000);
        this.child.on('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.conn.dispose();
  }
}

export function fileUri(p: string): string {
  return pathToFileURL(p).toString();
}

function offsetAt(text: string, pos: Position): number {
  let line = 0;
  let i = 0;
  while (line < pos.line) {
    const nl = text.indexOf('\n', i);
    if (nl < 0) return text.length;
    i = nl + 1;
    line++;
  }
  const end = text.indexOf('\n', i);
  return Math.min(i + pos.character, end < 0 ? text.length : end);
}

/** Applies LSP TextEdits (all relative to the original text) the way an editor does. */
export function applyTextEdits(text: string, edits: TextEdit[]): string {
  const sorted = edits
    .map((e, i) => ({ start: offsetAt(text, e.range.start), end: offsetAt(text, e.range.end), newText: e.newText, i }))
    .sort((a, b) => a.start - b.start || a.i - b.i);
  let out = '';
  let last = 0;
  for (const e of sorted) {
    if (e.start < last) throw new Error('overlapping edits');
    out += text.slice(last, e.start) + e.newText;
    last = e.end;
  }
  return out + text.slice(last);
}

/** Applies didChange content changes in order, each relative to the text left by the previous one (LSP semantics). */
export function applyContentChanges(text: string, changes: { range: Range; text: string }[]): string {
  for (const c of changes) text = applyTextEdits(text, [{ range: c.range, newText: c.text }]);
  return text;
}

/** Applies a WorkspaceEdit to a set of in-memory files (uri -> text); creates files for CreateFile operations. */
export function applyWorkspaceEdit(files: Map<string, string>, edit: WorkspaceEdit): void {
  if (edit.documentChanges) {
    for (const change of edit.documentChanges) {
      if ('kind' in change) {
        if (change.kind === 'create') {
          if (!files.has(change.uri) || !change.options?.ignoreIfExists) files.set(change.uri, '');
        } else throw new Error(`unexpected resource operation ${change.kind}`);
      } else {
        const uri = change.textDocument.uri;
        const before = files.get(uri);
        if (before === undefined) throw new Error(`edit for a file that does not exist: ${uri}`);
        files.set(uri, applyTextEdits(before, change.edits as TextEdit[]));
      }
    }
  }
  for (const [uri, edits] of Object.entries(edit.changes ?? {})) {
    const before = files.get(uri);
    if (before === undefined) throw new Error(`edit for a file that does not exist: ${uri}`);
    files.set(uri, applyTextEdits(before, edits));
  }
}

export function codes(ds: Diagnostic[]): string[] {
  return ds.map((d) => String(d.code));
}
