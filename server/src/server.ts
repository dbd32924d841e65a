// The qdq language server: connection wiring only. Analysis, rules and fixes live in their own folders;
// each LSP method is one file under features/.
import * as fs from 'fs';
import * as path from 'path';
import { lsp } from './features/lsp';
import type {
  InitializeParams,
  InitializeResult,
  CodeAction,
  Diagnostic,
  Connection,
  TextDocumentChangeEvent,
} from './features/lsp';
import { QdqDocument, qdqDocumentsConfig } from './features/documents';
import { ruleDiagnostics, missingHelperDiagnostic } from './features/diagnostics';
import { hover, uriToPath } from './features/hover';
import { listCodeActions, resolveAction, isActionData, EditCapabilities } from './features/codeActions';
import { CalibrationStore, calibrationDiagnostics } from './features/calibration';
import { CommandContext, executeCommand, COMMAND_IDS, findProjectDir } from './features/executeCommand';
import { outDirOf } from './features/pipelineBridge';
import { configDiagnostics, isPyproject } from './features/configDiagnostics';

/** Only Python sources are parsed as Python (an editor may send any file it has open). */
function isPython(doc: QdqDocument): boolean {
  return doc.textDocument.languageId === 'python' || /\.pyi?$/.test(doc.uri);
}
import { defaultSettings, validateSettings, QdqSettings } from './settings';
import {
  CodeActionKinds,
  QdqInitializationOptions,
  SETTINGS_SECTION,
  SetWorkspaceTrustNotification,
  SetPythonInterpreterNotification,
  BackendStatusNotification,
  ReportRequest,
  Commands,
} from './protocol/lsp_ext';
import { libraryCodeActions, registerLibrarySource } from './features/librarySource';

/** Quiet time after the last edit before diagnostics are recomputed (keeps typing bursts to one analysis). */
const DIAGNOSTICS_DEBOUNCE_MS = 40;

export function startServer(connection: Connection = lsp.createConnection(lsp.ProposedFeatures.all)): Connection {
  const documents = new lsp.TextDocuments<QdqDocument>(qdqDocumentsConfig);
  const calibration = new CalibrationStore();
  const loadedProjects = new Map<string, string>();
  let settings: QdqSettings = defaultSettings();
  let reportedProblems = new Set<string>();
  let workspaceTrusted = true;
  let clientPython: string | undefined;
  let hasConfiguration = false;
  let canRegisterConfiguration = false;
  let editCaps: EditCapabilities = { documentChanges: false, createFiles: false, resolveEdits: false };
  const pendingDiagnostics = new Map<string, NodeJS.Timeout>();

  const log = (msg: string) => connection.console.log(msg);

  connection.onInitialize((params: InitializeParams): InitializeResult => {
    const caps = params.capabilities;
    const we = caps.workspace?.workspaceEdit;
    editCaps = {
      documentChanges: !!we?.documentChanges,
      createFiles: !!we?.resourceOperations?.includes('create'),
      resolveEdits: !!caps.textDocument?.codeAction?.resolveSupport?.properties.includes('edit'),
    };
    hasConfiguration = !!caps.workspace?.configuration;
    canRegisterConfiguration = !!caps.workspace?.didChangeConfiguration?.dynamicRegistration;
    const init = (params.initializationOptions ?? {}) as QdqInitializationOptions;
    if (init.workspaceTrusted === false) workspaceTrusted = false;
    if (typeof init.pythonInterpreter === 'string' && init.pythonInterpreter) clientPython = init.pythonInterpreter;
    return {
      capabilities: {
        textDocumentSync: {
          openClose: true,
          change: lsp.TextDocumentSyncKind.Incremental,
          save: { includeText: false },
        },
        hoverProvider: true,
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
  });

  connection.onInitialized(() => {
    if (hasConfiguration) {
      if (canRegisterConfiguration)
        connection.client
          .register(lsp.DidChangeConfigurationNotification.type, { section: SETTINGS_SECTION })
          .catch(() => undefined);
      void refreshSettings();
    }
    sendStatus();
  });

  async function refreshSettings(): Promise<void> {
    if (!hasConfiguration) return;
    let raw: unknown;
    try {
      raw = await connection.workspace.getConfiguration(SETTINGS_SECTION);
    } catch {
      return; // client without configuration support after all: keep the defaults
    }
    const result = validateSettings(raw);
    const previousTrt = settings.trtVersion;
    settings = result.settings;
    const fresh = result.problems.filter((p) => !reportedProblems.has(p));
    reportedProblems = new Set(result.problems);
    for (const p of fresh) connection.window.showWarningMessage(`qdq: ${p}`);
    if (previousTrt !== settings.trtVersion) for (const doc of documents.all()) scheduleDiagnostics(doc.uri, 0);
  }

  connection.onDidChangeConfiguration((change) => {
    if (hasConfiguration) void refreshSettings();
    else {
      // Clients that push settings instead of answering workspace/configuration.
      const raw = (change.settings as Record<string, unknown> | undefined)?.[SETTINGS_SECTION];
      settings = validateSettings(raw).settings;
      for (const doc of documents.all()) scheduleDiagnostics(doc.uri, 0);
    }
  });

  connection.onNotification(SetWorkspaceTrustNotification, (p) => {
    workspaceTrusted = !!p.trusted;
    sendStatus();
  });
  connection.onNotification(SetPythonInterpreterNotification, (p) => {
    clientPython = p.path || undefined;
    sendStatus();
  });

  function sendStatus(extra?: {
    state?: 'busy' | 'ready' | 'error';
    message?: string;
    python?: string;
    torchVersion?: string;
  }) {
    const state = !workspaceTrusted ? 'untrusted' : (extra?.state ?? 'unknown');
    const message = !workspaceTrusted ? 'Workspace not trusted: calibration and export are disabled' : extra?.message;
    void connection.sendNotification(BackendStatusNotification, {
      state,
      message,
      python: extra?.python ?? (settings.pythonInterpreter || clientPython),
      torchVersion: extra?.torchVersion,
    });
  }

  function publish(uri: string) {
    pendingDiagnostics.delete(uri);
    const doc = documents.get(uri);
    if (!doc) return;
    const version = doc.version;
    if (isPyproject(uri)) {
      let config: Diagnostic[] = [];
      try {
        config = configDiagnostics(doc.getText());
      } catch (err) {
        log(`qdq: checking ${uri} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      void connection.sendDiagnostics({ uri, version, diagnostics: config });
      return;
    }
    if (!isPython(doc)) return;
    try {
      doc.getIndex();
    } catch (err) {
      log(`qdq: analysis of ${uri} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    // Parse + index and the rules run in two turns of the event loop: an edit or a hover that arrives in between is
    // handled first, and the rules are not run for a version that is already out of date (large files, fast typing).
    setImmediate(() => publishRules(uri, version));
  }

  function publishRules(uri: string, version: number) {
    const doc = documents.get(uri);
    if (!doc || doc.version !== version) return;
    let diagnostics: Diagnostic[] = ruleDiagnostics(doc, settings.trtVersion, log);
    try {
      const helper = missingHelperDiagnostic(
        doc,
        (dir) => fs.existsSync(path.join(dir, 'qdq_quant.py')),
        uri.startsWith('file:') ? uriToPath(uri) : undefined,
      );
      if (helper) diagnostics.push(helper);
    } catch (err) {
      log(`qdq: helper check of ${uri} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    try {
      const file = uriToPath(uri);
      ensureCalibrationLoaded(file);
      if (calibration.forFile(file).length)
        diagnostics = diagnostics.concat(calibrationDiagnostics(calibration, file, doc.getIndex(), doc.getText()));
    } catch (err) {
      log(`qdq: calibration checks of ${uri} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    void connection.sendDiagnostics({ uri, version, diagnostics });
  }

  function scheduleDiagnostics(uri: string, delay = DIAGNOSTICS_DEBOUNCE_MS) {
    const pending = pendingDiagnostics.get(uri);
    if (pending) clearTimeout(pending);
    pendingDiagnostics.set(
      uri,
      setTimeout(() => publish(uri), delay),
    );
  }

  /**
   * Reads the results the pipeline saved for the file's project, again whenever calibration.json changed (a run
   * from the command line while the editor is open shows up on the next edit or hover).
   */
  function ensureCalibrationLoaded(file: string) {
    if (!path.isAbsolute(file)) return;
    const projectDir = findProjectDir(file);
    const calibrationFile = path.join(outDirOf(projectDir, settings), 'calibration.json');
    let stamp = 'absent';
    try {
      const st = fs.statSync(calibrationFile);
      stamp = `${st.mtimeMs}:${st.size}`;
    } catch {
      /* no results yet */
    }
    if (loadedProjects.get(projectDir) === stamp) return;
    loadedProjects.set(projectDir, stamp);
    if (stamp === 'absent') calibration.clear(projectDir);
    else calibration.loadFromDisk(projectDir, path.dirname(calibrationFile));
  }

  documents.onDidOpen((e) => scheduleDiagnostics(e.document.uri, 0));
  documents.onDidChangeContent((e) => scheduleDiagnostics(e.document.uri));
  documents.onDidClose((e) => {
    const pending = pendingDiagnostics.get(e.document.uri);
    if (pending) clearTimeout(pending);
    pendingDiagnostics.delete(e.document.uri);
    void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });

  connection.onHover((params) => {
    const doc = documents.get(params.textDocument.uri);
    if (!doc || !isPython(doc)) return null;
    try {
      ensureCalibrationLoaded(uriToPath(doc.uri));
      return hover(doc, params.position, calibration);
    } catch (err) {
      log(`qdq: hover failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return null;
    }
  });

  connection.onCodeAction((params) => {
    const doc = documents.get(params.textDocument.uri);
    if (!doc || !isPython(doc)) return [];
    try {
      return [...listCodeActions(doc, params, editCaps), ...libraryCodeActions(doc, params, workspaceTrusted)];
    } catch (err) {
      log(`qdq: code actions failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return [];
    }
  });

  connection.onCodeActionResolve((action: CodeAction) => {
    if (!isActionData(action.data)) return action;
    const doc = documents.get(action.data.uri);
    if (!doc)
      throw new lsp.ResponseError(
        lsp.ErrorCodes.InvalidParams,
        `The document ${action.data.uri} is not open any more.`,
      );
    try {
      return { ...action, ...resolveAction(doc, action.data, editCaps) };
    } catch (err) {
      if (err instanceof lsp.ResponseError) throw err;
      log(
        `qdq: resolving "${action.title}" failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
      throw new lsp.ResponseError(
        lsp.ErrorCodes.InternalError,
        `qdq could not compute "${action.title}": ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  });

  const commandContext: CommandContext = {
    connection,
    documents,
    calibration,
    editCaps: () => editCaps,
    settings: () => settings,
    trusted: () => workspaceTrusted,
    clientPython: () => clientPython,
    setPython: (p) => {
      clientPython = p;
    },
    status: sendStatus,
    refreshDiagnostics: () => {
      for (const doc of documents.all()) scheduleDiagnostics(doc.uri, 0);
    },
    log,
  };
  connection.onExecuteCommand((params, token) =>
    executeCommand(commandContext, params.command, params.arguments ?? [], token, params.workDoneToken),
  );
  connection.onRequest(ReportRequest, (p, token) =>
    executeCommand(commandContext, Commands.showReport, [{ uri: p.uri }], token),
  );
  registerLibrarySource(connection, {
    trusted: () => workspaceTrusted,
    python: () => settings.pythonInterpreter || clientPython,
    log,
  });

  connection.onShutdown(() => {
    for (const t of pendingDiagnostics.values()) clearTimeout(t);
    pendingDiagnostics.clear();
  });

  // A bug in one request must not take the server down with the user's editor session.
  process.on('uncaughtException', (err) => log(`qdq: unexpected error: ${err.stack ?? err.message}`));
  process.on('unhandledRejection', (err) =>
    log(`qdq: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
  );

  documents.listen(connection);
  connection.listen();
  return connection;
}
