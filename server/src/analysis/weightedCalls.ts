// Weighted layers built indirectly: through a name bound to a layer class (`linear_layer = nn.Linear`,
// `partial(nn.Conv2d, kernel_size=1) if use_conv else nn.Linear`, a parameter defaulting to one), through a
// subclass of nn.Linear / nn.ConvNd (timm's `Linear`, `Conv2dSame`, in this file or imported from one the
// caller resolved), or Hugging Face's `Conv1D`. The model index sees only direct `nn.X(...)` calls; this
// finds the others, for the quantize pass (which wraps them) and for the report of what stays float.
// Pure: tree + text (+ names resolved in other modules) in, data out. Run on demand, not per keystroke.
import { canonicalName } from './canonical';
import { WEIGHTED_LAYERS } from './canonical';
import type { SyntaxNode, Tree } from './parser';
import { nodeRange, nodeSpan } from './parser';
import type { ImportInfo, Layer, Span } from './types';

/** Hugging Face's transposed linear layer (transformers.pytorch_utils.Conv1D): weight [in, out]. */
export const HF_CONV1D = 'hf.Conv1D';

export function isWeightedCtor(canonical: string): boolean {
  return WEIGHTED_LAYERS.has(canonical) || canonical === HF_CONV1D;
}

/** A weighted layer built indirectly, as a Layer plus how it was recognised. */
export interface IndirectLayer extends Layer {
  /** Why this call builds a weighted layer: `linear_layer = partial(nn.Conv2d, ...)`, `Linear(nn.Linear)`, ... */
  via: string;
}

/**
 * What a module exports that builds weighted layers: local name -> canonical layer (`nn.Linear`, `hf.Conv1D`), or
 * `tuple[nn.Linear]` for a factory returning a tuple that holds one (timm's `create_classifier`: pool, fc).
 */
export type WeightedNames = Record<string, string>;

const TUPLE_CTOR = /^tuple\[(.+)\]$/;

/** The ctor of a factory returning a tuple in which one element is a `ctor` layer. */
export function tupleOf(ctor: string): string {
  return `tuple[${ctor}]`;
}

/** The weighted layer a tuple factory's ctor (`tuple[nn.Linear]`) holds, or undefined for a single layer. */
export function tupleElement(ctor: string): string | undefined {
  return TUPLE_CTOR.exec(ctor)?.[1];
}

/** A `from M import a as b` binding, for resolving names across modules. */
export interface FromImport {
  module: string; // as written: `.linear`, `timm.layers`, `...pytorch_utils`
  name: string;
  local: string;
}

interface Binding {
  ctor: string;
  via: string;
}

type Env = Map<string, Binding>;

const PARTIAL = /(^|\.)partial$/;

/** The weighted layer class an expression names (`nn.Linear`, `partial(nn.Conv2d, k=1)`, `A if c else B`). */
function resolveExpr(n: SyntaxNode | null, imports: ImportInfo, env: Env, depth = 0): Binding | null {
  if (!n || depth > 6) return null;
  switch (n.type) {
    case 'identifier':
    case 'attribute': {
      const text = n.text;
      const bound = env.get(text);
      if (bound) return bound;
      const c = canonicalName(text, imports);
      return isWeightedCtor(c) ? { ctor: c, via: c } : null;
    }
    case 'call': {
      const f = n.childForFieldName('function');
      if (!f || !PARTIAL.test(f.text)) return null;
      const first = n.childForFieldName('arguments')?.namedChildren[0] ?? null;
      return resolveExpr(first, imports, env, depth + 1);
    }
    case 'conditional_expression':
    case 'boolean_operator': {
      for (const c of n.namedChildren) {
        const r = resolveExpr(c, imports, env, depth + 1);
        if (r) return r;
      }
      return null;
    }
    case 'parenthesized_expression':
      return resolveExpr(n.namedChildren[0] ?? null, imports, env, depth + 1);
    default:
      return null;
  }
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ');
  return t.length > 80 ? t.slice(0, 77) + '...' : t;
}

/** `from M import a as b` statements at module level (and one level into try/if). */
export function fromImports(tree: Tree): FromImport[] {
  const out: FromImport[] = [];
  const visit = (st: SyntaxNode, depth: number): void => {
    if (st.type === 'import_from_statement') {
      const mod = st.childForFieldName('module_name');
      if (!mod) return;
      for (const c of st.namedChildren) {
        if (c.id === mod.id) continue;
        if (c.type === 'dotted_name') out.push({ module: mod.text, name: c.text, local: c.text });
        else if (c.type === 'aliased_import') {
          const name = c.childForFieldName('name')?.text ?? '';
          const local = c.childForFieldName('alias')?.text ?? '';
          if (name && local) out.push({ module: mod.text, name, local });
        }
      }
    } else if (depth < 3 && /^(try_statement|if_statement|block|except_clause|else_clause)$/.test(st.type)) {
      for (const c of st.namedChildren) visit(c, depth + 1);
    }
  };
  for (const st of tree.rootNode.namedChildren) visit(st, 0);
  return out;
}

/**
 * Names bound at module level to weighted layer classes: imported ones the caller resolved (`external`), HF's
 * Conv1D, subclasses of weighted layers defined here, and `X = <layer class expression>` aliases.
 */
function moduleEnv(tree: Tree, imports: ImportInfo, external: WeightedNames): Env {
  const env: Env = new Map();
  for (const [name, ctor] of Object.entries(external)) env.set(name, { ctor, via: `${name} (imported, a ${ctor})` });
  for (const imp of fromImports(tree))
    if (imp.name === 'Conv1D' && /(^|\.)pytorch_utils$/.test(imp.module))
      env.set(imp.local, { ctor: HF_CONV1D, via: `${imp.local} (Hugging Face Conv1D)` });
  const classes: SyntaxNode[] = [];
  const assigns: SyntaxNode[] = [];
  for (const st of tree.rootNode.namedChildren) {
    const s = st.type === 'decorated_definition' ? st.childForFieldName('definition') : st;
    if (!s) continue;
    if (s.type === 'class_definition') classes.push(s);
    else if (s.type === 'expression_statement' && s.namedChildren[0]?.type === 'assignment')
      assigns.push(s.namedChildren[0]);
  }
  // Subclasses of subclasses: repeat until nothing new is found.
  for (let changed = true; changed;) {
    changed = false;
    for (const c of classes) {
      const name = c.childForFieldName('name')?.text ?? '';
      if (!name || env.has(name)) continue;
      for (const b of c.childForFieldName('superclasses')?.namedChildren ?? []) {
        const r = resolveExpr(b, imports, env);
        if (r) {
          env.set(name, { ctor: r.ctor, via: `${name}, a subclass of ${r.ctor}` });
          changed = true;
          break;
        }
      }
    }
  }
  for (const a of assigns) {
    const left = a.childForFieldName('left');
    if (left?.type !== 'identifier') continue;
    const r = resolveExpr(a.childForFieldName('right'), imports, env);
    if (r) env.set(left.text, { ctor: r.ctor, via: `${left.text} = ${oneLine(a.childForFieldName('right')!.text)}` });
  }
  return env;
}

/** What this module exports that builds weighted layers (its env, plus factory functions returning one). */
export function exportedWeightedNames(tree: Tree, imports: ImportInfo, external: WeightedNames = {}): WeightedNames {
  const env = moduleEnv(tree, imports, external);
  const out: WeightedNames = {};
  for (const [k, b] of env) out[k] = b.ctor;
  // Factories: `def create_conv2d(...): ... return <weighted layer call>` (or a call of another factory).
  const fns = tree.rootNode.namedChildren
    .map((st) => (st.type === 'decorated_definition' ? st.childForFieldName('definition') : st))
    .filter((s): s is SyntaxNode => s?.type === 'function_definition');
  for (let changed = true; changed;) {
    changed = false;
    for (const f of fns) {
      const name = f.childForFieldName('name')?.text ?? '';
      if (!name || out[name]) continue;
      const ctor = factoryCtor(f, imports, functionEnv(f, imports, env), out);
      if (ctor) {
        out[name] = ctor;
        env.set(name, { ctor, via: `${name}(), a factory returning ${ctor}` });
        changed = true;
      }
    }
  }
  return out;
}

/**
 * What function `f` returns that builds a weighted layer: `return C(...)` / `m = C(...); return m` (C a layer class
 * or a factory in `known`) gives C's ctor; `return pool, fc` with `fc` such a layer gives `tuple[ctor]`.
 */
function factoryCtor(f: SyntaxNode, imports: ImportInfo, local: Env, known: WeightedNames): string | undefined {
  const ctorOf = (call: SyntaxNode): string | undefined => {
    const callee = call.childForFieldName('function');
    return resolveExpr(callee, imports, local)?.ctor ?? (callee ? known[callee.text] : undefined);
  };
  for (const r of returnsOf(f)) {
    const v = r.namedChildren[0];
    if (v?.type === 'expression_list' || v?.type === 'tuple') {
      // Only a layer element counts: a nested tuple would need quant() to recurse into it at the call site.
      for (const el of v.namedChildren) {
        const ctor = returnedCalls(f, el)
          .map(ctorOf)
          .find((c) => c && !tupleElement(c));
        if (ctor) return tupleOf(ctor);
      }
      continue;
    }
    const ctor = returnedCalls(f, v)
      .map(ctorOf)
      .find((c) => c);
    if (ctor) return ctor;
  }
  return undefined;
}

/** The statements of a function, nested blocks included, nested functions and classes not. */
function statementsOf(fn: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  const visit = (block: SyntaxNode | null): void => {
    if (!block) return;
    for (const st of block.namedChildren) {
      if (st.type === 'function_definition' || st.type === 'class_definition' || st.type === 'decorated_definition')
        continue;
      if (st.type === 'block' || /_clause$/.test(st.type)) {
        visit(st); // else/elif/except/finally clauses hold a block
        continue;
      }
      out.push(st);
      for (const c of st.namedChildren) if (c.type === 'block' || /_clause$/.test(c.type)) visit(c);
    }
  };
  visit(fn.childForFieldName('body'));
  return out;
}

/** `return C(...)`, or `return m` where the function assigned `m = C(...)`: the calls that may be returned. */
function returnedCalls(fn: SyntaxNode, v: SyntaxNode | undefined): SyntaxNode[] {
  if (v?.type === 'call') return [v];
  if (v?.type !== 'identifier') return [];
  const out: SyntaxNode[] = [];
  for (const st of statementsOf(fn)) {
    const a = st.type === 'expression_statement' ? st.namedChildren[0] : undefined;
    if (a?.type !== 'assignment' || a.childForFieldName('left')?.text !== v.text) continue;
    const right = a.childForFieldName('right');
    if (right?.type === 'call') out.push(right);
  }
  return out;
}

function returnsOf(fn: SyntaxNode): SyntaxNode[] {
  return statementsOf(fn).filter((s) => s.type === 'return_statement');
}

/** A function's names bound to weighted layer classes: parameters with such a default, `x = <class expr>`. */
function functionEnv(fn: SyntaxNode, imports: ImportInfo, outer: Env): Env {
  const env: Env = new Map(outer);
  for (const p of fn.childForFieldName('parameters')?.namedChildren ?? []) {
    if (p.type !== 'default_parameter' && p.type !== 'typed_default_parameter') continue;
    const name = p.childForFieldName('name')?.text;
    const r = resolveExpr(p.childForFieldName('value'), imports, outer);
    if (name && r)
      env.set(name, { ctor: r.ctor, via: `parameter ${name}=${oneLine(p.childForFieldName('value')!.text)}` });
  }
  for (const st of statementsOf(fn)) {
    if (st.type !== 'expression_statement') continue;
    const a = st.namedChildren[0];
    if (a?.type !== 'assignment') continue;
    const left = a.childForFieldName('left');
    if (left?.type !== 'identifier') continue;
    const right = a.childForFieldName('right');
    const r = resolveExpr(right, imports, env);
    if (r) env.set(left.text, { ctor: r.ctor, via: `${left.text} = ${oneLine(right!.text)}` });
  }
  return env;
}

function wrapperOf(call: SyntaxNode): { wrapped: Layer['wrapped']; span?: Span } {
  const p = call.parent;
  if (p?.type !== 'argument_list' || p.parent?.type !== 'call') return { wrapped: null };
  if (p.namedChildren[0]?.startIndex !== call.startIndex) return { wrapped: null };
  const f = p.parent.childForFieldName('function')?.text;
  if (f === 'qdq_quant.quant') return { wrapped: 'quant', span: nodeSpan(p.parent) };
  if (f === 'qdq_quant.keep_float') return { wrapped: 'keep_float', span: nodeSpan(p.parent) };
  return { wrapped: null };
}

/**
 * Calls that build weighted layers indirectly, except those at `known` offsets (the index's own layers).
 * `external`: names this module imports that other modules define as weighted layers or factories.
 */
export function indirectWeightedCalls(
  tree: Tree,
  text: string,
  imports: ImportInfo,
  known: Set<number>,
  external: WeightedNames = {},
): IndirectLayer[] {
  const modEnv = moduleEnv(tree, imports, external);
  const out: IndirectLayer[] = [];
  const consider = (call: SyntaxNode, env: Env): void => {
    if (known.has(call.startIndex)) return;
    const callee = call.childForFieldName('function');
    if (!callee || (callee.type !== 'identifier' && callee.type !== 'attribute')) return;
    const b = env.get(callee.text);
    if (!b) return;
    const w = wrapperOf(call);
    // A tuple factory's call is a layer site only where the tuple is unpacked (`self.pool, self.fc = f(...)`, how
    // the libraries use it); a tuple bound whole (`head = f(...)`) is left as written, its layer taken out later.
    const ctor = tupleElement(b.ctor) ?? b.ctor;
    if (ctor !== b.ctor && !unpacked(w.span ? call.parent!.parent! : call)) return;
    const layer: IndirectLayer = {
      ctor,
      kind:
        ctor === HF_CONV1D || ctor === 'nn.Linear' ? 'linear' : ctor.includes('Transpose') ? 'convtranspose' : 'conv',
      callRange: nodeRange(call),
      callSpan: nodeSpan(call),
      wrapped: w.wrapped,
      args: [],
      kwargs: {},
      via: b.via,
    };
    if (w.span) layer.wrapperSpan = w.span;
    const left = call.parent?.type === 'assignment' ? call.parent.childForFieldName('left') : null;
    if (left?.type === 'attribute' && left.childForFieldName('object')?.text === 'self')
      layer.attr = left.childForFieldName('attribute')?.text;
    out.push(layer);
  };
  // Only names that can build a weighted layer matter: find their calls textually, then confirm in the tree.
  const scan = (node: SyntaxNode, env: Env): void => {
    const names = [...env.keys()];
    if (!names.length) return;
    const re = new RegExp(`(?<![\\w.])(${names.map((n) => n.replace(/\./g, '\\.')).join('|')})\\s*\\(`, 'g');
    const body = text.slice(node.startIndex, node.endIndex);
    for (const m of body.matchAll(re)) {
      const at = node.startIndex + m.index!;
      let n: SyntaxNode | null = tree.rootNode.descendantForIndex(at, at + m[1].length);
      while (n && n.type !== 'call' && n.startIndex === at) n = n.parent;
      if (n?.type === 'call' && n.startIndex === at && innermostFunction(n) === functionOf(node)) consider(n, env);
    }
  };
  const functionOf = (node: SyntaxNode): number => (node.type === 'function_definition' ? node.id : -1);
  // Module level (outside functions), then every function with its own names.
  scan(tree.rootNode, modEnv);
  const fns: SyntaxNode[] = [];
  const collect = (n: SyntaxNode, depth: number): void => {
    for (const c of n.namedChildren) {
      if (c.type === 'function_definition') fns.push(c);
      if (depth < 12 && /definition|block|class|decorated|_statement|_clause/.test(c.type)) collect(c, depth + 1);
    }
  };
  collect(tree.rootNode, 0);
  for (const f of fns) scan(f, functionEnv(f, imports, modEnv));
  return out;
}

/** Is `value` the right side of an assignment that unpacks it (`a, b = value`, `(a, b) = value`, `[a, b] = value`)? */
function unpacked(value: SyntaxNode): boolean {
  const p = value.parent;
  if (p?.type !== 'assignment' || p.childForFieldName('right')?.id !== value.id) return false;
  return /^(pattern_list|tuple_pattern|list_pattern)$/.test(p.childForFieldName('left')?.type ?? '');
}

/** The nearest enclosing function definition's id, -1 at module level. */
function innermostFunction(n: SyntaxNode): number {
  for (let p = n.parent; p; p = p.parent) if (p.type === 'function_definition') return p.id;
  return -1;
}
