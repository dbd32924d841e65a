// How the model indexing reads a tree: node text sliced from the document string, positions from a per-statement
// line table, and the small text helpers the indexing and the incremental reuse both need. One reader per build,
// handed to every step (analysis/model.ts keeps no build state of its own).
import type { SyntaxNode, Tree } from './parser';
import { LineIndex, fastStart } from './parser';
import type { Position, Range, Span } from './types';

// Positions are computed in JS from a line table of the segment being indexed: one native call (endIndex)
// per node instead of five.
// The line table is made on first use: statements without matches (module-level tables) never need it.
class SegmentLines {
  private local: LineIndex | undefined;
  constructor(
    private readonly text: string,
    readonly start: number,
    private readonly end: number,
    readonly row: number,
    readonly col0: number,
  ) {}
  position(offset: number): Position {
    if (!this.local) this.local = new LineIndex(this.text.slice(this.start, this.end));
    const p = this.local.positionAt(offset - this.start);
    return { line: p.line + this.row, character: p.line === 0 ? p.character + this.col0 : p.character };
  }
  rangeOf(span: Span): Range {
    return { start: this.position(span.start), end: this.position(span.end) };
  }
}
/**
 * How the indexing reads one tree: node text is sliced from the document string when the tree was parsed from it
 * (one native call fewer than node.text), else read from the node. One per build, handed to every step that reads
 * node text: the indexing keeps no state of its own between calls or builds.
 */
export class DocumentReader {
  constructor(
    readonly text: string,
    readonly tree: Tree,
    protected readonly textIsInput = (tree as unknown as { input?: unknown }).input === text,
  ) {}
  textOf(n: SyntaxNode): string {
    return this.textIsInput && n.tree === this.tree ? this.text.slice(fastStart(n), n.endIndex) : n.text;
  }
  textOfOpt(n: SyntaxNode | null | undefined): string | undefined {
    return n ? this.textOf(n) : undefined;
  }
  /** The reader for the top-level statement spanning [start, end) that starts on line `row`. */
  forStatement(start: number, end: number, row: number): StatementReader {
    const lines = new SegmentLines(this.text, start, end, row, start - lineStartOf(this.text, start));
    return new StatementReader(this.text, this.tree, this.textIsInput, lines);
  }
}

/** A DocumentReader for the statement being indexed, with its line table for positions (see SegmentLines). */
export class StatementReader extends DocumentReader {
  constructor(
    text: string,
    tree: Tree,
    textIsInput: boolean,
    readonly lines: SegmentLines,
  ) {
    super(text, tree, textIsInput);
  }
  range(n: SyntaxNode): Range {
    return this.lines.rangeOf(spanOf(n));
  }
  rangeOf(span: Span): Range {
    return this.lines.rangeOf(span);
  }
}
export function spanOf(n: SyntaxNode): Span {
  return { start: fastStart(n), end: n.endIndex };
}
export function nodeSpan(n: SyntaxNode): Span {
  return spanOf(n);
}

/**
 * A copy of a slice that does not keep the whole document string alive: V8 represents a slice as a view of
 * its parent, and a kept segment outlives many versions of the document (one full text per version otherwise).
 */
export function detachedCopy(slice: string): string {
  return (' ' + slice).slice(1);
}

export function lineStartOf(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}

export function lineEndAfter(text: string, offset: number): number {
  const nl = text.indexOf('\n', offset);
  return nl < 0 ? text.length : nl + 1;
}
