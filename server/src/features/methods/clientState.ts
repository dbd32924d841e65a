// qdq/setWorkspaceTrust and qdq/setPythonInterpreter (client -> server): trust granted after start-up, and the
// Python extension's interpreter changing. Both are re-announced with qdq/backendStatus.
import type { Session } from '../../session/session';
import { SetPythonInterpreterNotification, SetWorkspaceTrustNotification } from '../../protocol/lsp_ext';

export function register(session: Session): void {
  session.connection.onNotification(SetWorkspaceTrustNotification, (p) => {
    // A JSON payload may carry anything: only the boolean true grants trust.
    session.trusted = p?.trusted === true;
    session.sendStatus();
  });
  session.connection.onNotification(SetPythonInterpreterNotification, (p) => {
    session.clientPython = typeof p?.path === 'string' && p.path ? p.path : undefined;
    session.sendStatus();
  });
}
