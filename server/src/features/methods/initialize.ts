// initialize / initialized / shutdown: what the client can do, the capabilities qdq offers, start-up state.
import { lsp } from '../lsp';
import type { InitializeParams, InitializeResult } from '../lsp';
import { uriToPath } from '../hover';
import { COMMAND_IDS } from '../executeCommand';
import type { Session } from '../../session/session';
import { CodeActionKinds, SETTINGS_SECTION, type QdqInitializationOptions } from '../../protocol/lsp_ext';

/** The workspace folders as absolute paths (the root folder for clients that send no folders). */
function workspaceFolders(params: InitializeParams): string[] {
  const uris = params.workspaceFolders?.length
    ? params.workspaceFolders.map((f) => f.uri)
    : params.rootUri
      ? [params.rootUri]
      : [];
  return uris.filter((u) => u.startsWith('file:')).map(uriToPath);
}

function initialize(session: Session, params: InitializeParams): InitializeResult {
  const caps = params.capabilities;
  const we = caps.workspace?.workspaceEdit;
  session.features = {
    edits: {
      documentChanges: !!we?.documentChanges,
      createFiles: !!we?.resourceOperations?.includes('create'),
      resolveEdits: !!caps.textDocument?.codeAction?.resolveSupport?.properties.includes('edit'),
    },
    pullConfiguration: !!caps.workspace?.configuration,
    registerConfiguration: !!caps.workspace?.didChangeConfiguration?.dynamicRegistration,
    codeLensRefresh: !!caps.workspace?.codeLens?.refreshSupport,
  };
  const init = (params.initializationOptions ?? {}) as QdqInitializationOptions;
  // Absent means trusted (clients without a trust model); present, only the boolean true is trust.
  if (init.workspaceTrusted !== undefined) session.trusted = init.workspaceTrusted === true;
  if (typeof init.pythonInterpreter === 'string' && init.pythonInterpreter)
    session.clientPython = init.pythonInterpreter;
  session.workspaceFolders = workspaceFolders(params);
  return {
    capabilities: {
      textDocumentSync: { openClose: true, change: lsp.TextDocumentSyncKind.Incremental, save: { includeText: false } },
      hoverProvider: true,
      codeLensProvider: { resolveProvider: false },
      codeActionProvider: {
        codeActionKinds: [
          lsp.CodeActionKind.QuickFix,
          CodeActionKinds.quantize,
          CodeActionKinds.keepFloat,
          CodeActionKinds.remove,
          CodeActionKinds.fixAll,
          CodeActionKinds.dynamic,
        ],
        resolveProvider: true,
      },
      executeCommandProvider: { commands: [...COMMAND_IDS] },
    },
    serverInfo: { name: 'qdq-language-server', version: '0.1.0' },
  };
}

export function register(session: Session): void {
  const { connection } = session;
  connection.onInitialize((params) => initialize(session, params));
  connection.onInitialized(() => {
    if (session.features.pullConfiguration) {
      if (session.features.registerConfiguration)
        connection.client
          .register(lsp.DidChangeConfigurationNotification.type, { section: SETTINGS_SECTION })
          .catch(() => undefined);
      void session.pullSettings();
    }
    session.sendStatus();
  });
  connection.onShutdown(() => session.dispose());
}
