// Quantize / unquantize / keep-float as pure text edits, following the generated-code contract in
// docs/DESIGN.md: every inserted line ends with `# qdq`, every other insertion is a wrapper call, so removal
// is exact and needs no stored state.
import { analysisText, buildModelIndex, LineIndex, parsePython } from '../analysis';
import type { ClassAnchors, InsertAnchor } from '../analysis/segmentIndex';
import { WEIGHTED_LAYERS } from '../analysis/canonical';
import { operandFilterFor } from './operandFilter';
import { indirectWeightedCalls, isWeightedCtor, type WeightedNames } from '../analysis/weightedCalls';
import type { FunctionInfo, Layer, ModelIndex, ModuleClass, Op, Span } from '../analysis/types';
import type { SyntaxNode, Tree } from '../analysis/parser';
import {
  OffsetEdit,
  TextEdit,
  applyOffsetEdits,
  lineStartOf,
  nextLineStart,
  normalizeEdits,
  toTextEdits,
} from './edits';

export type QuantizeScope = { kind: 'file' } | { kind: 'class'; name: string } | { kind: 'site'; offset: number };

export interface QuantizeOptions {
  scope?: QuantizeScope;
  /** Use `from . import qdq_quant`; default: when the file already uses relative imports. */
  relativeImport?: boolean;
  /**
   * Names the file imports that build weighted layers in other modules (fixes/importedLayers.ts resolves
   * them from the file's path): `from timm.layers import Linear` -> `{Linear: 'nn.Linear'}`.
   */
  externalLayers?: WeightedNames;
}

export interface FixResult {
  text: string;
  edits: TextEdit[];
}

export interface QuantizeResult extends FixResult {
  /** The output uses qdq_quant, so qdq_quant.py must exist next to the model file. */
  helperNeeded: boolean;
}

export const MARKER = '  # qdq';
const QUANT_CALL = 'qdq_quant.quant';
const KEEP_CALL = 'qdq_quant.keep_float';
const USES_QDQ = /\bqdq_quant\./;
const IMPORTS_QDQ = /^[ \t]*(import qdq_quant\b|from [\w.]* ?import [^\n#]*\bqdq_quant\b)/m;

const OP_NAME: Record<string, string> = {
  matmul: 'matmul',
  bmm: 'bmm',
  einsum: 'einsum',
  linear: 'linear',
  add: 'add',
  iadd: 'add',
};

interface Analysis {
  /** The text as the analysis reads it (analysisText): where lines and statements are looked for. */
  text: string;
  /** The document's own text, which the edits apply to (same offsets). */
  source: string;
  tree: Tree;
  index: ModelIndex;
  eol: string;
  lines: LineIndex;
}

function analyse(text: string): Analysis | null {
  try {
    const tree = parsePython(text);
    if (tree.rootNode.hasError) return null; // mid-edit: never rewrite a file that does not parse
    const index = buildModelIndex(tree, text);
    // Lines are found in the analysis text (a lone CR is LF there, same offsets); edits apply to the source.
    const scanned = analysisText(text);
    return { text: scanned, source: text, tree, index, eol: index.eol, lines: new LineIndex(scanned) };
  } catch {
    return null;
  }
}

function unchanged(text: string): QuantizeResult {
  return { text, edits: [], helperNeeded: USES_QDQ.test(text) };
}

function within(span: Span, s: Span): boolean {
  return s.start >= span.start && s.end <= span.end;
}

/** A whole generated line after the statement ending at `offset`, or at the start of the line holding it. */
function lineInsert(text: string, anchor: InsertAnchor, line: string, eol: string, order = 0): OffsetEdit {
  if (anchor.kind === 'before')
    return { start: lineStartOf(text, anchor.offset), end: lineStartOf(text, anchor.offset), text: line + eol, order };
  const off = nextLineStart(text, anchor.offset);
  if (off === text.length && !text.endsWith('\n')) return { start: off, end: off, text: eol + line, order };
  return { start: off, end: off, text: line + eol, order };
}

function importEdit(a: Analysis, relative: boolean): OffsetEdit {
  const line = (relative ? 'from . import qdq_quant' : 'import qdq_quant') + MARKER;
  const after = a.index.imports.insertAfterLine;
  if (after < 0) return { start: 0, end: 0, text: line + a.eol, order: -1 };
  const starts = a.lines.starts;
  if (after + 1 < starts.length)
    return { start: starts[after + 1], end: starts[after + 1], text: line + a.eol, order: -1 };
  const end = a.text.length;
  return {
    start: end,
    end,
    text: (a.text.endsWith('\n') ? '' : a.eol) + line + (a.text.endsWith('\n') ? a.eol : ''),
    order: -1,
  };
}

function indentUnit(indent: string): string {
  return indent.includes('\t') ? '\t' : '    ';
}

/** Classes that own (call or pass by name) a module-receiving function. */
function ownersOf(index: ModelIndex, func: string): ModuleClass[] {
  return index.classes.filter((c) => c.isModule && c.delegates.some((d) => d.func === func));
}

/** A quantizer declaration line can be placed in each owner (after super().__init__, or in a new __init__). */
function ownersCanDeclare(owners: ModuleClass[]): boolean {
  const canDeclare = (c: ModuleClass): boolean => {
    const anchors = c as ModuleClass & ClassAnchors;
    return c.initSpan ? !!anchors.declAnchor : !!anchors.initAnchor;
  };
  return owners.length > 0 && owners.every(canDeclare);
}

/**
 * Which sites the quantize pass wraps: the one home of that decision. quantizeFile applies it; the editor's code
 * actions (features/codeActions.ts) offer "Quantize this layer/op" only where it holds, so a listed action never
 * resolves to no edit.
 */
export interface QuantizableSites {
  allLayers: Layer[];
  /** The pass wraps this weighted layer under a scope of this kind (when the layer is in the scope). */
  layerWraps(l: Layer, scopeKind: QuantizeScope['kind']): boolean;
  /** The activation operands the pass wraps in this op (a `site` or wider scope over it); empty: none. */
  opOperands(op: Op): number[];
  /** Why the op's operands keep no quantizer (ints, masks, biases: fixes/operandFilter.ts), or null. */
  skipOperands(op: Op): string | null;
}

/**
 * The sites of the document version `index` was built from (`tree`, `text`: the document's own text). The operand
 * filter is part of the answer, so every caller (code actions, fileHasWork, quantizeFile) agrees on it.
 */
export function quantizableSites(index: ModelIndex, tree: Tree, text: string): QuantizableSites {
  const filter = operandFilterFor(index, tree, text);
  const skipOperands = (op: Op): string | null => filter.skipReason(op);
  const fnByName = new Map(index.functions.map((f) => [f.name, f] as const));
  const allLayers: Layer[] = [
    ...index.classes.flatMap((c) => c.layers),
    ...index.functions.flatMap((f) => f.layers),
    ...index.topLevelLayers,
  ];
  // Helpers with a keep_float call site: quantize their other call sites instead of the helper body.
  const keepFloatHelpers = new Set(
    allLayers.filter((l) => l.inHelper && l.wrapped === 'keep_float').map((l) => l.inHelper!),
  );
  const helperQuantized = (name: string): boolean =>
    !!fnByName.get(name)?.layers.some((l) => !l.inHelper && l.wrapped === 'quant');
  const layerWraps = (l: Layer, scopeKind: QuantizeScope['kind']): boolean => {
    if (!WEIGHTED_LAYERS.has(l.ctor) || l.wrapped) return false;
    if (!l.inHelper) {
      // A ctor inside a helper whose call sites include a keep_float one is handled at the call sites.
      const owner = index.functions.find((f) => f.layers.includes(l));
      return !(owner && keepFloatHelpers.has(owner.name));
    }
    const siteOnly = scopeKind === 'site' || keepFloatHelpers.has(l.inHelper);
    return siteOnly && !helperQuantized(l.inHelper);
  };
  const opOperands = (op: Op): number[] => {
    const which = quantizableOperands(op);
    if (!which.length || skipOperands(op)) return [];
    const cls = index.classes.find((c) => c.ops.includes(op));
    if (cls) return cls.isModule && ownersCanDeclare([cls]) ? which : [];
    const fn = index.functions.find((f) => f.ops.includes(op));
    return fn && ownersCanDeclare(ownersOf(index, fn.name)) ? which : [];
  };
  return { allLayers, layerWraps, opOperands, skipOperands };
}

function quantizableOperands(op: Op): number[] {
  if (!(op.kind in OP_NAME) || op.operandSpans.length === 0) return [];
  if ((op.kind === 'add' || op.kind === 'iadd') && !op.residual) return [];
  if (op.method === '__init__' || !op.owner) return []; // no `self`/module to hang a quantizer on
  if (op.quantizedOperands.some((q) => q)) return []; // already handled (idempotence)
  const idx: number[] = [];
  op.operandSpans.forEach((_, i) => {
    if (!op.operandIsParam[i]) idx.push(i);
  });
  return idx;
}

function roles(op: Op, count: number): string[] {
  if (op.kind === 'add' || op.kind === 'iadd') return count === 2 ? ['local', 'residual'] : ['residual'];
  if (op.kind === 'linear') return ['input'];
  return ['a', 'b'];
}

export function quantizeFile(text: string, opts: QuantizeOptions = {}): QuantizeResult {
  try {
    return quantizeImpl(text, opts);
  } catch {
    return unchanged(text);
  }
}

/** The classes, helper functions and spans a quantize scope covers; null when the named class is not there. */
function scopeOf(
  a: Analysis,
  scope: NonNullable<QuantizeOptions['scope']>,
): { inScope: (s: Span) => boolean; scopeClasses: ModuleClass[]; scopeFunctions: FunctionInfo[] } | null {
  const { index } = a;
  const text = a.source;
  let inScope: (s: Span) => boolean = () => true;
  let scopeClasses: ModuleClass[] = index.classes.filter((c) => c.isModule);
  let scopeFunctions: FunctionInfo[] = index.functions;
  if (scope.kind === 'class') {
    const cls = index.classes.find((c) => c.name === scope.name);
    if (!cls) return null;
    const helperNames = new Set(cls.layers.map((l) => l.inHelper).filter((x): x is string => !!x));
    for (const d of cls.delegates) helperNames.add(d.func);
    scopeFunctions = index.functions.filter((f) => helperNames.has(f.name));
    scopeClasses = cls.isModule ? [cls] : [];
    const spans = [cls.span, ...scopeFunctions.map((f) => f.span)];
    inScope = (s) => spans.some((sp) => within(sp, s));
  } else if (scope.kind === 'site') {
    const off = scope.offset;
    const line = a.lines.positionAt(off).line;
    const ls = a.lines.starts[line];
    const le = line + 1 < a.lines.starts.length ? a.lines.starts[line + 1] : text.length;
    inScope = (s) => (s.start <= off && off <= s.end) || (s.start >= ls && s.start < le);
  }
  return { inScope, scopeClasses, scopeFunctions };
}

/** The `# qdq` lines declaring a class's new activation quantizers (an `__init__` of their own when it has none). */
function declarationEdit(a: Analysis, c: ModuleClass, names: string[]): OffsetEdit | null {
  const anchors = c as ModuleClass & ClassAnchors;
  if (c.initSpan && anchors.declAnchor) {
    const indent = anchors.declAnchor.indent;
    const lines = names.map((n) => `${indent}self.${n} = qdq_quant.TensorQuantizer()${MARKER}`);
    return lineInsert(a.text, anchors.declAnchor, lines.join(a.eol), a.eol);
  }
  if (anchors.initAnchor) {
    const indent = anchors.initAnchor.indent;
    const inner = indent + indentUnit(indent);
    const lines = [
      `${indent}def __init__(self, *args, **kwargs):${MARKER}`,
      `${inner}super().__init__(*args, **kwargs)${MARKER}`,
      ...names.map((n) => `${inner}self.${n} = qdq_quant.TensorQuantizer()${MARKER}`),
    ];
    return lineInsert(a.text, anchors.initAnchor, lines.join(a.eol), a.eol);
  }
  return null;
}

function quantizeImpl(text: string, opts: QuantizeOptions): QuantizeResult {
  const a = analyse(text);
  if (!a) return unchanged(text);
  const { index } = a;
  const scope = opts.scope ?? { kind: 'file' };
  const edits: OffsetEdit[] = [];

  // Which code is in scope.
  const inScopeOf = scopeOf(a, scope);
  if (!inScopeOf) return unchanged(text);
  const { inScope, scopeClasses, scopeFunctions } = inScopeOf;

  // Ints, bools, tuples, masks and biases keep no quantizer (sites.skipOperands, operandFilter.ts says why).
  const sites = quantizableSites(index, a.tree, a.source);
  const allLayers = sites.allLayers;

  // 1. Weighted layers: `C(...)` -> `qdq_quant.quant(C(...))`.
  const wrapped = new Set<number>();
  const wrap = (l: Layer): void => {
    if (wrapped.has(l.callSpan.start)) return;
    wrapped.add(l.callSpan.start);
    edits.push({ start: l.callSpan.start, end: l.callSpan.start, text: QUANT_CALL + '(', order: 0 });
    edits.push({ start: l.callSpan.end, end: l.callSpan.end, text: ')', order: 0 });
  };
  for (const l of allLayers) {
    if (!inScope(l.callSpan) || !sites.layerWraps(l, scope.kind)) continue;
    if (!l.inHelper && scope.kind === 'class') {
      const owner = index.functions.find((f) => f.layers.includes(l));
      if (owner && !scopeFunctions.includes(owner)) continue;
    }
    wrap(l);
  }

  // 1b. Weighted layers built through aliases, subclasses, factories of other modules, HF's Conv1D.
  const known = new Set(allLayers.map((l) => l.callSpan.start));
  for (const l of indirectWeightedCalls(a.tree, a.text, index.imports, known, opts.externalLayers)) {
    if (!l.wrapped && inScope(l.callSpan)) wrap(l);
  }

  // 2. Activation quantizers for functional ops (matmul/@/bmm/einsum operands, residual adds).
  const declsByClass = new Map<ModuleClass, string[]>();
  const usedNames = (classes: ModuleClass[], extraOps: Op[]): Set<string> => {
    const names = new Set<string>();
    for (const c of classes) {
      for (const q of c.quantizers) names.add(q.name);
      for (const op of c.ops) for (const q of op.operandQuantizers) if (q) names.add(q);
      for (const q of declsByClass.get(c) ?? []) names.add(q);
    }
    for (const op of extraOps) for (const q of op.operandQuantizers) if (q) names.add(q);
    return names;
  };
  const quantizeOps = (ops: Op[], owners: ModuleClass[], extraOps: Op[]): void => {
    for (const op of ops) {
      const which = quantizableOperands(op);
      if (!which.length || !inScope(op.span)) continue;
      if (sites.skipOperands(op)) continue;
      if (!ownersCanDeclare(owners)) continue;
      const base = OP_NAME[op.kind];
      const used = usedNames(owners, extraOps);
      let n = 0;
      const taken = (k: number): boolean => [...used].some((u) => u.startsWith(`${base}${k}_`));
      while (taken(n)) n++;
      const rs = op.operandRoles ?? roles(op, op.operandSpans.length);
      const ownerExpr = op.owner!;
      for (const i of which) {
        const name = `${base}${n}_${rs[i] ?? String.fromCharCode(97 + i)}_quantizer`;
        const s = op.operandSpans[i];
        edits.push({ start: s.start, end: s.start, text: `${ownerExpr}.${name}(`, order: -s.end });
        edits.push({ start: s.end, end: s.end, text: ')', order: 0 });
        for (const c of owners) {
          const list = declsByClass.get(c) ?? [];
          list.push(name);
          declsByClass.set(c, list);
        }
      }
    }
  };
  for (const c of scopeClasses) quantizeOps(c.ops, [c], []);
  for (const f of index.functions) {
    if (!f.ops.some((o) => o.owner)) continue;
    const owners = ownersOf(index, f.name);
    const selected = scope.kind === 'file' || scope.kind === 'site' || scopeFunctions.includes(f);
    if (selected) quantizeOps(f.ops, owners, f.ops);
  }
  for (const [c, names] of declsByClass) {
    const edit = declarationEdit(a, c, names);
    if (edit) edits.push(edit);
  }

  if (!edits.length) return unchanged(text);
  if (index.imports.qdqImportLine === undefined && !IMPORTS_QDQ.test(text)) {
    edits.push(importEdit(a, opts.relativeImport ?? index.imports.usesRelativeImports));
  }
  return finish(a, edits, true);
}

function finish(a: Analysis, raw: OffsetEdit[], helperNeeded?: boolean): QuantizeResult {
  const edits = normalizeEdits(raw);
  const out = applyOffsetEdits(a.source, edits);
  // Last line of defence: never hand back source that does not parse (the input did).
  if (parsePython(out).rootNode.hasError) return unchanged(a.source);
  return { text: out, edits: toTextEdits(a.source, edits, a.lines), helperNeeded: helperNeeded ?? USES_QDQ.test(out) };
}

// ---------------------------------------------------------------------------------------------------------
// Removal

interface MarkerLine {
  start: number; // deletion range
  end: number;
  code: string;
  decl?: string; // quantizer name for `self.<name> = qdq_quant.TensorQuantizer()`
  kind: 'import' | 'decl' | 'init' | 'other';
  cls?: ModuleClass;
}

interface Usage {
  call: Span; // whole call
  arg: Span; // the wrapped expression
  name?: string; // quantizer attribute name for quantizer calls
  cls?: ModuleClass;
  fn?: FunctionInfo;
}

const MARKER_RE = /#\s*qdq[ \t]*\r?$/;

function findMarkerLines(a: Analysis): MarkerLine[] {
  const out: MarkerLine[] = [];
  const { text, lines, tree } = a;
  const starts = lines.starts;
  let pos = 0;
  // Only lines that contain "# qdq" need a look: scan with indexOf, not line by line.
  for (;;) {
    const hit = text.indexOf('qdq', pos);
    if (hit < 0) break;
    const ls = lineStartOf(text, hit);
    const le = nextLineStart(text, hit);
    pos = le > hit ? le : hit + 3;
    const lineText = text.slice(ls, le).replace(/\r?\n$/, '');
    const m = MARKER_RE.exec(lineText);
    if (!m) continue;
    const hashOffset = ls + m.index;
    const node = tree.rootNode.descendantForIndex(hashOffset, hashOffset + 1);
    if (!node || node.type !== 'comment') continue;
    let start = ls;
    const end = le;
    if (le === text.length && !text.endsWith('\n')) {
      // last line without a line break: also delete the break before it
      start = ls > 0 ? ls - (ls >= 2 && text.charCodeAt(ls - 2) === 13 ? 2 : 1) : 0;
    }
    const code = lineText.slice(0, m.index).trim();
    const d = /^self\.(\w+)\s*=\s*qdq_quant\.TensorQuantizer\(\)$/.exec(code);
    let kind: MarkerLine['kind'] = 'other';
    if (d) kind = 'decl';
    else if (/^(import qdq_quant|from \.* ?import qdq_quant)$/.test(code)) kind = 'import';
    else if (/^def __init__\(self, \*args, \*\*kwargs\):$|^super\(\)\.__init__\(\*args, \*\*kwargs\)$/.test(code))
      kind = 'init';
    const cls = innermostClass(a.index, hashOffset);
    out.push({ start, end, code, decl: d?.[1], kind, cls });
    void starts;
  }
  return out;
}

function innermostClass(index: ModelIndex, offset: number): ModuleClass | undefined {
  let best: ModuleClass | undefined;
  for (const c of index.classes)
    if (c.span.start <= offset && offset < c.span.end && (!best || c.span.start >= best.span.start)) best = c;
  return best;
}

function findUsages(a: Analysis, declared: Set<string>): Usage[] {
  const { text, tree, index } = a;
  const out: Usage[] = [];
  const re = /qdq_quant\.(?:quant|keep_float)\(|\b[A-Za-z_]\w*\.(\w+_quantizer)\(/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1] && !declared.has(m[1])) continue;
    const node = tree.rootNode.descendantForIndex(m.index, m.index + 1);
    let call: SyntaxNode | null = node;
    while (call && !(call.type === 'call' && call.startIndex === m.index)) {
      if (call.startIndex < m.index) {
        call = null;
        break;
      }
      call = call.parent;
    }
    if (!call) continue;
    const f = call.childForFieldName('function');
    const args = call.childForFieldName('arguments');
    if (!f || !args || args.type !== 'argument_list' || args.namedChildCount !== 1) continue;
    if (m[1] === undefined && f.text !== QUANT_CALL && f.text !== KEEP_CALL) continue;
    const arg = args.namedChildren[0];
    if (arg.type === 'keyword_argument' || arg.type === 'comment') continue;
    const callSpan = { start: call.startIndex, end: call.endIndex };
    const u: Usage = { call: callSpan, arg: { start: arg.startIndex, end: arg.endIndex }, name: m[1] };
    u.cls = innermostClass(index, callSpan.start);
    u.fn = index.functions.find((fn) => within(fn.span, callSpan));
    out.push(u);
  }
  return out;
}

export function unquantizeFile(text: string, scope?: QuantizeScope): FixResult {
  try {
    return unquantizeImpl(text, scope ?? { kind: 'file' });
  } catch {
    return { text, edits: [] };
  }
}

function unquantizeImpl(text: string, scope: QuantizeScope): FixResult {
  const a = analyse(text);
  if (!a) return { text, edits: [] };
  const { index } = a;
  const markers = findMarkerLines(a);
  const declared = new Set(markers.filter((m) => m.decl).map((m) => m.decl!));
  const usages = findUsages(a, declared);

  let selected: (s: Span) => boolean = () => true;
  if (scope.kind === 'class') {
    const cls = index.classes.find((c) => c.name === scope.name);
    if (!cls) return { text, edits: [] };
    const names = new Set(cls.layers.map((l) => l.inHelper).filter((x): x is string => !!x));
    for (const d of cls.delegates) names.add(d.func);
    const spans = [cls.span, ...index.functions.filter((f) => names.has(f.name)).map((f) => f.span)];
    selected = (s) => spans.some((sp) => within(sp, s));
  } else if (scope.kind === 'site') {
    const off = scope.offset;
    const line = a.lines.positionAt(off).line;
    const ls = a.lines.starts[line];
    const le = line + 1 < a.lines.starts.length ? a.lines.starts[line + 1] : text.length;
    selected = (s) => (s.start <= off && off < s.end && s.end - s.start < 400) || (s.start >= ls && s.start < le);
  }

  const edits: OffsetEdit[] = [];
  const removed = new Set<Usage>();
  for (const u of usages) {
    if (!selected(u.call)) continue;
    removed.add(u);
    edits.push({ start: u.call.start, end: u.arg.start, text: '' });
    edits.push({ start: u.arg.end, end: u.call.end, text: '' });
  }
  // A declaration goes when nothing uses it any more (and it was touched or is in scope).
  const remainingUse = (name: string, cls?: ModuleClass): boolean =>
    usages.some(
      (u) =>
        !removed.has(u) &&
        u.name === name &&
        (u.cls === cls || (u.fn && cls?.delegates.some((d) => d.func === u.fn!.name))),
    );
  const deletedDecls = new Set<MarkerLine>();
  for (const m of markers) {
    if (m.kind !== 'decl') continue;
    const touched = [...removed].some((u) => u.name === m.decl);
    if ((touched || selected({ start: m.start, end: m.start })) && !remainingUse(m.decl!, m.cls)) deletedDecls.add(m);
  }
  for (const m of markers) {
    let del = deletedDecls.has(m);
    if (m.kind === 'init') {
      const classDecls = markers.filter((x) => x.kind === 'decl' && x.cls === m.cls);
      del =
        classDecls.every((x) => deletedDecls.has(x)) &&
        (classDecls.length > 0 || selected({ start: m.start, end: m.start }));
    } else if (m.kind === 'import') {
      const usesLeft = usages.some((u) => !removed.has(u) && !u.name);
      const declsLeft = markers.some((x) => x.kind === 'decl' && !deletedDecls.has(x));
      del = !usesLeft && !declsLeft && !USES_QDQ.test(textWithout(text, markers, usages));
    } else if (m.kind === 'other') del = scope.kind === 'file' || selected({ start: m.start, end: m.start });
    if (del) edits.push({ start: m.start, end: m.end, text: '' });
  }
  if (!edits.length) return { text, edits: [] };
  const r = finish(a, edits);
  return { text: r.text, edits: r.edits };
}

/** The text with generated lines and qdq call sites blanked: does anything else still use qdq_quant? */
function textWithout(text: string, markers: MarkerLine[], usages: Usage[]): string {
  const cut: OffsetEdit[] = [
    ...markers.map((m) => ({ start: m.start, end: m.end, text: '' })),
    ...usages.filter((u) => !u.name).map((u) => ({ start: u.call.start, end: u.arg.start, text: '' })),
  ];
  return applyOffsetEdits(text, normalizeEdits(cut));
}

// ---------------------------------------------------------------------------------------------------------
// Keep float

/** Mark the weighted layer at `offset` (or on its line) as kept in float: `qdq_quant.keep_float(C(...))`. */
export function keepFloat(text: string, offset: number): FixResult {
  try {
    return keepFloatImpl(text, offset);
  } catch {
    return { text, edits: [] };
  }
}

function keepFloatImpl(text: string, offset: number): FixResult {
  const a = analyse(text);
  if (!a) return { text, edits: [] };
  const { index } = a;
  const line = a.lines.positionAt(offset).line;
  const ls = a.lines.starts[line];
  const le = line + 1 < a.lines.starts.length ? a.lines.starts[line + 1] : text.length;
  const all: Layer[] = [
    ...index.classes.flatMap((c) => c.layers),
    ...index.functions.flatMap((f) => f.layers),
    ...index.topLevelLayers,
  ];
  const known = new Set(all.map((l) => l.callSpan.start));
  const candidates = [
    ...all.filter((l) => WEIGHTED_LAYERS.has(l.ctor)),
    ...indirectWeightedCalls(a.tree, a.text, index.imports, known).filter((l) => isWeightedCtor(l.ctor)),
  ];
  const outer = (l: Layer): Span => l.wrapperSpan ?? l.callSpan;
  const layer =
    candidates
      .filter((l) => outer(l).start <= offset && offset <= outer(l).end)
      .sort((x, y) => outer(y).start - outer(x).start)[0] ??
    candidates.find((l) => outer(l).start >= ls && outer(l).start < le);
  if (!layer) {
    // An op: keeping it in float means removing its quantizers.
    return unquantizeFile(text, { kind: 'site', offset });
  }
  const edits: OffsetEdit[] = [];
  if (layer.wrapped === 'keep_float') return { text, edits: [] };
  if (layer.wrapped === 'quant' && layer.wrapperSpan) {
    edits.push({ start: layer.wrapperSpan.start, end: layer.wrapperSpan.start + QUANT_CALL.length, text: KEEP_CALL });
  } else {
    edits.push({ start: layer.callSpan.start, end: layer.callSpan.start, text: KEEP_CALL + '(' });
    edits.push({ start: layer.callSpan.end, end: layer.callSpan.end, text: ')' });
    if (index.imports.qdqImportLine === undefined && !IMPORTS_QDQ.test(text))
      edits.push(importEdit(a, index.imports.usesRelativeImports));
  }
  // A call site of a helper whose body is quantized (conv3x3 returning qdq_quant.quant(nn.Conv2d(...))):
  // quantize the helper's other call sites instead of its body, as quantizeFile does for such helpers,
  // so this one really stays float.
  if (layer.inHelper) {
    const helper = index.functions.find((f) => f.name === layer.inHelper);
    const body = helper?.layers.filter((l) => !l.inHelper && l.wrapped === 'quant' && l.wrapperSpan) ?? [];
    if (body.length) {
      for (const l of body) {
        edits.push({ start: l.wrapperSpan!.start, end: l.callSpan.start, text: '' });
        edits.push({ start: l.callSpan.end, end: l.wrapperSpan!.end, text: '' });
      }
      for (const l of all) {
        if (l.inHelper !== layer.inHelper || l.wrapped || l.callSpan.start === layer.callSpan.start) continue;
        edits.push({ start: l.callSpan.start, end: l.callSpan.start, text: QUANT_CALL + '(' });
        edits.push({ start: l.callSpan.end, end: l.callSpan.end, text: ')' });
      }
    }
  }
  const r = finish(a, edits);
  return { text: r.text, edits: r.edits };
}
