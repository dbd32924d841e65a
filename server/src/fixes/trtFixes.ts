// applyTrtFixes: every SAFE TensorRT source patch the rules offer (qdq fix, and patching library models such
// as RoBERTa's integer cumsum). Pure text in, text out. Re-applying to the result changes nothing: fixes are
// applied until no rule offers a safe fix any more, and a fix that would break the parse is dropped.
import { LineIndex, parsePython } from '../analysis/parser';
import { buildModelIndex } from '../analysis/model';
import { runRules } from '../rules';
import type { QdqDiagnostic, TextEdit } from '../rules/types';

export interface TrtFixResult {
  text: string;
  /** Edits against the ORIGINAL text (LSP ranges), non-overlapping, in document order. */
  edits: TextEdit[];
  /** One line per applied fix: `TRT001 12:9 Cast \`mask\` to float before cumsum ...` (1-based line:column). */
  applied: string[];
}

export interface TrtFixOptions {
  trtVersion?: string;
  /** Only these rule codes (default: every rule with a safe fix). */
  only?: readonly string[];
}

const MAX_ROUNDS = 8;

interface OffsetEdit {
  start: number;
  end: number;
  text: string;
}

function toOffsets(lines: LineIndex, edits: TextEdit[]): OffsetEdit[] {
  return edits.map((e) => ({
    start: lines.offsetAt(e.range.start),
    end: lines.offsetAt(e.range.end),
    text: e.newText,
  }));
}

function apply(text: string, edits: OffsetEdit[]): string {
  const sorted = [...edits].sort((a, b) => a.start - b.start || a.end - b.end);
  let out = '';
  let pos = 0;
  for (const e of sorted) {
    out += text.slice(pos, e.start) + e.text;
    pos = e.end;
  }
  return out + text.slice(pos);
}

function overlaps(a: OffsetEdit, b: OffsetEdit): boolean {
  if (a.start === a.end && b.start === b.end) return a.start === b.start;
  return (
    (a.start < b.end && b.start < a.end) ||
    (a.start === a.end && a.start > b.start && a.start < b.end) ||
    (b.start === b.end && b.start > a.start && b.start < a.end)
  );
}

function safeFixes(text: string, opts: TrtFixOptions): { diags: QdqDiagnostic[]; hadErrors: boolean } {
  const tree = parsePython(text);
  const index = buildModelIndex(tree, text);
  const diags = runRules(index, tree, text, { trtVersion: opts.trtVersion, only: opts.only }).filter(
    (d) => d.fix?.safety === 'safe',
  );
  return { diags, hadErrors: tree.rootNode.hasError };
}

function parsesCleanly(text: string): boolean {
  return !parsePython(text).rootNode.hasError;
}

export function applyTrtFixes(original: string, opts: TrtFixOptions = {}): TrtFixResult {
  let text = original;
  const applied: string[] = [];
  let firstRoundEdits: OffsetEdit[] | null = null;
  let rounds = 0;
  for (; rounds < MAX_ROUNDS; rounds++) {
    const { diags, hadErrors } = safeFixes(text, opts);
    if (!diags.length) break;
    const lines = new LineIndex(text);
    const accepted: OffsetEdit[] = [];
    const acceptedNames: string[] = [];
    for (const d of diags) {
      const edits = toOffsets(lines, d.fix!.edits);
      if (edits.some((e) => accepted.some((a) => overlaps(a, e)))) continue; // next round
      const candidate = apply(text, [...accepted, ...edits]);
      // A fix must never turn a file that parses into one that does not.
      if (!hadErrors && !parsesCleanly(candidate)) continue;
      accepted.push(...edits);
      acceptedNames.push(`${d.code} ${d.range.start.line + 1}:${d.range.start.character + 1} ${d.fix!.title}`);
    }
    if (!accepted.length) break;
    if (rounds === 0) firstRoundEdits = accepted;
    text = apply(text, accepted);
    applied.push(...acceptedNames);
  }
  let edits: TextEdit[] = [];
  if (text !== original) {
    const lines = new LineIndex(original);
    const offsetEdits: OffsetEdit[] =
      rounds <= 1 && firstRoundEdits
        ? [...firstRoundEdits].sort((a, b) => a.start - b.start)
        : [diffEdit(original, text)];
    edits = offsetEdits.map((e) => ({
      range: { start: lines.positionAt(e.start), end: lines.positionAt(e.end) },
      newText: e.text,
    }));
  }
  return { text, edits, applied };
}

/** One replacement covering everything between the common prefix and suffix of two texts. */
function diffEdit(a: string, b: string): OffsetEdit {
  let p = 0;
  while (p < a.length && p < b.length && a.charCodeAt(p) === b.charCodeAt(p)) p++;
  let s = 0;
  while (s < a.length - p && s < b.length - p && a.charCodeAt(a.length - 1 - s) === b.charCodeAt(b.length - 1 - s)) s++;
  return { start: p, end: a.length - s, text: b.slice(p, b.length - s) };
}
