// Diagnostics kept per top-level statement between versions of a document, so that a keystroke checks only the
// statements it changed.
//
// Why a statement's diagnostics can be kept: a rule of scope 'statement' (types.ts) reports at the site it
// starts from, and what it concludes there depends on the function around the site (dtype inference and name
// lookups stay inside one function), or, for code outside functions, on the module-level code (lookups in
// module scope skip every top-level def and class). So the diagnostics of a top-level def or class statement
// depend on its own text, the module-level code, the import aliases and the options: kept while all of those
// read the same and the statement sits on the same lines. Module-level code statements (and ERROR statements)
// are checked every time. Which statements are unchanged comes from the model index (statementLayout: the
// statements before and after the edit, whose text and syntax the edit window and tree-sitter's changed ranges
// leave the same).
import type { StatementLayout } from '../analysis/incremental';
import type { QdqDiagnostic } from './types';

const KEEPABLE_TYPES = new Set(['function_definition', 'class_definition', 'decorated_definition']);

/** Whether the diagnostics of a top-level statement of this node type can be kept between versions. */
export function isKeepable(type: string): boolean {
  return KEEPABLE_TYPES.has(type);
}

export interface StatementDiagnostics {
  /** What every kept diagnostic may depend on besides its statement: options, import aliases, module-level code. */
  key: string;
  /** The text they were found in. */
  text: string;
  /** By top-level statement of `text`: its diagnostics, or null when it is checked every time. */
  byStatement: (QdqDiagnostic[] | null)[];
}

/**
 * The key of everything a kept diagnostic may depend on besides its own statement. Module-level code statements
 * are listed with how many def/class statements come before each (a class-level site looks at module code above it).
 */
export function sharedKey(text: string, layout: StatementLayout, options: string, aliases: string): string {
  const parts = [options, aliases];
  let defs = 0;
  for (let i = 0; i < layout.starts.length; i++) {
    if (KEEPABLE_TYPES.has(layout.types[i])) {
      defs++;
      continue;
    }
    parts.push(
      `${defs}:${text.slice(layout.starts[i], i + 1 < layout.starts.length ? layout.starts[i + 1] : text.length)}`,
    );
  }
  return parts.join('\u0000');
}

/**
 * For each statement of `layout`, the diagnostics kept from `prev`, or null when the statement must be checked now.
 */
export function keptDiagnostics(
  prev: StatementDiagnostics | undefined,
  key: string,
  layout: StatementLayout,
  text: string,
): (QdqDiagnostic[] | null)[] {
  const n = layout.starts.length;
  // The same version again (code actions, hovers asking for diagnostics): everything holds.
  if (prev && prev.key === key && prev.text === text && prev.byStatement.length === n) return prev.byStatement.slice();
  const kept: (QdqDiagnostic[] | null)[] = new Array(n).fill(null);
  const reuse = layout.reuse;
  if (!prev || prev.key !== key || !reuse || reuse.prevText !== prev.text) return kept;
  const old = prev.byStatement;
  for (let i = 0; i < reuse.head && i < n; i++) kept[i] = old[i] ?? null;
  // Statements after the edit keep theirs only when they did not move to other lines (messages name lines).
  if (reuse.dRow === 0)
    for (let k = 1; k <= reuse.tail && k <= n && k <= old.length; k++) kept[n - k] = old[old.length - k] ?? null;
  for (let i = 0; i < n; i++) if (!KEEPABLE_TYPES.has(layout.types[i])) kept[i] = null;
  return kept;
}

/** Offset ranges [from, to) of the statements to check now, merged (flat pairs, as lexer.ts's inRanges reads them). */
export function spansToCheck(kept: (QdqDiagnostic[] | null)[], layout: StatementLayout, textLength: number): number[] {
  const spans: number[] = [];
  const n = layout.starts.length;
  for (let i = 0; i < n; i++) {
    if (kept[i]) continue;
    const from = i === 0 ? 0 : layout.starts[i];
    const to = i + 1 < n ? layout.starts[i + 1] : textLength;
    if (spans.length && spans[spans.length - 1] === from) spans[spans.length - 1] = to;
    else spans.push(from, to);
  }
  return spans;
}

/** The statement a diagnostic is reported in: the last one starting at or before its start position. */
export function statementOf(d: QdqDiagnostic, layout: StatementLayout, text: string): number {
  const { line, character } = d.range.start;
  let lo = 0;
  let hi = layout.starts.length - 1;
  let best = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const row = layout.rows[mid];
    let before = row < line;
    if (row === line) {
      const start = layout.starts[mid];
      before = start - (text.lastIndexOf('\n', start - 1) + 1) <= character;
    }
    if (before) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}
