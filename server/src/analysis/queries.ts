// Loads the tree-sitter queries in grammars/model-*.scm once, as one combined Query, so the model index
// is built from a single query pass over the tree.
import * as fs from 'fs';
import * as path from 'path';
import Parser = require('tree-sitter');
import { fastStart, getPythonLanguage } from './parser';

let combined: Parser.Query | undefined;

/** The repository's grammars/ directory (compiled file lives in out/server/src/analysis). */
export function grammarsDir(): string {
  const candidates = [
    path.resolve(__dirname, '../../../../grammars'), // out/server/src/analysis -> repo/grammars
    path.resolve(__dirname, '../../../grammars'), // server/src/analysis (run from source)
  ];
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'model-calls.scm'))) return dir;
  }
  throw new Error(
    `qdq: cannot find the tree-sitter queries (grammars/model-*.scm) next to ${__dirname}; reinstall qdq or rebuild with "npx tsc -p ."`,
  );
}

export function modelQuerySource(): string {
  const dir = grammarsDir();
  return fs
    .readdirSync(dir)
    .filter((f) => /^model-.*\.scm$/.test(f))
    .sort()
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .join('\n');
}

export function modelQuery(): Parser.Query {
  if (!combined) combined = new Parser.Query(getPythonLanguage(), modelQuerySource());
  return combined;
}

/** What modelMatches hands out: QueryMatch's shape (pattern index in the combined query, captures). */
export interface ModelMatch {
  pattern: number;
  captures: { name: string; node: Parser.SyntaxNode }[];
  /** Where the node the pattern starts from starts (matches come in this order). */
  at: number;
}

// The node types the patterns of grammars/model-*.scm start from: operators by their token, the rest by their node.
const PATTERN_ROOTS = ['call', '@', '+', '+=', 'assignment', 'class_definition', 'function_definition', 'return_statement'];

/**
 * The matches of the combined query (grammars/model-*.scm, in file order: calls, ops, structure) under `node`,
 * found by one native walk for the node types its patterns start from and a few field lookups per candidate.
 * The binding's query cursor costs about 12 ms on a 5,000-line file even when nothing matches (60% of the bare
 * parse); this costs about 60% of that. The .scm files stay the definition: test/analysis/queries.test.ts checks
 * that both give the same matches over torchvision's and torch.nn's sources. `text` is the tree's text.
 */
export function modelMatches(node: Parser.SyntaxNode, text: string): ModelMatch[] {
  const out: ModelMatch[] = [];
  for (const n of node.descendantsOfType(PATTERN_ROOTS)) {
    switch (n.type) {
      case 'call': {
        // (call function: (identifier) @call.name) @call  /  (call function: (attribute) @call.attr) @call
        const f = n.childForFieldName('function');
        if (f?.type === 'identifier') out.push({ pattern: 0, captures: [{ name: 'call.name', node: f }, { name: 'call', node: n }], at: fastStart(n) });
        else if (f?.type === 'attribute') out.push({ pattern: 1, captures: [{ name: 'call.attr', node: f }, { name: 'call', node: n }], at: fastStart(n) });
        break;
      }
      case '@':
      case '+': {
        // (binary_operator operator: "@") @op.matmul  /  (binary_operator operator: "+") @op.add
        const p = n.parent;
        if (p?.type === 'binary_operator') out.push({ pattern: n.type === '@' ? 2 : 3, captures: [{ name: n.type === '@' ? 'op.matmul' : 'op.add', node: p }], at: fastStart(p) });
        break;
      }
      case '+=': {
        const p = n.parent;
        if (p?.type === 'augmented_assignment') out.push({ pattern: 4, captures: [{ name: 'op.iadd', node: p }], at: fastStart(p) });
        break;
      }
      case 'assignment': {
        // (assignment left: (attribute object: (identifier) attribute: (identifier)) right: (_))
        // A left side `obj.attr` has a `.` before the first `=`: other assignments are passed over from the text.
        const s = fastStart(n);
        const dot = text.indexOf('.', s);
        const eq = text.indexOf('=', s);
        if (dot < 0 || (eq >= 0 && eq < dot)) break;
        const left = n.childForFieldName('left');
        if (left?.type !== 'attribute') break;
        const obj = left.childForFieldName('object');
        const attr = left.childForFieldName('attribute');
        const right = n.childForFieldName('right');
        if (obj?.type === 'identifier' && attr?.type === 'identifier' && right) {
          out.push({ pattern: 5, captures: [{ name: 'assign.self', node: n }, { name: 'assign.obj', node: obj }, { name: 'assign.attr', node: attr }, { name: 'assign.value', node: right }], at: s });
        }
        break;
      }
      case 'class_definition':
      case 'function_definition': {
        const name = n.childForFieldName('name');
        const kind = n.type === 'class_definition' ? 'class' : 'function';
        if (name?.type === 'identifier') out.push({ pattern: kind === 'class' ? 6 : 7, captures: [{ name: kind, node: n }, { name: `${kind}.name`, node: name }], at: fastStart(n) });
        break;
      }
      default:
        out.push({ pattern: 8, captures: [{ name: 'return', node: n }], at: fastStart(n) });
    }
  }
  return out;
}
