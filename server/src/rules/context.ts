// What a rule sees: the text, the tree, resolved import aliases and the call/operator sites found by one
// regular-expression scan of the text. A full walk of the tree through the native binding costs ~15 ms on a
// 5,000-line file, far over the per-keystroke budget, so rules start from textual triggers and only look at
// the tree around them (node lookups by offset are cheap). Scopes (one function body) are walked lazily.
import type { QdqDiagnostic, Range, RuleOptions, Severity, SyntaxNode, TextEdit, Tree } from './types';
import { parseTrtVersion, versionAtLeast, type TrtVersion } from './version';
import type { IndexCaches, ModelIndex } from '../analysis/types';
import { scanText, type TextScan } from './scan';
import { detectEol, documentCaches, statementLayout } from '../analysis/model';
import { LineIndex, analysisText, isIdentCharCode } from '../analysis/parser';

export interface CallSite {
  node: SyntaxNode;
  /** Last name segment of the callee: `cumsum` for `torch.cumsum(...)` and `x.cumsum(...)`. */
  name: string;
  /** Fully qualified callee when it is a module path (aliases resolved): `torch.nn.functional.dropout`. */
  qualified: string | null;
  /** The value a method is called on (`x` in `x.cumsum(1)`); null for module functions and bare names. */
  receiver: SyntaxNode | null;
  /** Positional arguments (computed on first use: most sites are rejected by name/receiver before). */
  readonly args: SyntaxNode[];
  readonly kwargs: Map<string, SyntaxNode>;
}

export interface Assign {
  start: number;
  end: number;
  value: SyntaxNode | null;
  target: SyntaxNode;
  statement: SyntaxNode;
}
export interface Param {
  node: SyntaxNode;
  annotation: string | null;
}

/**
 * One function body (or the module's top level). Facts about a name are found on demand by searching the
 * scope's text for the name and looking at the few nodes there, never by walking the whole body.
 */
export interface Scope {
  node: SyntaxNode;
  readonly start: number;
  end: number;
  readonly params: Map<string, Param>;
}

interface NameFacts {
  assigns: Assign[];
  reads: SyntaxNode[];
}

/** Every callee name any rule starts from. Keep in sync with the rules (each rule lists what it uses). */
const CALL_WORDS = [
  // TRT001-003
  'cumsum',
  // TRT004-006
  'nonzero',
  'argwhere',
  'where',
  'masked_select',
  'masked_scatter',
  'masked_scatter_',
  // TRT007-010
  'unique',
  'unique_consecutive',
  'bincount',
  'histc',
  'searchsorted',
  // TRT013
  'export',
  'bernoulli',
  'bernoulli_',
  'dropout',
  // TRT017
  'matmul',
  'mm',
  'bmm',
  'linear',
  'einsum',
  // TRT022
  'topk',
  // TRT066
  'sort',
  'argsort',
  'msort',
  // TRT025/026
  'scatter_add',
  'scatter_add_',
  'scatter_reduce',
  'scatter_reduce_',
  'index_add',
  'index_add_',
  'scatter',
  'scatter_',
  'index_put',
  'index_put_',
  // TRT029
  'fft',
  'ifft',
  'rfft',
  'irfft',
  'fft2',
  'ifft2',
  'rfft2',
  'irfft2',
  'fftn',
  'ifftn',
  'rfftn',
  'irfftn',
  'hfft',
  'ihfft',
  // TRT030
  'bitwise_and',
  'bitwise_or',
  'bitwise_xor',
  'bitwise_not',
  'bitwise_left_shift',
  'bitwise_right_shift',
  'bitwise_and_',
  'bitwise_or_',
  'bitwise_xor_',
  'bitwise_not_',
  // TRT032
  'byte',
  // TRT033
  'floor',
  'ceil',
  'round',
  'trunc',
  'sqrt',
  'rsqrt',
  'exp',
  'expm1',
  'exp2',
  'log',
  'log2',
  'log10',
  'log1p',
  'erf',
  'erfc',
  'erfinv',
  'sin',
  'cos',
  'tan',
  'asin',
  'acos',
  'atan',
  'sinh',
  'cosh',
  'asinh',
  'acosh',
  'atanh',
  'reciprocal',
  // TRT049
  'convert',
  'quantize_dynamic',
  'convert_fx',
  'quantize',
  'quantize_qat',
  'convert_pt2e',
  // QDQ lints
  'TensorQuantizer',
  'QuantDescriptor',
  'ScaledQuantDescriptor',
  'FakeQuantize',
  'FusedMovingAvgObsFakeQuantize',
  'fake_quantize_per_tensor_affine',
  'fake_quantize_per_channel_affine',
  'disable',
  'cat',
  'concat',
  'concatenate',
  'MinMaxObserver',
  'MovingAverageMinMaxObserver',
  'PerChannelMinMaxObserver',
  'MovingAveragePerChannelMinMaxObserver',
  'HistogramObserver',
  'QConfig',
];
/** Methods whose result is a bool tensor (found by the same '(' scan, for TRT005/TRT031). */
export const BOOL_PRODUCER_WORDS = [
  'ne',
  'eq',
  'gt',
  'lt',
  'ge',
  'le',
  'bool',
  'logical_and',
  'logical_or',
  'logical_not',
  'logical_xor',
  'isnan',
  'isinf',
  'isfinite',
  'isin',
];
const CALL_WORD_SET = new Set([...CALL_WORDS, ...BOOL_PRODUCER_WORDS]);

/** Names a file may use without importing them (snippets, notebooks' cells, half-written files). */
const CONVENTIONAL_ALIASES: Record<string, string> = {
  torch: 'torch',
  nn: 'torch.nn',
  F: 'torch.nn.functional',
  quant_nn: 'pytorch_quantization.nn',
  qdq_quant: 'qdq_quant',
  np: 'numpy',
};

export class RuleContext {
  readonly root: SyntaxNode;
  readonly trt: TrtVersion;
  readonly aliases = new Map<string, string>();
  /** The text scans (strings/comments, call triggers, operators, ...), cached per statement across versions. */
  readonly scan: TextScan;
  private aliasKeyText: string | null = null;
  private readonly defAt = new Map<
    number,
    { start: number; end: number; node: SyntaxNode; topStart: number; topEnd: number } | null
  >();
  private readonly callsByName = new Map<string, CallSite[]>();
  private operatorNodes: SyntaxNode[] | null = null;
  private readonly scopes = new Map<number, Scope>();
  private readonly nameFacts = new Map<string, NameFacts>();
  private readonly assignFacts = new Map<string, Assign[]>();
  private topLevelDefs: Array<[number, number]> | null = null;
  private lineStarts: number[] | undefined;
  private defOffsets: number[] | undefined;
  private readonly dtypeCache = new Map<number, unknown>();
  /**
   * callSite per call node id: several rules and the dtype inference describe the same calls, each description
   * costing a handful of native child lookups (nested `cumsum(` calls were described once per rule and per level).
   */
  private readonly callSites = new Map<number, CallSite | null>();
  /**
   * Set by runRules while the rules that answer per statement run on the statements that changed: the site
   * lists (calls, callsFiltered, operators, wantsSite) then hold only sites where it says yes. Inference
   * (dtype, bool producers, name lookups) always sees the whole file.
   */
  siteFilter: ((offset: number) => boolean) | null = null;

  /** The document's text as the analysis reads it (analysisText: a lone CR is LF; offsets are the document's). */
  readonly text: string;
  /** The document's line break, for inserted lines. */
  readonly eol: '\n' | '\r\n' | '\r';
  /** The caches kept with the document between runs (none for a one-shot run without a previous index). */
  readonly documentCaches: IndexCaches | undefined;
  constructor(
    readonly tree: Tree,
    text: string,
    opts: RuleOptions = {},
    readonly index: ModelIndex | null = null,
  ) {
    this.eol = detectEol(text);
    text = analysisText(text);
    this.text = text;
    this.root = tree.rootNode;
    this.trt = parseTrtVersion(opts.trtVersion);
    const layout = statementLayout(index, text);
    this.documentCaches = documentCaches(index);
    this.scan = scanText(text, CALL_WORD_SET, layout?.starts, this.documentCaches, layout?.reuse);
    this.readImports();
  }

  trtAtLeast(major: number, minor = 0): boolean {
    return versionAtLeast(this.trt, major, minor);
  }

  /** False inside string literals and comments (a text-level answer, no tree access). */
  isCode(offset: number): boolean {
    return this.scan.isCode(offset);
  }

  // ---------------------------------------------------------------- text and positions

  src(node: SyntaxNode): string {
    return this.text.slice(node.startIndex, node.endIndex);
  }

  range(node: SyntaxNode, endNode: SyntaxNode = node): Range {
    return {
      start: { line: node.startPosition.row, character: node.startPosition.column },
      end: { line: endNode.endPosition.row, character: endNode.endPosition.column },
    };
  }

  replace(node: SyntaxNode, newText: string): TextEdit {
    return { range: this.range(node), newText };
  }
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
    for (const [name, path] of this.scan.aliases) this.aliases.set(name, path);
  }

  /** The import aliases as one string (part of cross-run memo keys). */
  aliasKey(): string {
    if (this.aliasKeyText === null)
      this.aliasKeyText = [...this.aliases]
        .map(([k, v]) => `${k}=${v}`)
        .sort()
        .join(';');
    return this.aliasKeyText;
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

  /** Offsets of `word(` for every word of CALL_WORDS / BOOL_PRODUCER_WORDS, by word (see scan.ts). */
  private hits(): Map<string, number[]> {
    return this.scan.callHits;
  }

  /** False for a site outside the statements being checked (see siteFilter). */
  wantsSite(offset: number): boolean {
    return !this.siteFilter || this.siteFilter(offset);
  }

  private sitesFor(word: string): CallSite[] {
    const filter = this.siteFilter;
    const cacheKey = filter ? `\u0000${word}` : word;
    const cached = this.callsByName.get(cacheKey);
    if (cached) return cached;
    const list: CallSite[] = [];
    for (const index of this.hits().get(word) ?? []) {
      if (filter && !filter(index)) continue;
      const idNode = this.root.descendantForIndex(index, index + word.length);
      if (idNode.type !== 'identifier') continue;
      const site = this.callSiteForName(idNode);
      if (site && site.name === word) list.push(site);
    }
    this.callsByName.set(cacheKey, list);
    return list;
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
    const id = call.id;
    let site = this.callSites.get(id);
    if (site === undefined) this.callSites.set(id, (site = this.describeCall(call)));
    return site;
  }

  private describeCall(call: SyntaxNode): CallSite | null {
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
    let parsed: { args: SyntaxNode[]; kwargs: Map<string, SyntaxNode> } | null = null;
    const parse = () => {
      if (parsed) return parsed;
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
      return (parsed = { args, kwargs });
    };
    return {
      node: call,
      name,
      qualified,
      receiver,
      get args() {
        return parse().args;
      },
      get kwargs() {
        return parse().kwargs;
      },
    };
  }

  /** Offsets of `word(` for words in CALL_WORDS / BOOL_PRODUCER_WORDS (text positions, comments/strings excluded). */
  wordOffsets(word: string): number[] {
    return this.hits().get(word) ?? [];
  }

  /**
   * Like calls(), but `keep(offset, word)` first rejects hits from the text alone, before any node lookup
   * (for common words such as `dropout` where only rare argument patterns matter).
   */
  callsFiltered(names: string[], keep: (offset: number, word: string) => boolean): CallSite[] {
    const out: CallSite[] = [];
    for (const word of names) {
      for (const index of this.hits().get(word) ?? []) {
        if (!this.wantsSite(index) || !keep(index, word)) continue;
        const idNode = this.root.descendantForIndex(index, index + word.length);
        if (idNode.type !== 'identifier') continue;
        const site = this.callSiteForName(idNode);
        if (site && site.name === word) out.push(site);
      }
    }
    return out;
  }

  /** Calls whose last callee segment is one of `names` (each must be in CALL_WORDS). */
  calls(...names: string[]): CallSite[] {
    const out: CallSite[] = [];
    for (const n of names) out.push(...this.sitesFor(n));
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
    const filter = this.siteFilter;
    if (!filter && this.operatorNodes) return this.operatorNodes;
    const out: SyntaxNode[] = [];
    const seen = new Set<number>();
    const candidates = this.scan.operators; // [offset, length] pairs, already without decorators/annotations
    for (let k = 0; k < candidates.length; k += 2) {
      const at = candidates[k];
      if (filter && !filter(at)) continue;
      const tok = this.root.descendantForIndex(at, at + candidates[k + 1]);
      const parent = tok.parent;
      if (!parent) continue;
      if (
        parent.type !== 'binary_operator' &&
        parent.type !== 'unary_operator' &&
        parent.type !== 'augmented_assignment'
      )
        continue;
      const op = parent.childForFieldName('operator');
      if (!op || op.startIndex !== at || seen.has(parent.id)) continue;
      seen.add(parent.id);
      out.push(parent);
    }
    if (!filter) this.operatorNodes = out;
    return out;
  }

  // ---------------------------------------------------------------- scopes

  /** The function_definition whose `def` keyword is at `p`, or null (cached; resolved only when asked). */
  private defNodeAt(
    p: number,
  ): { start: number; end: number; node: SyntaxNode; topStart: number; topEnd: number } | null {
    let r = this.defAt.get(p);
    if (r !== undefined) return r;
    r = null;
    const text = this.text;
    const before = p > 0 ? text.charCodeAt(p - 1) : 32;
    const after = text.charCodeAt(p + 3);
    if (!isIdentCharCode(before) && (after === 32 || after === 9) && this.isCode(p)) {
      const kw = this.root.descendantForIndex(p, p + 3);
      const fn = kw.parent;
      if (kw.type === 'def' && fn && fn.type === 'function_definition') {
        // The module-level statement holding this def: scopeNodeOf skips every def nested in it at once.
        let top: SyntaxNode = fn;
        for (let up = fn.parent; up && up.type !== 'module'; up = up.parent) top = up;
        r = { start: fn.startIndex, end: fn.endIndex, node: fn, topStart: top.startIndex, topEnd: top.endIndex };
      }
    }
    this.defAt.set(p, r);
    return r;
  }

  /**
   * The innermost function_definition around `node`, or the module. Walks back over `def` keywords in the
   * text: the first preceding def whose range contains the node is the innermost one.
   */
  scopeNodeOf(node: SyntaxNode): SyntaxNode {
    const at = node.startIndex;
    const text = this.text;
    // Fast path: code on a line starting at column 0 (not a def header) is module-level code.
    const lineStart = this.lineStartOf(at);
    const first = text.charCodeAt(lineStart);
    if (
      lineStart < at &&
      first !== 32 &&
      first !== 9 &&
      !text.startsWith('def ', lineStart) &&
      !text.startsWith('async ', lineStart) &&
      this.isCode(lineStart)
    ) {
      return this.root;
    }
    for (let from = at; from >= 0;) {
      const p = this.defBefore(from);
      if (p < 0) break;
      const r = this.defNodeAt(p);
      if (r && r.start <= at && at < r.end && !(r.start === at && r.node.id === node.id)) return r.node;
      // A def that ends before the node holds no def around it either: its nested ones are passed over at once.
      from = r && r.topEnd <= at ? r.topStart - 1 : r && r.end <= at ? r.start - 1 : p - 1;
    }
    return this.root;
  }

  /**
   * Where the line holding `offset` starts. Line starts and `def` offsets are listed once per context: searching
   * back through the text on every question would cost the square of a long line's or a long body's length
   * when every operator or call asks (issue 14 D2).
   */
  private lineStartOf(offset: number): number {
    const starts = (this.lineStarts ??= new LineIndex(this.text).starts);
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return starts[lo];
  }

  /** The last offset at or before `from` of `def` as a word followed by a blank (what defNodeAt accepts), or -1. */
  private defBefore(from: number): number {
    if (!this.defOffsets) {
      const list: number[] = [];
      const text = this.text;
      for (let p = text.indexOf('def'); p >= 0; p = text.indexOf('def', p + 1)) {
        const after = text.charCodeAt(p + 3);
        if ((p === 0 || !isIdentCharCode(text.charCodeAt(p - 1))) && (after === 32 || after === 9)) list.push(p);
      }
      this.defOffsets = list;
    }
    const list = this.defOffsets;
    let lo = 0;
    let hi = list.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid] <= from) {
        best = list[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
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
    return this.scopeOfNode(this.scopeNodeOf(node));
  }

  scopeOfFunction(fn: SyntaxNode): Scope {
    return this.scopeOfNode(fn);
  }

  private scopeOfNode(scopeNode: SyntaxNode): Scope {
    const cached = this.scopes.get(scopeNode.id);
    if (cached) return cached;
    let params: Map<string, Param> | null = null;
    const readParams = (): Map<string, Param> => {
      if (params) return params;
      params = new Map();
      if (scopeNode.type !== 'function_definition') return params;
      for (const p of scopeNode.childForFieldName('parameters')?.namedChildren ?? []) {
        let nameNode: SyntaxNode | null = null;
        let ann: SyntaxNode | null = null;
        if (p.type === 'identifier') nameNode = p;
        else if (p.type === 'typed_parameter') {
          nameNode = p.namedChildren.find((c) => c.type === 'identifier') ?? null;
          ann = p.childForFieldName('type');
        } else if (p.type === 'default_parameter' || p.type === 'typed_default_parameter') {
          nameNode = p.childForFieldName('name');
          ann = p.childForFieldName('type');
        }
        if (nameNode) params.set(this.src(nameNode), { node: nameNode, annotation: ann ? this.src(ann) : null });
      }
      return params;
    };
    let bodyStart: number | null = null;
    const readBodyStart = (): number => {
      if (bodyStart === null)
        bodyStart =
          scopeNode.type === 'function_definition'
            ? (scopeNode.childForFieldName('body')?.startIndex ?? scopeNode.startIndex)
            : scopeNode.startIndex;
      return bodyStart;
    };
    // Parameters and the body start are read on first use: most lookups are answered by the cross-run memo.
    const s: Scope = {
      node: scopeNode,
      get start() {
        return readBodyStart();
      },
      end: scopeNode.endIndex,
      get params() {
        return readParams();
      },
    };
    this.scopes.set(scopeNode.id, s);
    return s;
  }

  /** [start, end) of top-level defs and classes: module-scope name searches skip them without node lookups. */
  private topLevelDefRanges(): Array<[number, number]> {
    if (this.topLevelDefs) return this.topLevelDefs;
    const out: Array<[number, number]> = [];
    for (const c of this.root.namedChildren) {
      const t = c.type;
      if (t === 'function_definition' || t === 'class_definition' || t === 'decorated_definition')
        out.push([c.startIndex, c.endIndex]);
    }
    return (this.topLevelDefs = out);
  }

  /** Assignments to and reads of `name` in `scope` (not in nested functions/classes). */
  private factsOf(scope: Scope, name: string): NameFacts {
    const key = `${scope.node.id}:${name}`;
    const cached = this.nameFacts.get(key);
    if (cached) return cached;
    const facts: NameFacts = { assigns: [], reads: [] };
    this.nameFacts.set(key, facts);
    if (!/^[A-Za-z_]\w*$/.test(name)) return facts;
    const re = new RegExp(`(?<![\\w.])${name}(?!\\w)`, 'g');
    const slice = this.text.slice(scope.start, scope.end);
    const skip = scope.node.type === 'module' ? this.topLevelDefRanges() : [];
    let m: RegExpExecArray | null;
    let budget = 400; // a name used more often than this in one scope is not worth following
    while ((m = re.exec(slice)) && budget-- > 0) {
      const at = scope.start + m.index;
      if (skip.length && skip.some(([a, b]) => at >= a && at < b)) continue;
      const id = this.root.descendantForIndex(at, at + name.length);
      if (id.type !== 'identifier' || id.startIndex !== at) continue;
      if (this.scopeNodeOf(id).id !== scope.node.id) continue;
      this.classifyOccurrence(facts, id);
    }
    return facts;
  }

  private classifyOccurrence(facts: NameFacts, id: SyntaxNode): void {
    let p = id.parent;
    if (!p) return;
    const t = p.type;
    if (t === 'attribute' && p.childForFieldName('attribute')?.id === id.id) return;
    if (t === 'keyword_argument' && p.childForFieldName('name')?.id === id.id) return;
    if (
      t === 'parameters' ||
      t === 'typed_parameter' ||
      t === 'default_parameter' ||
      t === 'typed_default_parameter' ||
      t === 'lambda_parameters'
    )
      return;
    if (
      (t === 'assignment' || t === 'named_expression') &&
      p.childForFieldName(t === 'assignment' ? 'left' : 'name')?.id === id.id
    ) {
      facts.assigns.push({
        start: p.startIndex,
        end: p.endIndex,
        value: p.childForFieldName(t === 'assignment' ? 'right' : 'value'),
        target: id,
        statement: p,
      });
      return;
    }
    if (t === 'augmented_assignment' && p.childForFieldName('left')?.id === id.id) return; // keeps the dtype
    // Tuple targets and loop variables: assigned, value unknown.
    let q: SyntaxNode = id;
    while (
      p &&
      (p.type === 'pattern_list' ||
        p.type === 'tuple_pattern' ||
        p.type === 'list_pattern' ||
        p.type === 'tuple' ||
        p.type === 'list')
    ) {
      q = p;
      p = p.parent;
    }
    if (p && q.id !== id.id) {
      if (
        (p.type === 'assignment' && p.childForFieldName('left')?.id === q.id) ||
        ((p.type === 'for_statement' || p.type === 'for_in_clause') && p.childForFieldName('left')?.id === q.id)
      ) {
        facts.assigns.push({
          start: p.startIndex,
          end: p.type === 'assignment' ? p.endIndex : q.endIndex,
          value: null,
          target: id,
          statement: p,
        });
        return;
      }
    }
    if (p && (p.type === 'for_statement' || p.type === 'for_in_clause') && p.childForFieldName('left')?.id === id.id) {
      facts.assigns.push({ start: p.startIndex, end: id.endIndex, value: null, target: id, statement: p });
      return;
    }
    if (p && (p.type === 'as_pattern_target' || p.type === 'global_statement' || p.type === 'nonlocal_statement')) {
      facts.assigns.push({ start: p.startIndex, end: p.endIndex, value: null, target: id, statement: p });
      return;
    }
    facts.reads.push(id);
  }

  assignmentsOf(scope: Scope, name: string): Assign[] {
    const key = `${scope.node.id}:${name}`;
    const cached = this.assignFacts.get(key);
    if (cached) return cached;
    const out: Assign[] = [];
    this.assignFacts.set(key, out);
    if (!/^[A-Za-z_]\w*$/.test(name)) return out;
    // Only places that can bind the name: `name =`, `name: T =`, tuple targets, `for ... in`, `as name`, `name :=`.
    const re = new RegExp(
      `(?<![\\w.])${name}\\s*(?::[^=\\n]+)?:?=(?!=)|(?<![\\w.])${name}\\s*[,)\\]][^=\\n]*=(?!=)|,\\s*[(\\[]?\\s*${name}\\s*[)\\]]?\\s*=(?!=)|\\bfor\\s[^\\n]*?(?<![\\w.])${name}(?!\\w)[^\\n]*?\\sin\\s|\\bas\\s+${name}(?!\\w)`,
      'g',
    );
    const nameRe = new RegExp(`(?<![\\w.])${name}(?!\\w)`, 'g');
    const slice = this.text.slice(scope.start, scope.end);
    const skip = scope.node.type === 'module' ? this.topLevelDefRanges() : [];
    const seen = new Set<number>();
    let m: RegExpExecArray | null;
    let budget = 200;
    while ((m = re.exec(slice)) && budget-- > 0) {
      nameRe.lastIndex = 0;
      let nm: RegExpExecArray | null;
      while ((nm = nameRe.exec(m[0]))) {
        const at = scope.start + m.index + nm.index;
        if (seen.has(at)) continue;
        seen.add(at);
        if (skip.length && skip.some(([a, b]) => at >= a && at < b)) continue;
        const id = this.root.descendantForIndex(at, at + name.length);
        if (id.type !== 'identifier' || id.startIndex !== at) continue;
        const facts: NameFacts = { assigns: [], reads: [] };
        this.classifyOccurrence(facts, id);
        if (!facts.assigns.length) continue;
        if (this.scopeNodeOf(id).id !== scope.node.id) continue;
        out.push(...facts.assigns);
      }
      if (m[0].length === 0) re.lastIndex++;
    }
    return out;
  }

  /** The assignment to `name` that is in effect just before `offset` in `scope` (last one fully before it). */
  assignmentBefore(scope: Scope, name: string, offset: number): Assign | null {
    let best: Assign | null = null;
    for (const a of this.assignmentsOf(scope, name)) if (a.end <= offset && (!best || a.start > best.start)) best = a;
    return best;
  }

  /** Uses of `name` in `scope` that read it (not attribute names, keyword names or assignment targets). */
  readsOf(scope: Scope, name: string): SyntaxNode[] {
    return this.factsOf(scope, name).reads;
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
  return [
    'identifier',
    'attribute',
    'call',
    'subscript',
    'parenthesized_expression',
    'list',
    'tuple',
    'string',
    'true',
    'false',
    'none',
  ].includes(node.type);
}
