// One error type for everything the pipeline reports to a user: a kind (the backend's kinds plus the
// TypeScript side's own), what went wrong, and how to fix it. The CLI prints message + hint, never a stack.

export type QdqErrorKind =
  | 'config'
  | 'import'
  | 'user_code'
  | 'no_data'
  | 'shape'
  | 'nan'
  | 'oom'
  | 'cancelled'
  | 'export'
  | 'internal'
  // raised on the TypeScript side
  | 'interpreter'
  | 'backend_died'
  | 'protocol'
  | 'verify';

export class QdqError extends Error {
  constructor(
    readonly kind: QdqErrorKind,
    message: string,
    readonly hint: string,
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'QdqError';
  }
  toJSON(): Record<string, unknown> {
    return { kind: this.kind, message: this.message, hint: this.hint, detail: this.detail };
  }
}

/** Any thrown value as a QdqError (unexpected ones become `internal`, keeping their message). */
export function asQdqError(e: unknown): QdqError {
  if (e instanceof QdqError) return e;
  const err = e as { message?: string; hint?: string; name?: string };
  if (err && err.name === 'Error' && typeof err.hint === 'string')
    return new QdqError('config', err.message ?? String(e), err.hint);
  if (e && typeof e === 'object' && 'hint' in e && 'message' in e) {
    return new QdqError('config', String(err.message), String(err.hint));
  }
  return new QdqError(
    'internal',
    err && err.message ? err.message : String(e),
    'this is a bug in qdq; please report it with the command you ran',
  );
}

/** Cooperative cancellation shared by the CLI (Ctrl-C) and the server (LSP cancel). */
export class CancelToken {
  private listeners: (() => void)[] = [];
  cancelled = false;
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    for (const l of this.listeners.splice(0)) l();
  }
  onCancel(l: () => void): () => void {
    if (this.cancelled) {
      l();
      return () => undefined;
    }
    this.listeners.push(l);
    return () => {
      this.listeners = this.listeners.filter((x) => x !== l);
    };
  }
  throwIfCancelled(): void {
    if (this.cancelled) throw new QdqError('cancelled', 'cancelled', 'run the command again when you are ready');
  }
}
