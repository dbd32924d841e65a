// Diagnostics inside pyproject.toml for the [tool.qdq] table: the same messages the CLI prints, from the same
// validator (server/src/pipeline/config.ts), placed on the offending key.
import type { Diagnostic } from './lsp';
import { lsp } from './lsp';
import { validateConfigText } from '../pipeline/config';
import { DIAGNOSTIC_SOURCE } from '../protocol/lsp_ext';

export function isPyproject(uri: string): boolean {
  return /(^|\/)pyproject\.toml$/.test(uri);
}

/** Problems of the [tool.qdq] table; nothing for a pyproject.toml that does not use qdq. */
export function configDiagnostics(text: string): Diagnostic[] {
  if (!/\btool\.qdq\b/.test(text)) return [];
  const result = validateConfigText(text);
  return result.diagnostics.map((d) => ({
    range: d.range,
    severity: d.severity === 'error' ? lsp.DiagnosticSeverity.Error : lsp.DiagnosticSeverity.Warning,
    code: d.key ? `tool.qdq.${d.key}` : 'tool.qdq',
    source: DIAGNOSTIC_SOURCE,
    message: d.message,
  }));
}
