// Loads the tree-sitter queries in grammars/model-*.scm once, as one combined Query, so the model index
// is built from a single query pass over the tree. The compiled Query is the module's only state: process-wide,
// built on first use and never changed (it depends on the .scm files alone, never on a document).
import * as fs from 'fs';
import * as path from 'path';
import Parser = require('tree-sitter');
import { fastStart, getPythonLanguage, isIdentCharCode } from './parser';

/** The compiled grammars/model-*.scm (modelQuery). */
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
  /** Calls: the callee's text and whether it is a plain name (its capture's node is read only when asked for). */
  callee?: { text: string; isName: boolean };
}

const CALLEE_SCAN_LIMIT = 512;
const CALLEE_CHAIN = /[A-Za-z_]\w*(?:[ \t]*\.[ \t]*[A-Za-z_]\w*)*/y;

/**
 * The callee of the call spanning [start, end) read from the text, when it is a name or a dotted chain of names
 * followed by the call's own argument list: `(` right after it whose matching `)` ends the call. Null whenever
 * the text leaves any doubt (a string prefix that may hold braces, a triple quote, a comment, a non-ASCII name,
 * `a.b(c).d(e)`); the tree then answers. A model file has hundreds of calls, and reading each callee's node
 * through the binding costs more than this scan.
 */
export function calleeFromText(text: string, start: number, end: number): { text: string; isName: boolean } | null {
  CALLEE_CHAIN.lastIndex = start;
  const m = CALLEE_CHAIN.exec(text);
  if (!m) return null;
  let open = start + m[0].length;
  while (text.charCodeAt(open) === 32 || text.charCodeAt(open) === 9) open++;
  if (text.charCodeAt(open) !== 40 /* ( */ || text.charCodeAt(end - 1) !== 41 /* ) */) return null;
  // A long call is left to the tree: nested calls each scanning to their end would cost the square of the
  // nesting (issue 14 D2), and the tree's answer costs the same for any length.
  if (end - open > CALLEE_SCAN_LIMIT) return null;
  let depth = 0;
  for (let i = open; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 40 || c === 91 || c === 123) depth++;
    else if (c === 41 || c === 93 || c === 125) {
      depth--;
      if (depth === 0) return i === end - 1 ? { text: m[0], isName: !m[0].includes('.') } : null;
    } else if (c === 35 /* # */) return null;
    else if (c === 34 || c === 39) {
      // A string: skip it, unless it is triple-quoted or has a prefix (f-strings hold expressions).
      if (isIdentCharCode(text.charCodeAt(i - 1)) || (text.charCodeAt(i + 1) === c && text.charCodeAt(i + 2) === c))
        return null;
      let j = i + 1;
      for (; j < end; j++) {
        const d = text.charCodeAt(j);
        if (d === 92 /* \ */) j++;
        else if (d === c) break;
        else if (d === 10) return null;
      }
      if (j >= end) return null;
      i = j;
    }
  }
  return null;
}

// The node types the patterns of grammars/model-*.scm start from (`+=` by its token, the rest by their node).
const PATTERN_ROOTS = [
  'call',
  'binary_operator',
  '+=',
  'assignment',
  'class_definition',
  'function_definition',
  'return_statement',
];

/**
 * The matches of the combined query (grammars/model-*.scm, in file order: calls, ops, structure) under `node`,
 * found by one native walk for the node types its patterns start from and a few field lookups per candidate.
 * The binding's query cursor costs about 12 ms on a 5,000-line file even when nothing matches (60% of the bare
 * parse); this costs about 60% of that. The .scm files stay the definition: test/analysis/queries.test.ts checks
 * that both give the same matches over torchvision's and torch.nn's sources. `text` is the tree's text.
 */
export function modelMatches(node: Parser.SyntaxNode, text: string): ModelMatch[] {
  const out: ModelMatch[] = [];
  // Where the query would report each match: at the node the pattern starts from, or at an operator's token.
  const keys: number[] = [];
  let opAt = -1;
  for (const n of node.descendantsOfType(PATTERN_ROOTS)) {
    const count = out.length;
    switch (n.type) {
      case 'call': {
        // (call function: (identifier) @call.name) @call  /  (call function: (attribute) @call.attr) @call
        const at = fastStart(n);
        const callee = calleeFromText(text, at, n.endIndex);
        if (callee) {
          let f: Parser.SyntaxNode | undefined;
          const calleeCapture = {
            name: callee.isName ? 'call.name' : 'call.attr',
            get node() {
              return (f ??= n.childForFieldName('function')!);
            },
          };
          out.push({
            pattern: callee.isName ? 0 : 1,
            captures: [calleeCapture, { name: 'call', node: n }],
            at,
            callee,
          });
          break;
        }
        const f = n.childForFieldName('function');
        if (f?.type !== 'identifier' && f?.type !== 'attribute') break;
        const isName = f.type === 'identifier';
        out.push({
          pattern: isName ? 0 : 1,
          captures: [
            { name: isName ? 'call.name' : 'call.attr', node: f },
            { name: 'call', node: n },
          ],
          at,
          callee: { text: text.slice(fastStart(f), f.endIndex), isName },
        });
        break;
      }
      case 'binary_operator': {
        // (binary_operator operator: "@") @op.matmul  /  (binary_operator operator: "+") @op.add. From the operator
        // node, not from its token: a token's parent costs a cursor walk, the operator field one native call.
        const token = n.childForFieldName('operator');
        const t = token?.type;
        if (t !== '@' && t !== '+') break;
        opAt = fastStart(token!);
        out.push({
          pattern: t === '@' ? 2 : 3,
          captures: [{ name: t === '@' ? 'op.matmul' : 'op.add', node: n }],
          at: fastStart(n),
        });
        break;
      }
      case '+=': {
        const p = n.parent;
        if (p?.type === 'augmented_assignment')
          out.push({ pattern: 4, captures: [{ name: 'op.iadd', node: p }], at: fastStart(p) });
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
          out.push({
            pattern: 5,
            captures: [
              { name: 'assign.self', node: n },
              { name: 'assign.obj', node: obj },
              { name: 'assign.attr', node: attr },
              { name: 'assign.value', node: right },
            ],
            at: s,
          });
        }
        break;
      }
      case 'class_definition':
      case 'function_definition': {
        const name = n.childForFieldName('name');
        const kind = n.type === 'class_definition' ? 'class' : 'function';
        if (name?.type === 'identifier')
          out.push({
            pattern: kind === 'class' ? 6 : 7,
            captures: [
              { name: kind, node: n },
              { name: `${kind}.name`, node: name },
            ],
            at: fastStart(n),
          });
        break;
      }
      default:
        out.push({ pattern: 8, captures: [{ name: 'return', node: n }], at: fastStart(n) });
    }
    if (out.length > count) keys.push(n.type === 'binary_operator' ? opAt : fastStart(n));
  }
  return inQueryOrder(out, keys);
}

/**
 * The matches ordered as the query orders them (by `keys`, ties kept in walk order). Operators are found from
 * their binary_operator, which starts before its left operand's matches; the query reports them at the token.
 * Almost sorted already: one pass when nothing moves.
 */
function inQueryOrder(out: ModelMatch[], keys: number[]): ModelMatch[] {
  let sorted = true;
  for (let i = 1; i < keys.length && sorted; i++) sorted = keys[i - 1] <= keys[i];
  if (sorted) return out;
  const order = out.map((_, i) => i).sort((a, b) => keys[a] - keys[b] || a - b);
  return order.map((i) => out[i]);
}
