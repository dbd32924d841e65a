// textDocument/publishDiagnostics, driven by didOpen/didChange/didClose: rules for Python files, [tool.qdq]
// checks for pyproject.toml, calibration range checks once results exist. Debounced by the session.
import * as fs from 'fs';
import * as path from 'path';
import type { Diagnostic } from '../lsp';
import { ruleDiagnostics, missingHelperDiagnostic } from '../diagnostics';
import { calibrationDiagnostics } from '../calibration';
import { configDiagnostics, isPyproject } from '../configDiagnostics';
import { uriToPath } from '../hover';
import type { Session } from '../../session/session';
import { isPython } from './register';

function message(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

function publish(session: Session, uri: string): void {
  const doc = session.documents.get(uri);
  if (!doc) return;
  const version = doc.version;
  if (isPyproject(uri)) {
    let config: Diagnostic[] = [];
    try {
      config = configDiagnostics(doc.getText());
    } catch (err) {
      session.log(`qdq: checking ${uri} failed: ${message(err)}`);
    }
    void session.connection.sendDiagnostics({ uri, version, diagnostics: config });
    return;
  }
  if (!isPython(doc)) return;
  try {
    doc.getIndex();
  } catch (err) {
    session.log(`qdq: analysis of ${uri} failed: ${message(err)}`);
  }
  // Parse + index and the rules run in two turns of the event loop: an edit or a hover that arrives in between is
  // handled first, and the rules are not run for a version that is already out of date (large files, fast typing).
  setImmediate(() => void publishRules(session, uri, version));
}

async function publishRules(session: Session, uri: string, version: number): Promise<void> {
  const doc = session.documents.get(uri);
  if (!doc || doc.version !== version) return;
  let diagnostics: Diagnostic[] = ruleDiagnostics(doc, session.settings.trtVersion, (m) => session.log(m));
  try {
    const helper = missingHelperDiagnostic(
      doc,
      (dir) => fs.existsSync(path.join(dir, 'qdq_quant.py')),
      uri.startsWith('file:') ? uriToPath(uri) : undefined,
    );
    if (helper) diagnostics.push(helper);
  } catch (err) {
    session.log(`qdq: helper check of ${uri} failed: ${message(err)}`);
  }
  try {
    const file = uriToPath(uri);
    await session.ensureCalibrationLoaded(file);
    if (session.documents.get(uri) !== doc || doc.version !== version) return; // edited while results were read
    if (session.calibration.forFile(file).length)
      diagnostics = diagnostics.concat(
        calibrationDiagnostics(session.calibration, file, doc.getIndex(), doc.getText()),
      );
  } catch (err) {
    session.log(`qdq: calibration checks of ${uri} failed: ${message(err)}`);
  }
  void session.connection.sendDiagnostics({ uri, version, diagnostics });
}

export function register(session: Session): void {
  session.publish = (uri) => publish(session, uri);
  const { documents } = session;
  documents.onDidOpen((e) => session.scheduleDiagnostics(e.document.uri, 0));
  documents.onDidChangeContent((e) => session.scheduleDiagnostics(e.document.uri));
  documents.onDidClose((e) => {
    session.cancelDiagnostics(e.document.uri);
    void session.connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });
}
