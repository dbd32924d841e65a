// The qdq.* commands the language server implements, as the VS Code client runs them: trust gating and a
// cancellable progress notification for the ones that run the user's code (from the command registry,
// server/src/protocol/commands.ts), the interpreter picker, the report panel, and one error message per failure.
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import {
  ExecuteCommandRequest,
  type LanguageClient,
  ResponseError,
  WorkDoneProgress,
  type WorkDoneProgressBegin,
  type WorkDoneProgressReport,
} from 'vscode-languageclient/node';
import {
  Commands,
  ReportRequest,
  type CommandArgs,
  type EditCommandResult,
  type ReportResult,
} from '../../server/src/protocol/lsp_ext';
import { commandSpec } from '../../server/src/protocol/commands';
import { pickInterpreter } from './interpreterPicker';
import { renderReportHtml } from './reportHtml';
import { SensitivityView } from './sensitivityView';
import { precisionSummary } from './precisionText';
import { describeCommandError, pyprojectTemplate } from './commandErrors';

type Next = (command: string, args: unknown[]) => unknown;

export class ServerCommands {
  private reportPanel: vscode.WebviewPanel | undefined;
  readonly sensitivity = new SensitivityView(() => this.client());

  constructor(
    private readonly client: () => LanguageClient | undefined,
    private readonly log: (line: string) => void,
    private readonly showOutput: () => void,
  ) {}

  /** The executeCommand middleware: every server command, from the palette, a code action or another extension. */
  async run(command: string, args: unknown[], next: Next): Promise<unknown> {
    const commandArgs = defaultArgs(args);
    if (command === Commands.selectInterpreter) return this.selectInterpreter(commandArgs, next);
    if (command === Commands.showReport) return this.showReport(commandArgs);
    const spec = commandSpec(command);
    if (!spec?.pipeline && !spec?.job) {
      const result = (await next(command, [commandArgs])) as EditCommandResult | undefined;
      // Refused, or nothing to change ("Nothing left to quantize."): say so instead of doing nothing visible.
      // The precision plan always says what it did (which file, how many sites).
      if (
        result?.message &&
        (result.applied === false || result.changedLines === 0 || command === Commands.applyPrecisionPlan)
      )
        void vscode.window.showInformationMessage(`QDQ: ${result.message}`);
      return result;
    }
    if (!vscode.workspace.isTrusted) return this.refuseUntrusted(command, spec.title);
    if (command === Commands.tune && commandArgs.maxDrop === undefined) {
      const budget = await askBudget();
      if (budget === undefined) return undefined;
      if (budget) commandArgs.maxDrop = budget;
    }
    return this.runBackend(command, spec.title, commandArgs);
  }

  private refuseUntrusted(command: string, title: string): undefined {
    // Not awaited: the command answers at once (refused) and the message stays until the user acts.
    void vscode.window
      .showWarningMessage(
        `QDQ: ${title} runs your model's Python code (to load, calibrate and export it), so it is disabled in an untrusted workspace. Diagnostics and quantize edits keep working. Trust this workspace to enable it.`,
        'Manage Workspace Trust',
      )
      .then((pick) => (pick ? vscode.commands.executeCommand('workbench.trust.manage') : undefined));
    this.log(`${command} refused: workspace not trusted`);
    return undefined;
  }

  /** Sends a command with a client-created work-done token, so the server's progress feeds a cancellable notification. */
  private runBackend(command: string, title: string, commandArgs: CommandArgs): Thenable<unknown> {
    const languageClient = this.client();
    if (!languageClient) return Promise.resolve(undefined);
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
            const increment = value.percentage !== undefined ? Math.max(0, value.percentage - lastPercent) : undefined;
            if (value.percentage !== undefined) lastPercent = value.percentage;
            progress.report({ message: value.message, increment });
          },
        );
        cancel.onCancellationRequested(() =>
          this.log(`${command}: cancelled by the user; the server stops the backend`),
        );
        try {
          const result: unknown = await languageClient.sendRequest(
            ExecuteCommandRequest.type,
            { command, arguments: [commandArgs], workDoneToken },
            cancel,
          );
          this.log(`${command} finished:\n${JSON.stringify(result, null, 2)?.slice(0, 4000)}`);
          this.announceFinished(command, title, commandArgs, result);
          return result;
        } catch (err) {
          if (cancel.isCancellationRequested) {
            this.announceCancelled(command, title, commandArgs);
            return undefined;
          }
          // Shown once here; not rethrown, or VS Code would show it a second time.
          this.showCommandError(title, err, commandArgs);
          return undefined;
        } finally {
          sub.dispose();
        }
      },
    );
  }

  private announceCancelled(command: string, title: string, args: CommandArgs): void {
    if (command !== Commands.qat) {
      void vscode.window.showInformationMessage(`QDQ: ${title} cancelled.`);
      return;
    }
    // QAT saves the step it stopped at (backend qat_run.py): offer to go on from there.
    void vscode.window
      .showInformationMessage(`QDQ: ${title} cancelled; the last step is saved in the checkpoint.`, 'Resume')
      .then((pick) => (pick ? vscode.commands.executeCommand(Commands.qat, { ...args, resume: true }) : undefined));
  }

  private announceFinished(command: string, title: string, args: CommandArgs, result: unknown): void {
    const precision = precisionSummary(command, result);
    if (precision) {
      if (command === Commands.sensitivity) void this.sensitivity.show(args.uri, true);
      const actions = command === Commands.tune ? ['Apply Precision Plan', 'Show Sensitivity'] : ['Show Report'];
      void vscode.window.showInformationMessage(`QDQ: ${precision}`, ...actions).then((pick) => {
        if (pick === 'Apply Precision Plan') return vscode.commands.executeCommand(Commands.applyPrecisionPlan, args);
        if (pick === 'Show Sensitivity') return this.sensitivity.show(args.uri);
        if (pick === 'Show Report') return vscode.commands.executeCommand(Commands.showReport, args);
        return undefined;
      });
      return;
    }
    if (command === Commands.calibrate) {
      void vscode.window.showInformationMessage('QDQ: calibration finished; hover a quantizer to see its range.');
      return;
    }
    void vscode.window
      .showInformationMessage(`QDQ: ${title} finished.`, 'Show Report')
      .then((pick) => (pick ? vscode.commands.executeCommand(Commands.showReport, args) : undefined));
  }

  private showCommandError(title: string, err: unknown, args: CommandArgs): void {
    const data = err instanceof ResponseError ? err.data : undefined;
    const view = describeCommandError(title, err instanceof Error ? err.message : String(err), data);
    this.log(view.log);
    void vscode.window.showErrorMessage(view.text, ...view.actions).then(async (pick) => {
      if (pick === 'Show Logs') this.showOutput();
      if (pick === 'Create pyproject.toml') await createPyproject(args);
    });
  }

  private async selectInterpreter(args: CommandArgs, next: Next): Promise<unknown> {
    const python = args.python ?? (await pickInterpreter(this.log, this.client(), args.uri));
    if (!python) return undefined;
    const info = (await next(Commands.selectInterpreter, [{ ...args, python }])) as
      { python: string; torchVersion?: string; problem?: string } | undefined;
    if (info?.problem) {
      void vscode.window.showWarningMessage(`QDQ: ${info.python}: ${info.problem}`);
    } else if (info) {
      void vscode.window.showInformationMessage(
        `QDQ: using ${info.python}${info.torchVersion ? ` (torch ${info.torchVersion})` : ''}.`,
      );
      // Remember the resolved path for this workspace (a bare "python3" would mean something else elsewhere).
      if (vscode.workspace.workspaceFolders?.length) {
        await vscode.workspace
          .getConfiguration('qdq')
          .update('pythonInterpreter', info.python || python, vscode.ConfigurationTarget.Workspace);
      }
    }
    return info;
  }

  async showReport(args: CommandArgs): Promise<ReportResult | null | undefined> {
    const client = this.client();
    if (!args.uri || !client) return undefined;
    const report = await client.sendRequest(ReportRequest, { uri: args.uri });
    if (!report) {
      void vscode.window.showInformationMessage(
        'QDQ: no report yet. Run "QDQ: Calibrate and Export" first; it writes report.json in the output folder.',
      );
      return report;
    }
    if (!this.reportPanel) {
      this.reportPanel = vscode.window.createWebviewPanel('qdq.report', 'QDQ Report', vscode.ViewColumn.Beside, {
        enableScripts: false,
        enableCommandUris: ['qdq.openSource', 'qdq.useCalibrationMethod'],
        localResourceRoots: [],
      });
      this.reportPanel.onDidDispose(() => (this.reportPanel = undefined));
    }
    this.reportPanel.webview.html = renderReportHtml(report.report, {
      cspSource: this.reportPanel.webview.cspSource,
      nonce: crypto.randomBytes(16).toString('base64'),
      reportPath: report.reportPath,
      projectDir: report.projectDir,
      qat: report.qat,
      tune: report.tune,
    });
    this.reportPanel.reveal(undefined, true);
    return report;
  }

  /** Refreshes the report panel, when one is open, after new results for `projectDir`. */
  refreshReport(projectDir: string): void {
    if (!this.reportPanel) return;
    // The server finds the project from a file in it: pyproject.toml's path, not the folder itself (whose
    // parent the server would search).
    const uri = vscode.Uri.joinPath(vscode.Uri.file(projectDir), 'pyproject.toml').toString();
    void this.showReport({ uri });
  }
}

/** The accuracy budget for QDQ: Tune Precision: undefined when dismissed, '' to use [tool.qdq] max-accuracy-drop. */
async function askBudget(): Promise<string | undefined> {
  return vscode.window.showInputBox({
    title: 'QDQ: Tune Precision',
    prompt:
      'Largest accepted accuracy drop: points of top-1 (0.5) or percent of FP32 (1%). Empty: [tool.qdq] max-accuracy-drop.',
    value: '0.5',
    validateInput: (v) =>
      v.trim() === '' || /^\d+(\.\d+)?\s*%?$/.test(v.trim())
        ? undefined
        : 'A number of points (0.5) or a percentage (1%).',
  });
}

/** "Create pyproject.toml": a [tool.qdq] table next to the file the command was about, opened to fill in. */
async function createPyproject(args: CommandArgs): Promise<void> {
  const about = args.uri ? vscode.Uri.parse(args.uri) : activeUri();
  if (!about || about.scheme !== 'file') return;
  const target = vscode.Uri.joinPath(about, '..', 'pyproject.toml');
  const modelFile = about.path.endsWith('.py') ? about.path.split('/').pop()! : 'model.py';
  const edit = new vscode.WorkspaceEdit();
  edit.createFile(target, { ignoreIfExists: true, contents: Buffer.from(pyprojectTemplate(modelFile), 'utf8') });
  await vscode.workspace.applyEdit(edit);
  await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(target));
}

/** The document a command is about: the argument when given, else the active Python editor. */
export function defaultArgs(args: unknown[]): CommandArgs {
  const first = args[0];
  if (first instanceof vscode.Uri) return { uri: first.toString() };
  if (first && typeof first === 'object') {
    const a = { ...(first as CommandArgs) };
    if (!a.uri) a.uri = activeUri()?.toString();
    return a;
  }
  return { uri: activeUri()?.toString() };
}

export function activeUri(): vscode.Uri | undefined {
  const editor = vscode.window.activeTextEditor;
  if (editor && editor.document.uri.scheme === 'file') return editor.document.uri;
  const folder = vscode.workspace.workspaceFolders?.[0];
  return folder ? vscode.Uri.joinPath(folder.uri, 'pyproject.toml') : undefined;
}
