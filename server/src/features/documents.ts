// Open documents with their tree-sitter tree, kept up to date incrementally.
//
// TextDocuments applies LSP's incremental changes through the `update` hook below; each change is also applied
// to the previous tree with tree.edit (positions of that change in the text as it was just before it), and the
// next analysis re-parses once with the edited tree, so tree-sitter reuses everything outside the edits.
import { TextDocument } from './lsp';
import type { TextDocumentContentChangeEvent, TextDocumentType } from './lsp';
import { parsePython, editFor, buildModelIndex, LineIndex } from '../analysis';
import type { Tree, ModelIndex } from '../analysis';

export class QdqDocument {
  /** Tree of the text at `treeVersion`, with the edits made since then already applied through tree.edit. */
  private tree: Tree | undefined;
  private treeVersion = -1;
  private index: ModelIndex | undefined;
  private indexVersion = -1;
  private lines: LineIndex | undefined;
  private linesVersion = -1;

  constructor(public textDocument: TextDocumentType) {}

  get uri(): string {
    return this.textDocument.uri;
  }
  get version(): number {
    return this.textDocument.version;
  }
  getText(): string {
    return this.textDocument.getText();
  }

  /** Applies LSP content changes to the text and the kept tree (no parsing here: it waits for the next use). */
  applyChanges(changes: TextDocumentContentChangeEvent[], version: number): void {
    for (const change of changes) {
      if ('range' in change && this.tree) {
        const before = this.textDocument.getText();
        this.tree.edit(editFor(before, change.range, change.text));
        this.textDocument = TextDocument.update(this.textDocument, [change], version);
      } else {
        // A full-text change (or no tree yet): nothing to reuse.
        this.tree = undefined;
        this.textDocument = TextDocument.update(this.textDocument, [change], version);
      }
    }
    // Version moves even when no change was sent, so analysis is redone.
    if (changes.length === 0) this.textDocument = TextDocument.update(this.textDocument, [], version);
  }

  /** The syntax tree of the current text (incremental re-parse when an older tree exists). */
  getTree(): Tree {
    if (!this.tree || this.treeVersion !== this.version) {
      this.tree = this.tree ? parsePython(this.getText(), { tree: this.tree }) : parsePython(this.getText());
      this.treeVersion = this.version;
    }
    return this.tree;
  }

  getIndex(): ModelIndex {
    if (!this.index || this.indexVersion !== this.version) {
      // The previous index lets unchanged top-level statements be reused (one-keystroke re-analysis).
      this.index = buildModelIndex(this.getTree(), this.getText(), this.index);
      this.indexVersion = this.version;
    }
    return this.index;
  }

  getLines(): LineIndex {
    if (!this.lines || this.linesVersion !== this.version) {
      this.lines = new LineIndex(this.getText());
      this.linesVersion = this.version;
    }
    return this.lines;
  }
}

/** The TextDocuments configuration that keeps QdqDocuments (and their trees) instead of plain TextDocuments. */
export const qdqDocumentsConfig = {
  create(uri: string, languageId: string, version: number, content: string): QdqDocument {
    return new QdqDocument(TextDocument.create(uri, languageId, version, content));
  },
  update(document: QdqDocument, changes: TextDocumentContentChangeEvent[], version: number): QdqDocument {
    document.applyChanges(changes, version);
    return document;
  },
};
