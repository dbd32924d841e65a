// workspace/executeCommand: the qdq.* commands (features/executeCommand.ts), run against the session.
import { executeCommand } from '../executeCommand';
import type { Session } from '../../session/session';

export function register(session: Session): void {
  session.connection.onExecuteCommand((params, token) =>
    executeCommand(session, params.command, params.arguments ?? [], token, params.workDoneToken),
  );
}
