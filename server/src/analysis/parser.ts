// tree-sitter parsing for Python: one shared Parser, incremental re-parse, and position helpers.
//
// Process-wide state, all of it about the parser binding or keyed by tree, none about a document's content:
// - `shared`: the one Parser (parsing is synchronous, and each parse names its own text and old tree);
// - `lineage`: which tree was re-parsed from which, as numbers in WeakMaps keyed by tree (entries die with their
//   trees; ids are never reused, so a tree of one document never matches another's);
// - `binding.fastFields`: whether the binding's node layout allows fastStart/fastRow, probed once.
// getParser patches the node prototypes once (binding facts, the same for every tree).
//
// Given a JS string, the node binding reports indices and columns in UTF-16 code units (JS string
// indices), not UTF-8 bytes (checked by test/analysis/parser.test.ts with non-ASCII text), so tree-sitter
// points map to LSP positions one to one.
import Parser = require('tree-sitter');
// tree-sitter-python has no type declarations; it is a Language object.
const Python: Parser.Language = require('tree-sitter-python');
import type { Position, Range, Span } from './types';
import { existingFinder, finderFor, forgetFinder } from './nodeFinder';

export type Tree = Parser.Tree;
export type SyntaxNode = Parser.SyntaxNode;
export type Edit = Parser.Edit;

let shared: Parser | undefined;

/** The process-wide Python parser (parsing is synchronous, so one instance is enough). */
export function getParser(): Parser {
  if (!shared) {
    shared = new Parser();
    shared.setLanguage(Python);
    cacheNodeTypeNames(Python);
    findThroughCursor();
    idsFromTransferFields();
  }
  return shared;
}

/** The binding's own `parent` and `descendantForIndex` (for the tests that compare them with the cursor's answers). */
export const nativeNodeCalls: {
  parent?: (n: SyntaxNode) => SyntaxNode | null;
  descendantForIndex?: (n: SyntaxNode, start: number, end: number) => SyntaxNode;
} = {};

/**
 * `node.parent` and `root.descendantForIndex(start, end)` through a cursor per tree (nodeFinder.ts), so that asking
 * about every operator of a long chain or every call of a deep nesting costs the length of the file, not its square
 * (issue 14 D2). Same answers, node for node; the native calls remain the fallback (empty nodes, other roots).
 */
function findThroughCursor(): void {
  const base = (Parser as unknown as { SyntaxNode: { prototype: SyntaxNode } }).SyntaxNode.prototype;
  const treeProto = (Parser as unknown as { Tree: { prototype: Tree } }).Tree.prototype;
  const nativeParent = Object.getOwnPropertyDescriptor(base, 'parent')?.get;
  const nativeDescendant = base.descendantForIndex;
  const nativeEdit = treeProto.edit;
  if (!nativeParent || typeof nativeDescendant !== 'function' || typeof nativeEdit !== 'function') return;
  nativeNodeCalls.parent = (n) => nativeParent.call(n) as SyntaxNode | null;
  nativeNodeCalls.descendantForIndex = (n, start, end) => nativeDescendant.call(n, start, end);
  Object.defineProperty(base, 'parent', {
    configurable: true,
    get(this: SyntaxNode): SyntaxNode | null {
      const found = finderFor(this.tree, fastStart).parentOf(this);
      return found !== undefined ? found : (nativeParent.call(this) as SyntaxNode | null);
    },
  });
  base.descendantForIndex = function (this: SyntaxNode, start: number, end?: number): SyntaxNode {
    if (end === undefined || end <= start || fastStart(this) !== 0 || this.tree.rootNode !== this)
      return nativeDescendant.call(this, start, end as number);
    return finderFor(this.tree, fastStart).descendantFor(start, end) ?? nativeDescendant.call(this, start, end);
  } as SyntaxNode['descendantForIndex'];
  const nativeChildForField = base.childForFieldName;
  base.childForFieldName = function (this: SyntaxNode, name: string): SyntaxNode | null {
    const child = nativeChildForField.call(this, name);
    const finder = child && existingFinder(this.tree);
    return finder ? finder.canonical(child!) : child;
  } as SyntaxNode['childForFieldName'];
  treeProto.edit = function (this: Tree, edit: Edit): Tree {
    forgetFinder(this);
    return nativeEdit.call(this, edit);
  };
}

/**
 * `node.id` from the node's transfer fields. The binding's getter copies the node into its transfer buffer and
 * makes a native call each time, and the analysis reads ids a few times per node (memo keys, identity checks): a
 * tenth of the time on long chains. The fields hold tree-sitter's id, the subtree's address, as two 32-bit halves;
 * the first node asked about checks that against the native answer (a fact about the installed binding), and
 * every node asks natively if it differs.
 */
function idsFromTransferFields(): void {
  const base = (Parser as unknown as { SyntaxNode: { prototype: SyntaxNode } }).SyntaxNode.prototype;
  const nativeId = Object.getOwnPropertyDescriptor(base, 'id')?.get;
  if (!nativeId) return;
  let fieldsHoldId: boolean | undefined;
  Object.defineProperty(base, 'id', {
    configurable: true,
    get(this: SyntaxNode): number {
      const raw = this as unknown as Record<number, unknown>;
      const lo = raw[0];
      const hi = raw[1];
      if (typeof lo !== 'number' || typeof hi !== 'number') return nativeId.call(this) as number;
      const id = hi * 0x100000000 + lo;
      if (fieldsHoldId === undefined) fieldsHoldId = id === nativeId.call(this);
      return fieldsHoldId ? id : (nativeId.call(this) as number);
    },
  });
}

/**
 * The node binding makes one class per node type and means to put the type's name on its prototype
 * (`prototype.type = name`), but that assignment hits the base class's getter-only `type` and is silently
 * dropped, so every `node.type` is a native call. Each class stands for exactly one symbol, so the first
 * native answer per class is kept on its prototype. ERROR nodes use the base class and still ask natively.
 */
function cacheNodeTypeNames(language: Parser.Language): void {
  const subclasses = (language as unknown as { nodeSubclasses?: (new (...a: unknown[]) => SyntaxNode)[] })
    .nodeSubclasses;
  const base = (Parser as unknown as { SyntaxNode: new (...a: unknown[]) => SyntaxNode }).SyntaxNode;
  const nativeType = Object.getOwnPropertyDescriptor(base.prototype, 'type')?.get;
  if (!subclasses || !nativeType) return;
  for (const cls of new Set(subclasses)) {
    if (cls === base || Object.getPrototypeOf(cls) !== base) continue;
    Object.defineProperty(cls.prototype, 'type', {
      configurable: true,
      get(this: SyntaxNode): string {
        const name = nativeType.call(this) as string;
        Object.defineProperty(cls.prototype, 'type', { value: name, configurable: true, writable: false });
        return name;
      },
    });
  }
}

export function getPythonLanguage(): Parser.Language {
  return Python;
}

// The binding reads a JS string through a callback in chunks; a buffer larger than the default keeps
// big files to few round trips.
const PARSE_OPTIONS = { bufferSize: 64 * 1024 };

/**
 * Parse Python source. With `previous`, the old tree is edited with `previous.edit` (which must describe the
 * change from the old text to `text`) and reused, so only the changed region is re-parsed.
 */
export function parsePython(text: string, previous?: { tree: Tree; edit?: Edit }): Tree {
  const parser = getParser();
  const input = analysisText(text);
  let tree: Tree;
  if (previous) {
    if (previous.edit) previous.tree.edit(previous.edit);
    tree = parser.parse(input, previous.tree, PARSE_OPTIONS);
    lineage.recordReparse(tree, previous.tree);
  } else tree = parser.parse(input, null, PARSE_OPTIONS);
  // Node text is read from the tree's input: the document's own text (same length, same offsets).
  if (input !== text) (tree as unknown as { input: string }).input = text;
  return tree;
}

/**
 * The text tree-sitter and the analysis (index, rules) read for `text`. A lone CR ends a line for Python and for
 * LSP, but tree-sitter's Python grammar takes it for blank space, and the text scans look for LF only, so rows and
 * statements would differ from the document's lines. Each lone CR becomes LF: one code unit for one, so offsets
 * are unchanged and tree-sitter rows are LSP lines (issue 14 D4). editFor makes every edit cover a CR whose
 * loneness it may change.
 */
export function analysisText(text: string): string {
  return text.indexOf('\r') < 0 ? text : text.replace(LONE_CR, '\n');
}
const LONE_CR = /\r(?!\n)/g;

/**
 * Which tree parsePython re-parsed from which. Trees are told apart by a number, never by holding the earlier
 * tree: a map from each tree to the tree it came from would chain every version of a document to the one before,
 * and no tree would ever be freed (issue 14 D3).
 */
class TreeLineage {
  private readonly ids = new WeakMap<Tree, number>();
  private readonly origins = new WeakMap<Tree, number>();
  private nextId = 1;

  private idOf(tree: Tree): number {
    let id = this.ids.get(tree);
    if (id === undefined) this.ids.set(tree, (id = this.nextId++));
    return id;
  }
  recordReparse(tree: Tree, origin: Tree): void {
    this.origins.set(tree, this.idOf(origin));
  }
  isReparsedFrom(tree: Tree, origin: Tree): boolean {
    const from = this.origins.get(tree);
    return from !== undefined && from === this.ids.get(origin);
  }
}
const lineage = new TreeLineage();

/**
 * Whether parsePython made `tree` incrementally from `origin` (edited to match its text), so the two can be
 * compared with getChangedRanges. False for a fresh parse.
 */
export function isReparsedFrom(tree: Tree, origin: Tree): boolean {
  return lineage.isReparsedFrom(tree, origin);
}

/** Line start offsets of a text, for offset <-> LSP position conversion (LSP line breaks: \n, \r\n, \r). */
export class LineIndex {
  readonly starts: number[];
  constructor(readonly text: string) {
    const starts = [0];
    if (text.indexOf('\r') < 0) {
      // Only \n line breaks (the usual case): let indexOf find them.
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
      this.starts = starts;
      return;
    }
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) starts.push(i + 1);
      else if (c === 13) {
        if (text.charCodeAt(i + 1) === 10) i++;
        starts.push(i + 1);
      }
    }
    this.starts = starts;
  }
  positionAt(offset: number): Position {
    offset = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: offset - this.starts[lo] };
  }
  offsetAt(pos: Position): number {
    if (pos.line < 0) return 0;
    if (pos.line >= this.starts.length) return this.text.length;
    const start = this.starts[pos.line];
    let end = pos.line + 1 < this.starts.length ? this.starts[pos.line + 1] : this.text.length;
    // LSP: a character past the line's end means the end of the line (before its line break).
    if (end > start && this.text.charCodeAt(end - 1) === 10) end--;
    if (end > start && this.text.charCodeAt(end - 1) === 13) end--;
    return Math.max(start, Math.min(start + pos.character, end));
  }
  rangeOf(span: Span): Range {
    return { start: this.positionAt(span.start), end: this.positionAt(span.end) };
  }
}

/** tree-sitter point -> LSP position (identical numbers: rows are lines, columns are UTF-16 units). */
export function pointToPosition(p: Parser.Point): Position {
  return { line: p.row, character: p.column };
}

export function nodeRange(node: SyntaxNode): Range {
  return { start: pointToPosition(node.startPosition), end: pointToPosition(node.endPosition) };
}

export function nodeSpan(node: SyntaxNode): Span {
  return { start: node.startIndex, end: node.endIndex };
}

/**
 * The tree-sitter edit for replacing `range` (LSP, in `oldText`) with `newText`. Pass it to
 * parsePython(newFullText, {tree, edit}) for incremental re-parse.
 */
export function editFor(oldText: string, range: Range, newText: string, lines?: LineIndex): Edit {
  const idx = lines ?? new LineIndex(oldText);
  let startIndex = idx.offsetAt(range.start);
  const oldEndIndex = idx.offsetAt(range.end);
  // A CR just before the edit is lone or not by what follows it, which the edit may change (analysisText
  // gives tree-sitter LF for a lone one): the edit then covers it, replacing it by itself.
  if (startIndex > 0 && oldText.charCodeAt(startIndex - 1) === 13) {
    startIndex--;
    newText = '\r' + newText;
  }
  const start = idx.positionAt(startIndex);
  const oldEnd = idx.positionAt(oldEndIndex);
  // New end point: walk the inserted text (line breaks as LSP counts them: LF, CRLF, lone CR).
  let row = start.line;
  let column = start.character;
  for (let i = 0; i < newText.length; i++) {
    const c = newText.charCodeAt(i);
    if (
      c === 13 &&
      newText.charCodeAt(i + 1) !== 10 &&
      (i + 1 < newText.length || !continuesWithLf(oldText, oldEndIndex))
    ) {
      row++;
      column = 0;
    } else if (c === 10) {
      row++;
      column = 0;
    } else column++;
  }
  return {
    startIndex,
    oldEndIndex,
    newEndIndex: startIndex + newText.length,
    startPosition: { row: start.line, column: start.character },
    oldEndPosition: { row: oldEnd.line, column: oldEnd.character },
    newEndPosition: { row, column },
  };
}

function continuesWithLf(text: string, offset: number): boolean {
  return text.charCodeAt(offset) === 10;
}

// The node binding keeps a node's start byte (UTF-16: 2 bytes per code unit) and start row in its transfer
// fields; reading them avoids one native call per node. Checked against startIndex on the first node asked about
// (a fact about the installed binding, the same for every tree), with a fallback if the layout changes.
const binding: { fastFields?: boolean } = {};

/** `n.startIndex` without a native call. */
export function fastStart(n: SyntaxNode): number {
  const raw = (n as unknown as Record<number, unknown>)[2];
  if (binding.fastFields === undefined) binding.fastFields = typeof raw === 'number' && raw / 2 === n.startIndex;
  return binding.fastFields ? (raw as number) / 2 : n.startIndex;
}

/** `n.startPosition.row` without a native call. */
export function fastRow(n: SyntaxNode): number {
  const raw = (n as unknown as Record<number, unknown>)[3];
  if (binding.fastFields === undefined) fastStart(n);
  return binding.fastFields && typeof raw === 'number' ? raw : n.startPosition.row;
}

/** Whether a UTF-16 code is an ASCII identifier character (letter, digit, underscore). */
export function isIdentCharCode(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95;
}

/** True when the tree has ERROR or MISSING nodes. */
export function hasSyntaxErrors(tree: Tree): boolean {
  return tree.rootNode.hasError;
}
