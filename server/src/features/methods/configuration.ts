// workspace/didChangeConfiguration: settings pulled again (workspace/configuration) or taken from the push.
import type { Session } from '../../session/session';
import { SETTINGS_SECTION } from '../../protocol/lsp_ext';

export function register(session: Session): void {
  session.connection.onDidChangeConfiguration((change) => {
    if (session.features.pullConfiguration) void session.pullSettings();
    else {
      // Clients that push settings instead of answering workspace/configuration.
      session.applySettings((change.settings as Record<string, unknown> | undefined)?.[SETTINGS_SECTION]);
      session.refreshAllDiagnostics();
    }
  });
}
