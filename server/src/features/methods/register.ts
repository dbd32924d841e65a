// The one wrapper every LSP method handler goes through: it finds the document (a request about a document
// that is not open, or not Python, gets the method's empty answer), logs internal errors with their stack and
// turns them into a ResponseError the client can show; protocol errors (ResponseError) pass through.
import { lsp } from '../lsp';
import type { QdqDocument } from '../documents';
import type { Session } from '../../session/session';

/** Only Python sources are parsed as Python (an editor may send any file it has open). */
export function isPython(doc: QdqDocument): boolean {
  return doc.textDocument.languageId === 'python' || /\.pyi?$/.test(doc.uri);
}

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

/**
 * Wraps a handler that needs no document. `failure` decides what an internal error becomes: a value to answer
 * with (hover: null), or undefined to throw an InternalError naming the method.
 */
export function guarded<P, R>(
  session: Session,
  method: string,
  handler: (params: P) => R | Promise<R>,
  failure?: { answer: R },
): (params: P) => Promise<R> {
  return async (params: P) => {
    try {
      return await handler(params);
    } catch (err) {
      if (err instanceof lsp.ResponseError) throw err;
      session.log(`qdq: ${method} failed: ${describe(err)}`);
      if (failure) return failure.answer;
      throw new lsp.ResponseError(
        lsp.ErrorCodes.InternalError,
        `qdq: ${method} failed: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  };
}

/** Wraps a handler about an open Python document; `empty` is the answer without one and after an internal error. */
export function onPythonDocument<P extends { textDocument: { uri: string } }, R>(
  session: Session,
  method: string,
  empty: R,
  handler: (doc: QdqDocument, params: P) => R | Promise<R>,
): (params: P) => Promise<R> {
  return guarded(
    session,
    method,
    (params: P) => {
      const doc = session.documents.get(params.textDocument.uri);
      return doc && isPython(doc) ? handler(doc, params) : empty;
    },
    { answer: empty },
  );
}
