// workspace/executeCommand: the qdq.* commands (features/executeCommand.ts), with the session as their context.
import { executeCommand, type CommandContext } from '../executeCommand';
import type { Session } from '../../session/session';

export function commandContext(session: Session): CommandContext {
  return {
    connection: session.connection,
    documents: session.documents,
    calibration: session.calibration,
    editCaps: () => session.features.edits,
    settings: () => session.settings,
    trusted: () => session.trusted,
    clientPython: () => session.clientPython,
    setPython: (p) => {
      session.clientPython = p;
    },
    status: (s) => session.sendStatus(s),
    refreshDiagnostics: () => session.refreshAllDiagnostics(),
    workspaceFolders: () => session.workspaceFolders,
    log: (m) => session.log(m),
  };
}

export function register(session: Session): void {
  const context = commandContext(session);
  session.connection.onExecuteCommand((params, token) =>
    executeCommand(context, params.command, params.arguments ?? [], token, params.workDoneToken),
  );
}
