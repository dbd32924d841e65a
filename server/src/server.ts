// The qdq language server: wiring only. The connection's state lives in a Session (server/src/session); each LSP
// method is one module under features/methods, registered here and routed through features/methods/register.ts
// (missing documents, logging, internal errors). Analysis, rules and fixes live in their own folders.
import { lsp } from './features/lsp';
import type { Connection } from './features/lsp';
import { Session } from './session/session';
import * as initialize from './features/methods/initialize';
import * as configuration from './features/methods/configuration';
import * as clientState from './features/methods/clientState';
import * as publishDiagnostics from './features/methods/publishDiagnostics';
import * as hover from './features/methods/hover';
import * as codeAction from './features/methods/codeAction';
import * as codeActionResolve from './features/methods/codeActionResolve';
import * as executeCommand from './features/methods/executeCommand';
import * as report from './features/methods/report';
import * as quantizedModuleSource from './features/methods/quantizedModuleSource';
import * as probeInterpreters from './features/methods/probeInterpreters';
import * as fileState from './features/methods/fileState';
import * as codeLens from './features/methods/codeLens';
import * as sensitivity from './features/methods/sensitivity';

const METHODS = [
  initialize,
  configuration,
  clientState,
  publishDiagnostics,
  hover,
  codeAction,
  codeActionResolve,
  executeCommand,
  report,
  quantizedModuleSource,
  probeInterpreters,
  fileState,
  codeLens,
  sensitivity,
];

export function startServer(connection: Connection = lsp.createConnection(lsp.ProposedFeatures.all)): Connection {
  const session = new Session(connection);
  for (const method of METHODS) method.register(session);

  // A bug in one request must not take the server down with the user's editor session.
  process.on('uncaughtException', (err) => session.log(`qdq: unexpected error: ${err.stack ?? err.message}`));
  process.on('unhandledRejection', (err) =>
    session.log(`qdq: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
  );

  session.documents.listen(connection);
  connection.listen();
  return connection;
}
