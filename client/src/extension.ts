// The qdq VS Code extension: starts the qdq language server and forwards commands to it.
// All intelligence lives in the server (server/src); this file only wires VS Code UI to LSP messages
// (rust-analyzer's "thin client" split). Custom messages are declared once in server/src/protocol/lsp_ext.ts,
// commands once in server/src/protocol/commands.ts.
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
  TransportKind,
} from 'vscode-languageclient/node';
import {
  BackendStatusNotification,
  CalibrationUpdatedNotification,
  SensitivityUpdatedNotification,
  ShowSensitivityCommand,
  type QdqInitializationOptions,
  SetPythonInterpreterNotification,
  SetWorkspaceTrustNotification,
  SETTINGS_SECTION,
  ShowQuantizedSourceCommand,
  type QuantizedModuleSourceParams,
} from '../../server/src/protocol/lsp_ext';
import { onPythonInterpreterChanged, selectedPythonInterpreter } from './python';
import { activeUri, ServerCommands } from './serverCommands';
import { trackFileState } from './fileContext';
import { openSource, QUANTIZED_SCHEME, quantizedSources, showQuantizedSource, type SourceLink } from './sourceViews';
import { BackendStatusItem } from './status';

/** What activate() returns: used by the extension-host tests, not a public API. */
export interface QdqExtensionApi {
  client(): LanguageClient | undefined;
  backendStatus(): { state: string; python?: string; torchVersion?: string; message?: string };
  /** Resolves once the language client is running (rejects when it could not start). */
  ready: Promise<void>;
}

let client: LanguageClient | undefined;

function serverOptions(context: vscode.ExtensionContext): ServerOptions {
  const serverModule = context.asAbsolutePath(path.join('bin', 'qdq-language-server.js'));
  return {
    run: { module: serverModule, transport: TransportKind.ipc },
    debug: {
      module: serverModule,
      transport: TransportKind.ipc,
      options: { execArgv: ['--nolazy', '--inspect=6011'] },
    },
  };
}

function clientOptions(
  output: vscode.LogOutputChannel,
  initializationOptions: QdqInitializationOptions,
  commands: ServerCommands,
): LanguageClientOptions {
  return {
    documentSelector: [
      { scheme: 'file', language: 'python' },
      { scheme: 'file', pattern: '**/pyproject.toml' },
    ],
    synchronize: { configurationSection: SETTINGS_SECTION },
    outputChannel: output,
    initializationOptions,
    middleware: {
      // Every command the server registers goes through here, whether it comes from the palette, a code
      // action or another extension, so trust gating and the progress UI apply to all of them.
      executeCommand: (command, args, next) => commands.run(command, args, next),
    },
  };
}

function registerClientCommands(
  context: vscode.ExtensionContext,
  output: vscode.LogOutputChannel,
  log: (line: string) => void,
): void {
  context.subscriptions.push(
    vscode.commands.registerCommand('qdq.restartServer', async () => {
      log('restart requested');
      await client?.restart();
    }),
    vscode.commands.registerCommand('qdq.showOutput', () => output.show()),
    vscode.commands.registerCommand('qdq.openSource', (ref: SourceLink) => openSource(ref)),
    // Library models: the server patches the installed module in memory; shown read-only (a content provider).
    vscode.workspace.registerTextDocumentContentProvider(QUANTIZED_SCHEME, quantizedSources),
    vscode.commands.registerCommand(ShowQuantizedSourceCommand, (args: QuantizedModuleSourceParams) =>
      showQuantizedSource(client, args),
    ),
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      log('workspace trust granted');
      void client?.sendNotification(SetWorkspaceTrustNotification, { trusted: true });
    }),
  );
}

/** Once the client runs: server notifications to the status bar and the report, interpreter changes to the server. */
async function wireNotifications(
  context: vscode.ExtensionContext,
  languageClient: LanguageClient,
  status: BackendStatusItem,
  commands: ServerCommands,
  log: (line: string) => void,
): Promise<void> {
  languageClient.onNotification(BackendStatusNotification, (params) => status.update(params));
  languageClient.onNotification(SensitivityUpdatedNotification, () => commands.sensitivity.refresh());
  languageClient.onNotification(CalibrationUpdatedNotification, (params) => {
    log(`calibration updated for ${params.projectDir}`);
    commands.refreshReport(params.projectDir);
  });
  const sub = await onPythonInterpreterChanged(log, () => {
    void selectedPythonInterpreter(log).then((p) => {
      log(`Python extension interpreter changed: ${p ?? 'none'}`);
      void client?.sendNotification(SetPythonInterpreterNotification, { path: p });
    });
  });
  if (sub) context.subscriptions.push(sub);
  trackFileState(languageClient, context.subscriptions);
}

export async function activate(context: vscode.ExtensionContext): Promise<QdqExtensionApi> {
  const output = vscode.window.createOutputChannel('QDQ', { log: true });
  // The log channel stamps each line with the time itself.
  const log = (line: string) => output.info(`[client] ${line}`);
  const status = new BackendStatusItem();
  context.subscriptions.push(output, status);

  const pythonFromExtension = await withTimeout(selectedPythonInterpreter(log), 5000, undefined);
  if (pythonFromExtension) log(`Python extension selected interpreter: ${pythonFromExtension}`);
  const commands = new ServerCommands(
    () => client,
    log,
    () => output.show(),
  );
  const languageClient = new LanguageClient(
    'qdq',
    'QDQ Language Server',
    serverOptions(context),
    clientOptions(
      output,
      { workspaceTrusted: vscode.workspace.isTrusted, pythonInterpreter: pythonFromExtension },
      commands,
    ),
  );
  client = languageClient;
  languageClient.onDidChangeState((e) => {
    log(`language server ${State[e.oldState]} -> ${State[e.newState]}`);
    if (e.newState === State.Stopped)
      status.update({ state: 'error', message: 'language server stopped (see the QDQ output)' });
  });
  registerClientCommands(context, output, log);
  context.subscriptions.push(
    // Code lenses and the palette: the sensitivity view of the project of the given (or active) file.
    vscode.commands.registerCommand(ShowSensitivityCommand, (args?: { uri?: string }) =>
      commands.sensitivity.show(args?.uri ?? activeUri()?.toString()),
    ),
  );

  const ready = (async () => {
    await languageClient.start();
    await wireNotifications(context, languageClient, status, commands, log);
  })();
  ready.catch((err) => {
    log(`language server failed to start: ${(err as Error).message}`);
    status.update({ state: 'error', message: 'language server failed to start' });
    void vscode.window
      .showErrorMessage(`QDQ: the language server failed to start: ${(err as Error).message}`, 'Show Logs')
      .then((pick) => (pick ? output.show() : undefined));
  });
  // Activation waits for the server so that commands run from the palette (which activate us) find the
  // server's commands registered; a failed start is reported above and does not fail activation.
  await ready.catch(() => undefined);

  return { client: () => client, backendStatus: () => status.last, ready };
}

export async function deactivate(): Promise<void> {
  if (client) await client.stop().catch(() => undefined);
  client = undefined;
}

function withTimeout<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  return Promise.race([promise, new Promise<T>((resolve) => setTimeout(() => resolve(fallback), ms).unref?.())]);
}
