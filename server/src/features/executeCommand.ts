// workspace/executeCommand: the qdq.* commands. Edit commands run the fix engine and send workspace/applyEdit;
// backend commands forward to the pipeline with work-done progress, and the LSP cancellation token is turned
// into an AbortSignal that the pipeline passes to the backend ($/cancelRequest, then kill).
import * as fs from 'fs';
import * as path from 'path';
import { lsp } from './lsp';
import type { CancellationToken, ProgressToken, WorkDoneProgressReporter } from './lsp';
import type { Session } from '../session/session';
import { findProjectDir } from './project';
import { buildWorkspaceEdit, computeFix, HELPER_FILE, helperSource } from './codeActions';
import { uriToPath } from './hover';
import {
  CalibrationUpdatedNotification,
  CalibrationUpdatedParams,
  CommandArgs,
  Commands,
  EditCommandResult,
  SensitivityUpdatedNotification,
} from '../protocol/lsp_ext';
import { commandSpec, SERVER_COMMAND_IDS } from '../protocol/commands';
import * as pipeline from './pipelineBridge';
import { CALIBRATION_METHODS, type Method } from '../common/knobs';
import { runJob } from './precisionJobs';
import { applyPrecisionPlan } from './precisionPlan';

export const COMMAND_IDS = SERVER_COMMAND_IDS;

/** Writes qdq_quant.py into `dir` unless one is there (the user owns it once it exists). */
export function writeHelperFile(dir: string): boolean {
  const target = path.join(dir, HELPER_FILE);
  if (fs.existsSync(target)) return false;
  const tmp = path.join(dir, `.${HELPER_FILE}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, helperSource());
  fs.renameSync(tmp, target);
  return true;
}

function realDir(dir: string): string | undefined {
  try {
    return fs.realpathSync(path.resolve(dir));
  } catch {
    return undefined;
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!!rel && !rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * qdq.writeHelperFile runs without trust (it only writes qdq's own helper), so its `dir` is limited to what the
 * user opened: the folder of an open document, or a folder inside a workspace folder. Anything else (a path a
 * hostile project put in a code action's arguments) is refused.
 */
export function helperDirAllowed(ctx: Pick<Session, 'documents' | 'workspaceFolders'>, dir: string): string {
  const real = realDir(dir);
  const documentDirs = ctx.documents
    .all()
    .filter((d) => d.uri.startsWith('file:'))
    .map((d) => realDir(path.dirname(uriToPath(d.uri))));
  const folders = ctx.workspaceFolders.map(realDir);
  if (real && (documentDirs.includes(real) || folders.some((f) => f !== undefined && isInside(real, f)))) return real;
  throw new lsp.ResponseError(
    lsp.ErrorCodes.InvalidParams,
    `qdq.writeHelperFile writes qdq_quant.py only next to an open document or inside a workspace folder; ${dir} is neither.`,
  );
}

function firstArg(args: unknown[]): CommandArgs {
  const a = args[0];
  return a && typeof a === 'object' ? (a as CommandArgs) : typeof a === 'string' ? { uri: a } : {};
}

const UNTRUSTED_MESSAGE =
  "This workspace is not trusted, and this command would run the model's Python code. Trust the workspace " +
  '(Manage Workspace Trust) to calibrate and export; diagnostics, hovers and quantize edits work without it.';

export async function executeCommand(
  ctx: Session,
  command: string,
  args: unknown[],
  token: CancellationToken,
  workDoneToken?: ProgressToken,
): Promise<unknown> {
  const arg = firstArg(args);
  if (commandSpec(command)?.runsUserCode && !ctx.trusted) {
    throw new lsp.ResponseError(lsp.ErrorCodes.InvalidRequest, UNTRUSTED_MESSAGE, { kind: 'untrusted' });
  }
  switch (command) {
    case Commands.quantizeFile:
      return editCommand(ctx, arg, 'quantize');
    case Commands.removeAllQuantizers:
      return editCommand(ctx, arg, 'unquantize');
    case Commands.writeHelperFile: {
      if (typeof arg.dir !== 'string' || !arg.dir)
        throw new lsp.ResponseError(lsp.ErrorCodes.InvalidParams, 'qdq.writeHelperFile needs {dir}.');
      return { written: writeHelperFile(helperDirAllowed(ctx, arg.dir)) };
    }
    case Commands.showReport: {
      const file = requireFile(arg, command);
      return pipeline.readReport(findProjectDir(file), ctx.settings, (m) => ctx.log(m));
    }
    case Commands.selectInterpreter: {
      const python = arg.python;
      const file = arg.uri ? uriToPath(arg.uri) : undefined;
      const info = await pipeline.probeInterpreter(python ?? ctx.python(), file ? findProjectDir(file) : process.cwd());
      // Only an interpreter that can run the backend replaces the current one.
      if (python && !info.problem) ctx.clientPython = python;
      ctx.sendStatus({
        state: info.problem ? 'error' : 'ready',
        python: info.python,
        torchVersion: info.torchVersion,
        message: info.problem,
      });
      return info;
    }
    case Commands.calibrate:
    case Commands.export:
    case Commands.calibrateAndExport:
    case Commands.exportDynamic:
    case Commands.useCalibrationMethod:
    case Commands.sensitivity:
    case Commands.tune:
    case Commands.qat:
      return backendCommand(ctx, command, arg, token, workDoneToken);
    case Commands.applyPrecisionPlan:
      return applyPrecisionPlan(ctx, arg);
    default:
      throw new lsp.ResponseError(
        lsp.ErrorCodes.MethodNotFound,
        `Unknown qdq command "${command}". Known: ${COMMAND_IDS.join(', ')}.`,
      );
  }
}

function requireFile(arg: CommandArgs, command: string): string {
  if (!arg.uri)
    throw new lsp.ResponseError(
      lsp.ErrorCodes.InvalidParams,
      `${command} needs the model file: pass [{"uri": "file:///.../model.py"}].`,
    );
  return uriToPath(arg.uri);
}

async function editCommand(ctx: Session, arg: CommandArgs, op: 'quantize' | 'unquantize'): Promise<EditCommandResult> {
  if (!arg.uri) throw new lsp.ResponseError(lsp.ErrorCodes.InvalidParams, 'Pass the document: [{"uri": "..."}].');
  const doc = ctx.documents.get(arg.uri);
  if (!doc) throw new lsp.ResponseError(lsp.ErrorCodes.InvalidParams, `Open ${arg.uri} in the editor first.`);
  const fix = computeFix(doc.getText(), op, { kind: 'file' });
  if (fix.edits.length === 0)
    return {
      applied: true,
      changedLines: 0,
      message: op === 'quantize' ? 'Nothing left to quantize.' : 'No quantizers to remove.',
    };
  const caps = ctx.features.edits;
  const { edit, command } = buildWorkspaceEdit(doc, fix, caps);
  const result = await ctx.connection.workspace.applyEdit({
    label: op === 'quantize' ? 'Quantize file' : 'Remove quantizers',
    edit,
  });
  if (result.applied && command) writeHelperFile(path.dirname(uriToPath(doc.uri)));
  const changedLines = fix.edits.reduce(
    (n, e) => n + Math.max(1, e.newText.split('\n').length - 1, e.range.end.line - e.range.start.line + 1),
    0,
  );
  return { applied: result.applied, changedLines, message: result.failureReason };
}

/** qdq.useCalibrationMethod's method, checked (it comes from a link in the report page). */
function methodArg(command: string, arg: CommandArgs): Method | undefined {
  if (!commandSpec(command)?.pipeline?.reuseHistograms) return undefined;
  const m = CALIBRATION_METHODS.find((x) => x === arg.method);
  if (!m)
    throw new lsp.ResponseError(
      lsp.ErrorCodes.InvalidParams,
      `${command} needs method: one of ${CALIBRATION_METHODS.join(', ')} (got ${JSON.stringify(arg.method)})`,
    );
  return m;
}

function progressTitle(command: string): string {
  const spec = commandSpec(command);
  return spec?.pipeline?.progressTitle ?? spec?.job?.progressTitle ?? command;
}

async function backendCommand(
  ctx: Session,
  command: string,
  arg: CommandArgs,
  token: CancellationToken,
  workDoneToken?: ProgressToken,
): Promise<unknown> {
  const file = requireFile(arg, command);
  const projectDir = findProjectDir(file);
  const abort = new AbortController();
  // A client-provided token (workDoneToken) or a server-created progress: both can be cancelled by the user.
  let reporter: WorkDoneProgressReporter;
  if (workDoneToken !== undefined) reporter = ctx.connection.window.attachWorkDoneProgress(workDoneToken);
  else reporter = await ctx.connection.window.createWorkDoneProgress();
  const serverToken = (reporter as { token?: CancellationToken }).token;
  const subscriptions = [
    token.onCancellationRequested(() => abort.abort()),
    serverToken?.onCancellationRequested(() => abort.abort()),
  ];
  reporter.begin(progressTitle(command), 0, 'starting the Python backend', true);
  ctx.sendStatus({ state: 'busy', message: progressTitle(command) });
  try {
    const options: pipeline.RunOptions = {
      projectDir,
      modelFile: file,
      settings: ctx.settings,
      python: ctx.python(),
      method: methodArg(command, arg),
      signal: abort.signal,
      onProgress: (p) => reporter.report(p.percent ?? 0, p.message),
      log: (m) => ctx.log(m),
    };
    const result = commandSpec(command)?.job
      ? await runJob(command, arg, options)
      : await pipeline.run(command, options);
    if (command === Commands.sensitivity || command === Commands.tune) precisionResultsChanged(ctx, projectDir);
    if (result.quantizers) {
      ctx.calibration.set({ projectDir, quantizers: result.quantizers });
      ctx.refreshAllDiagnostics();
      const files = [...new Set(result.quantizers.map((q) => q.site?.file).filter((f): f is string => !!f))];
      void ctx.connection.sendNotification(CalibrationUpdatedNotification, {
        projectDir,
        files,
      } satisfies CalibrationUpdatedParams);
    }
    ctx.sendStatus({ state: 'ready', python: result.python, torchVersion: result.torchVersion });
    return result.summary;
  } catch (err) {
    if (abort.signal.aborted) {
      ctx.sendStatus({ state: 'ready', message: 'cancelled' });
      throw new lsp.ResponseError(
        lsp.LSPErrorCodes.RequestCancelled,
        `${progressTitle(command)} was cancelled; the backend was stopped.`,
      );
    }
    const info = pipeline.describeError(err);
    // A project problem (pyproject.toml, [tool.qdq]) is not a backend problem: the status bar keeps its state.
    if (info.kind === 'config') ctx.sendStatus({ message: `Project configuration: ${info.message}` });
    else ctx.sendStatus({ state: 'error', message: info.message });
    throw new lsp.ResponseError(
      lsp.ErrorCodes.InternalError,
      info.hint ? `${info.message} ${info.hint}` : info.message,
      info,
    );
  } finally {
    for (const s of subscriptions) s?.dispose();
    reporter.done();
  }
}

/** New sensitivity.json / tune.json: code lenses are asked again (when the client can) and an open view refreshes. */
function precisionResultsChanged(ctx: Session, projectDir: string): void {
  if (ctx.features.codeLensRefresh)
    void ctx.connection.sendRequest(lsp.CodeLensRefreshRequest.type).catch(() => undefined);
  void ctx.connection.sendNotification(SensitivityUpdatedNotification, { projectDir });
}
