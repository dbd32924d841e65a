// Shared types of the diagnostics rules. Positions are LSP's: 0-based line and UTF-16 character,
// which is what node-tree-sitter reports for JavaScript strings, so node positions map 1:1.
import type Parser = require('tree-sitter');

export type SyntaxNode = Parser.SyntaxNode;
export type Tree = Parser.Tree;

export interface Position {
  line: number;
  character: number;
}
export interface Range {
  start: Position;
  end: Position;
}
export interface TextEdit {
  range: Range;
  newText: string;
}

export type Severity = 'error' | 'warning' | 'information' | 'hint';

/** A source rewrite attached to a diagnostic. Its edits travel in Diagnostic.data, so code actions keep no state. */
export interface QdqFix {
  title: string;
  /** 'safe': same results from the model for every input TensorRT can run; 'unsafe': changes behaviour, needs review. */
  safety: 'safe' | 'unsafe';
  edits: TextEdit[];
}

export interface QdqDiagnostic {
  code: string;
  severity: Severity;
  range: Range;
  message: string;
  fix?: QdqFix;
}

export interface RuleOptions {
  /** TensorRT version the engine is built with, e.g. "11.5", "10.15" or "8.6". Default DEFAULT_TRT_VERSION (11.x). */
  trtVersion?: string;
}

/** What every rule module exports. */
export interface Rule {
  code: string;
  title: string;
  defaultSeverity: Severity;
  /** Markdown: what the rule finds, why TensorRT fails, and the rewrite. */
  docs: string;
  /**
   * 'statement' (the default): a diagnostic depends only on the top-level statement it is reported in, the
   * file's imports, its module-level code and the options, so runRules keeps it while that statement is
   * unchanged and checks only the sites of changed statements (RuleContext.siteFilter). 'file': it may depend
   * on anything in the file (`model.eval()` anywhere before an export, quantizers declared in other classes), so
   * the rule runs on the whole file every time.
   */
  scope?: 'statement' | 'file';
  /**
   * The findings are ops of the exported graph: where they sit in code that never reaches the export (training-only
   * branches and losses, __init__, module level) they become hints (exportTime.ts). A function picks which findings.
   */
  traced?: boolean | ((d: QdqDiagnostic) => boolean);
  check(ctx: import('./context').RuleContext): QdqDiagnostic[];
}
