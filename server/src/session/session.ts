// The state of one language-server connection, in one object: open documents, settings, workspace trust, the
// interpreter the client chose, calibration results and the diagnostics debounce. Feature modules
// (server/src/features/methods) read and change the server's state only through it.
import * as fs from 'fs';
import * as path from 'path';
import { lsp } from '../features/lsp';
import type { Connection } from '../features/lsp';
import { QdqDocument, qdqDocumentsConfig } from '../features/documents';
import { CalibrationStore } from '../features/calibration';
import type { EditCapabilities } from '../features/codeActions';
import { findProjectDir } from '../features/project';
import { outDirOf } from '../features/pipelineBridge';
import { defaultSettings, validateSettings, QdqSettings } from '../settings';
import { BackendStatusNotification, SETTINGS_SECTION, type BackendStatusParams } from '../protocol/lsp_ext';

/** Quiet time after the last edit before diagnostics are recomputed (keeps typing bursts to one analysis). */
export const DIAGNOSTICS_DEBOUNCE_MS = 40;

/** What the client can do, read once from the initialize request. */
export interface ClientFeatures {
  edits: EditCapabilities;
  /** workspace/configuration is answered (else settings come with didChangeConfiguration). */
  pullConfiguration: boolean;
  /** didChangeConfiguration can be registered dynamically. */
  registerConfiguration: boolean;
  /** workspace/codeLens/refresh is understood (new sensitivity results re-ask the lenses). */
  codeLensRefresh?: boolean;
}

export type StatusUpdate = Partial<Pick<BackendStatusParams, 'message' | 'python' | 'torchVersion'>> & {
  state?: 'busy' | 'ready' | 'error';
};

export class Session {
  readonly documents = new lsp.TextDocuments<QdqDocument>(qdqDocumentsConfig);
  readonly calibration = new CalibrationStore();
  settings: QdqSettings = defaultSettings();
  /** Only an explicit boolean `true` from the client (or no trust model at all) is trust. */
  trusted = true;
  /** The interpreter the client selected (the Python extension's, or the picker's). */
  clientPython: string | undefined;
  /** Absolute paths of the workspace folders (or the root folder) the client opened. */
  workspaceFolders: string[] = [];
  features: ClientFeatures = {
    edits: { documentChanges: false, createFiles: false, resolveEdits: false },
    pullConfiguration: false,
    registerConfiguration: false,
  };
  /** Runs the analysis of one document and publishes it (set by the diagnostics feature). */
  publish: (uri: string) => void = () => undefined;

  private readonly loadedProjects = new Map<string, string>();
  private readonly pendingDiagnostics = new Map<string, NodeJS.Timeout>();
  private reportedProblems = new Set<string>();

  constructor(readonly connection: Connection) {}

  log(msg: string): void {
    this.connection.console.log(msg);
  }

  /** The interpreter for backend commands: the qdq.pythonInterpreter setting, else the client's choice. */
  python(): string | undefined {
    return this.settings.pythonInterpreter || this.clientPython;
  }

  sendStatus(extra?: StatusUpdate): void {
    void this.connection.sendNotification(BackendStatusNotification, {
      state: this.trusted ? (extra?.state ?? 'unknown') : 'untrusted',
      message: this.trusted ? extra?.message : 'Workspace not trusted: calibration and export are disabled',
      python: extra?.python ?? this.python(),
      torchVersion: extra?.torchVersion,
    });
  }

  scheduleDiagnostics(uri: string, delay = DIAGNOSTICS_DEBOUNCE_MS): void {
    this.cancelDiagnostics(uri);
    this.pendingDiagnostics.set(
      uri,
      setTimeout(() => {
        this.pendingDiagnostics.delete(uri);
        this.publish(uri);
      }, delay),
    );
  }

  cancelDiagnostics(uri: string): void {
    const pending = this.pendingDiagnostics.get(uri);
    if (pending) clearTimeout(pending);
    this.pendingDiagnostics.delete(uri);
  }

  refreshAllDiagnostics(): void {
    for (const doc of this.documents.all()) this.scheduleDiagnostics(doc.uri, 0);
  }

  /** Takes settings (from workspace/configuration or a push), warning once about each invalid value. */
  applySettings(raw: unknown): void {
    const result = validateSettings(raw);
    const previousTrt = this.settings.trtVersion;
    this.settings = result.settings;
    const fresh = result.problems.filter((p) => !this.reportedProblems.has(p));
    this.reportedProblems = new Set(result.problems);
    for (const p of fresh) void this.connection.window.showWarningMessage(`qdq: ${p}`);
    if (previousTrt !== this.settings.trtVersion) this.refreshAllDiagnostics();
  }

  async pullSettings(): Promise<void> {
    if (!this.features.pullConfiguration) return;
    let raw: unknown;
    try {
      raw = await this.connection.workspace.getConfiguration(SETTINGS_SECTION);
    } catch {
      return; // client without configuration support after all: keep the defaults
    }
    this.applySettings(raw);
  }

  /**
   * Reads the results the pipeline saved for the file's project, again whenever calibration.json changed (a run
   * from the command line while the editor is open shows up on the next edit or hover). Workspace files are read
   * as untrusted input (features/workspaceFiles.ts).
   */
  async ensureCalibrationLoaded(file: string): Promise<void> {
    if (!path.isAbsolute(file)) return;
    const projectDir = findProjectDir(file);
    const calibrationFile = path.join(
      await outDirOf(projectDir, this.settings, (m) => this.log(m)),
      'calibration.json',
    );
    let stamp = 'absent';
    try {
      const st = await fs.promises.stat(calibrationFile);
      stamp = `${st.mtimeMs}:${st.size}`;
    } catch {
      /* no results yet */
    }
    if (this.loadedProjects.get(projectDir) === stamp) return;
    this.loadedProjects.set(projectDir, stamp);
    if (stamp === 'absent') this.calibration.clear(projectDir);
    else await this.calibration.loadFromDisk(projectDir, path.dirname(calibrationFile), (m) => this.log(m));
  }

  dispose(): void {
    for (const t of this.pendingDiagnostics.values()) clearTimeout(t);
    this.pendingDiagnostics.clear();
  }
}
