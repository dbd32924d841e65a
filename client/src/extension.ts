// The qdq VS Code extension: starts the qdq language server and forwards commands to it.
// All intelligence lives in the server (server/src); this file only wires VS Code UI to LSP messages
// (rust-analyzer's "thin client" split). Custom messages are declared once in server/src/protocol/lsp_ext.ts.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  ResponseError,
  type ServerOptions,
  State,
  TransportKind,
  WorkDoneProgress,
  type WorkDoneProgressBegin,
  type WorkDoneProgressReport,
} from 'vscode-languageclient/node';
import {
  BackendStatusNotification,
  CalibrationUpdatedNotification,
  Commands,
  type BackendStatusParams,
  type CalibrationUpdatedParams,
  type CommandArgs,
  type EditCommandResult,
  type InterpreterInfo,
  type QdqInitializationOptions,
  SetPythonInterpreterNotification,
  SetWorkspaceTrustNotification,
  SETTINGS_SECTION,
  QuantizedModuleSourceRequest,
  ShowQuantizedSourceCommand,
  type QuantizedModuleSourceParams,
  type QuantizedModuleSourceResult,
} from '../../server/src/protocol/lsp_ext';
import { onPythonInterpreterChanged, selectedPythonInterpreter } from './python';
import { renderReportHtml } from './reportHtml';
import { BackendStatusItem } from './status';

/** Commands that run the user's model code in the Python backend: gated on workspace trust, shown with progress. */
const BACKEND_COMMANDS: ReadonlyMap<string, string> = new Map([
  [Commands.calibrate, 'Calibrate'],
  [Commands.export, 'Export ONNX'],
  [Commands.calibrateAndExport, 'Calibrate and Export'],
  [Commands.exportDynamic, 'Export Dynamic INT8'],
]);

/** What activate() returns: used by the extension-host tests, not a public API. */
export interface QdqExtensionApi {
  client(): LanguageClient | undefined;
  backendStatus(): { state: string; python?: string; torchVersion?: string; message?: string };
  /** Resolves once the language client is running (rejects when it could not start). */
  ready: Promise<void>;
}

let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<QdqExtensionApi> {
  const output = vscode.window.createOutputChannel('QDQ', { log: true });
  const log = (line: string) => output.appendLine(`[client ${new Date().toISOString()}] ${line}`);
  const status = new BackendStatusItem();
  context.subscriptions.push(output, status);

  const serverModule = context.asAbsolutePath(path.join('bin', 'qdq-language-server.js'));
  const serverOptions: ServerOptions = {
    run: { module: serverModule, transport: TransportKind.ipc },
    debug: {
      module: serverModule,
      transport: TransportKind.ipc,
      options: { execArgv: ['--nolazy', '--inspect=6011'] },
    },
  };

  const pythonFromExtension = await withTimeout(selectedPythonInterpreter(log), 5000, undefined);
  if (pythonFromExtension) log(`Python extension selected interpreter: ${pythonFromExtension}`);
  const initializationOptions: QdqInitializationOptions = {
    workspaceTrusted: vscode.workspace.isTrusted,
    pythonInterpreter: pythonFromExtension,
  };

  const clientOptions: LanguageClientOptions = {
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
      executeCommand: (command, args, next) => runServerCommand(command, args, next),
    },
  };

  client = new LanguageClient('qdq', 'QDQ Language Server', serverOptions, clientOptions);
  client.onDidChangeState((e: { oldState: number; newState: number }) => {
    log(`language server ${State[e.oldState]} -> ${State[e.newState]}`);
    if (e.newState === State.Stopped)
      status.update({ state: 'error', message: 'language server stopped (see the QDQ output)' });
  });

  /** Sends a command with a client-created work-done token, so the server's progress feeds a cancellable notification. */
  async function runServerCommand(
    command: string,
    args: unknown[],
    next: (command: string, args: unknown[]) => unknown,
  ): Promise<unknown> {
    const languageClient = client!;
    const commandArgs = defaultArgs(args);
    const title = BACKEND_COMMANDS.get(command);
    if (command === Commands.selectInterpreter) return selectInterpreter(commandArgs, next);
    if (command === Commands.showReport) return showReport(commandArgs, next);
    if (!title) {
      const result = await next(command, [commandArgs]);
      const edit = result as EditCommandResult | undefined;
      if (edit && edit.applied === false && edit.message)
        void vscode.window.showInformationMessage(`QDQ: ${edit.message}`);
      return result;
    }
    if (!vscode.workspace.isTrusted) {
      // Not awaited: the command answers at once (refused) and the message stays until the user acts.
      void vscode.window
        .showWarningMessage(
          `QDQ: ${title} runs your model's Python code (to load, calibrate and export it), so it is disabled in an untrusted workspace. Diagnostics and quantize edits keep working. Trust this workspace to enable it.`,
          'Manage Workspace Trust',
        )
        .then((pick) => (pick ? vscode.commands.executeCommand('workbench.trust.manage') : undefined));
      log(`${command} refused: workspace not trusted`);
      return undefined;
    }
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `QDQ: ${title}`, cancellable: true },
      async (progress, cancel) => {
        const workDoneToken = crypto.randomUUID();
        let lastPercent = 0;
        const sub = languageClient.onProgress(
          WorkDoneProgress.type,
          workDoneToken,
          (value: WorkDoneProgressBegin | WorkDoneProgressReport | { kind: 'end' }) => {
            if (value.kind === 'end') return;
            const v = value as WorkDoneProgressBegin | WorkDoneProgressReport;
            const increment = v.percentage !== undefined ? Math.max(0, v.percentage - lastPercent) : undefined;
            if (v.percentage !== undefined) lastPercent = v.percentage;
            progress.report({ message: v.message, increment });
          },
        );
        cancel.onCancellationRequested(() => log(`${command}: cancelled by the user; the server stops the backend`));
        try {
          const result = await languageClient.sendRequest(
            ExecuteCommandRequest.type,
            { command, arguments: [commandArgs], workDoneToken },
            cancel,
          );
          log(`${command} finished: ${JSON.stringify(result)?.slice(0, 2000)}`);
          if (command !== Commands.calibrate) {
            void vscode.window
              .showInformationMessage(`QDQ: ${title} finished.`, 'Show Report')
              .then((pick) => (pick ? vscode.commands.executeCommand(Commands.showReport, commandArgs) : undefined));
          } else {
            void vscode.window.showInformationMessage('QDQ: calibration finished; hover a quantizer to see its range.');
          }
          return result;
        } catch (err) {
          if (cancel.isCancellationRequested) {
            void vscode.window.showInformationMessage(`QDQ: ${title} cancelled.`);
            return undefined;
          }
          showCommandError(title, err);
          throw err;
        } finally {
          sub.dispose();
        }
      },
    );
  }

  function showCommandError(title: string, err: unknown): void {
    const data = err instanceof ResponseError ? (err.data as { hint?: string } | undefined) : undefined;
    const message = err instanceof Error ? err.message : String(err);
    log(`${title} failed: ${message}${data?.hint ? ` (${data.hint})` : ''}`);
    void vscode.window
      .showErrorMessage(`QDQ: ${title} failed: ${message}${data?.hint ? ` ${data.hint}` : ''}`, 'Show Logs')
      .then((pick) => (pick ? output.show() : undefined));
  }

  async function selectInterpreter(
    args: CommandArgs,
    next: (command: string, args: unknown[]) => unknown,
  ): Promise<unknown> {
    let python = args.python;
    if (!python) {
      const fromExtension = await withTimeout(selectedPythonInterpreter(log, activeUri()), 5000, undefined);
      const configured = vscode.workspace.getConfiguration(SETTINGS_SECTION).get<string>('pythonInterpreter');
      const candidates = [fromExtension, configured, 'python3', 'python', '/usr/bin/python3'].filter(
        (p, i, all): p is string => !!p && all.indexOf(p) === i,
      );
      const items: (vscode.QuickPickItem & { value?: string })[] = candidates.map((p) => ({
        label: p,
        value: p,
        description:
          p === fromExtension
            ? 'selected in the Python extension'
            : p === configured
              ? 'qdq.pythonInterpreter setting'
              : undefined,
      }));
      items.push({ label: '$(folder-opened) Browse…', value: undefined });
      const pick = await vscode.window.showQuickPick(items, {
        title: 'QDQ: Python interpreter with PyTorch (used for calibration and export)',
      });
      if (!pick) return undefined;
      python = pick.value;
      if (!python) {
        const files = await vscode.window.showOpenDialog({ canSelectMany: false, title: 'Python interpreter' });
        if (!files?.length) return undefined;
        python = files[0].fsPath;
      }
    }
    const info = (await next(Commands.selectInterpreter, [{ ...args, python }])) as InterpreterInfo | undefined;
    if (info?.problem) {
      void vscode.window.showWarningMessage(`QDQ: ${info.python}: ${info.problem}`);
    } else if (info) {
      void vscode.window.showInformationMessage(
        `QDQ: using ${info.python}${info.torchVersion ? ` (torch ${info.torchVersion})` : ''}.`,
      );
      // Remember the choice for this workspace (the server also re-reads the setting).
      if (vscode.workspace.workspaceFolders?.length) {
        await vscode.workspace
          .getConfiguration(SETTINGS_SECTION)
          .update('pythonInterpreter', python, vscode.ConfigurationTarget.Workspace);
      }
    }
    return info;
  }

  let reportPanel: vscode.WebviewPanel | undefined;
  async function showReport(args: CommandArgs, next: (command: string, args: unknown[]) => unknown): Promise<unknown> {
    const result = (await next(Commands.showReport, [args])) as unknown;
    const report = unwrapReport(result);
    if (!report) {
      void vscode.window.showInformationMessage(
        'QDQ: no report yet. Run "QDQ: Calibrate and Export" first; it writes report.json in the output folder.',
      );
      return undefined;
    }
    if (!reportPanel) {
      reportPanel = vscode.window.createWebviewPanel('qdq.report', 'QDQ Report', vscode.ViewColumn.Beside, {
        enableScripts: false,
        enableCommandUris: ['qdq.openSource'],
        localResourceRoots: [],
      });
      reportPanel.onDidDispose(() => (reportPanel = undefined));
    }
    reportPanel.webview.html = renderReportHtml(report.data, {
      cspSource: reportPanel.webview.cspSource,
      nonce: crypto.randomBytes(16).toString('base64'),
      reportPath: report.path,
      projectDir: report.projectDir,
    });
    reportPanel.reveal(undefined, true);
    return result;
  }

  context.subscriptions.push(
    vscode.commands.registerCommand('qdq.restartServer', async () => {
      log('restart requested');
      await client?.restart();
    }),
    vscode.commands.registerCommand('qdq.showOutput', () => output.show()),
    vscode.commands.registerCommand(
      'qdq.openSource',
      (ref: { file?: string; line?: number; cls?: string; attr?: string; projectDir?: string }) => openSource(ref),
    ),
    // Library models: the server patches the installed module in memory; shown read-only (a content provider).
    vscode.workspace.registerTextDocumentContentProvider(QUANTIZED_SCHEME, quantizedSources),
    vscode.commands.registerCommand(ShowQuantizedSourceCommand, (args: QuantizedModuleSourceParams) =>
      showQuantizedSource(args),
    ),
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      log('workspace trust granted');
      void client?.sendNotification(SetWorkspaceTrustNotification, { trusted: true });
    }),
  );

  const ready = (async () => {
    await client!.start();
    client!.onNotification(BackendStatusNotification, (params: BackendStatusParams) => status.update(params));
    client!.onNotification(CalibrationUpdatedNotification, (params: CalibrationUpdatedParams) => {
      log(`calibration updated for ${params.projectDir}`);
      if (reportPanel)
        void vscode.commands.executeCommand(Commands.showReport, {
          uri: vscode.Uri.file(params.projectDir).toString(),
        });
    });
    const sub = await onPythonInterpreterChanged(log, () => {
      void selectedPythonInterpreter(log).then((p) => {
        log(`Python extension interpreter changed: ${p ?? 'none'}`);
        void client?.sendNotification(SetPythonInterpreterNotification, { path: p });
      });
    });
    if (sub) context.subscriptions.push(sub);
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

/** The document a command is about: the argument when given, else the active Python editor. */
function defaultArgs(args: unknown[]): CommandArgs {
  const first = args[0];
  if (first instanceof vscode.Uri) return { uri: first.toString() };
  if (first && typeof first === 'object') {
    const a = { ...(first as CommandArgs) };
    if (!a.uri) a.uri = activeUri()?.toString();
    return a;
  }
  return { uri: activeUri()?.toString() };
}

function activeUri(): vscode.Uri | undefined {
  const editor = vscode.window.activeTextEditor;
  if (editor && editor.document.uri.scheme === 'file') return editor.document.uri;
  const folder = vscode.workspace.workspaceFolders?.[0];
  return folder ? vscode.Uri.joinPath(folder.uri, 'pyproject.toml') : undefined;
}

/** report.json content from whatever the server returned: the report itself or {report, path, projectDir}. */
function unwrapReport(result: unknown): { data: unknown; path?: string; projectDir?: string } | undefined {
  if (!result || typeof result !== 'object') return undefined;
  const r = result as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  if (r.report && typeof r.report === 'object') {
    return { data: r.report, path: str(r.path) ?? str(r.reportPath), projectDir: str(r.projectDir) };
  }
  return { data: r, path: str(r.report_path), projectDir: str(r.project_dir) };
}

const QUANTIZED_SCHEME = 'qdq-quantized';
const quantizedTexts = new Map<string, string>();
const quantizedSources: vscode.TextDocumentContentProvider = {
  provideTextDocumentContent: (uri) => quantizedTexts.get(uri.toString()) ?? '',
};

/** qdq.showQuantizedSource: asks the server for the patched library module and opens it read-only. */
async function showQuantizedSource(args: QuantizedModuleSourceParams): Promise<void> {
  if (!client) return;
  try {
    const result = (await client.sendRequest(QuantizedModuleSourceRequest, args)) as QuantizedModuleSourceResult;
    const uri = vscode.Uri.from({ scheme: QUANTIZED_SCHEME, path: `/${result.module}.quantized.py` });
    quantizedTexts.set(uri.toString(), result.text);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.languages.setTextDocumentLanguage(doc, 'python');
    await vscode.window.showTextDocument(doc, { preview: true });
    void vscode.window.showInformationMessage(result.message);
  } catch (err) {
    void vscode.window.showErrorMessage(`qdq: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function openSource(ref: {
  file?: string;
  line?: number;
  cls?: string;
  attr?: string;
  projectDir?: string;
}): Promise<void> {
  if (!ref?.file) return;
  let file = ref.file;
  if (!path.isAbsolute(file)) {
    const base = ref.projectDir ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '';
    file = path.join(base, file);
  }
  if (!fs.existsSync(file)) {
    void vscode.window.showWarningMessage(`QDQ: ${file} no longer exists.`);
    return;
  }
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
  const line = Math.max(
    0,
    Math.min((ref.line ?? siteLine(doc.getText(), ref.cls, ref.attr) ?? 1) - 1, doc.lineCount - 1),
  );
  const range = new vscode.Range(line, 0, line, 0);
  await vscode.window.showTextDocument(doc, { selection: range, preview: false });
}

/** 1-based line of `self.<attr> = ...` inside `class <cls>` when the report has no line number, else undefined. */
export function siteLine(text: string, cls?: string, attr?: string): number | undefined {
  // Names come from report.json: only plain Python identifiers are searched for.
  if (!attr || !/^\w+/.test(attr) || (cls && !/^\w+$/.test(cls))) return undefined;
  const lines = text.split(/\r?\n/);
  const start = cls
    ? Math.max(
        0,
        lines.findIndex((l) => new RegExp(`^\\s*class\\s+${cls}\\b`).test(l)),
      )
    : 0;
  const name = attr.split('.')[0];
  const at = lines.findIndex((l, i) => i >= start && new RegExp(`self\\.${name}\\s*=`).test(l));
  return at >= 0 ? at + 1 : undefined;
}

function withTimeout<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  return Promise.race([promise, new Promise<T>((resolve) => setTimeout(() => resolve(fallback), ms).unref?.())]);
}
