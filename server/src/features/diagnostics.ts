// textDocument/publishDiagnostics: the TensorRT/QDQ rules plus calibration-range checks, converted to LSP.
import * as path from 'path';
import { pathToFileURL } from 'url';
import { lsp } from './lsp';
import type { Diagnostic, DiagnosticSeverity } from './lsp';
import { runRules } from '../rules';
import type { QdqDocument } from './documents';
import { DIAGNOSTIC_SOURCE } from '../protocol/lsp_ext';

/** What a rule reports (server/src/rules); repeated structurally so conversion is checked against it. */
export interface RuleDiagnostic {
  code: string;
  severity: string | number;
  range: Diagnostic['range'];
  message: string;
  fix?: RuleFix;
  tags?: string[];
}
export interface RuleFix {
  title: string;
  safety: 'safe' | 'unsafe';
  edits: { range: Diagnostic['range']; newText: string }[];
}

/** Diagnostic.data of a qdq diagnostic: the fix (when the rule has one) and the document version it is for. */
export interface DiagnosticData {
  fix?: RuleFix;
  version: number;
}

// Rule documentation ships with the package (docs/rules.md has one heading per rule id).
const RULES_DOC = pathToFileURL(path.resolve(__dirname, '..', '..', '..', '..', 'docs', 'rules.md')).toString();

export function ruleDocHref(code: string): string {
  return `${RULES_DOC}#${code.toLowerCase()}`;
}

export function toLspSeverity(severity: string | number): DiagnosticSeverity {
  if (typeof severity === 'number' && severity >= 1 && severity <= 4) return severity as DiagnosticSeverity;
  switch (String(severity).toLowerCase()) {
    case 'error':
      return lsp.DiagnosticSeverity.Error;
    case 'warning':
    case 'warn':
      return lsp.DiagnosticSeverity.Warning;
    case 'hint':
      return lsp.DiagnosticSeverity.Hint;
    default:
      return lsp.DiagnosticSeverity.Information;
  }
}

export function toLspDiagnostic(d: RuleDiagnostic, version: number): Diagnostic {
  const data: DiagnosticData = { version };
  if (d.fix) data.fix = d.fix;
  const out: Diagnostic = {
    range: d.range,
    severity: toLspSeverity(d.severity),
    code: d.code,
    codeDescription: { href: ruleDocHref(d.code) },
    source: DIAGNOSTIC_SOURCE,
    message: d.message,
    data,
  };
  if (d.tags?.includes('unnecessary')) out.tags = [lsp.DiagnosticTag.Unnecessary];
  return out;
}

/** Rule diagnostics of a document, never throwing: a rule failure becomes nothing rather than a dead server. */
export function ruleDiagnostics(doc: QdqDocument, trtVersion: string, log?: (msg: string) => void): Diagnostic[] {
  try {
    const tree = doc.getTree();
    const index = doc.getIndex();
    const found = runRules(index, tree, doc.getText(), { trtVersion }) as RuleDiagnostic[];
    return found.map((d) => toLspDiagnostic(d, doc.version));
  } catch (err) {
    log?.(`qdq: analysis of ${doc.uri} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return [];
  }
}

/** Code of the diagnostic on a qdq import whose qdq_quant.py is not next to the file. */
export const MISSING_HELPER_CODE = 'QDQ-HELPER';

/**
 * The generated import of qdq_quant when qdq_quant.py is not next to the file (a model copied elsewhere, the
 * helper deleted): the model would fail with ImportError. The quick fix adds the file again.
 */
export function missingHelperDiagnostic(
  doc: QdqDocument,
  helperExists: (dir: string) => boolean,
  filePath: string | undefined,
): Diagnostic | undefined {
  if (!filePath) return undefined;
  const line = doc.getIndex().imports.qdqImportLine;
  if (line === undefined) return undefined;
  if (helperExists(path.dirname(filePath))) return undefined;
  const text = doc.getText().split(/\r?\n/)[line] ?? '';
  return {
    range: { start: { line, character: 0 }, end: { line, character: text.length } },
    severity: lsp.DiagnosticSeverity.Error,
    code: MISSING_HELPER_CODE,
    source: DIAGNOSTIC_SOURCE,
    message: `qdq_quant.py is not next to ${path.basename(filePath)}, so this import fails at run time (ImportError). The quick fix adds it again; or remove the quantizers.`,
    data: { version: doc.version, missingHelper: path.dirname(filePath) },
  };
}
