// buildModelIndex: the matches of grammars/model-*.scm (found by queries.ts's modelMatches) per top-level
// statement, then a linear walk over them in document order with a stack of enclosing classes/functions; each
// top-level statement is one segment, reused between versions of a document while its text stays the same.
// Pure: tree + text (and the previous index) in, data out. The module holds no build state: what a build reads
// travels in a DocumentReader / StatementReader handed to each step, and what the next build of the same
// document reuses travels on the index it returns (ModelIndex.lineage).
import type { SyntaxNode, Tree } from './parser';
import { LineIndex, analysisText, isReparsedFrom, fastStart, fastRow, isIdentCharCode } from './parser';
import { changedWindow, type ChangedWindow } from './textWindow';
import { modelMatches, type ModelMatch } from './queries';
import {
  CONTAINERS,
  POOL_FUNCTIONS,
  WEIGHTED_LAYERS,
  canonicalName,
  emptyImports,
  isLayerCtor,
  layerKind,
  scanImports,
} from './canonical';
import type {
  DeclaredQuantizer,
  FunctionInfo,
  ImportInfo,
  IndexCaches,
  Layer,
  ModelIndex,
  ModuleClass,
  Op,
  OpKind,
  Position,
  Range,
  Span,
} from './types';

/** Where generated lines go inside a class: after/before an anchor statement, with the body's indent. */
export interface InsertAnchor {
  /** 'after': on the line after the statement ending at `offset`; 'before': at the start of the line holding `offset`. */
  kind: 'after' | 'before';
  offset: number;
  indent: string;
}

/** Extra data the fixes need; attached to ModuleClass objects as non-enumerable-by-contract optional fields. */
export interface ClassAnchors {
  declAnchor?: InsertAnchor;
  initAnchor?: InsertAnchor;
}

interface Item {
  kind: string;
  start: number;
  node: SyntaxNode;
  caps: Record<string, SyntaxNode>;
  /** Calls: the callee's text, and its node on demand. */
  callee?: { text: string; isName: boolean };
  calleeNode?: () => SyntaxNode;
}

type Frame =
  | { kind: 'class'; end: number; cls: ModuleClass; node: SyntaxNode; bases: string[] }
  | { kind: 'method'; end: number; cls: ModuleClass; name: string; scope: Scope }
  | { kind: 'function'; end: number; fn: FunctionInfo; scope: Scope };

interface Scope {
  node: SyntaxNode;
  start: number;
  end: number;
  /** Parameters, read from the tree on first use (most methods never need them). */
  params?: Set<string>;
  firstParam?: string;
  owner?: string;
  /** First parameter annotated as an nn.Module. */
  moduleTyped?: boolean;
  /** By name: the lines `name = ...` of the scope (see lastAssignmentLine). */
  assignLines?: Map<string, { afterEq: number; lineEnd: number }[]>;
}

interface PendingAdd {
  op: Op;
  node: SyntaxNode;
  scope: Scope;
  cls?: ModuleClass;
  fn?: FunctionInfo;
  augmented: boolean;
}

const LITERAL_TYPES = new Set([
  'integer',
  'float',
  'string',
  'concatenated_string',
  'true',
  'false',
  'none',
  'tuple',
  'list',
  'dictionary',
  'set',
  'list_comprehension',
  'unary_operator',
]);
/** Names that are masks, positions, sizes or counters: additions with them are not skip connections. */
const NOT_RESIDUAL_NAME =
  /mask|bias|pos|position|embed|offset|eps|scale|shape|size|len|idx|index|step|count|num|loss|total|sum/i;
const SKIP_NAME = /^(identity|residual|shortcut|skip|res|skip_connection|inp)$/i;
const NORM_ATTR = /norm|^ln(_?\d+|_f)?$|^ln_/i;

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
class DocumentReader {
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
class StatementReader extends DocumentReader {
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
function spanOf(n: SyntaxNode): Span {
  return { start: fastStart(n), end: n.endIndex };
}
function nodeSpan(n: SyntaxNode): Span {
  return spanOf(n);
}

/**
 * Build the model index. With `previous` (the index of an earlier version of the same document), top-level
 * statements whose text is unchanged are reused (shifted when they moved) and only edited ones are re-indexed,
 * which keeps one-keystroke re-analysis of large files cheap. The result is the same as a fresh build.
 */
export function buildModelIndex(tree: Tree, text: string, previous?: ModelIndex): ModelIndex {
  const eol = detectEol(text);
  return buildOrEmpty(tree, analysisText(text), eol, previous);
}

function buildOrEmpty(tree: Tree, text: string, eol: '\n' | '\r\n' | '\r', previous?: ModelIndex): ModelIndex {
  try {
    return build(tree, text, eol, previous);
  } catch {
    // Analysis must never take the server down: a best-effort empty index instead.
    return {
      classes: [],
      functions: [],
      imports: emptyImports(),
      topLevelOps: [],
      topLevelLayers: [],
      hasSyntaxErrors: true,
      eol,
    };
  }
}

// A process-wide memo of compiled patterns, keyed by the name alone: a pattern depends on nothing else, so no
// document's content or state passes through it (bounded, cleared when large).
const DEFAULTED_PARAM_PATTERNS = new Map<string, RegExp>();
/** `name` before `=` (optionally after comments, continuations and `: annotation`): maybe a parameter with a default. */
function defaultedParamPattern(name: string): RegExp {
  let re = DEFAULTED_PARAM_PATTERNS.get(name);
  if (!re) {
    if (DEFAULTED_PARAM_PATTERNS.size > 5000) DEFAULTED_PARAM_PATTERNS.clear();
    re = new RegExp(`(^|[^\\w.])${name.replace(/[^\w]/g, '\\$&')}(\\s|\\\\|#[^\\n]*\\n)*(:[^=]*)?=`);
    DEFAULTED_PARAM_PATTERNS.set(name, re);
  }
  return re;
}

/** The file's line break, by its first one: LF, CRLF or a lone CR (all three end a line for Python and LSP). */
export function detectEol(text: string): '\n' | '\r\n' | '\r' {
  const cr = text.indexOf('\r');
  if (cr < 0) return '\n';
  const lf = text.indexOf('\n');
  if (lf >= 0 && lf < cr) return '\n';
  return text.charCodeAt(cr + 1) === 10 ? '\r\n' : '\r';
}

/** Everything indexSegment builds for one statement, shared by its steps. */
interface SegmentBuild {
  r: StatementReader;
  text: string;
  imports: ImportInfo;
  fnNames: Set<string>;
  segGates: LayerGates;
  mayBeDefaultedParam: (name: string) => boolean;
  canon: (n: SyntaxNode | null) => string;
  classes: ModuleClass[];
  classFrames: Extract<Frame, { kind: 'class' }>[];
  functions: FunctionInfo[];
  functionScopes: Map<FunctionInfo, Scope>;
  helperCalls: Segment['helperCalls'];
  topLevelOps: Op[];
  topLevelLayers: Layer[];
  pendingAdds: PendingAdd[];
  stack: Frame[];
}

interface ItemPlace {
  top: Frame | undefined;
  cls: ModuleClass | undefined;
  classFrame: Extract<Frame, { kind: 'class' }> | undefined;
  method: string | undefined;
  fn: FunctionInfo | undefined;
  scope: Scope | undefined;
}

/** The statement's query matches as containers (classes, defs) and items (calls, ops, assignments), in order. */
function sortedItems(matches: ModelMatch[]): { containers: Item[]; items: Item[] } {
  const containers: Item[] = [];
  const items: Item[] = [];
  for (const m of matches) {
    if (m.callee) {
      // Calls: the callee's node is read only if an op needs it (a.matmul(b)).
      const calleeCapture = m.captures[0];
      items.push({
        kind: 'call',
        start: m.at,
        node: m.captures[1].node,
        caps: {},
        callee: m.callee,
        calleeNode: () => calleeCapture.node,
      });
      continue;
    }
    const caps: Record<string, SyntaxNode> = {};
    for (const c of m.captures) caps[c.name] = c.node;
    let kind = '';
    for (const k of ['class', 'function', 'return', 'call', 'op.matmul', 'op.add', 'op.iadd', 'assign.self']) {
      if (caps[k]) {
        kind = k;
        break;
      }
    }
    if (!kind) continue;
    const node = caps[kind];
    const start = fastStart(node);
    if (kind === 'class' || kind === 'function') containers.push({ kind, start, node, caps });
    else items.push({ kind, start, node, caps });
  }
  containers.sort((a, b) => a.start - b.start);
  items.sort((a, b) => a.start - b.start);
  return { containers, items };
}

/** A class or module-level def opens a frame on the stack (methods record __init__/forward spans on their class). */
function openContainer(b: SegmentBuild, it: Item): void {
  const { r, classes, classFrames, functions, functionScopes, stack, text, imports } = b;
  const node = it.node;
  if (it.kind === 'class') {
    const name = r.textOfOpt(it.caps['class.name']) ?? '';
    const bases: string[] = [];
    const sup = node.childForFieldName('superclasses');
    if (sup)
      for (const b of sup.namedChildren) if (b.type === 'identifier' || b.type === 'attribute') bases.push(r.textOf(b));
    const cls: ModuleClass = {
      name,
      range: r.range(node),
      span: nodeSpan(node),
      bases,
      isModule: false,
      layers: [],
      ops: [],
      quantizers: [],
      parameters: [],
      delegates: [],
    };
    classes.push(cls);
    const frame = {
      kind: 'class' as const,
      end: node.endIndex,
      cls,
      node,
      bases: bases.map((b) => canonicalName(b, imports)),
    };
    classFrames.push(frame);
    stack.push(frame);
    return;
  }
  // function_definition: a method when the innermost open container is a class, a module-level function
  // when nothing is open; nested functions are not containers.
  const name = r.textOfOpt(it.caps['function.name']) ?? '';
  const top = stack[stack.length - 1];
  const end = node.endIndex;
  const scope: Scope = { node, start: it.start, end };
  if (top && top.kind === 'class') {
    const cls = top.cls;
    // Quantizers are reached through `self`: not in @staticmethods or methods whose first parameter is not self.
    if (/^(async\s+)?def\s+\w+\s*\(\s*self\b/.test(text.slice(it.start, it.start + 300))) scope.owner = 'self';
    const span = { start: it.start, end };
    if (name === '__init__') {
      cls.initSpan = span;
      cls.initRange = r.rangeOf(span);
      const anchor = initDeclAnchor(r, node);
      if (anchor) {
        (cls as ModuleClass & ClassAnchors).declAnchor = anchor.anchor;
        if (anchor.superLine !== undefined) cls.superInitLine = anchor.superLine;
      }
    } else if (name === 'forward') {
      cls.forwardSpan = span;
      cls.forwardRange = r.rangeOf(span);
    }
    stack.push({ kind: 'method', end, cls, name, scope });
    return;
  }
  if (!top) {
    readParams(r, scope);
    // A function receiving a module (HF's eager_attention_forward(module, ...)) reaches quantizers through it.
    if (scope.firstParam === 'module' || scope.moduleTyped) scope.owner = scope.firstParam;
    const span = { start: it.start, end };
    const fn: FunctionInfo = {
      name,
      range: r.rangeOf(span),
      span,
      params: [...scope.params!],
      returnsLayer: false,
      layers: [],
      ops: [],
    };
    functions.push(fn);
    functionScopes.set(fn, scope);
    stack.push({ kind: 'function', end, fn, scope });
  }
  // Nested functions are not containers: their contents belong to the enclosing method/function.
}

/** Where an item sits: the class, method or module-level function open on the stack. */
function placeOf(stack: Frame[]): ItemPlace {
  const top = stack[stack.length - 1];
  let cls: ModuleClass | undefined;
  let classFrame: Extract<Frame, { kind: 'class' }> | undefined;
  let method: string | undefined;
  let fn: FunctionInfo | undefined;
  let scope: Scope | undefined;
  if (top) {
    if (top.kind === 'method') {
      cls = top.cls;
      method = top.name;
      scope = top.scope;
      const below = stack[stack.length - 2];
      if (below && below.kind === 'class') classFrame = below;
    } else if (top.kind === 'function') {
      fn = top.fn;
      method = top.fn.name;
      scope = top.scope;
    } else {
      cls = top.cls;
      classFrame = top;
    }
  }
  return { top, cls, classFrame, method, fn, scope };
}

/** One call, op, return or `self.x = ...` of the statement, recorded on the class/function it sits in. */
function indexItem(b: SegmentBuild, it: Item, place: ItemPlace): void {
  const { top, cls, method, fn, scope } = place;
  const { r, imports, text, fnNames, segGates, mayBeDefaultedParam, canon, classes, functions, helperCalls } = b;
  const { topLevelOps, topLevelLayers, pendingAdds } = b;
  const addOp = (op: Op): void => {
    if (cls) cls.ops.push(op);
    else if (fn) fn.ops.push(op);
    else topLevelOps.push(op);
  };
  const addLayer = (layer: Layer): void => {
    if (cls) cls.layers.push(layer);
    else if (fn) fn.layers.push(layer);
    else topLevelLayers.push(layer);
  };

  switch (it.kind) {
    case 'return': {
      if (!fn || top?.kind !== 'function') break;
      let value = it.node.namedChildren[0];
      if (!value) break;
      value = unwrapQdq(r, value) ?? value;
      if (value.type === 'call') {
        const c = canon(value.childForFieldName('function'));
        if (isLayerCtor(c) && !CONTAINERS.has(c)) {
          fn.returnsLayer = true;
          fn.returnedCtor = c;
        }
      }
      break;
    }
    case 'call': {
      const isName = it.callee!.isName;
      const calleeText = it.callee!.text;
      const c = canonicalName(calleeText, imports);
      if (c === 'qdq_quant.quant' || c === 'qdq_quant.keep_float') break;
      if (isLayerCtor(c)) {
        addLayer(makeLayer(r, it.node, it.node.childForFieldName('arguments'), c, undefined, segGates));
        break;
      }
      // A layer-class parameter called in the body, as torchvision's ConvNormActivation does with
      // `conv_layer: Callable[..., nn.Module] = torch.nn.Conv2d`: its default names the layer built.
      const fromParam =
        isName && mayBeDefaultedParam(calleeText) ? layerParamDefault(r, it.node, calleeText, imports) : null;
      if (fromParam) {
        addLayer(makeLayer(r, it.node, it.node.childForFieldName('arguments'), fromParam, undefined, segGates));
        break;
      }
      if (isName && fnNames.has(calleeText)) {
        const layer = makeLayer(r, it.node, it.node.childForFieldName('arguments'), '', calleeText, segGates);
        helperCalls.push({
          name: calleeText,
          layer,
          cls: cls ? classes.indexOf(cls) : undefined,
          fn: fn ? functions.indexOf(fn) : undefined,
        });
      }
      addOp(callOp(r, it.node, it.calleeNode!, calleeText, isName, c, method ?? '', scope, cls));
      break;
    }
    case 'op.matmul': {
      const left = it.node.childForFieldName('left');
      const right = it.node.childForFieldName('right');
      const op = baseOp(r, 'matmul', '@', it.node, method ?? '', scope);
      if (left && right) setOperands(r, op, [left, right], cls);
      addOp(op);
      break;
    }
    case 'op.add':
    case 'op.iadd': {
      const augmented = it.kind === 'op.iadd';
      const op = baseOp(r, augmented ? 'iadd' : 'add', augmented ? '+=' : '+', it.node, method ?? '', scope);
      addOp(op);
      if (scope && method !== '__init__') pendingAdds.push({ op, node: it.node, scope, cls, fn, augmented });
      break;
    }
    case 'assign.self': {
      const obj = r.textOf(it.caps['assign.obj']);
      const attr = r.textOf(it.caps['assign.attr']);
      const value = it.caps['assign.value'];
      if (!cls || obj !== 'self') break;
      if (value.type === 'call') {
        const callee = value.childForFieldName('function');
        const c = canon(callee);
        if (c === 'nn.Parameter' || c === 'nn.parameter.Parameter' || c === 'torch.Parameter')
          cls.parameters.push(attr);
        else if (callee && /(^|\.)TensorQuantizer$/.test(r.textOf(callee))) {
          const q: DeclaredQuantizer = {
            name: attr,
            range: r.range(it.node),
            span: nodeSpan(it.node),
            generated: endsWithMarker(it.node, text),
          };
          cls.quantizers.push(q);
        }
      }
      break;
    }
  }
}

function indexSegment(
  matches: ModelMatch[],
  start: number,
  segEnd: number,
  row: number,
  doc: DocumentReader,
  imports: ImportInfo,
  fnNames: Set<string>,
  key: string,
): Segment {
  const r = doc.forStatement(start, segEnd, row);
  const text = doc.text;
  // layerParamDefault walks the tree up to the enclosing def for every plain-name call (print, len, super...);
  // a name that never appears before `=` (optionally after `name:`, comments, continuations) in this statement cannot be a parameter
  // with a default, so most calls skip the walk.
  const segText = text.slice(start, segEnd);
  const defaultedName = new Map<string, boolean>();
  const mayBeDefaultedParam = (name: string): boolean => {
    let known = defaultedName.get(name);
    if (known === undefined) {
      known = defaultedParamPattern(name).test(segText);
      defaultedName.set(name, known);
    }
    return known;
  };
  const segGates = layerGates(segText);
  const canon = (n: SyntaxNode | null): string =>
    n && (n.type === 'attribute' || n.type === 'identifier') ? canonicalName(r.textOf(n), imports) : '';

  const { containers, items } = sortedItems(matches);

  const b: SegmentBuild = {
    r,
    text,
    imports,
    fnNames,
    segGates,
    mayBeDefaultedParam,
    canon,
    classes: [],
    classFrames: [],
    functions: [],
    functionScopes: new Map(),
    helperCalls: [],
    topLevelOps: [],
    topLevelLayers: [],
    pendingAdds: [],
    stack: [],
  };
  const { classFrames, functions, functionScopes, helperCalls, topLevelOps, topLevelLayers, pendingAdds, stack } = b;
  let ci = 0;

  for (const it of items) {
    const start = it.start;
    while (stack.length && stack[stack.length - 1].end <= start) stack.pop();
    while (ci < containers.length && containers[ci].start <= start) {
      const c = containers[ci++];
      while (stack.length && stack[stack.length - 1].end <= c.start) stack.pop();
      openContainer(b, c);
    }
    while (stack.length && stack[stack.length - 1].end <= start) stack.pop();
    indexItem(b, it, placeOf(stack));
  }
  // Containers after the last item (empty classes/functions).
  while (ci < containers.length) {
    const c = containers[ci++];
    while (stack.length && stack[stack.length - 1].end <= c.start) stack.pop();
    openContainer(b, c);
  }

  // Where a generated __init__ would go, for classes without one.
  const recs: Segment['classes'] = classFrames.map((f) => ({
    cls: f.cls,
    bases: f.bases,
    bodyAnchor: f.cls.initSpan ? undefined : bodyAnchor(f.node, text),
  }));
  // Residual adds, now that layers (norm attributes) are known.
  for (const p of pendingAdds) classifyAdd(r, p);
  return {
    key: detachedCopy(key),
    type: '',
    start,
    startRow: row,
    col0: start - lineStartOf(text, start),
    classes: recs,
    functions: functions.map((fn) => ({ fn, moduleParam: functionScopes.get(fn)!.owner })),
    topLevelOps,
    topLevelLayers,
    helperCalls,
    dOff: 0,
    dRow: 0,
    memo: { delegateClasses: new Map() },
  };
}

function readParams(r: DocumentReader, scope: Scope): Set<string> {
  if (scope.params) return scope.params;
  const params = new Set<string>();
  const ps = scope.node.childForFieldName('parameters');
  if (ps) {
    for (const p of ps.namedChildren) {
      let nameNode: SyntaxNode | null = null;
      const t = p.type;
      if (t === 'identifier') nameNode = p;
      else if (t === 'typed_parameter') nameNode = p.namedChildren[0];
      else if (t === 'default_parameter' || t === 'typed_default_parameter') nameNode = p.childForFieldName('name');
      if (!nameNode || nameNode.type !== 'identifier') continue;
      const name = r.textOf(nameNode);
      if (scope.firstParam === undefined) {
        scope.firstParam = name;
        if (t === 'typed_parameter' && /(^|\.)Module$/.test(r.textOfOpt(p.childForFieldName('type')) ?? ''))
          scope.moduleTyped = true;
      }
      if (name !== 'self') params.add(name);
    }
  }
  scope.params = params;
  return params;
}

function baseOp(r: StatementReader, kind: OpKind, callee: string, node: SyntaxNode, method: string, scope?: Scope): Op {
  const span = spanOf(node);
  return {
    kind,
    callee,
    method,
    range: r.rangeOf(span),
    span,
    operands: [],
    operandSpans: [],
    quantizedOperands: [],
    operandQuantizers: [],
    operandIsParam: [],
    owner: scope?.owner,
  };
}

const MATMUL_KINDS: Record<string, OpKind> = {
  'torch.matmul': 'matmul',
  'torch.mm': 'matmul',
  'torch.bmm': 'bmm',
  'torch.einsum': 'einsum',
  'F.linear': 'linear',
};

function callOp(
  r: StatementReader,
  node: SyntaxNode,
  calleeNode: () => SyntaxNode,
  calleeText: string,
  isName: boolean,
  c: string,
  method: string,
  scope: Scope | undefined,
  cls?: ModuleClass,
): Op {
  let kind: OpKind = MATMUL_KINDS[c] ?? (POOL_FUNCTIONS.has(c) ? 'pool' : 'call');
  // Tensor-method forms: a.matmul(b), a.bmm(b).
  let methodForm = false;
  if (
    kind === 'call' &&
    !isName &&
    !c.startsWith('torch.') &&
    (calleeText.endsWith('.matmul') || calleeText.endsWith('.bmm'))
  ) {
    kind = calleeText.endsWith('.matmul') ? 'matmul' : 'bmm';
    methodForm = true;
  }
  const op = baseOp(r, kind, calleeText, node, method, scope);
  if (kind === 'call' || kind === 'pool') return op; // arguments are the rules' business (rules/context.ts)
  const argsNode = node.childForFieldName('arguments');
  if (!argsNode) return op;
  const args: SyntaxNode[] = [];
  const kw: Record<string, SyntaxNode> = {};
  for (const a of argsNode.namedChildren) {
    const t = a.type;
    if (t === 'keyword_argument') {
      const n = a.childForFieldName('name');
      const v = a.childForFieldName('value');
      if (n && v) kw[r.textOf(n)] = v;
    } else if (t !== 'comment') args.push(a);
  }
  if (kind === 'matmul' || kind === 'bmm') {
    const obj = methodForm ? calleeNode().childForFieldName('object') : null;
    if (methodForm && args.length !== 1) {
      op.kind = 'call';
      return op;
    }
    const a = obj ?? args[0] ?? kw['input'];
    const b = obj ? args[0] : (args[1] ?? kw['other'] ?? kw['mat2']);
    if (a && b) setOperands(r, op, [a, b], cls);
  } else if (kind === 'einsum') {
    let ops = args.slice(1);
    if (ops.length === 1 && (ops[0].type === 'list' || ops[0].type === 'tuple')) ops = ops[0].namedChildren;
    if (ops.length === 2 && ops.every((o) => o.type !== 'list_splat')) setOperands(r, op, ops, cls);
  } else if (kind === 'linear') {
    const x = args[0] ?? kw['input'];
    if (x) setOperands(r, op, [x], cls);
  }
  return op;
}

function setOperands(r: StatementReader, op: Op, nodes: SyntaxNode[], cls?: ModuleClass): void {
  for (const n of nodes) {
    const span = spanOf(n);
    op.operands.push(r.rangeOf(span));
    op.operandSpans.push(span);
    const q = quantizerCallName(r, n);
    op.quantizedOperands.push(q !== null);
    op.operandQuantizers.push(q);
    op.operandIsParam.push(isParamExpr(r, n, cls));
  }
}

/** `self.x_quantizer(E)` / `module.x_quantizer(E)` -> `x_quantizer`. */
function quantizerCallName(r: DocumentReader, n: SyntaxNode): string | null {
  if (n.type !== 'call') return null;
  const f = n.childForFieldName('function');
  if (!f || f.type !== 'attribute') return null;
  const attr = r.textOfOpt(f.childForFieldName('attribute')) ?? '';
  return attr.endsWith('_quantizer') ? attr : null;
}

const LONG_OPERAND = 256;

/** Weights and parameters are not activations: `self.weight`, `module.proj.weight.t()`, nn.Parameter attributes. */
function isParamExpr(r: DocumentReader, n: SyntaxNode, cls?: ModuleClass): boolean {
  const t = r.textOf(n);
  // A long operand (one side of a long `@` chain) is read by its end only: testing all of it for each operator
  // of the chain would cost the square of the chain's length (issue 14 D2).
  if (t.length > LONG_OPERAND)
    return /\.(weight|bias)(\.t\(\)|\.T|\.transpose\([^()]*\))?$/.test(t.slice(-LONG_OPERAND));
  if (/(^|\.)(weight|bias)(\.t\(\)|\.T|\.transpose\([^()]*\))?$/.test(t)) return true;
  const m = /^(self|module)\.(\w+)(\.t\(\)|\.T|\.transpose\([^()]*\))?$/.exec(t);
  if (m && cls && cls.parameters.includes(m[2])) return true;
  return n.type === 'integer' || n.type === 'float';
}

function unwrapQdq(r: DocumentReader, n: SyntaxNode): SyntaxNode | null {
  if (n.type !== 'call') return null;
  const f = r.textOfOpt(n.childForFieldName('function'));
  if (f !== 'qdq_quant.quant' && f !== 'qdq_quant.keep_float') return null;
  const args = n.childForFieldName('arguments');
  // keep_float(X, "fp32") carries a precision after the layer.
  const count = args?.namedChildCount ?? 0;
  if (!args || !(count === 1 || (count === 2 && f === 'qdq_quant.keep_float'))) return null;
  return args.namedChildren[0];
}

/** The weighted layer class that parameter `name` of the enclosing function defaults to, or null. */
function layerParamDefault(r: DocumentReader, call: SyntaxNode, name: string, imports: ImportInfo): string | null {
  let fn: SyntaxNode | null = call.parent;
  while (fn && fn.type !== 'function_definition') fn = fn.parent;
  const params = fn?.childForFieldName('parameters');
  if (!params) return null;
  for (const p of params.namedChildren) {
    if (p.type !== 'default_parameter' && p.type !== 'typed_default_parameter') continue;
    if (r.textOfOpt(p.childForFieldName('name')) !== name) continue;
    const value = p.childForFieldName('value');
    if (!value || (value.type !== 'attribute' && value.type !== 'identifier')) return null;
    const c = canonicalName(r.textOf(value), imports);
    return WEIGHTED_LAYERS.has(c) ? c : null;
  }
  return null;
}

/**
 * What a statement's text allows makeLayer to find, so that it asks the tree only where it can: a qdq wrapper
 * needs `qdq_quant` in the text, a container its class name. (Each question is a native call or more per layer,
 * and a model file builds hundreds of layers.)
 */
interface LayerGates {
  wrapper: boolean;
  container: boolean;
}

function layerGates(statementText: string): LayerGates {
  return {
    wrapper: statementText.includes('qdq_quant'),
    container: /Sequential|ModuleList|ModuleDict/.test(statementText),
  };
}

/** True when the code just before `offset` (over spaces, line breaks and continuations) is an assignment's `=`. */
function followsAssign(text: string, offset: number): boolean {
  let at = offset - 1;
  for (let c = text.charCodeAt(at); c === 32 || c === 9 || c === 10 || c === 13 || c === 92; c = text.charCodeAt(--at));
  if (text.charCodeAt(at) !== 61 /* = */) return false;
  const before = text.charCodeAt(at - 1);
  return before !== 61 && before !== 33 && before !== 60 && before !== 62; // not ==, !=, <=, >=
}

function makeLayer(
  r: StatementReader,
  callNode: SyntaxNode,
  argsNode: SyntaxNode | null,
  ctor: string,
  inHelper: string | undefined,
  gates: LayerGates,
): Layer {
  let outer = callNode;
  let wrapped: Layer['wrapped'] = null;
  let wrapperSpan;
  const p = gates.wrapper ? callNode.parent : null;
  let keepFp32 = false;
  const precisionArg = p?.namedChildCount === 2 && p.namedChildren[0].startIndex === callNode.startIndex;
  if (p && p.type === 'argument_list' && (p.namedChildCount === 1 || precisionArg) && p.parent?.type === 'call') {
    const f = r.textOfOpt(p.parent.childForFieldName('function'));
    if (f === 'qdq_quant.quant' || (f === 'qdq_quant.keep_float' && !precisionArg)) {
      wrapped = f === 'qdq_quant.quant' ? 'quant' : 'keep_float';
      outer = p.parent;
      wrapperSpan = nodeSpan(outer);
    } else if (f === 'qdq_quant.keep_float') {
      // keep_float(X, "fp32"): TensorRT 11's strongly typed export keeps the layer in FP32.
      wrapped = 'keep_float';
      keepFp32 = /^['"]fp32['"]$/.test(r.textOfOpt(p.namedChildren[1]) ?? '');
      outer = p.parent;
      wrapperSpan = nodeSpan(outer);
    }
  }
  let attr: string | undefined;
  const a = followsAssign(r.text, fastStart(outer)) ? outer.parent : null;
  if (a && a.type === 'assignment') {
    const left = a.childForFieldName('left');
    if (left && left.type === 'attribute' && r.textOfOpt(left.childForFieldName('object')) === 'self')
      attr = r.textOfOpt(left.childForFieldName('attribute'));
  }
  let container: string | undefined;
  let up: SyntaxNode | null = gates.container ? outer.parent : null;
  for (let depth = 0; up && depth < 8; depth++, up = up.parent) {
    if (up.type === 'call') {
      const f = r.textOfOpt(up.childForFieldName('function')) ?? '';
      const m = /(^|\.)(Sequential|ModuleList|ModuleDict)$/.exec(f);
      if (m) {
        container = 'nn.' + m[2];
        break;
      }
    }
    if (up.type.endsWith('statement') || up.type === 'block') break;
  }
  const args: string[] = [];
  const kwargs: Record<string, string> = {};
  if (argsNode) {
    for (const x of argsNode.namedChildren) {
      if (x.type === 'keyword_argument') {
        const n = x.childForFieldName('name');
        const v = x.childForFieldName('value');
        if (n && v) kwargs[r.textOf(n)] = r.textOf(v);
      } else if (x.type !== 'comment') args.push(r.textOf(x));
    }
  }
  const layer: Layer = {
    ctor,
    kind: layerKind(ctor),
    callRange: r.range(callNode),
    callSpan: nodeSpan(callNode),
    wrapped,
    args,
    kwargs,
  };
  if (attr) layer.attr = attr;
  if (wrapperSpan) layer.wrapperSpan = wrapperSpan;
  if (inHelper) layer.inHelper = inHelper;
  if (container) layer.container = container;
  if (keepFp32) layer.keepFp32 = true;
  return layer;
}

function endsWithMarker(stmt: SyntaxNode, text: string): boolean {
  let end = text.indexOf('\n', stmt.endIndex);
  if (end < 0) end = text.length;
  return /#\s*qdq\s*\r?$/.test(text.slice(stmt.endIndex, end));
}

/** The indentation of `node`'s line when `node` is the first thing on it, else undefined. */
function indentOf(node: SyntaxNode, text: string): string | undefined {
  const lineStart = text.lastIndexOf('\n', node.startIndex - 1) + 1;
  const indent = text.slice(lineStart, node.startIndex);
  return /^[ \t]*$/.test(indent) ? indent : undefined;
}

function bodyStatements(block: SyntaxNode): SyntaxNode[] {
  return block.namedChildren.filter((c) => c.type !== 'comment');
}

function isDocstring(st: SyntaxNode): boolean {
  return st.type === 'expression_statement' && st.namedChildCount === 1 && st.namedChildren[0].type === 'string';
}

/** Where a generated `__init__` goes in a class without one: after the docstring, else before the first statement. */
function bodyAnchor(classNode: SyntaxNode, text: string): InsertAnchor | undefined {
  const body = classNode.childForFieldName('body');
  if (!body || body.startPosition.row === classNode.startPosition.row) return undefined;
  const sts = bodyStatements(body);
  if (!sts.length) return undefined;
  const indent = indentOf(sts[0], text);
  if (indent === undefined || indent === '') return undefined;
  if (isDocstring(sts[0])) return { kind: 'after', offset: sts[0].endIndex, indent };
  return { kind: 'before', offset: sts[0].startIndex, indent };
}

/** Where quantizer declarations go in __init__: after `super().__init__(...)`, else first (after a docstring). */
function initDeclAnchor(
  r: DocumentReader,
  fnNode: SyntaxNode,
): { anchor: InsertAnchor; superLine?: number } | undefined {
  const text = r.text;
  const body = fnNode.childForFieldName('body');
  if (!body) return undefined;
  const sts = bodyStatements(body);
  if (!sts.length) return undefined;
  const indent = indentOf(sts[0], text);
  if (indent === undefined || indent === '') return undefined; // body on the def line
  for (const st of sts) {
    if (st.type !== 'expression_statement') continue;
    const call = st.namedChildren[0];
    if (call?.type !== 'call') continue;
    const f = r.textOfOpt(call.childForFieldName('function')) ?? '';
    if (/^super\([^)]*\)\.__init__$/.test(f) || /\.__init__$/.test(f)) {
      // Only a statement that ends its line is a safe anchor.
      const stIndent = indentOf(st, text);
      if (stIndent === undefined) continue;
      return { anchor: { kind: 'after', offset: st.endIndex, indent: stIndent }, superLine: st.endPosition.row };
    }
  }
  // A base __init__ called somewhere nested (inside if/try): declarations cannot safely go first, as
  // nn.Module refuses submodule assignment before Module.__init__ ran.
  if (/\.__init__\s*\(/.test(text.slice(body.startIndex, body.endIndex))) return undefined;
  if (isDocstring(sts[0])) return { anchor: { kind: 'after', offset: sts[0].endIndex, indent } };
  return { anchor: { kind: 'before', offset: sts[0].startIndex, indent } };
}

function isLiteral(n: SyntaxNode): boolean {
  return LITERAL_TYPES.has(n.type);
}

function lastName(r: DocumentReader, n: SyntaxNode): string {
  if (n.type === 'identifier') return r.textOf(n);
  if (n.type === 'attribute') return r.textOfOpt(n.childForFieldName('attribute')) ?? '';
  return '';
}

const LONG_RESIDUAL = 2000;

/**
 * The last line `name = ...` (at a line start) of the scope whose `=` comes before `pos`: where its value starts and
 * its line ends. The lines of a scope are found once per name and kept on the scope: a function with thousands
 * of additions would otherwise search its body once for each (issue 14 D2).
 */
function lastAssignmentLine(
  text: string,
  scope: Scope,
  name: string,
  pos: number,
): { afterEq: number; lineEnd: number } | undefined {
  const memo = (scope.assignLines ??= new Map());
  let lines = memo.get(name);
  if (!lines) {
    lines = [];
    const body = text.slice(scope.start, scope.end);
    const re = new RegExp(`^([ \\t]*${name}[ \\t]*=)(?!=)[ \\t]*([^\\n]*)$`, 'gm');
    for (let m = re.exec(body); m; m = re.exec(body))
      lines.push({ afterEq: scope.start + m.index + m[1].length, lineEnd: scope.start + m.index + m[0].length });
    memo.set(name, lines);
  }
  let lo = 0;
  let hi = lines.length - 1;
  let best: { afterEq: number; lineEnd: number } | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (lines[mid].afterEq <= pos) {
      best = lines[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

function classifyAdd(r: StatementReader, p: PendingAdd): void {
  const text = r.text;
  const { op, node, scope } = p;
  const left = node.childForFieldName('left');
  const right = node.childForFieldName('right');
  if (!left || !right) return;
  // Functions only take part when they receive a module (quantizers need an owner object).
  if (p.fn && !scope.owner) {
    op.operands.push(r.range(left), r.range(right));
    op.operandSpans.push(nodeSpan(left), nodeSpan(right));
    op.quantizedOperands.push(false, false);
    op.operandQuantizers.push(null, null);
    op.operandIsParam.push(false, false);
    return;
  }
  // Already quantized (by qdq or by hand): record it as handled so a second quantize leaves it alone.
  const lq = quantizerCallName(r, left) !== null;
  const rq = quantizerCallName(r, right) !== null;
  if (rq || (lq && !p.augmented)) {
    setOperands(r, op, p.augmented ? [right] : [left, right], p.cls);
    op.residual = true;
    return;
  }
  // An operand over LONG_RESIDUAL characters is no skip input; it is passed over before its text is searched
  // (the operands of a long `+` chain hold the rest of the chain: issue 14 D2).
  const bad = (n: SyntaxNode): boolean =>
    isLiteral(n) ||
    NOT_RESIDUAL_NAME.test(lastName(r, n)) ||
    r.textOf(n).length > (n.type === 'binary_operator' ? 200 : LONG_RESIDUAL) ||
    /\.size\(|\.shape|len\(|\.dim\(/.test(r.textOf(n));
  const setBoth = (): void => setOperands(r, op, [left, right], p.cls);
  if (p.augmented) {
    if (left.type !== 'identifier' || bad(right) || NOT_RESIDUAL_NAME.test(r.textOf(left))) return;
    setOperands(r, op, [right], p.cls);
    op.residual = true;
    return;
  }
  if (bad(left) || bad(right)) return;
  // `self.LayerNorm(a + b)`: the residual add feeding a norm (QDQBERT quantizes both inputs).
  const pos = node.startIndex;
  const params = readParams(r, scope);
  // Assignments to a name earlier in the same function, found textually (`name = value` at a line start).
  const lastAssignBefore = (name: string): string | null | undefined => {
    const found = lastAssignmentLine(text, scope, name, pos);
    if (!found) return undefined;
    const last = text.slice(found.afterEq, Math.min(found.lineEnd, pos)).replace(/^[ \t]*/, '');
    return /^[A-Za-z_]\w*[ \t]*(#.*)?\r?$/.test(last) ? 'plain' : null;
  };
  const qualifies = (n: SyntaxNode): boolean => {
    if (n.type !== 'identifier') return false;
    const name = r.textOf(n);
    if (SKIP_NAME.test(name)) return true;
    const last = lastAssignBefore(name);
    if (params.has(name) && last === undefined) return true;
    return last === 'plain';
  };
  const parent = node.parent;
  if (parent?.type === 'argument_list' && parent.namedChildCount === 1 && parent.parent?.type === 'call') {
    const callee = parent.parent.childForFieldName('function');
    const calleeAttr =
      callee?.type === 'attribute' && r.textOfOpt(callee.childForFieldName('object')) === (scope.owner ?? 'self')
        ? (r.textOfOpt(callee.childForFieldName('attribute')) ?? '')
        : '';
    const normLayer = calleeAttr && p.cls?.layers.some((l) => l.attr === calleeAttr && l.kind === 'norm');
    if (calleeAttr && (normLayer || NORM_ATTR.test(calleeAttr))) {
      setBoth();
      op.residual = true;
      // QDQBERT names: `local` is the branch output, `residual` the skip input (usually the right side).
      const skipLeft = qualifies(left) && !qualifies(right);
      // `norm(x + self.block(x))`: the bare name is the skip, the call the branch.
      const callRight = left.type === 'identifier' && right.type === 'call' && !qualifies(right);
      op.operandRoles = skipLeft || callRight ? ['residual', 'local'] : ['local', 'residual'];
      op.feedsNorm = r.textOf(callee!);
      return;
    }
  }
  const ql = qualifies(left);
  const qr = qualifies(right);
  let residual: SyntaxNode | null = null;
  if (ql !== qr) residual = ql ? left : right;
  else {
    // Pre-norm transformer block: `x = x + self.attn(self.norm1(x))`.
    const a = parent?.type === 'assignment' ? parent.childForFieldName('left') : null;
    if (a && a.type === 'identifier') {
      if (left.type === 'identifier' && r.textOf(left) === r.textOf(a) && right.type === 'call') residual = left;
      else if (right.type === 'identifier' && r.textOf(right) === r.textOf(a) && left.type === 'call') residual = right;
    }
  }
  if (!residual) return;
  setOperands(r, op, [residual], p.cls);
  op.residual = true;
  op.operandRoles = ['residual'];
}

// ---------------------------------------------------------------------------------------------------------
// Segments: one per top-level statement, cached between builds of the same document.

export interface Segment {
  /** Text of the statement through the first line of the next top-level statement (covers its own last line). */
  key: string;
  /**
   * The statement's node type. The same text can parse differently after an edit elsewhere (an open string above
   * turns a class into part of an ERROR node), so a segment is reused only for a node of the same type.
   */
  type: string;
  start: number;
  startRow: number;
  /** Column of the start (0 unless the statement follows another on its line). */
  col0: number;
  classes: { cls: ModuleClass; bases: string[]; bodyAnchor?: InsertAnchor }[];
  functions: { fn: FunctionInfo; moduleParam?: string }[];
  topLevelOps: Op[];
  topLevelLayers: Layer[];
  /** Calls to module-level functions of this file: layers when the function returns one (conv3x3). */
  helperCalls: { name: string; layer: Layer; cls?: number; fn?: number }[];
  /**
   * How far the segment moved since it was indexed: its classes, functions, ops and layers above keep the
   * offsets and lines of then, and the index built from it shifts them (lazily, see shiftedClass).
   */
  dOff: number;
  dRow: number;
  /** Results worked out from the segment's text alone, kept with it (they do not move with it). */
  memo: { delegateClasses: Map<string, number[]> };
}

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
 * A copy of a slice that does not keep the whole document string alive: V8 represents a slice as a view of
 * its parent, and a kept segment outlives many versions of the document (one full text per version otherwise).
 */
function detachedCopy(slice: string): string {
  return (' ' + slice).slice(1);
}

function lineStartOf(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}

function lineEndAfter(text: string, offset: number): number {
  const nl = text.indexOf('\n', offset);
  return nl < 0 ? text.length : nl + 1;
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
interface Slots {
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

function build(tree: Tree, text: string, eol: '\n' | '\r\n' | '\r', previous?: ModelIndex): ModelIndex {
  const doc = new DocumentReader(text, tree);
  const prevLineage = previous?.lineage;
  const prevCache = prevLineage?.segments;
  const slots = (prevCache && prevLineage && editedSlots(doc, prevLineage, prevCache)) || allSlots(doc, prevCache);
  return assemble(tree, text, eol, slots, prevLineage);
}

/** Every top-level statement looked at (reusing the last build's segments whose statement text is unchanged). */
function allSlots(doc: DocumentReader, prevCache: SegmentCache | undefined): Slots {
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
function editedSlots(doc: DocumentReader, lineage: Lineage, prev: SegmentCache): Slots | undefined {
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

/** The index from the per-statement segments: fresh top-level objects, then what spans statements. */
/**
 * Module-ness: nn.* bases, local module classes (to a fixed point), or imported bases with a forward method; a
 * module class without an __init__ gets the anchor a generated one would use.
 */
function markModuleClasses(
  classes: ModuleClass[],
  classBases: Map<ModuleClass, string[]>,
  initAnchors: Map<ModuleClass, InsertAnchor | undefined>,
): void {
  // Module-ness: nn.* bases, local module classes (to a fixed point), or imported bases with a forward method.
  const byName = new Map<string, ModuleClass>();
  for (const cls of classes) byName.set(cls.name, cls);
  for (const cls of classes)
    if (classBases.get(cls)!.some((b) => isLayerCtor(b) || b === 'nn.Module')) cls.isModule = true;
  const propagate = (): void => {
    for (let changed = true; changed;) {
      changed = false;
      for (const cls of classes) {
        if (!cls.isModule && cls.bases.some((b) => byName.get(b)?.isModule)) {
          cls.isModule = true;
          changed = true;
        }
      }
    }
  };
  propagate();
  // Bases imported from elsewhere (HF's PreTrainedModel, GradientCheckpointingLayer): a module when the class
  // has a forward or the base's name says so.
  for (const cls of classes) {
    if (cls.isModule) continue;
    const foreign = cls.bases.filter((b) => !byName.has(b) && b !== 'object');
    if (foreign.length && (cls.forwardRange || foreign.some((b) => /(Model|Module|Layer|Block)$/.test(b))))
      cls.isModule = true;
  }
  propagate();
  for (const cls of classes) {
    const anchors = cls as ModuleClass & ClassAnchors;
    if (cls.isModule && !cls.initSpan) anchors.initAnchor = initAnchors.get(cls);
    else delete anchors.initAnchor;
  }
}

function assemble(
  tree: Tree,
  text: string,
  eol: '\n' | '\r\n' | '\r',
  slots: Slots,
  prevLineage: Lineage | undefined,
): ModelIndex {
  const { imports } = slots.cache;
  const segments: Segment[] = [];
  for (const seg of slots.cache.slots) if (seg) segments.push(seg);
  // Assemble fresh top-level objects (segments stay untouched so they can be reused next time).
  const classes: ModuleClass[] = [];
  const classBases = new Map<ModuleClass, string[]>();
  const initAnchors = new Map<ModuleClass, InsertAnchor | undefined>();
  const functions: FunctionInfo[] = [];
  const moduleParams = new Map<FunctionInfo, string>();
  const topLevelOps: Op[] = [];
  const topLevelLayers: Layer[] = [];
  const segClasses: ModuleClass[][] = [];
  const segFunctions: FunctionInfo[][] = [];
  for (const seg of segments) {
    const { dOff, dRow } = seg;
    const moved = dOff !== 0 || dRow !== 0;
    const cs: ModuleClass[] = [];
    for (const rec of seg.classes) {
      const cls = moved
        ? shiftedClass(rec.cls, dOff, dRow)
        : { ...rec.cls, isModule: false, layers: rec.cls.layers.slice(), delegates: [] };
      classes.push(cls);
      cs.push(cls);
      classBases.set(cls, rec.bases);
      initAnchors.set(cls, moved ? shiftAnchor(rec.bodyAnchor, dOff) : rec.bodyAnchor);
    }
    segClasses.push(cs);
    const fs: FunctionInfo[] = [];
    for (const rec of seg.functions) {
      const fn = moved ? shiftedFunction(rec.fn, dOff, dRow) : { ...rec.fn, layers: rec.fn.layers.slice() };
      functions.push(fn);
      fs.push(fn);
      if (rec.moduleParam) moduleParams.set(fn, rec.moduleParam);
    }
    segFunctions.push(fs);
    for (const op of seg.topLevelOps) topLevelOps.push(moved ? shiftOp(op, dOff, dRow) : op);
    for (const l of seg.topLevelLayers) topLevelLayers.push(moved ? shiftLayer(l, dOff, dRow) : l);
  }

  markModuleClasses(classes, classBases, initAnchors);

  // Layers built by module-level helper functions (torchvision's conv3x3/conv1x1).
  const fnByName = new Map<string, FunctionInfo>();
  for (const f of functions) if (!fnByName.has(f.name)) fnByName.set(f.name, f);
  segments.forEach((seg, si) => {
    for (const hc of seg.helperCalls) {
      const helper = fnByName.get(hc.name);
      if (!helper || !helper.returnsLayer || !helper.returnedCtor) continue;
      const at = seg.dOff !== 0 || seg.dRow !== 0 ? shiftLayer(hc.layer, seg.dOff, seg.dRow) : hc.layer;
      const layer: Layer = { ...at, ctor: helper.returnedCtor, kind: layerKind(helper.returnedCtor) };
      if (hc.cls !== undefined) segClasses[si][hc.cls].layers.push(layer);
      else if (hc.fn !== undefined) {
        const target = segFunctions[si][hc.fn];
        if (target !== helper) target.layers.push(layer);
      } else topLevelLayers.push(layer);
    }
  });

  // Classes that hand themselves to a module-receiving function (by call or by passing its name).
  // Every mention of the function's name counts, and a mention lies in a class of its own top-level statement
  // only, so each segment answers for its text (and remembers the answer while its text stays the same).
  for (const [f, param] of moduleParams) {
    segments.forEach((seg, si) => {
      for (const k of delegateClassesIn(seg, f.name))
        segClasses[si][k].delegates.push({ func: f.name, paramName: param });
    });
  }

  const index: ModelIndex = {
    classes,
    functions,
    imports,
    topLevelOps,
    topLevelLayers,
    hasSyntaxErrors: tree.rootNode.hasError,
    eol,
  };
  const lineage: Lineage = {
    text,
    starts: slots.starts,
    rows: slots.rows,
    types: slots.types,
    reuse: slots.reuse,
    tree,
    segments: slots.cache,
    caches: prevLineage?.caches ?? {},
  };
  // Not enumerable: how the index was made is no part of what it says about the file (comparisons of a fresh and
  // an incremental index, JSON and spreads see the same data).
  Object.defineProperty(index, 'lineage', { value: lineage, enumerable: false });
  return index;
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

/**
 * The top-level statements of `text` (starts, node types, and what an incremental build kept from the previous
 * version), when `index` was built from it. The rules cache their diagnostics per statement with it.
 */
export function statementLayout(index: ModelIndex | null | undefined, text: string): StatementLayout | undefined {
  const lineage = index?.lineage;
  return lineage && lineage.text === analysisText(text)
    ? { starts: lineage.starts, rows: lineage.rows, types: lineage.types, reuse: lineage.reuse }
    : undefined;
}

/**
 * The caches that follow one document from index to index (each build with `previous` hands them on), typed in
 * analysis/types.ts (IndexCaches). Contents never decide a result, only how fast it comes.
 */
export function documentCaches(index: ModelIndex | null | undefined): IndexCaches | undefined {
  return index?.lineage?.caches;
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
function delegateClassesIn(seg: Segment, name: string): number[] {
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
function shiftedClass(c: ModuleClass & ClassAnchors, dOff: number, dRow: number): ModuleClass {
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

function shiftedFunction(f: FunctionInfo, dOff: number, dRow: number): FunctionInfo {
  const fn: FunctionInfo = { ...f, range: shiftRange(f.range, dRow), span: shiftSpan(f.span, dOff) };
  lazyField(fn, 'layers', () => f.layers.map((l) => shiftLayer(l, dOff, dRow)));
  lazyField(fn, 'ops', () => f.ops.map((o) => shiftOp(o, dOff, dRow)));
  return fn;
}

function shiftAnchor(a: InsertAnchor | undefined, dOff: number): InsertAnchor | undefined {
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

function shiftLayer(l: Layer, dOff: number, dRow: number): Layer {
  const out: Layer = { ...l, callRange: shiftRange(l.callRange, dRow), callSpan: shiftSpan(l.callSpan, dOff) };
  if (l.wrapperSpan) out.wrapperSpan = shiftSpan(l.wrapperSpan, dOff);
  return out;
}

function shiftOp(o: Op, dOff: number, dRow: number): Op {
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
