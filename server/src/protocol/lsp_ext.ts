// Every message qdq adds on top of the Language Server Protocol, in one place, so the server, the VS Code
// client and the tests agree on names and payloads. Standard LSP messages are not repeated here.
//
// Direction is written as "client -> server" or "server -> client". Any LSP client that does not know these
// messages still gets diagnostics, hovers and code actions: nothing here is required for the core features.
//
// Each message is a typed RequestType / NotificationType: handlers receive typed params and senders get typed
// results with no casts. Client and server resolve to one vscode-languageserver-protocol (package.json pins it),
// so these objects work with both libraries. `.method` is the wire name, for clients without vscode-jsonrpc.
import { NotificationType, RequestType } from 'vscode-languageserver-protocol';

/** Settings section read with workspace/configuration (see server/src/settings.ts for the fields). */
export const SETTINGS_SECTION = 'qdq';

/** Diagnostic `source` for everything qdq reports. */
export const DIAGNOSTIC_SOURCE = 'qdq';

/**
 * `initializationOptions` of the initialize request (client -> server).
 * `workspaceTrusted`: false when the editor's workspace is untrusted; the server then refuses every command that
 * would run the user's code (calibrate, export, ...) and says why; analysis, hovers and edits keep working.
 * Absent means trusted, because editors without a trust model (Neovim, Emacs) start servers only for files
 * the user opened on purpose and the backend still runs only on an explicit command.
 * `pythonInterpreter`: the interpreter the Python extension selected, when the client found one; a
 * `qdq.pythonInterpreter` setting wins over it.
 */
export interface QdqInitializationOptions {
  workspaceTrusted?: boolean;
  pythonInterpreter?: string;
}

/**
 * `qdq/setWorkspaceTrust` (client -> server notification): the user granted (or revoked) trust after start-up.
 */
export interface SetWorkspaceTrustParams {
  trusted: boolean;
}
export const SetWorkspaceTrustNotification = new NotificationType<SetWorkspaceTrustParams>('qdq/setWorkspaceTrust');

/**
 * `qdq/setPythonInterpreter` (client -> server notification): the Python extension's selected interpreter
 * changed. `path` undefined means "none selected".
 */
export interface SetPythonInterpreterParams {
  path?: string;
}
export const SetPythonInterpreterNotification = new NotificationType<SetPythonInterpreterParams>(
  'qdq/setPythonInterpreter',
);

/**
 * `qdq/backendStatus` (server -> client notification): state of the Python backend, for a status bar item.
 * Sent after initialization, whenever a command starts or ends, and when the interpreter changes.
 */
export type BackendState = 'unknown' | 'ready' | 'busy' | 'error' | 'untrusted';
export interface BackendStatusParams {
  state: BackendState;
  /** Interpreter path in use, when known. */
  python?: string;
  torchVersion?: string;
  /** What the backend is doing (busy) or what went wrong (error), one line. */
  message?: string;
}
export const BackendStatusNotification = new NotificationType<BackendStatusParams>('qdq/backendStatus');

/**
 * `qdq/calibrationUpdated` (server -> client notification): new calibration results were stored for a project,
 * so a client showing the report or the range chart can refresh. Hovers and range diagnostics are refreshed by
 * the server itself.
 */
export interface CalibrationUpdatedParams {
  projectDir: string;
  /** Files (absolute paths) that have quantizers in the new results. */
  files: string[];
}
export const CalibrationUpdatedNotification = new NotificationType<CalibrationUpdatedParams>('qdq/calibrationUpdated');

/**
 * `qdq/report` (client -> server request): the data of the last pipeline run for a project (what
 * `qdq.showReport` returns), or null when nothing ran yet. `uri` is any file of the project.
 */
export interface ReportParams {
  uri: string;
}
/** The answer to qdq/report and qdq.showReport: report.json as written, where it is, and the project it is for. */
export interface ReportResult {
  /** report.json's content (docs/backend-protocol.md); the client renders what it finds and names what is missing. */
  report: Record<string, unknown>;
  /** Absolute path of report.json. */
  reportPath: string;
  /** Absolute path of the project folder (relative source paths in the report are relative to it). */
  projectDir: string;
  /** qat.json and tune.json of the same out-dir, when `qdq qat` / `qdq tune` wrote them. */
  qat?: Record<string, unknown>;
  tune?: Record<string, unknown>;
}
export const ReportRequest = new RequestType<ReportParams, ReportResult | null, void>('qdq/report');

/**
 * Commands the server implements through workspace/executeCommand (client -> server). Argument 0 of every
 * command is an object; `uri` names the document (and through it the project) the command is about.
 * Long commands report LSP work-done progress and are cancellable; cancelling stops the Python backend.
 */
export const Commands = {
  calibrate: 'qdq.calibrate',
  export: 'qdq.export',
  calibrateAndExport: 'qdq.calibrateAndExport',
  exportDynamic: 'qdq.exportDynamic',
  quantizeFile: 'qdq.quantizeFile',
  removeAllQuantizers: 'qdq.removeAllQuantizers',
  showReport: 'qdq.showReport',
  /** The report's calibration explorer: amax by `method` from the saved histograms, then export and verify. */
  useCalibrationMethod: 'qdq.useCalibrationMethod',
  selectInterpreter: 'qdq.selectInterpreter',
  /** Internal: run by a code action after its edit when the client cannot create files itself. */
  writeHelperFile: 'qdq.writeHelperFile',
  /** Per site group: the metric with only that group INT8 / in float (`qdq sensitivity`), sensitivity.json. */
  sensitivity: 'qdq.sensitivity',
  /** The fewest groups kept in float within `maxDrop` (`qdq tune`, on a copy), tune.json. */
  tune: 'qdq.tune',
  /** Quantization-aware fine-tuning (`qdq qat`), exported and verified, qat.json. */
  qat: 'qdq.qat',
  /** tune.json's mixed.float_sites as keep_float edits of the open model file (workspace/applyEdit). */
  applyPrecisionPlan: 'qdq.applyPrecisionPlan',
} as const;
export type CommandId = (typeof Commands)[keyof typeof Commands];

/** Argument of every command above. */
export interface CommandArgs {
  uri?: string;
  /** qdq.selectInterpreter: the interpreter to use from now on (an absolute path, or a name on PATH). */
  python?: string;
  /** qdq.writeHelperFile: directory that gets qdq_quant.py. */
  dir?: string;
  /** qdq.useCalibrationMethod: max | entropy | percentile | mse. */
  method?: string;
  /** qdq.tune: the accuracy budget, "0.5" (points) or "1%" (of FP32); absent: [tool.qdq] max-accuracy-drop. */
  maxDrop?: string;
  /** qdq.sensitivity, qdq.tune, qdq.qat: processes (torchrun); absent: 1. */
  nproc?: number;
  /** qdq.qat: continue from the last checkpoint. */
  resume?: boolean;
}

/** Result of qdq.selectInterpreter: what the backend reported about the interpreter. */
export interface InterpreterInfo {
  python: string;
  pythonVersion?: string;
  torchVersion?: string;
  problem?: string;
}

/**
 * `qdq/probeInterpreters` (client -> server request): each candidate interpreter's full path, Python and torch
 * versions (or why it cannot serve), for the interpreter picker. Runs the interpreters (not the user's code), so
 * it is refused in an untrusted workspace. `uri`: a file of the project (its folder is where they are run from).
 */
export interface ProbeInterpretersParams {
  uri?: string;
  candidates: string[];
}
export const ProbeInterpretersRequest = new RequestType<ProbeInterpretersParams, InterpreterInfo[], void>(
  'qdq/probeInterpreters',
);

/**
 * `qdq/fileState` (client -> server request): whether "Quantize File" and "Remove All Quantizers" would change
 * the document, so a client offers them only then (VS Code: the context keys qdq.canQuantizeFile and
 * qdq.canRemoveQuantizers in the palette and editor menus). Null for a document that is not open Python.
 */
export interface FileStateParams {
  textDocument: { uri: string };
}
export interface FileStateResult {
  canQuantize: boolean;
  canRemove: boolean;
}
export const FileStateRequest = new RequestType<FileStateParams, FileStateResult | null, void>('qdq/fileState');

/** Result of qdq.quantizeFile / qdq.removeAllQuantizers: the edit was sent with workspace/applyEdit. */
export interface EditCommandResult {
  applied: boolean;
  changedLines: number;
  message?: string;
}

/** Code action kinds qdq offers (besides the standard quickfix for TensorRT diagnostics). */
export const CodeActionKinds = {
  quantize: 'refactor.rewrite.qdq.quantize',
  keepFloat: 'refactor.rewrite.qdq.keepFloat',
  remove: 'refactor.rewrite.qdq.remove',
  fixAll: 'source.fixAll.qdq',
  /** A command action on a model class: export the project's model as dynamic INT8 (qdq.exportDynamic). */
  dynamic: 'refactor.qdq.exportDynamic',
} as const;

/**
 * `qdq/quantizedModuleSource` (client -> server request): the source an installed library module would run
 * with [tool.qdq] patch-modules (TensorRT fixes + quantizers), for the client to show as a read-only document.
 * The server asks the Python interpreter where the module is (it does not run the module), so it refuses in an
 * untrusted workspace. `uri`: the document with the import (its folder is where the interpreter is looked for).
 * Offered by the code action of kind ShowQuantizedSourceKind on `from transformers import BertModel`-style lines,
 * whose command ShowQuantizedSourceCommand is a client command (it sends this request and opens the text).
 */
export interface QuantizedModuleSourceParams {
  uri?: string;
  module: string;
}
export interface QuantizedModuleSourceResult {
  module: string;
  /** The installed file that was read. */
  file: string;
  /** The interpreter that located it. */
  python: string;
  text: string;
  /** TensorRT fixes applied, one line each. */
  fixes: string[];
  sites: { layers: number; matmulOperands: number; residualInputs: number };
  /** One line for the user: what this is and which interpreter was used. */
  message: string;
}
export const QuantizedModuleSourceRequest = new RequestType<
  QuantizedModuleSourceParams,
  QuantizedModuleSourceResult,
  void
>('qdq/quantizedModuleSource');
export const ShowQuantizedSourceCommand = 'qdq.showQuantizedSource';
export const ShowQuantizedSourceKind = 'refactor.inspect.qdq.showQuantizedSource';

/**
 * `qdq/sensitivity` (client -> server request): the last sensitivity run of the project of `uri`
 * (<out-dir>/sensitivity.json) with each group's source locations, and the precision plan of the last tune run
 * (tune.json's mixed.float_sites), for the sensitivity view. Null when the project has no sensitivity.json.
 * Reads files only (both validated as untrusted input), so it answers in an untrusted workspace too.
 */
export interface SensitivityParams {
  uri: string;
}
/** A place in the source: 0-based line and character, like LSP positions. */
export interface SourceLocation {
  uri: string;
  line: number;
  character: number;
}
export interface SensitivityGroupView {
  label: string;
  /** "file::Class.attr" source sites, as sensitivity.json has them. */
  sites: string[];
  /** Module instances the group covers (quantizer names). */
  instances: number;
  /** The metric with only this group in INT8, minus all FP32 (negative: INT8 hurts). */
  int8Delta: number;
  /** The metric with only this group in float, minus all INT8 (positive: keeping it float helps). */
  floatDelta: number;
  /** Where the group's layers are (the first is where a click goes); empty when none was found. */
  locations: SourceLocation[];
  /** The last tune run keeps this group in float. */
  inPlan: boolean;
}
export interface SensitivityResultView {
  projectDir: string;
  /** Absolute path of sensitivity.json. */
  path: string;
  /**
   * 'top1': points of top-1 on eval-data; 'sqnr_db': output SQNR in dB on held-out batches; else the spec of the
   * project's `[tool.qdq] metric` function (higher is better).
   */
  metric: string;
  samples: number;
  fp32: number;
  allInt8: number;
  /** Worst first: the most negative int8Delta first. */
  groups: SensitivityGroupView[];
  /** The last tune run's plan, when tune.json is there: the sites it keeps in float and what it measured. */
  plan: { floatSites: string[]; accuracy: number; withinBudget: boolean; path: string } | null;
}
export const SensitivityRequest = new RequestType<SensitivityParams, SensitivityResultView | null, void>(
  'qdq/sensitivity',
);

/**
 * `qdq/sensitivityUpdated` (server -> client notification): a sensitivity or tune run wrote new results for a
 * project, so an open sensitivity view refreshes (code lenses are refreshed by the server when the client can).
 */
export interface SensitivityUpdatedParams {
  projectDir: string;
}
export const SensitivityUpdatedNotification = new NotificationType<SensitivityUpdatedParams>('qdq/sensitivityUpdated');
/** Client command the code lenses run: opens the sensitivity view (VS Code client). */
export const ShowSensitivityCommand = 'qdq.showSensitivity';
