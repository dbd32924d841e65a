// The rules' text scans (strings and comments, `word(` call triggers, operators, comparisons, dtype words,
// imports), done once per file and cached per top-level statement between versions of a document.
//
// Every scan here is local: what it finds at an offset depends only on the text of that line (or of one import
// statement) and on whether the offset is code, which the light lexer (lexer.ts) decides. So when the text is
// cut at the starts of top-level statements that begin a line, and no string, comment or import statement runs
// across a cut, the scans of the pieces, put together, are exactly the scan of the whole text. A piece whose
// text is unchanged since the last run is not scanned again. When a string or import runs across a cut (a
// file mid-edit with an open triple quote, say), the whole text is scanned in one piece, as before.
import { nonCodeRangesIn, inRanges } from './lexer';
import { changedWindow, type ChangedWindow } from '../analysis/textWindow';
import { isIdentCharCode } from '../analysis/parser';
import type { IndexCaches } from '../analysis/types';

export interface TextScan {
  /** False inside string literals and comments. */
  isCode(offset: number): boolean;
  /** Sorted [start, end) pairs of string literals and comments (put together on request: isCode needs no copy). */
  nonCodeRanges(): number[];
  /** Offsets of `word(` (code only) for the words of `callWords`, by word, ascending. */
  callHits: Map<string, number[]>;
  /** [offset, length] pairs of `@ & | ^ ~ << >>` in code, minus decorators and type annotations. */
  operators: number[];
  /** Offsets of comparisons (`< > <= >= == !=`) in code whose value is kept (assignment line or inside brackets). */
  comparisons: number[];
  /** Offsets of `torch.bool` and `BoolTensor` anywhere (as text), in no particular order. */
  boolLiterals: number[];
  /** [offset, length] pairs of the words `uint8` / `ByteTensor`. */
  uint8Words: number[];
  /** Offsets of `+=`. */
  plusAssigns: number[];
  /** What the import statements (at the start of a line) bind, in order: [local name, dotted path]. */
  aliases: [string, string][];
  /**
   * True when the scan was put together from the pieces between top-level statements (no string, comment or
   * import crosses one): what it says inside a statement then depends on that statement's text alone.
   */
  piecewise: boolean;
}

const OPERATOR_RE = /@|&|\||\^|~|<<|>>/g;
const IMPORT_RE = /[ \t]*(?:from[ \t]+([\w.]+)[ \t]+)?import[ \t]+(\([^)]*\)|[^\n#;]+)/y;
const CMP_RE = /[<>]=?|[=!]=/g;
const ASSIGN_LINE_RE = /^[ \t]*\w+[ \t]*=(?!=)/;
const UINT8_RE = /\b(?:uint8|ByteTensor)\b/g;
const BOOL_LITERALS = ['torch.bool', 'BoolTensor'];

/** One piece's scan, offsets relative to the piece's start; null when something runs past its end. */
interface PieceScan {
  text: string;
  nonCode: number[];
  callHits: [string, number][];
  operators: number[];
  comparisons: number[];
  boolLiterals: number[];
  uint8Words: number[];
  plusAssigns: number[];
  aliases: [string, string][];
}

const LONG_LINE = 2000;

/**
 * Where the line holding an offset starts, and whether a `[` before it on its line is still open, for offsets
 * asked about in increasing order: the line breaks and brackets are listed once, so a long line with many hits
 * costs its length, not its length times its hits (issue 14 D2).
 */
class LineFacts {
  private breaks: number[] | undefined;
  private brackets: number[] | undefined;
  constructor(private readonly text: string) {}
  lineStart(at: number): number {
    const list = (this.breaks ??= positionsOf(this.text, /\n/g));
    const i = lastBefore(list, at);
    return i < 0 ? 0 : list[i] + 1;
  }
  /** As `line.lastIndexOf('[') > line.lastIndexOf(']')` for the line's text before `at`. */
  openBracket(at: number, lineStart: number): boolean {
    const list = (this.brackets ??= positionsOf(this.text, /[[\]]/g));
    const i = lastBefore(list, at);
    return i >= 0 && list[i] >= lineStart && this.text.charCodeAt(list[i]) === 91;
  }
}

function positionsOf(text: string, re: RegExp): number[] {
  const out: number[] = [];
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m.index);
  return out;
}

/** Index of the last entry below `at` in a sorted list, or -1. */
function lastBefore(list: number[], at: number): number {
  let lo = 0;
  let hi = list.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid] < at) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

/**
 * Text-only filter for operator hits that cannot be tensor ops: decorators (`@` first on its line) and `|`
 * in annotations (`x: int | None`, `def f(...) -> A | B:`). Saves the native node lookups for those.
 */
function looksLikeTypeOrDecorator(text: string, at: number, op: string, lineStart: number): boolean {
  const before = text.slice(lineStart, at);
  if (op === '@') return /^[ \t]*$/.test(before);
  if (op !== '|') return false;
  // Deep in a long line the patterns below would search all of the line for each `|` (issue 14 D2): such a `|`
  // is left to the tree.
  if (at - lineStart > LONG_LINE) return false;
  return (
    /^[ \t]*(?:def[ \t]|async[ \t]|\w+[ \t]*:[^=]*$|[^#]*->)/.test(before) ||
    (/\[[^\]]*$/.test(before) && /(?:Optional|Union|List|Dict|Tuple|Callable|Type)\[/.test(before))
  );
}

/**
 * Scans text[from, to) (absolute offsets in the result); null when a string, comment or import crosses `to`.
 * Searches that cannot run across a line break search the piece alone (a search of the whole text from `from`
 * would run on to the next hit, possibly at the end of the file); `from` is a line start, so looking back to
 * the start of a line stops at the piece's start either way.
 */
function scanRange(
  text: string,
  from: number,
  to: number,
  callWords: ReadonlySet<string>,
): Omit<PieceScan, 'text'> | null {
  const nonCode = nonCodeRangesIn(text, from, to);
  if (nonCode.length && nonCode[nonCode.length - 1] > to) return null;
  const isCode = (at: number) => !inRanges(nonCode, at);
  const piece = from === 0 && to === text.length ? text : text.slice(from, to);

  const lines = new LineFacts(piece);
  const aliases: [string, string][] = [];
  let importScanEnd = from;
  for (let r = piece.indexOf('import'); r >= 0; r = piece.indexOf('import', r + 6)) {
    const lineStart = from + lines.lineStart(r);
    if (lineStart < importScanEnd) continue;
    IMPORT_RE.lastIndex = lineStart;
    const m = IMPORT_RE.exec(text); // an import in parentheses may run over lines: the whole text
    if (!m || m.index !== lineStart) continue;
    importScanEnd = m.index + m[0].length;
    if (importScanEnd > to) return null;
    importAliases(m[1], m[2], aliases);
  }

  const callHits: [string, number][] = [];
  for (let p = piece.indexOf('('); p >= 0; p = piece.indexOf('(', p + 1)) {
    let e = p;
    while (e > 0 && (piece.charCodeAt(e - 1) === 32 || piece.charCodeAt(e - 1) === 9)) e--;
    let b = e;
    while (b > 0 && isIdentCharCode(piece.charCodeAt(b - 1))) b--;
    if (b === e || e - b > 40) continue;
    const word = piece.slice(b, e);
    if (!callWords.has(word) || !isCode(from + b)) continue;
    callHits.push([word, from + b]);
  }

  const operators: number[] = [];
  OPERATOR_RE.lastIndex = 0;
  for (let m = OPERATOR_RE.exec(piece); m; m = OPERATOR_RE.exec(piece)) {
    if (looksLikeTypeOrDecorator(piece, m.index, m[0], lines.lineStart(m.index))) continue;
    if (!isCode(from + m.index)) continue;
    operators.push(from + m.index, m[0].length);
  }

  const comparisons: number[] = [];
  CMP_RE.lastIndex = 0;
  for (let m = CMP_RE.exec(piece); m; m = CMP_RE.exec(piece)) {
    const at = m.index;
    const op = m[0];
    const prev = piece.charCodeAt(at - 1);
    if (prev === 45 /* -> */ || prev === 62 || prev === 60 || piece.charCodeAt(at + op.length) === 62 /* >>> */)
      continue;
    const lineStart = lines.lineStart(at);
    const line = piece.slice(lineStart, at);
    if ((ASSIGN_LINE_RE.test(line) || lines.openBracket(at, lineStart)) && isCode(from + at))
      comparisons.push(from + at);
  }

  const boolLiterals: number[] = [];
  for (const lit of BOOL_LITERALS) {
    for (let p = piece.indexOf(lit); p >= 0; p = piece.indexOf(lit, p + lit.length)) boolLiterals.push(from + p);
  }

  const uint8Words: number[] = [];
  UINT8_RE.lastIndex = 0;
  for (let m = UINT8_RE.exec(piece); m; m = UINT8_RE.exec(piece)) uint8Words.push(from + m.index, m[0].length);

  const plusAssigns: number[] = [];
  for (let p = piece.indexOf('+='); p >= 0; p = piece.indexOf('+=', p + 2)) plusAssigns.push(from + p);

  return { nonCode, callHits, operators, comparisons, boolLiterals, uint8Words, plusAssigns, aliases };
}

/** The names an import statement binds, as [local name, dotted path] in order (`import torch.nn as nn`). */
function importAliases(from: string | undefined, matched: string, out: [string, string][]): void {
  const names = matched.replace(/[()\\\n]/g, ' ');
  for (const part of names.split(',')) {
    const pm = /^\s*([\w.]+)(?:\s+as\s+(\w+))?\s*$/.exec(part);
    if (!pm) continue;
    const [, path, alias] = pm;
    if (from !== undefined) {
      const base = /^\.+$/.test(from) ? '' : from.replace(/^\.+/, '');
      out.push([alias ?? path, base ? `${base}.${path}` : path]);
    } else if (alias) {
      out.push([alias, path]);
    } else {
      const first = path.split('.')[0];
      out.push([first, first]);
    }
  }
}

function relative(text: string, from: number, s: Omit<PieceScan, 'text'>): PieceScan {
  const rel = (xs: number[]) => xs.map((x) => x - from);
  const relPairs = (xs: number[]) => xs.map((x, i) => (i % 2 === 0 ? x - from : x));
  return {
    text,
    nonCode: rel(s.nonCode),
    callHits: s.callHits.map(([w, at]) => [w, at - from] as [string, number]),
    operators: relPairs(s.operators),
    comparisons: rel(s.comparisons),
    boolLiterals: rel(s.boolLiterals),
    uint8Words: relPairs(s.uint8Words),
    plusAssigns: rel(s.plusAssigns),
    aliases: s.aliases,
  };
}

function wholeScan(s: Omit<PieceScan, 'text'>): TextScan {
  const callHits = new Map<string, number[]>();
  for (const [w, at] of s.callHits) {
    const list = callHits.get(w);
    if (list) list.push(at);
    else callHits.set(w, [at]);
  }
  const { nonCode, operators, comparisons, boolLiterals, uint8Words, plusAssigns, aliases } = s;
  return {
    isCode: (offset) => !inRanges(nonCode, offset),
    nonCodeRanges: () => nonCode,
    callHits,
    operators,
    comparisons,
    boolLiterals,
    uint8Words,
    plusAssigns,
    aliases,
    piecewise: false,
  };
}

/** The last run's pieces: piece i spans cuts[i]..cuts[i + 1] of `text`. */
export interface PieceCache {
  callWords: ReadonlySet<string>;
  text: string;
  cuts: number[];
  pieces: PieceScan[];
}

/**
 * Scans `text`. `starts`: the top-level statement starts (from the model index), when known; `caches`: the
 * document's cache holder (from the model index), when there is one. Without either, one scan of the whole text.
 * `known`: where `text` differs from an earlier version, when the caller has worked it out.
 */
export function scanText(
  text: string,
  callWords: ReadonlySet<string>,
  starts?: number[],
  caches?: IndexCaches,
  known?: { prevText: string; window: ChangedWindow },
): TextScan {
  if (!starts || !caches) return wholeOrNull(text, callWords);
  const prev = caches.ruleScan;
  if (!prev || prev.callWords !== callWords) {
    // A first look at the document: one scan in one piece is cheaper than the pieces; they come next time.
    caches.ruleScan = { callWords, text, cuts: [], pieces: [] } satisfies PieceCache;
    return wholeOrNull(text, callWords);
  }
  // Cuts: statement starts at the beginning of a line.
  const cuts = [0];
  for (const s of starts) if (s > cuts[cuts.length - 1] && text.charCodeAt(s - 1) === 10) cuts.push(s);
  cuts.push(text.length);
  const count = cuts.length - 1;
  // Pieces outside the edited region are the last run's pieces at the same cuts (moved by the edit's length
  // after it): their text is the same, so is their scan. Those in it are looked up by text, or scanned.
  // The model index has usually compared the same two versions already (`known`).
  const w = known && known.prevText === prev.text ? known.window : changedWindow(prev.text, text);
  const delta = text.length - prev.text.length;
  const oldCuts = prev.cuts;
  const oldCount = prev.pieces.length;
  let head = 0;
  while (
    head < count &&
    head < oldCount &&
    cuts[head + 1] <= w.start &&
    oldCuts[head] === cuts[head] &&
    oldCuts[head + 1] === cuts[head + 1]
  )
    head++;
  let tail = 0;
  while (head + tail < count && head + tail < oldCount) {
    const from = cuts[count - 1 - tail];
    if (
      from < w.newEnd ||
      oldCuts[oldCount - 1 - tail] !== from - delta ||
      oldCuts[oldCount - tail] !== cuts[count - tail] - delta
    )
      break;
    tail++;
  }
  const candidates = prev.pieces.slice(head, oldCount - tail);
  const used: PieceScan[] = prev.pieces.slice(0, head);
  for (let i = head; i < count - tail; i++) {
    const from = cuts[i];
    const to = cuts[i + 1];
    const pieceText = text.slice(from, to);
    const at = candidates.findIndex((c) => c.text.length === pieceText.length && c.text === pieceText);
    if (at >= 0) {
      used.push(candidates.splice(at, 1)[0]);
      continue;
    }
    const scanned = scanRange(text, from, to, callWords);
    if (!scanned) return wholeOrNull(text, callWords); // a string or import crosses a cut
    // Kept across versions: a copy, so that the piece does not keep this version's whole text alive.
    used.push(relative((' ' + pieceText).slice(1), from, scanned));
  }
  for (let k = oldCount - tail; k < oldCount; k++) used.push(prev.pieces[k]);

  const out: TextScan = {
    // The piece holding the offset answers (strings and comments do not cross cuts).
    isCode(offset) {
      let lo = 0;
      let hi = used.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (offset < cuts[mid]) hi = mid - 1;
        else if (offset >= cuts[mid + 1]) lo = mid + 1;
        else return !inRanges(used[mid].nonCode, offset - cuts[mid]);
      }
      return true;
    },
    nonCodeRanges() {
      const all: number[] = [];
      used.forEach((piece, i) => {
        for (const x of piece.nonCode) all.push(x + cuts[i]);
      });
      return all;
    },
    callHits: new Map(),
    operators: [],
    comparisons: [],
    boolLiterals: [],
    uint8Words: [],
    plusAssigns: [],
    aliases: [],
    piecewise: true,
  };
  used.forEach((piece, i) => {
    const from = cuts[i];
    for (const [w, at] of piece.callHits) {
      const hits = out.callHits.get(w);
      if (hits) hits.push(at + from);
      else out.callHits.set(w, [at + from]);
    }
    for (let k = 0; k < piece.operators.length; k += 2)
      out.operators.push(piece.operators[k] + from, piece.operators[k + 1]);
    for (const x of piece.comparisons) out.comparisons.push(x + from);
    for (const x of piece.boolLiterals) out.boolLiterals.push(x + from);
    for (let k = 0; k < piece.uint8Words.length; k += 2)
      out.uint8Words.push(piece.uint8Words[k] + from, piece.uint8Words[k + 1]);
    for (const x of piece.plusAssigns) out.plusAssigns.push(x + from);
    for (const a of piece.aliases) out.aliases.push(a);
  });
  caches.ruleScan = { callWords, text, cuts, pieces: used } satisfies PieceCache;
  return out;
}

function wholeOrNull(text: string, callWords: ReadonlySet<string>): TextScan {
  // The whole text is one piece: nothing can cross its end (ranges end at text.length at the latest).
  return wholeScan(scanRange(text, 0, text.length, callWords)!);
}
