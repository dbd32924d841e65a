// What a rule sees: the text, the tree, resolved import aliases and the call/operator sites found by one
// regular-expression scan of the text. A full walk of the tree through the native binding costs ~15 ms on a
// 5,000-line file, far over the per-keystroke budget, so rules start from textual triggers and only look at
// the tree around them (node lookups by offset are cheap). Scopes (one function body) are walked lazily.
import type { QdqDiagnostic, Range, RuleOptions, Severity, SyntaxNode, TextEdit, Tree } from './types';
import { parseTrtVersion, versionAtLeast, type TrtVersion } from './version';
import type { ModelIndex } from '../analysis/types';

export interface CallSite {
  node: SyntaxNode;
  /** Last name segment of the callee: `cumsum` for `torch.cumsum(...)` and `x.cumsum(...)`. */
  name: string;
  /** Fully qualified callee when it is a module path (aliases resolved): `torch.nn.functional.dropout`. */
  qualified: string | null;
  /** The value a method is called on (`x` in `x.cumsum(1)`); null for module functions and bare names. */
  receiver: SyntaxNode | null;
  args: SyntaxNode[];
  kwargs: Map<string, SyntaxNode>;
}

export interface Assign { start: number; end: number; value: SyntaxNode | null; target: SyntaxNode; statement: SyntaxNode }
export interface Param { node: SyntaxNode; annotation: string | null }

/** One function body (or the module's top level): the facts rules need about its names and expressions. */
export interface Scope {
  node: SyntaxNode;
  assigns: Map<string, Assign[]>;
  uses: Map<string, SyntaxNode[]>;
  params: Map<string, Param>;
  binaries: SyntaxNode[];
  augmented: SyntaxNode[];
  subscripts: SyntaxNode[];
}

/** Every callee name any rule starts from. Keep in sync with the rules (each rule lists what it uses). */
const CALL_WORDS = [
  // TRT001-003
  'cumsum',
  // TRT004-006
  'nonzero', 'argwhere', 'where', 'masked_select', 'masked_scatter', 'masked_scatter_',
  // TRT007-010
  'unique', 'unique_consecutive', 'bincount', 'histc', 'searchsorted',
  // TRT013
  'export', 'bernoulli', 'bernoulli_', 'dropout',
  // TRT017
  'matmul', 'mm', 'bmm', 'linear', 'einsum',
  // TRT022
  'topk',
  // TRT025/026
  'scatter_add', 'scatter_add_', 'scatter_reduce', 'scatter_reduce_', 'index_add', 'index_add_', 'scatter', 'scatter_',
  'index_put', 'index_put_',
  // TRT029
  'fft', 'ifft', 'rfft', 'irfft', 'fft2', 'ifft2', 'rfft2', 'irfft2', 'fftn', 'ifftn', 'rfftn', 'irfftn', 'hfft', 'ihfft',
  // TRT030
  'bitwise_and', 'bitwise_or', 'bitwise_xor', 'bitwise_not', 'bitwise_left_shift', 'bitwise_right_shift',
  'bitwise_and_', 'bitwise_or_', 'bitwise_xor_', 'bitwise_not_',
  // TRT031
  'max', 'min', 'amax', 'amin',
  // TRT032
  'byte', 'to', 'type',
  // TRT033
  'floor', 'ceil', 'round', 'trunc', 'sqrt', 'rsqrt', 'exp', 'expm1', 'exp2', 'log', 'log2', 'log10', 'log1p', 'erf',
  'erfc', 'erfinv', 'sin', 'cos', 'tan', 'asin', 'acos', 'atan', 'sinh', 'cosh', 'asinh', 'acosh', 'atanh', 'reciprocal',
  // TRT049
  'convert', 'quantize_dynamic', 'convert_fx', 'quantize', 'quantize_qat', 'convert_pt2e',
  // QDQ lints
  'TensorQuantizer', 'QuantDescriptor', 'ScaledQuantDescriptor', 'FakeQuantize', 'FusedMovingAvgObsFakeQuantize',
  'fake_quantize_per_tensor_affine', 'fake_quantize_per_channel_affine', 'disable', 'cat', 'concat', 'concatenate',
  'MinMaxObserver', 'MovingAverageMinMaxObserver', 'PerChannelMinMaxObserver', 'MovingAveragePerChannelMinMaxObserver',
  'HistogramObserver', 'QConfig',
];
const CALL_RE = new RegExp(`\\b(${CALL_WORDS.join('|')})\\s*\\(`, 'g');
const OPERATOR_RE = /@|&|\||\^|~|<<|>>/g;
const IMPORT_RE = /^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+)?import[ \t]+(\([^)]*\)|[^\n#;]+)/gm;

/** Names a file may use without importing them (snippets, notebooks' cells, half-written files). */
const CONVENTIONAL_ALIASES: Record<string, string> = {
  torch: 'torch', nn: 'torch.nn', F: 'torch.nn.functional', quant_nn: 'pytorch_quantization.nn',
  qdq_quant: 'qdq_quant', np: 'numpy',
};

export class RuleContext {
  readonly root: SyntaxNode;
  readonly trt: TrtVersion;
  readonly aliases = new Map<string, string>();
  private readonly callsByName = new Map<string, CallSite[]>();
  private operatorNodes: SyntaxNode[] | null = null;
  private readonly scopes = new Map<number, Scope>();
  private readonly dtypeCache = new Map<number, unknown>();

  constructor(readonly tree: Tree, readonly text: string, opts: RuleOptions = {}, readonly index: ModelIndex | null = null) {
    this.root = tree.rootNode;
    this.trt = parseTrtVersion(opts.trtVersion);
    this.readImports();
    this.scanCalls();
  }

  trtAtLeast(major: number, minor = 0): boolean { return versionAtLeast(this.trt, major, minor); }

  // ---------------------------------------------------------------- text and positions

  src(node: SyntaxNode): string { return this.text.slice(node.startIndex, node.endIndex); }

  range(node: SyntaxNode, endNode: SyntaxNode = node): Range {
    return {
      start: { line: node.startPosition.row, character: node.startPosition.column },
      end: { line: endNode.endPosition.row, character: endNode.endPosition.column },
    };
  }

  replace(node: SyntaxNode, newText: string): TextEdit { return { range: this.range(node), newText }; }
  insertBefore(node: SyntaxNode, newText: string): TextEdit {
    const p = { line: node.startPosition.row, character: node.startPosition.column };
    return { range: { start: p, end: p }, newText };
  }
  insertAfter(node: SyntaxNode, newText: string): TextEdit {
    const p = { line: node.endPosition.row, character: node.endPosition.column };
    return { range: { start: p, end: p }, newText };
  }

  diag(code: string, severity: Severity, node: SyntaxNode, message: string, fix?: QdqDiagnostic['fix']): QdqDiagnostic {
    const d: QdqDiagnostic = { code, severity, range: this.range(node), message };
    if (fix) d.fix = fix;
    return d;
  }

  // ---------------------------------------------------------------- imports

  private readImports(): void {
    IMPORT_RE.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = IMPORT_RE.exec(this.text))) {
      const from = m[1];
      const names = m[2].replace(/[()\\\n]/g, ' ');
      for (const part of names.split(',')) {
        const pm = /^\s*([\w.]+)(?:\s+as\s+(\w+))?\s*$/.exec(part);
        if (!pm) continue;
        const [, path, alias] = pm;
        if (from !== undefined) {
          const base = /^\.+$/.test(from) ? '' : from.replace(/^\.+/, '');
          this.aliases.set(alias ?? path, base ? `${base}.${path}` : path);
        } else if (alias) {
          this.aliases.set(alias, path);
        } else {
          const first = path.split('.')[0];
          this.aliases.set(first, first);
        }
      }
    }
  }

  /** `torch.nn.functional` for the expression `F` (or `torch.nn.functional` itself); null when not a module path. */
  modulePath(node: SyntaxNode | null, depth = 0): string | null {
    if (!node || depth > 8) return null;
    if (node.type === 'identifier') {
      const name = this.src(node);
      return this.aliases.get(name) ?? CONVENTIONAL_ALIASES[name] ?? null;
    }
    if (node.type === 'attribute') {
      const obj = this.modulePath(node.childForFieldName('object'), depth + 1);
      const attr = node.childForFieldName('attribute');
      return obj && attr ? `${obj}.${this.src(attr)}` : null;
    }
    return null;
  }

  // ---------------------------------------------------------------- call sites

  private scanCalls(): void {
    CALL_RE.lastIndex = 0;
    let m: RegExpExecArray | null;
    const seen = new Set<number>();
    while ((m = CALL_RE.exec(this.text))) {
      const word = m[1];
      const idNode = this.root.descendantForIndex(m.index, m.index + word.length);
      if (idNode.type !== 'identifier' && idNode.type !== 'type') continue;
      const site = this.callSiteForName(idNode);
      if (!site || seen.has(site.node.id)) continue;
      seen.add(site.node.id);
      let list = this.callsByName.get(site.name);
      if (!list) this.callsByName.set(site.name, (list = []));
      list.push(site);
    }
  }

  private callSiteForName(idNode: SyntaxNode): CallSite | null {
    let fn = idNode;
    const parent = idNode.parent;
    if (parent && parent.type === 'attribute' && parent.childForFieldName('attribute')?.id === idNode.id) fn = parent;
    const call = fn.parent;
    if (!call || call.type !== 'call' || call.childForFieldName('function')?.id !== fn.id) return null;
    return this.callSite(call);
  }

  /** Describes any call node (also used on calls not found by the scan). */
  callSite(call: SyntaxNode): CallSite | null {
    const fn = call.childForFieldName('function');
    if (!fn) return null;
    let name: string;
    let qualified: string | null = null;
    let receiver: SyntaxNode | null = null;
    if (fn.type === 'identifier') {
      name = this.src(fn);
      const q = this.aliases.get(name);
      qualified = q ?? null;
    } else if (fn.type === 'attribute') {
      const attr = fn.childForFieldName('attribute');
      const obj = fn.childForFieldName('object');
      if (!attr || !obj) return null;
      name = this.src(attr);
      const mod = this.modulePath(obj);
      if (mod) qualified = `${mod}.${name}`;
      else receiver = obj;
    } else {
      return null;
    }
    const args: SyntaxNode[] = [];
    const kwargs = new Map<string, SyntaxNode>();
    const argList = call.childForFieldName('arguments');
    if (argList && argList.type === 'argument_list') {
      for (const a of argList.namedChildren) {
        if (a.type === 'comment') continue;
        if (a.type === 'keyword_argument') {
          const k = a.childForFieldName('name');
          const v = a.childForFieldName('value');
          if (k && v) kwargs.set(this.src(k), v);
        } else {
          args.push(a);
        }
      }
    } else if (argList) {
      args.push(argList); // generator expression argument
    }
    return { node: call, name, qualified, receiver, args, kwargs };
  }

  /** Calls whose last callee segment is one of `names` (each must be in CALL_WORDS). */
  calls(...names: string[]): CallSite[] {
    const out: CallSite[] = [];
    for (const n of names) {
      const list = this.callsByName.get(n);
      if (list) out.push(...list);
    }
    return out;
  }

  /** Positional argument `index`, or keyword argument `kw`. */
  arg(site: CallSite, index: number, kw?: string): SyntaxNode | null {
    if (kw && site.kwargs.has(kw)) return site.kwargs.get(kw)!;
    return site.args[index] ?? null;
  }

  /** True when the call is `torch.<name>` / `torch.<sub>.<name>` (through any alias), or a method on a value. */
  isTorch(site: CallSite, ...prefixes: string[]): boolean {
    if (!site.qualified) return false;
    const pre = prefixes.length ? prefixes : ['torch'];
    return pre.some((p) => site.qualified === `${p}.${site.name}`);
  }

  // ---------------------------------------------------------------- operators

  /** binary_operator / unary_operator / augmented_assignment nodes using @ & | ^ ~ << >> (and their `=` forms). */
  operators(): SyntaxNode[] {
    if (this.operatorNodes) return this.operatorNodes;
    const out: SyntaxNode[] = [];
    const seen = new Set<number>();
    OPERATOR_RE.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = OPERATOR_RE.exec(this.text))) {
      const tok = this.root.descendantForIndex(m.index, m.index + m[0].length);
      const parent = tok.parent;
      if (!parent) continue;
      if (parent.type !== 'binary_operator' && parent.type !== 'unary_operator' && parent.type !== 'augmented_assignment') continue;
      const op = parent.childForFieldName('operator');
      if (!op || op.startIndex !== m.index || seen.has(parent.id)) continue;
      seen.add(parent.id);
      out.push(parent);
    }
    this.operatorNodes = out;
    return out;
  }

  // ---------------------------------------------------------------- scopes

  /** The innermost function_definition around `node`, or the module. */
  scopeNodeOf(node: SyntaxNode): SyntaxNode {
    let n: SyntaxNode | null = node.parent;
    while (n) {
      if (n.type === 'function_definition') return n;
      n = n.parent;
    }
    return this.root;
  }

  enclosing(node: SyntaxNode, type: string): SyntaxNode | null {
    let n: SyntaxNode | null = node.parent;
    while (n) {
      if (n.type === type) return n;
      n = n.parent;
    }
    return null;
  }

  /** The statement (direct child of a block or the module) that contains `node`. */
  statementOf(node: SyntaxNode): SyntaxNode {
    let n = node;
    while (n.parent && n.parent.type !== 'block' && n.parent.type !== 'module') n = n.parent;
    return n;
  }

  scope(node: SyntaxNode): Scope {
    const scopeNode = this.scopeNodeOf(node);
    let s = this.scopes.get(scopeNode.id);
    if (!s) this.scopes.set(scopeNode.id, (s = this.buildScope(scopeNode)));
    return s;
  }

  scopeOfFunction(fn: SyntaxNode): Scope {
    let s = this.scopes.get(fn.id);
    if (!s) this.scopes.set(fn.id, (s = this.buildScope(fn)));
    return s;
  }

  private buildScope(scopeNode: SyntaxNode): Scope {
    const s: Scope = { node: scopeNode, assigns: new Map(), uses: new Map(), params: new Map(), binaries: [], augmented: [], subscripts: [] };
    if (scopeNode.type === 'function_definition') {
      const params = scopeNode.childForFieldName('parameters');
      for (const p of params?.namedChildren ?? []) {
        let nameNode: SyntaxNode | null = null;
        let ann: SyntaxNode | null = null;
        if (p.type === 'identifier') nameNode = p;
        else if (p.type === 'typed_parameter') { nameNode = p.namedChildren.find((c) => c.type === 'identifier') ?? null; ann = p.childForFieldName('type'); }
        else if (p.type === 'default_parameter' || p.type === 'typed_default_parameter') { nameNode = p.childForFieldName('name'); ann = p.childForFieldName('type'); }
        if (nameNode) s.params.set(this.src(nameNode), { node: nameNode, annotation: ann ? this.src(ann) : null });
      }
    }
    const body = scopeNode.type === 'function_definition' ? scopeNode.childForFieldName('body') : scopeNode;
    if (!body) return s;
    const cursor = body.walk();
    let depth = 0;
    outer: for (;;) {
      const type = cursor.nodeType;
      let descend = true;
      if (depth > 0 && (type === 'function_definition' || type === 'class_definition')) descend = false;
      else if (type === 'identifier') {
        const n = cursor.currentNode;
        const name = this.src(n);
        let list = s.uses.get(name);
        if (!list) s.uses.set(name, (list = []));
        list.push(n);
      } else if (type === 'assignment' || type === 'named_expression') {
        const n = cursor.currentNode;
        const left = n.childForFieldName(type === 'assignment' ? 'left' : 'name');
        const right = n.childForFieldName(type === 'assignment' ? 'right' : 'value');
        if (left) this.recordAssign(s, left, left.type === 'identifier' ? right : null, n);
      } else if (type === 'for_statement' || type === 'for_in_clause') {
        const left = cursor.currentNode.childForFieldName('left');
        if (left) this.recordAssign(s, left, null, cursor.currentNode);
      } else if (type === 'binary_operator') s.binaries.push(cursor.currentNode);
      else if (type === 'augmented_assignment') s.augmented.push(cursor.currentNode);
      else if (type === 'subscript') s.subscripts.push(cursor.currentNode);
      if (descend && cursor.gotoFirstChild()) { depth++; continue; }
      for (;;) {
        if (depth === 0) break outer;
        if (cursor.gotoNextSibling()) continue outer;
        cursor.gotoParent();
        depth--;
      }
    }
    return s;
  }

  private recordAssign(s: Scope, target: SyntaxNode, value: SyntaxNode | null, statement: SyntaxNode): void {
    if (target.type === 'identifier') {
      const name = this.src(target);
      let list = s.assigns.get(name);
      if (!list) s.assigns.set(name, (list = []));
      list.push({ start: statement.startIndex, end: statement.endIndex, value, target, statement });
      return;
    }
    if (target.type === 'pattern_list' || target.type === 'tuple_pattern' || target.type === 'list_pattern' || target.type === 'tuple') {
      for (const c of target.namedChildren) this.recordAssign(s, c, null, statement);
    }
  }

  /** The assignment to `name` that is in effect just before `offset` in `scope` (last one fully before it). */
  assignmentBefore(scope: Scope, name: string, offset: number): Assign | null {
    const list = scope.assigns.get(name);
    if (!list) return null;
    let best: Assign | null = null;
    for (const a of list) if (a.end <= offset && (!best || a.start > best.start)) best = a;
    return best;
  }

  /** Uses of `name` in `scope` that read it (not attribute names, keyword names or assignment targets). */
  readsOf(scope: Scope, name: string): SyntaxNode[] {
    const out: SyntaxNode[] = [];
    for (const n of scope.uses.get(name) ?? []) {
      const p = n.parent;
      if (p?.type === 'attribute' && p.childForFieldName('attribute')?.id === n.id) continue;
      if (p?.type === 'keyword_argument' && p.childForFieldName('name')?.id === n.id) continue;
      if ((p?.type === 'assignment' || p?.type === 'augmented_assignment') && p.childForFieldName('left')?.id === n.id) continue;
      if (p && (p.type === 'parameters' || p.type === 'typed_parameter' || p.type === 'default_parameter' || p.type === 'typed_default_parameter')) continue;
      out.push(n);
    }
    return out;
  }

  /** Memo for dtype inference (see dtype.ts). */
  cache<T>(node: SyntaxNode, compute: () => T): T {
    if (this.dtypeCache.has(node.id)) return this.dtypeCache.get(node.id) as T;
    const v = compute();
    this.dtypeCache.set(node.id, v);
    return v;
  }
}

/** Strips parentheses: `((x))` -> `x`. */
export function unparen(node: SyntaxNode): SyntaxNode {
  let n = node;
  while (n.type === 'parenthesized_expression' && n.namedChildCount === 1) n = n.namedChildren[0];
  return n;
}

/** Whether `node` can take a method call or subscript without parentheses. */
export function isPrimary(node: SyntaxNode): boolean {
  return ['identifier', 'attribute', 'call', 'subscript', 'parenthesized_expression', 'list', 'tuple', 'string', 'true', 'false', 'none'].includes(node.type);
}
