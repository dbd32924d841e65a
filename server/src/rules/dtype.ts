// Element-type inference from source text. It answers only what the source shows: `.int()`, `.long()`,
// `dtype=torch.int64`, comparison results, `arange` of ints, annotations like `torch.LongTensor`. Names that only
// look like token ids (`input_ids`) give a "maybe" answer; everything else is 'unknown', never a guess.
import { RuleContext, unparen, type CallSite } from './context';
import type { SyntaxNode } from './types';

export type DKind = 'int' | 'bool' | 'float' | 'uint8' | 'unknown';

export interface DInfo {
  kind: DKind;
  /** false: a hint from naming only (`input_ids`), never from an operation. */
  certain: boolean;
  /** true: a tensor; false: a Python scalar; null: not known. */
  tensor: boolean | null;
  /** Why we believe it, for messages: "from `.int()` on line 3". */
  why: string;
}

const UNKNOWN: DInfo = {
  kind: 'unknown',
  certain: false,
  tensor: null,
  why: 'its element type cannot be determined from the source',
};
const MAX_DEPTH = 24;

const INT_DTYPES =
  /^(?:torch\.)?(?:int64|long|int32|int|int16|short|int8|LongTensor|IntTensor|ShortTensor|CharTensor)$/;
const FLOAT_DTYPES =
  /^(?:torch\.)?(?:float32|float|float16|half|float64|double|bfloat16|FloatTensor|HalfTensor|DoubleTensor|BFloat16Tensor)$/;

const BOOL_METHODS = new Set([
  'ne',
  'eq',
  'gt',
  'lt',
  'ge',
  'le',
  'greater',
  'less',
  'greater_equal',
  'less_equal',
  'not_equal',
  'logical_and',
  'logical_or',
  'logical_not',
  'logical_xor',
  'isnan',
  'isinf',
  'isfinite',
  'isneginf',
  'isposinf',
  'isin',
  'isclose',
  'bool',
  'signbit',
]);
const INT_RESULT = new Set([
  'argmax',
  'argmin',
  'argsort',
  'nonzero',
  'argwhere',
  'bucketize',
  'searchsorted',
  'randint',
  'randperm',
  'bincount',
  'count_nonzero',
  'one_hot',
]);
const SAME_AS_RECEIVER = new Set([
  'clone',
  'contiguous',
  'view',
  'reshape',
  'expand',
  'expand_as',
  'unsqueeze',
  'squeeze',
  'transpose',
  'permute',
  'flatten',
  'repeat',
  'repeat_interleave',
  'detach',
  'flip',
  'roll',
  'narrow',
  'index_select',
  'gather',
  'tril',
  'triu',
  'masked_fill',
  't',
  'cpu',
  'cuda',
  'abs',
  'neg',
  'clamp',
  'clip',
  'clamp_min',
  'clamp_max',
  'view_as',
  'reshape_as',
  'chunk',
  'split',
  'unbind',
  'cummax',
  'cummin',
  'floor',
  'ceil',
  'round',
  'trunc',
  'sign',
  'fmod',
  'remainder',
  'requires_grad_',
  'masked_fill_',
  'fill_diagonal_',
  'movedim',
  'swapaxes',
  'diagonal',
  'squeeze_',
  'unsqueeze_',
]);
const FLOAT_RESULT = new Set([
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
  'tanh',
  'sigmoid',
  'reciprocal',
  'softmax',
  'log_softmax',
  'mean',
  'std',
  'var',
  'rand',
  'randn',
  'rand_like',
  'randn_like',
  'linspace',
  'logspace',
  'float',
  'half',
  'double',
  'bfloat16',
  'norm',
  'true_divide',
]);
const SUM_LIKE = new Set(['cumsum', 'cumprod', 'sum', 'prod', 'nansum']);
const FACTORIES = new Set([
  'tensor',
  'as_tensor',
  'zeros',
  'ones',
  'full',
  'empty',
  'arange',
  'range',
  'eye',
  'zeros_like',
  'ones_like',
  'full_like',
  'empty_like',
  'new_zeros',
  'new_ones',
  'new_full',
  'new_empty',
  'new_tensor',
  'LongTensor',
  'IntTensor',
  'BoolTensor',
  'ByteTensor',
  'FloatTensor',
]);

function lineOf(node: SyntaxNode): number {
  return node.startPosition.row + 1;
}

function known(kind: DKind, tensor: boolean | null, why: string): DInfo {
  return { kind, certain: true, tensor, why };
}

/** Maps a dtype expression (`torch.long`, `torch.uint8`) to a kind; null when it is not a dtype we know. */
export function dtypeFromExpr(ctx: RuleContext, node: SyntaxNode | null): DKind | null {
  if (!node) return null;
  let bare = ctx.src(node).replace(/\s+/g, '');
  if (node.type === 'attribute' && ctx.modulePath(node.childForFieldName('object')) === 'torch') {
    bare = `torch.${ctx.src(node.childForFieldName('attribute')!)}`;
  }
  if (/^(?:torch\.)?(?:uint8|ByteTensor)$/.test(bare)) return 'uint8';
  if (/^(?:torch\.)?(?:bool|BoolTensor)$/.test(bare)) return 'bool';
  if (INT_DTYPES.test(bare)) return 'int';
  if (FLOAT_DTYPES.test(bare)) return 'float';
  return null;
}

export function inferDtype(ctx: RuleContext, expr: SyntaxNode | null, depth = 0): DInfo {
  if (!expr || depth > MAX_DEPTH) return UNKNOWN;
  return ctx.cache(expr, () => memoized(ctx, expr, depth));
}

/**
 * Memo across runs of one document, keyed by everything an expression's type inside a function depends on: the
 * function's text, the file's import aliases and the expression's place in the function. After a keystroke only
 * the edited function is inferred again. Line numbers in `why` are stored relative to the function. It lives in
 * the document's IndexCaches (a run without them keeps one for itself), so no module-level state holds content.
 */
export interface DtypeMemo {
  // By function (the import aliases and the function's text, looked up once per function and run), then by the
  // expression's place in it: hashing a function's text for every expression costs more than the inference.
  byFunction: Map<string, Map<string, DInfo>>;
  entries: number;
}
const MEMO_MAX = 20000;
// Per run (weakly by context): the memo of each function node, so its text is hashed once per run.
const functionMemos = new WeakMap<RuleContext, Map<number, Map<string, DInfo>>>();
const runMemos = new WeakMap<RuleContext, DtypeMemo>();

function memoOf(ctx: RuleContext): DtypeMemo {
  const caches = ctx.documentCaches;
  if (caches) return (caches.dtypeMemo ??= { byFunction: new Map(), entries: 0 });
  let memo = runMemos.get(ctx);
  if (!memo) runMemos.set(ctx, (memo = { byFunction: new Map(), entries: 0 }));
  return memo;
}

function functionMemo(ctx: RuleContext, fn: SyntaxNode, fnStart: number): Map<string, DInfo> {
  let byFn = functionMemos.get(ctx);
  if (!byFn) functionMemos.set(ctx, (byFn = new Map()));
  let memo = byFn.get(fn.id);
  if (!memo) {
    const key = `${ctx.aliasKey()}\u0001${ctx.text.slice(fnStart, fn.endIndex)}`;
    const all = memoOf(ctx).byFunction;
    memo = all.get(key);
    if (!memo) all.set(key, (memo = new Map()));
    byFn.set(fn.id, memo);
  }
  return memo;
}

function memoized(ctx: RuleContext, expr: SyntaxNode, depth: number): DInfo {
  const scope = ctx.scope(expr);
  // Module-level code changes with every edit anywhere; only function bodies are worth remembering.
  if (scope.node.type !== 'function_definition' || depth > 4) return infer(ctx, expr, depth);
  const fnStart = scope.node.startIndex;
  const memo = functionMemo(ctx, scope.node, fnStart);
  const key = `${expr.startIndex - fnStart}:${expr.endIndex - fnStart}:${expr.type}`;
  const base = scope.node.startPosition.row + 1;
  const hit = memo.get(key);
  if (hit) return { ...hit, why: hit.why.replace(/line @(-?\d+)@/g, (_, d) => `line ${Number(d) + base}`) };
  const v = infer(ctx, expr, depth);
  const all = memoOf(ctx);
  if (all.entries >= MEMO_MAX) {
    // Only this run's function memos stay reachable through functionMemos; start afresh for the rest.
    all.byFunction.clear();
    all.entries = 0;
  }
  memo.set(key, { ...v, why: v.why.replace(/line (\d+)/g, (_, n) => `line @${Number(n) - base}@`) });
  all.entries++;
  return v;
}

function infer(ctx: RuleContext, raw: SyntaxNode, depth: number): DInfo {
  const expr = unparen(raw);
  switch (expr.type) {
    case 'integer':
      return known('int', false, 'it is an integer literal');
    case 'float':
      return known('float', false, 'it is a float literal');
    case 'true':
    case 'false':
      return known('bool', false, 'it is a bool literal');
    case 'identifier':
      return inferName(ctx, expr, depth);
    case 'subscript': {
      const value = expr.childForFieldName('value');
      if (value && value.type === 'attribute' && /\.shape$/.test(ctx.src(value)))
        return known('int', false, 'it is a shape entry');
      if (value && value.type === 'call' && /\.size\(\s*\)$/.test(ctx.src(value)))
        return known('int', false, 'it is a size entry');
      const v = inferDtype(ctx, value, depth + 1);
      return v.tensor === true ? v : UNKNOWN;
    }
    case 'call':
      return inferCall(ctx, expr, depth);
    case 'unary_operator': {
      const op = expr.childForFieldName('operator');
      const arg = inferDtype(ctx, expr.childForFieldName('argument'), depth + 1);
      if (op && ctx.src(op) === '~' && arg.kind === 'unknown') return UNKNOWN;
      return arg;
    }
    case 'comparison_operator': {
      const ops = expr.children.filter((c) => !c.isNamed).map((c) => c.type);
      if (ops.some((o) => o === 'in' || o === 'not in' || o === 'is' || o === 'is not' || o === 'not'))
        return known('bool', false, 'it is a Python membership test');
      let tensor: boolean | null = false;
      for (const c of expr.namedChildren) {
        const d = inferDtype(ctx, c, depth + 1);
        if (d.tensor === true) {
          tensor = true;
          break;
        }
        if (d.tensor === null) tensor = null;
      }
      return { kind: 'bool', certain: true, tensor, why: `it is a comparison result (line ${lineOf(expr)})` };
    }
    case 'binary_operator': {
      const op = ctx.src(expr.childForFieldName('operator')!);
      const l = inferDtype(ctx, expr.childForFieldName('left'), depth + 1);
      const r = inferDtype(ctx, expr.childForFieldName('right'), depth + 1);
      return combine(op, l, r);
    }
    case 'conditional_expression': {
      const [a, , b] = expr.namedChildren;
      const da = inferDtype(ctx, a, depth + 1);
      const db = inferDtype(ctx, b, depth + 1);
      return da.kind === db.kind && da.kind !== 'unknown' ? da : UNKNOWN;
    }
    default:
      return UNKNOWN;
  }
}

function combine(op: string, l: DInfo, r: DInfo): DInfo {
  const tensor =
    l.tensor === true || r.tensor === true ? true : l.tensor === false && r.tensor === false ? false : null;
  const certain = l.certain && r.certain;
  if (op === '/')
    return {
      kind: l.kind === 'unknown' && r.kind === 'unknown' ? 'unknown' : 'float',
      certain,
      tensor,
      why: 'it is a true division',
    };
  if (l.kind === 'float' || r.kind === 'float')
    return { kind: 'float', certain, tensor, why: l.kind === 'float' ? l.why : r.why };
  if (l.kind === 'unknown' || r.kind === 'unknown') {
    // A Python scalar does not change a tensor's integer type (`mask * 2`, `ids + offset`).
    const other = l.kind === 'unknown' ? r : l;
    const unknownSide = l.kind === 'unknown' ? l : r;
    if ((op === '&' || op === '|' || op === '^') && other.kind === 'bool' && other.tensor === true)
      return { ...other, certain: false };
    if (other.tensor === true && unknownSide.tensor === false && other.kind !== 'bool') return other;
    return { ...UNKNOWN, tensor };
  }
  if (l.kind === 'bool' && r.kind === 'bool' && (op === '&' || op === '|' || op === '^' || op === '+' || op === '*')) {
    return { kind: 'bool', certain, tensor, why: l.why };
  }
  const intSide = l.kind === 'int' ? l : r;
  return { kind: l.kind === 'uint8' || r.kind === 'uint8' ? 'uint8' : 'int', certain, tensor, why: intSide.why };
}

const ID_LIKE =
  /^(?:input_ids|token_type_ids|position_ids|decoder_input_ids|labels|indices|idx|ids|\w+_ids|\w+_idx|\w+_indices)$/;

function inferName(ctx: RuleContext, id: SyntaxNode, depth: number): DInfo {
  return inferNameUncached(ctx, id, depth, ctx.scope(id));
}

function inferNameUncached(ctx: RuleContext, id: SyntaxNode, depth: number, scope: import('./context').Scope): DInfo {
  const name = ctx.src(id);
  const a = ctx.assignmentBefore(scope, name, id.startIndex);
  if (a) {
    if (!a.value) return UNKNOWN;
    const v = inferDtype(ctx, a.value, depth + 1);
    return v;
  }
  const p = scope.params.get(name);
  if (p) {
    const ann = p.annotation ?? '';
    if (/\b(?:LongTensor|IntTensor|ShortTensor|CharTensor)\b/.test(ann))
      return known('int', true, `'${name}' is annotated ${ann}`);
    if (/\bBoolTensor\b/.test(ann)) return known('bool', true, `'${name}' is annotated ${ann}`);
    if (/\b(?:FloatTensor|HalfTensor|DoubleTensor)\b/.test(ann))
      return known('float', true, `'${name}' is annotated ${ann}`);
    if (/^(?:Optional\[)?int\]?$/.test(ann)) return known('int', false, `'${name}' is annotated int`);
    if (/^(?:Optional\[)?float\]?$/.test(ann)) return known('float', false, `'${name}' is annotated float`);
    if (ID_LIKE.test(name))
      return { kind: 'int', certain: false, tensor: true, why: `'${name}' looks like token ids/indices (name only)` };
  }
  return UNKNOWN;
}

function dtypeKwarg(ctx: RuleContext, site: CallSite): DKind | null {
  return dtypeFromExpr(ctx, site.kwargs.get('dtype') ?? null);
}

function inferCall(ctx: RuleContext, call: SyntaxNode, depth: number): DInfo {
  const site = ctx.callSite(call);
  if (!site) return UNKNOWN;
  const { name } = site;
  const line = lineOf(call);
  // Builtins that produce Python scalars.
  if (!site.qualified && !site.receiver) {
    if (name === 'len' || name === 'int') return known('int', false, `it comes from ${name}()`);
    if (name === 'float') return known('float', false, 'it comes from float()');
  }
  const isMethod = site.receiver !== null;
  const isTorchFn = site.qualified !== null && /^torch(\.|$)/.test(site.qualified);
  if (!isMethod && !isTorchFn) return UNKNOWN;
  const recv = () =>
    isMethod ? inferDtype(ctx, site.receiver, depth + 1) : inferDtype(ctx, site.args[0] ?? null, depth + 1);
  const explicit = dtypeKwarg(ctx, site);

  if (isMethod) {
    switch (name) {
      case 'int':
      case 'long':
      case 'short':
      case 'char':
        return known('int', true, `it comes from \`.${name}()\` on line ${line}`);
      case 'bool':
        return known('bool', true, `it comes from \`.bool()\` on line ${line}`);
      case 'byte':
        return known('uint8', true, `it comes from \`.byte()\` on line ${line}`);
      case 'float':
      case 'half':
      case 'double':
      case 'bfloat16':
        return known('float', true, `it comes from \`.${name}()\``);
      case 'to':
      case 'type': {
        const d =
          dtypeFromExpr(ctx, site.kwargs.get('dtype') ?? site.args[0] ?? null) ??
          dtypeFromExpr(ctx, site.args[1] ?? null);
        if (d)
          return known(
            d,
            true,
            `it comes from \`.${name}(${ctx.src(site.kwargs.get('dtype') ?? site.args[0] ?? site.args[1])})\` on line ${line}`,
          );
        if (name === 'to' && site.args.length === 1 && /device|cuda|cpu|^['"]/.test(ctx.src(site.args[0])))
          return recv();
        return UNKNOWN;
      }
      case 'type_as': {
        const d = inferDtype(ctx, site.args[0] ?? null, depth + 1);
        return d.kind === 'unknown' ? UNKNOWN : { ...d, tensor: true };
      }
      case 'size':
      case 'numel':
      case 'dim':
      case 'ndimension':
      case 'nelement':
        return known('int', false, `it comes from .${name}()`);
      case 'item':
      case 'tolist':
        return UNKNOWN;
    }
  }
  if (explicit && (FACTORIES.has(name) || SUM_LIKE.has(name) || name === 'to'))
    return known(explicit, true, `it is created with dtype=${ctx.src(site.kwargs.get('dtype')!)} on line ${line}`);
  if (BOOL_METHODS.has(name))
    return known('bool', true, `it comes from \`${isMethod ? '.' : 'torch.'}${name}(...)\` on line ${line}`);
  if (INT_RESULT.has(name)) return known('int', true, `it comes from \`${name}(...)\` on line ${line}`);
  if (FLOAT_RESULT.has(name)) return { kind: 'float', certain: true, tensor: true, why: `it comes from ${name}()` };
  if (SUM_LIKE.has(name)) {
    const r = recv();
    if (r.kind === 'int' || r.kind === 'bool' || r.kind === 'uint8')
      return { kind: 'int', certain: r.certain, tensor: true, why: r.why };
    return r.kind === 'float' ? r : UNKNOWN;
  }
  if (SAME_AS_RECEIVER.has(name)) {
    const r = recv();
    return r.kind === 'unknown' ? UNKNOWN : { ...r, tensor: r.tensor ?? true };
  }
  if (name === 'where' && !isMethod && site.args.length === 3) {
    return combine('+', inferDtype(ctx, site.args[1], depth + 1), inferDtype(ctx, site.args[2], depth + 1));
  }
  if ((name === 'matmul' || name === 'mm' || name === 'bmm') && site.args.length >= 1) {
    const a = isMethod ? recv() : inferDtype(ctx, site.args[0], depth + 1);
    const b = inferDtype(ctx, site.args[isMethod ? 0 : 1] ?? null, depth + 1);
    return combine('@', a, b);
  }
  if ((name === 'cat' || name === 'stack' || name === 'concat') && !isMethod) {
    const first = site.args[0];
    if (first && (first.type === 'list' || first.type === 'tuple') && first.namedChildCount > 0)
      return inferDtype(ctx, first.namedChildren[0], depth + 1);
    return UNKNOWN;
  }
  if (!isMethod && FACTORIES.has(name)) return factoryDtype(ctx, site, depth, line);
  return UNKNOWN;
}

function factoryDtype(ctx: RuleContext, site: CallSite, depth: number, line: number): DInfo {
  const { name } = site;
  if (name === 'LongTensor' || name === 'IntTensor') return known('int', true, `it is a torch.${name}`);
  if (name === 'BoolTensor') return known('bool', true, 'it is a torch.BoolTensor');
  if (name === 'ByteTensor') return known('uint8', true, 'it is a torch.ByteTensor');
  if (name === 'FloatTensor') return known('float', true, 'it is a torch.FloatTensor');
  if (name.endsWith('_like')) {
    const d = inferDtype(ctx, site.args[0] ?? null, depth + 1);
    if (name === 'full_like' && site.args[1]) {
      const f = inferDtype(ctx, site.args[1], depth + 1);
      if (f.kind === 'float') return known('float', true, 'it is filled with a float');
    }
    return d.kind === 'unknown' ? UNKNOWN : { ...d, tensor: true };
  }
  if (name === 'zeros' || name === 'ones' || name === 'empty' || name === 'eye')
    return known('float', true, `torch.${name} defaults to float32`);
  if (name === 'full') {
    const f = inferDtype(ctx, site.args[1] ?? site.kwargs.get('fill_value') ?? null, depth + 1);
    return f.kind === 'unknown'
      ? UNKNOWN
      : { ...f, tensor: true, why: `torch.full with a ${f.kind} fill value (line ${line})` };
  }
  if (name === 'arange' || name === 'range') {
    const bounds = site.args
      .slice(0, 3)
      .concat(['start', 'end', 'step'].map((k) => site.kwargs.get(k)).filter((x): x is SyntaxNode => !!x));
    if (bounds.length === 0) return UNKNOWN;
    let allInt = true;
    for (const b of bounds) {
      const d = inferDtype(ctx, b, depth + 1);
      if (d.kind === 'float') return known('float', true, `torch.${name} with a float bound (line ${line})`);
      if (d.kind !== 'int' || !d.certain) allInt = false;
    }
    return allInt ? known('int', true, `it comes from torch.${name} of integers on line ${line}`) : UNKNOWN;
  }
  if (name === 'tensor' || name === 'as_tensor') {
    const data = site.args[0];
    if (!data) return UNKNOWN;
    const text = ctx.src(data);
    if (/^[\s\d,[\]()-]+$/.test(text)) return known('int', true, `torch.${name} of integer literals (line ${line})`);
    if (/^[\s\d.,eE[\]()\-+]+$/.test(text)) return known('float', true, `torch.${name} of float literals`);
    if (/^[\s,[\]()]*(?:True|False)[\sTrueFals,[\]()]*$/.test(text))
      return known('bool', true, `torch.${name} of bools`);
    return UNKNOWN;
  }
  return UNKNOWN;
}

/** int, bool or uint8: the types TensorRT's FP-only layers reject. */
export function isIntegerLike(d: DInfo): boolean {
  return d.kind === 'int' || d.kind === 'bool' || d.kind === 'uint8';
}

export function describeKind(d: DInfo): string {
  return d.kind === 'bool' ? 'bool' : d.kind === 'uint8' ? 'uint8' : d.kind === 'int' ? 'integer' : d.kind;
}
