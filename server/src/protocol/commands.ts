// The command registry: every qdq.* command once, with what the client, the server and the manifest need to
// know about it. Read by the VS Code client (trust gating, progress titles), the server (executeCommand's list,
// trust gating, work-done titles, the pipeline steps) and package.json's contributes.commands (written by
// client/src/syncManifest.ts, checked by test/editors/vscode/client.test.ts).
import { Commands, ShowSensitivityCommand, type CommandId } from './lsp_ext';

/** Pipeline steps a backend command runs (server/src/pipeline/run.ts's PipelineStep). */
export type CommandStep = 'calibrate' | 'export' | 'verify';

export interface CommandSpec {
  id: string;
  /** Palette title (shown as "QDQ: <title>"). */
  title: string;
  /** Codicon of the manifest entry. */
  icon?: string;
  /** 'server': workspace/executeCommand; 'client': implemented by the VS Code extension alone. */
  handler: 'server' | 'client';
  /** Runs the user's Python code or an interpreter: refused in an untrusted workspace. */
  runsUserCode: boolean;
  /** Backend commands: the pipeline steps, in order, and the work-done progress title. */
  pipeline?: { steps: readonly CommandStep[]; dynamicOnly?: boolean; reuseHistograms?: boolean; progressTitle: string };
  /** Long backend jobs other than the pipeline (sensitivity, tune, QAT): server/src/features/precisionJobs.ts. */
  job?: { kind: 'sensitivity' | 'tune' | 'qat'; progressTitle: string };
  /** Not contributed to the palette (run by code actions or links only). */
  hidden?: boolean;
  /** Not in the manifest at all (internal to the server). */
  internal?: boolean;
}

export const COMMANDS: readonly CommandSpec[] = [
  {
    id: Commands.calibrate,
    title: 'Calibrate',
    icon: '$(pulse)',
    handler: 'server',
    runsUserCode: true,
    pipeline: { steps: ['calibrate'], progressTitle: 'QDQ: Calibrating' },
  },
  {
    id: Commands.export,
    title: 'Export ONNX',
    icon: '$(export)',
    handler: 'server',
    runsUserCode: true,
    pipeline: { steps: ['calibrate', 'export'], progressTitle: 'QDQ: Exporting ONNX' },
  },
  {
    id: Commands.calibrateAndExport,
    title: 'Calibrate and Export',
    icon: '$(run-all)',
    handler: 'server',
    runsUserCode: true,
    pipeline: { steps: ['calibrate', 'export', 'verify'], progressTitle: 'QDQ: Calibrate and export' },
  },
  {
    id: Commands.exportDynamic,
    title: 'Export Dynamic INT8',
    icon: '$(export)',
    handler: 'server',
    runsUserCode: true,
    pipeline: { steps: ['export'], dynamicOnly: true, progressTitle: 'QDQ: Dynamic INT8 export' },
  },
  {
    id: Commands.quantizeFile,
    title: 'Quantize File',
    icon: '$(symbol-operator)',
    handler: 'server',
    runsUserCode: false,
  },
  {
    id: Commands.removeAllQuantizers,
    title: 'Remove All Quantizers',
    icon: '$(trash)',
    handler: 'server',
    runsUserCode: false,
  },
  { id: Commands.showReport, title: 'Show Report', icon: '$(graph)', handler: 'server', runsUserCode: false },
  {
    id: Commands.useCalibrationMethod,
    title: 'Export with Another Calibration Method',
    handler: 'server',
    runsUserCode: true,
    // from the report's calibration explorer, which names the method; no pass over the data
    pipeline: {
      steps: ['calibrate', 'export', 'verify'],
      reuseHistograms: true,
      progressTitle: 'QDQ: Exporting with another calibration method',
    },
    hidden: true,
  },
  {
    id: Commands.selectInterpreter,
    title: 'Select Python Interpreter',
    icon: '$(python)',
    handler: 'server',
    runsUserCode: true,
  },
  {
    id: Commands.sensitivity,
    title: 'Sensitivity Analysis',
    icon: '$(pulse)',
    handler: 'server',
    runsUserCode: true,
    job: { kind: 'sensitivity', progressTitle: 'QDQ: Sensitivity analysis' },
  },
  {
    id: Commands.tune,
    title: 'Tune Precision (Accuracy Budget)',
    icon: '$(settings)',
    handler: 'server',
    runsUserCode: true,
    job: { kind: 'tune', progressTitle: 'QDQ: Tuning precision' },
  },
  {
    id: Commands.qat,
    title: 'Fine-tune (QAT)',
    icon: '$(mortar-board)',
    handler: 'server',
    runsUserCode: true,
    job: { kind: 'qat', progressTitle: 'QDQ: Fine-tuning (QAT)' },
  },
  {
    id: Commands.applyPrecisionPlan,
    title: 'Apply Precision Plan',
    icon: '$(check)',
    handler: 'server',
    runsUserCode: false,
  },
  { id: ShowSensitivityCommand, title: 'Show Sensitivity', icon: '$(graph)', handler: 'client', runsUserCode: false },
  { id: Commands.writeHelperFile, title: 'Write qdq_quant.py', handler: 'server', runsUserCode: false, internal: true },
  {
    id: 'qdq.restartServer',
    title: 'Restart Language Server',
    icon: '$(debug-restart)',
    handler: 'client',
    runsUserCode: false,
  },
  { id: 'qdq.showOutput', title: 'Show Logs', icon: '$(output)', handler: 'client', runsUserCode: false },
  { id: 'qdq.openSource', title: 'Open Source Line', handler: 'client', runsUserCode: false, hidden: true },
];

const BY_ID = new Map(COMMANDS.map((c) => [c.id, c]));

export function commandSpec(id: string): CommandSpec | undefined {
  return BY_ID.get(id);
}

/** Commands the server answers through workspace/executeCommand (its executeCommandProvider list). */
export const SERVER_COMMAND_IDS: readonly CommandId[] = COMMANDS.filter((c) => c.handler === 'server').map(
  (c) => c.id as CommandId,
);

/** package.json contributes.commands, generated from the registry. */
export function commandsContribution(): { command: string; title: string; category: string; icon?: string }[] {
  return COMMANDS.filter((c) => !c.internal).map((c) => ({
    command: c.id,
    title: c.title,
    category: 'QDQ',
    ...(c.icon ? { icon: c.icon } : {}),
  }));
}
