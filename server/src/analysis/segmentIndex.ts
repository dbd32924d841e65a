// indexSegment: one top-level statement's classes, functions, layers and ops, from the matches of
// grammars/model-*.scm in it (queries.ts's modelMatches), by a linear walk in document order with a stack of
// enclosing classes/functions. Pure: matches + the statement's text in, a Segment out; analysis/incremental.ts
// decides which statements to index and reuses the rest, analysis/model.ts assembles the index.
import type { SyntaxNode } from './parser';
import { fastStart } from './parser';
import type { ModelMatch } from './queries';
import { DocumentReader, StatementReader, detachedCopy, lineStartOf, nodeSpan, spanOf } from './documentReader';
import { CONTAINERS, POOL_FUNCTIONS, WEIGHTED_LAYERS, canonicalName, isLayerCtor, layerKind } from './canonical';
import type { DeclaredQuantizer, FunctionInfo, ImportInfo, Layer, ModuleClass, Op, OpKind } from './types';

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

export function indexSegment(
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
