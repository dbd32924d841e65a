// Incremental reuse between builds of one document: each top-level statement is a segment (segmentIndex.ts) kept
// while its text stays the same; after an edit only the statements around it are looked at (editedSlots), the
// rest are reused in place or shifted by the edit's length. What the next build reuses travels on the index
// (Lineage); the module holds no state.
import type { SyntaxNode, Tree } from './parser';
import { isReparsedFrom, fastStart, fastRow, isIdentCharCode } from './parser';
import { changedWindow, type ChangedWindow } from './textWindow';
import { modelMatches, type ModelMatch } from './queries';
import { scanImports } from './canonical';
import { DocumentReader, lineEndAfter, lineStartOf } from './documentReader';
import { indexSegment, type ClassAnchors, type InsertAnchor, type Segment } from './segmentIndex';
import type { FunctionInfo, ImportInfo, IndexCaches, Layer, ModuleClass, Op, Range, Span } from './types';

export interface SegmentCache {
  globalKey: string;
  importsKey: string;
  imports: ImportInfo;
  /** By top-level statement (the lineage's starts): its segment; none for comments and imports. */
  slots: (Segment | undefined)[];
  /** By top-level statement: the name of the function it defines, if it is a top-level function definition. */
  slotDefNames: (string | undefined)[];
  /** By top-level statement: whether importStatementsKey reads it (the first statements, import/try/if). */
  slotImportish: boolean[];
  /** Names of decorated/async top-level functions of an error-free tree, by shortKey of the statement's text. */
  defNames: Map<string, { text: string; name: string | undefined }[]>;
}

/**
 * Hashing a whole statement's text (classes run to thousands of characters) on every keystroke costs more than
 * the rest of the lookup: segments are filed under their length and ends, and the full text is compared only
 * on a hit.
 */
function shortKey(key: string): string {
  return key.length > 96 ? key.length + ':' + key.slice(0, 48) + key.slice(-48) : key;
}

const SIMPLE_DEF = /^def[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*\(/;
const IMPORTS_RELEVANT = /^(import|from|try|if)\b/;

/** A statement that importStatementsKey reads after the first statement: import, from, try or if (i, f, t: a cheap first test). */
function isImportish(text: string, start: number): boolean {
  const c0 = text.charCodeAt(start);
  return (c0 === 105 || c0 === 102 || c0 === 116) && IMPORTS_RELEVANT.test(text.slice(start, start + 6));
}

/**
 * The text that scanImports reads: rows and text (through the end of the line) of the statements it looks at.
 * `importish` gets, by statement, whether it is one of them.
 */
function importStatementsKey(children: SyntaxNode[], starts: number[], text: string, importish: boolean[]): string {
  const parts: string[] = [];
  let seenStatement = false;
  for (let i = 0; i < children.length; i++) {
    const start = starts[i];
    // Only import/from/try/if statements matter after the first statement.
    importish.push(!seenStatement || isImportish(text, start));
    if (!importish[i]) continue;
    if (text.charCodeAt(start) !== 35 /* # */) seenStatement = true;
    const child = children[i];
    parts.push(fastRow(child) + ':' + text.slice(start, lineEndAfter(text, child.endIndex)));
  }
  return parts.join('\u0001');
}

/**
 * False when `statementText` cannot hold anything grammars/model-*.scm captures: a call needs `(`, the
 * operators `@`, `+` and `+=` their characters, `self.x = ...` a `.` and a `=`, and the rest their keywords.
 * (Characters inside strings count too: this only ever says "maybe".)
 */
function mayHoldModelMatch(statementText: string): boolean {
  return MODEL_MATCH_CHARS.test(statementText) || (statementText.includes('.') && statementText.includes('='));
}
const MODEL_MATCH_CHARS = /[(@+]|class|def|return/;

/** Statements that cannot hold calls: comments and imports. */
const NO_CALLS_START = /^(#|import\s|from\s)/;

function topLevelFunctionName(r: DocumentReader, n: SyntaxNode): string | undefined {
  let def: SyntaxNode | null = n;
  if (n.type === 'decorated_definition') def = n.childForFieldName('definition');
  if (!def || def.type !== 'function_definition') return undefined;
  return r.textOfOpt(def.childForFieldName('name'));
}

/**
 * The name of the function the top-level statement `node` (at `start`, up to `end`) defines. In an error-free
 * tree (`clean`) a statement that starts with `def name(` is that function's definition, so its name is read from
 * the text; decorated, async and erroneous ones ask the tree (three native calls), and in an error-free tree the
 * same statement text names the same function, so `prevNames` (the last build's answers) are reused.
 */
function topLevelDefName(
  doc: DocumentReader,
  node: SyntaxNode,
  start: number,
  end: number,
  clean: boolean,
  prevNames: SegmentCache['defNames'] | undefined,
  names: SegmentCache['defNames'],
): string | undefined {
  const text = doc.text;
  const c0 = text.charCodeAt(start);
  if (c0 !== 100 /* d */ && c0 !== 97 /* a */ && c0 !== 64 /* @ */) return undefined;
  if (!/^(def|async|@)/.test(text.slice(start, start + 5))) return undefined;
  if (clean && c0 === 100) {
    const m = SIMPLE_DEF.exec(text.slice(start, start + 200));
    if (m) return m[1];
  }
  if (!clean) return topLevelFunctionName(doc, node);
  const stText = text.slice(start, end);
  const sk = shortKey(stText);
  const known = prevNames?.get(sk)?.find((d) => d.text === stText);
  const name = known ? known.name : topLevelFunctionName(doc, node);
  const list = names.get(sk);
  if (list) list.push({ text: stText, name });
  else names.set(sk, [{ text: stText, name }]);
  return name;
}

/** Segments read the imports only through canonicalName (the alias tables), and the names of the file's functions. */
function globalKeyOf(imports: ImportInfo, slotDefNames: (string | undefined)[]): string {
  const fnNames = new Set<string>();
  for (const name of slotDefNames) if (name) fnNames.add(name);
  return (
    JSON.stringify([imports.torch, imports.nn, imports.functional, imports.nnNames, imports.funcNames]) +
    '\u0000' +
    [...fnNames].join(',')
  );
}

/** One top-level statement to (re)index, unless a segment of the last build with the same text can be reused. */
interface Pending {
  slot: number;
  child: SyntaxNode;
  start: number;
  row: number;
  key: string;
  matches: ModelMatch[];
}

/**
 * The segment of the statement `child` at `start` (key: its text through the first line of the next statement),
 * reused from `candidates` (segments of the last build, filed by shortKey) when one has the same text, or
 * queued in `todo` to be indexed.
 */
function reuseOrQueue(
  child: SyntaxNode,
  start: number,
  key: string,
  slot: number,
  text: string,
  candidates: Segment[] | undefined,
  todo: Pending[],
): Segment | undefined {
  const row = fastRow(child);
  const type = child.type;
  // Error recovery depends on more than the statement's own text: ERROR statements are always indexed afresh.
  const at = candidates && type !== 'ERROR' ? candidates.findIndex((c) => c.key === key && c.type === type) : -1;
  if (at >= 0) {
    const old = candidates!.splice(at, 1)[0];
    if (old.start === start && old.startRow === row) return old;
    if (old.col0 === 0 && start === lineStartOf(text, start))
      return shiftSegment(old, start - old.start, row - old.startRow);
  }
  todo.push({ slot, child, start, row, key, matches: [] });
  return undefined;
}

/**
 * Statements to index above which one walk over the whole tree is cheaper than one per statement (each walk
 * costs about 30 microseconds before it looks at a node).
 */
const WHOLE_TREE_WALK_FROM = 4;

/** Indexes the queued statements into their slots. */
function indexPending(
  doc: DocumentReader,
  todo: Pending[],
  slots: (Segment | undefined)[],
  imports: ImportInfo,
  slotDefNames: (string | undefined)[],
  root: SyntaxNode,
): void {
  if (!todo.length) return;
  const text = doc.text;
  const fnNames = new Set<string>();
  for (const name of slotDefNames) if (name) fnNames.add(name);
  const ends = todo.map((t) => t.child.endIndex);
  if (todo.length >= WHOLE_TREE_WALK_FROM) {
    // Matches come in document order of where they start; each goes to the statement it starts in (statements
    // not queued hold none: comments and imports have no calls, and mayHoldModelMatch only skips what cannot).
    let k = 0;
    for (const m of modelMatches(root, text)) {
      while (k < todo.length && ends[k] <= m.at) k++;
      if (k < todo.length && todo[k].start <= m.at) todo[k].matches.push(m);
    }
  } else {
    // A walk looks at every node it is given, so it runs on each statement whose text can hold a match;
    // module-level tables (`__all__ = [...]`, dicts of URLs) are skipped.
    for (const t of todo) if (mayHoldModelMatch(t.key)) t.matches = modelMatches(t.child, text);
  }
  todo.forEach((t, k) => {
    const seg = indexSegment(t.matches, t.start, lineEndAfter(text, ends[k]), t.row, doc, imports, fnNames, t.key);
    seg.type = t.child.type;
    slots[t.slot] = seg;
  });
}

/** The key of the statement at `start` whose next statement starts at `next`: its text through that line. */
function statementKey(text: string, start: number, next: number): string {
  return text.slice(start, lineEndAfter(text, next));
}

/** Segments of the last build by shortKey (a full build looks statements up by text). */
function segmentsByKey(slots: (Segment | undefined)[]): Map<string, Segment[]> {
  const out = new Map<string, Segment[]>();
  for (const seg of slots) {
    if (!seg) continue;
    const sk = shortKey(seg.key);
    const list = out.get(sk);
    if (list) list.push(seg);
    else out.set(sk, [seg]);
  }
  return out;
}

/** What both builds hand to assemble: the per-statement results and what they were made with. */
export interface Slots {
  starts: number[];
  rows: number[];
  /** Node type of each top-level statement. */
  types: string[];
  /** Set when the statements around an edit were all that was looked at (see StatementLayout.reuse). */
  reuse?: StatementLayout['reuse'];
  cache: SegmentCache;
}

/** The top-level statements of the text an index was built from (see statementLayout). */
export interface StatementLayout {
  starts: number[];
  /** Line of each start. */
  rows: number[];
  types: string[];
  /**
   * When the index was built incrementally from the index of `prevText`: the first `head` statements are those of
   * `prevText` in the same place, the last `tail` ones are those of `prevText` moved by the edit's length and by
   * `dRow` lines. Text and syntax of all of them are unchanged (the text window and tree-sitter's changed ranges
   * say so). Absent after a full build.
   */
  reuse?: { prevText: string; head: number; tail: number; dRow: number; window: ChangedWindow };
}

/** Every top-level statement looked at (reusing the last build's segments whose statement text is unchanged). */
export function allSlots(doc: DocumentReader, prevCache: SegmentCache | undefined): Slots {
  const { tree, text } = doc;
  const root = tree.rootNode;
  const children = root.namedChildren;
  // Top-level statements are classified by their first characters (no native call per statement).
  const starts = children.map(fastStart);
  // The imports depend only on the import/try/if statements (and the first statement), their rows and the rest
  // of their last lines: when all of those read the same as last time, the previous imports still hold and the
  // native walk over every import statement is skipped.
  const slotImportish: boolean[] = [];
  const importsKey = importStatementsKey(children, starts, text, slotImportish);
  const imports =
    prevCache && prevCache.importsKey === importsKey ? prevCache.imports : scanImports(root, children, text, starts);
  const defNames: SegmentCache['defNames'] = new Map();
  const clean = !root.hasError;
  const slotDefNames = children.map((child, i) =>
    topLevelDefName(
      doc,
      child,
      starts[i],
      i + 1 < children.length ? starts[i + 1] : text.length,
      clean,
      prevCache?.defNames,
      defNames,
    ),
  );
  // Segments read the imports only through canonicalName (the alias tables), not the import rows, so moving an
  // import (a line added above it) keeps every segment reusable.
  const globalKey = globalKeyOf(imports, slotDefNames);
  const reusable = prevCache && prevCache.globalKey === globalKey ? segmentsByKey(prevCache.slots) : undefined;
  const segs: (Segment | undefined)[] = [];
  const todo: Pending[] = [];
  for (let i = 0; i < children.length; i++) {
    const start = starts[i];
    // The key runs through the first line of the next statement, which covers this statement's last line
    // without asking the tree for its end (one native call per statement); ends are read for re-indexed ones.
    if (NO_CALLS_START.test(text.slice(start, start + 7))) segs.push(undefined);
    else {
      const key = statementKey(text, start, i + 1 < children.length ? starts[i + 1] : text.length);
      segs.push(reuseOrQueue(children[i], start, key, i, text, reusable?.get(shortKey(key)), todo));
    }
  }
  indexPending(doc, todo, segs, imports, slotDefNames, root);
  return {
    starts,
    rows: children.map(fastRow),
    types: children.map((c) => c.type),
    cache: { globalKey, importsKey, imports, slots: segs, slotDefNames, slotImportish, defNames },
  };
}

function newlinesIn(text: string, from: number, to: number): number {
  let count = 0;
  for (let at = text.indexOf('\n', from); at >= 0 && at < to; at = text.indexOf('\n', at + 1)) count++;
  return count;
}

/**
 * The slots of a tree re-parsed incrementally from the tree of the last build, asking the tree only about the
 * statements around the edit: where neither the text nor (by tree-sitter's changed ranges) the syntax changed,
 * the top-level statements are those of the last build, in the same place before the edit and moved by the
 * edit's length after it. Undefined when the edit reaches what the whole file shares (the first statement,
 * imports, the names of its functions): the full build then redoes everything.
 */
export function editedSlots(doc: DocumentReader, lineage: Lineage, prev: SegmentCache): Slots | undefined {
  const { tree, text } = doc;
  const oldTree = lineage.tree;
  if (!oldTree || !isReparsedFrom(tree, oldTree)) return undefined;
  const old = lineage.text;
  const oldStarts = lineage.starts;
  const n = oldStarts.length;
  if (n === 0 || prev.slots.length !== n) return undefined;
  const w = changedWindow(old, text);
  const delta = text.length - old.length;
  // The region [a, b) of the new text where the text or the syntax changed (b - delta in the old text).
  let a = w.start;
  let b = w.newEnd;
  for (const r of oldTree.getChangedRanges(tree)) {
    a = Math.min(a, r.startIndex);
    b = Math.max(b, r.endIndex);
  }
  const oldB = b - delta;
  if (a > w.start || oldB < w.oldEnd) return undefined; // cannot happen; never trust a region that misses the edit
  // Unchanged before: the statement's key (through the first line of the next one) ends before the region.
  const keyEnd = (i: number) => lineEndAfter(old, i + 1 < n ? oldStarts[i + 1] : old.length);
  let i0 = 0;
  while (i0 < n && keyEnd(i0) < a) i0++;
  // Unchanged after: the statement starts after the region.
  let i1 = n;
  while (i1 > i0 && oldStarts[i1 - 1] > oldB) i1--;
  const dRow = newlinesIn(text, a, b) - newlinesIn(old, a, oldB);
  const moved = delta !== 0 || dRow !== 0;
  // A statement that moves must start a line: one that follows another on its line (`a = 1; b = 2`) is re-indexed.
  if (moved && i1 < n && lineStartOf(text, oldStarts[i1] + delta) !== oldStarts[i1] + delta) i1++;
  if (moved) for (let i = i1; i < n; i++) if (prev.slots[i] && prev.slots[i]!.col0 !== 0) return undefined;
  // The imports: unchanged when no statement they read is edited (the first statement is before the edit) and
  // the rows of those after the edit stay the same.
  let firstStatement = 0;
  while (firstStatement < n && old.charCodeAt(oldStarts[firstStatement]) === 35 /* # */) firstStatement++;
  if (i0 <= firstStatement) return undefined;
  for (let i = i0; i < n; i++) if (prev.slotImportish[i] && (i < i1 || dRow !== 0)) return undefined;

  // The statements of the new tree between the unchanged ones.
  const from = i0 < n ? oldStarts[i0] : old.length;
  const until = i1 < n ? oldStarts[i1] + delta : text.length;
  const root = tree.rootNode;
  const middle: SyntaxNode[] = [];
  let node: SyntaxNode | null = from < text.length ? root.firstNamedChildForIndex(from) : null;
  while (node && fastStart(node) < until) {
    if (fastStart(node) < from) return undefined;
    middle.push(node);
    node = node.nextNamedSibling;
  }
  if ((node ? fastStart(node) : text.length) !== until) return undefined;
  const middleStarts = middle.map(fastStart);
  for (const s of middleStarts) if (isImportish(text, s)) return undefined;

  const clean = !root.hasError;
  // Names found now are not filed (the next full build asks again); the kept ones still hold for their texts.
  const unfiled: SegmentCache['defNames'] = new Map();
  const middleNames = middle.map((m, k) =>
    topLevelDefName(
      doc,
      m,
      middleStarts[k],
      k + 1 < middle.length ? middleStarts[k + 1] : until,
      clean,
      prev.defNames,
      unfiled,
    ),
  );
  const slotDefNames = [...prev.slotDefNames.slice(0, i0), ...middleNames, ...prev.slotDefNames.slice(i1)];
  const globalKey = globalKeyOf(prev.imports, slotDefNames);
  if (globalKey !== prev.globalKey) return undefined;

  const starts = [...oldStarts.slice(0, i0), ...middleStarts, ...oldStarts.slice(i1).map((s) => s + delta)];
  const candidates = segmentsByKey(prev.slots.slice(i0, i1));
  const segs: (Segment | undefined)[] = prev.slots.slice(0, i0);
  const todo: Pending[] = [];
  middle.forEach((child, k) => {
    const start = middleStarts[k];
    if (NO_CALLS_START.test(text.slice(start, start + 7))) segs.push(undefined);
    else {
      const key = statementKey(text, start, k + 1 < middle.length ? middleStarts[k + 1] : until);
      segs.push(reuseOrQueue(child, start, key, segs.length, text, candidates.get(shortKey(key)), todo));
    }
  });
  for (let i = i1; i < n; i++) {
    const seg = prev.slots[i];
    segs.push(seg && moved ? shiftSegment(seg, delta, dRow) : seg);
  }
  indexPending(doc, todo, segs, prev.imports, slotDefNames, root);
  const slotImportish = [
    ...prev.slotImportish.slice(0, i0),
    ...middle.map(() => false),
    ...prev.slotImportish.slice(i1),
  ];
  const types = [...lineage.types.slice(0, i0), ...middle.map((m) => m.type), ...lineage.types.slice(i1)];
  const rows = [...lineage.rows.slice(0, i0), ...middle.map(fastRow), ...lineage.rows.slice(i1).map((r) => r + dRow)];
  return {
    starts,
    rows,
    types,
    reuse: { prevText: old, head: i0, tail: n - i1, dRow, window: w },
    cache: { ...prev, globalKey, slots: segs, slotDefNames, slotImportish },
  };
}

/**
 * What an index keeps for the next build of the same document (buildModelIndex's `previous`): the text, tree and
 * top-level statements it was built from, its per-statement segments, and the caches later analyses keep with the
 * document (handed on unchanged from build to build).
 */
export interface Lineage {
  text: string;
  starts: number[];
  rows: number[];
  types: string[];
  reuse?: StatementLayout['reuse'];
  /** The tree the index was built from: the next build compares it with its own (see editedSlots). */
  tree?: Tree;
  /** The segments the next build reuses for statements whose text is unchanged. */
  segments: SegmentCache;
  caches: IndexCaches;
}

// Shifting a reused segment only records how far it moved (offsets by dOff, lines by dRow; a segment starts
// at column 0, so the characters within it do not change); the index built from it shifts what it hands out.
function shiftSegment(seg: Segment, dOff: number, dRow: number): Segment {
  return {
    ...seg,
    start: seg.start + dOff,
    startRow: seg.startRow + dRow,
    dOff: seg.dOff + dOff,
    dRow: seg.dRow + dRow,
  };
}

/** Indices (in seg.classes) of the innermost classes holding a word-bounded mention of `name`, first mention first. */
export function delegateClassesIn(seg: Segment, name: string): number[] {
  let out = seg.memo.delegateClasses.get(name);
  if (out) return out;
  out = [];
  const key = seg.key;
  // Class spans are as indexed: where the segment's text then started.
  const base = seg.start - seg.dOff;
  for (let at = key.indexOf(name); at >= 0; at = key.indexOf(name, at + 1)) {
    if (isIdentCharCode(key.charCodeAt(at - 1)) || isIdentCharCode(key.charCodeAt(at + name.length))) continue;
    const offset = base + at;
    let best = -1;
    seg.classes.forEach((rec, k) => {
      const span = rec.cls.span;
      if (span.start <= offset && offset < span.end && (best < 0 || span.start >= seg.classes[best].cls.span.start))
        best = k;
    });
    if (best >= 0 && !out.includes(best)) out.push(best);
  }
  seg.memo.delegateClasses.set(name, out);
  return out;
}

/**
 * A class of a moved segment as the index hands it out: its own positions shifted now, its layers, ops and
 * quantizers (most of a segment's objects) when first read. The rules read those only in files that show
 * quantizers, and every class after an edit moves on each keystroke.
 */
export function shiftedClass(c: ModuleClass & ClassAnchors, dOff: number, dRow: number): ModuleClass {
  const cls: ModuleClass & ClassAnchors = {
    ...c,
    range: shiftRange(c.range, dRow),
    span: shiftSpan(c.span, dOff),
    isModule: false,
    delegates: [],
  };
  if (c.initRange) cls.initRange = shiftRange(c.initRange, dRow);
  if (c.initSpan) cls.initSpan = shiftSpan(c.initSpan, dOff);
  if (c.forwardRange) cls.forwardRange = shiftRange(c.forwardRange, dRow);
  if (c.forwardSpan) cls.forwardSpan = shiftSpan(c.forwardSpan, dOff);
  if (c.superInitLine !== undefined) cls.superInitLine = c.superInitLine + dRow;
  if (c.declAnchor) cls.declAnchor = shiftAnchor(c.declAnchor, dOff);
  lazyField(cls, 'layers', () => c.layers.map((l) => shiftLayer(l, dOff, dRow)));
  lazyField(cls, 'ops', () => c.ops.map((o) => shiftOp(o, dOff, dRow)));
  lazyField(cls, 'quantizers', () =>
    c.quantizers.map((q) => ({ ...q, range: shiftRange(q.range, dRow), span: shiftSpan(q.span, dOff) })),
  );
  return cls;
}

export function shiftedFunction(f: FunctionInfo, dOff: number, dRow: number): FunctionInfo {
  const fn: FunctionInfo = { ...f, range: shiftRange(f.range, dRow), span: shiftSpan(f.span, dOff) };
  lazyField(fn, 'layers', () => f.layers.map((l) => shiftLayer(l, dOff, dRow)));
  lazyField(fn, 'ops', () => f.ops.map((o) => shiftOp(o, dOff, dRow)));
  return fn;
}

export function shiftAnchor(a: InsertAnchor | undefined, dOff: number): InsertAnchor | undefined {
  return a && dOff !== 0 ? { ...a, offset: a.offset + dOff } : a;
}

function shiftSpan(s: Span, dOff: number): Span {
  return dOff === 0 ? s : { start: s.start + dOff, end: s.end + dOff };
}

function shiftRange(r: Range, dRow: number): Range {
  return dRow === 0
    ? r
    : {
        start: { line: r.start.line + dRow, character: r.start.character },
        end: { line: r.end.line + dRow, character: r.end.character },
      };
}

export function shiftLayer(l: Layer, dOff: number, dRow: number): Layer {
  const out: Layer = { ...l, callRange: shiftRange(l.callRange, dRow), callSpan: shiftSpan(l.callSpan, dOff) };
  if (l.wrapperSpan) out.wrapperSpan = shiftSpan(l.wrapperSpan, dOff);
  return out;
}

export function shiftOp(o: Op, dOff: number, dRow: number): Op {
  return {
    ...o,
    range: shiftRange(o.range, dRow),
    span: shiftSpan(o.span, dOff),
    operands: dRow === 0 ? o.operands : o.operands.map((r) => shiftRange(r, dRow)),
    operandSpans: dOff === 0 ? o.operandSpans : o.operandSpans.map((s) => shiftSpan(s, dOff)),
  };
}

/**
 * A field computed on first read and then an ordinary data property; writing it first also makes it one.
 * Enumerable like the data property it stands for, so spreads, JSON and deep comparisons see the value.
 */
function lazyField<T extends object, K extends keyof T & string>(obj: T, key: K, compute: () => T[K]): void {
  const settle = (value: T[K]) =>
    Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  Object.defineProperty(obj, key, {
    enumerable: true,
    configurable: true,
    get(): T[K] {
      const value = compute();
      settle(value);
      return value;
    },
    set(value: T[K]) {
      settle(value);
    },
  });
}
