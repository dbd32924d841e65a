// Facts about quantizers already in the source, for the QDQ placement lints. Recognises qdq's generated code
// (`qdq_quant.quant(nn.Linear(...))`, `self.x_quantizer = qdq_quant.TensorQuantizer()`), NVIDIA
// pytorch-quantization (`quant_nn.QuantLinear`, `quant_nn.QuantConv2d`, `TensorQuantizer(QuantDescriptor(...))`)
// and torch.ao fake quantization (`FakeQuantize`, `fake_quantize_per_*_affine`).
import { unparen, type RuleContext } from './context';
import type { SyntaxNode } from './types';

const QUANT_MARKER_WORDS = [
  'qdq_quant',
  'pytorch_quantization',
  'quant_nn',
  'TensorQuantizer',
  'QuantDescriptor',
  'FakeQuantize',
  'fake_quantize_per_',
  '_quantizer',
  'QuantLinear',
  'QuantConv',
];

/**
 * Cheap test: does the file show any sign of quantization? Every marker contains "uant", so one indexOf pass
 * finds the candidates (much faster than ten includes() or a regex alternation on a large file).
 */
export function hasQuantMarkers(text: string): boolean {
  for (let p = text.indexOf('uant'); p >= 0; p = text.indexOf('uant', p + 4)) {
    const around = text.slice(Math.max(0, p - 17), p + 20);
    if (QUANT_MARKER_WORDS.some((w) => around.includes(w))) return true;
  }
  return false;
}

export interface QuantizerDecl {
  name: string;
  classNode: SyntaxNode | null;
  call: SyntaxNode;
  /** The per-channel axis expression, when the quantizer is per-channel. */
  axis: SyntaxNode | null;
}

export interface LayerDecl {
  name: string;
  classNode: SyntaxNode | null;
  kind: 'linear' | 'conv' | 'convtranspose';
  quantized: boolean;
  call: SyntaxNode;
}

export interface QuantizerApplication {
  call: SyntaxNode;
  name: string;
  arg: SyntaxNode | null;
  classNode: SyntaxNode | null;
}

export interface QuantFacts {
  decls: QuantizerDecl[];
  layers: LayerDecl[];
  applications: QuantizerApplication[];
  /** Quantizer name -> its decl, per class (key: `${classId}:${name}`). */
  declByKey: Map<string, QuantizerDecl>;
  layerByKey: Map<string, LayerDecl>;
}

const cache = new WeakMap<RuleContext, QuantFacts | null>();

const LAYER_RE = /\b(Linear|Conv[123]d|ConvTranspose[123]d|QuantLinear|QuantConv[123]d|QuantConvTranspose[123]d)\s*\(/g;
const APPLY_RE = /\bself\s*\.\s*(\w+)\s*\(/g;

/** Null when the file shows no sign of quantization (then the QDQ lints have nothing to say). */
export function quantFacts(ctx: RuleContext): QuantFacts | null {
  if (cache.has(ctx)) return cache.get(ctx)!;
  const facts = hasQuantMarkers(ctx.text) ? collect(ctx) : null;
  cache.set(ctx, facts);
  return facts;
}

export function classKey(classNode: SyntaxNode | null, name: string): string {
  return `${classNode ? classNode.id : 'module'}:${name}`;
}

function selfAttrTarget(ctx: RuleContext, value: SyntaxNode): string | null {
  let outer = value;
  // Walk out of qdq wrappers: qdq_quant.quant(C(...)) / keep_float(C(...)).
  for (;;) {
    const p = outer.parent;
    if (
      p?.type === 'argument_list' &&
      p.parent?.type === 'call' &&
      /(?:^|\.)(?:quant|keep_float)$/.test(ctx.src(p.parent.childForFieldName('function')!))
    )
      outer = p.parent;
    else break;
  }
  const a = outer.parent;
  if (a?.type !== 'assignment' || a.childForFieldName('right')?.id !== outer.id) return null;
  const left = a.childForFieldName('left');
  if (left?.type !== 'attribute' || ctx.src(left.childForFieldName('object')!) !== 'self') return null;
  return ctx.src(left.childForFieldName('attribute')!);
}

function isQdqQuantWrapped(ctx: RuleContext, call: SyntaxNode): boolean {
  const p = call.parent;
  return (
    p?.type === 'argument_list' &&
    p.parent?.type === 'call' &&
    /(?:^|\.)quant$/.test(ctx.src(p.parent.childForFieldName('function')!))
  );
}

/** The per-channel axis of a TensorQuantizer(...) call: `axis=` kwarg, or the axis of a QuantDescriptor argument. */
export function quantizerAxis(ctx: RuleContext, call: SyntaxNode): SyntaxNode | null {
  const site = ctx.callSite(call);
  if (!site) return null;
  const axis = site.kwargs.get('axis');
  if (axis && ctx.src(axis) !== 'None') return axis;
  const desc = site.args[0] ?? site.kwargs.get('quant_desc');
  if (desc && desc.type === 'call') {
    const d = ctx.callSite(desc);
    if (d && /QuantDescriptor$/.test(d.name)) {
      const ax = d.kwargs.get('axis');
      if (ax && ctx.src(ax) !== 'None') return ax;
    }
  }
  return null;
}

/** First integer in an axis expression: `1`, `(1,)`, `[0]`. */
export function axisValue(ctx: RuleContext, axis: SyntaxNode): number | null {
  const m = /-?\d+/.exec(ctx.src(axis));
  return m ? Number(m[0]) : null;
}

function collect(ctx: RuleContext): QuantFacts {
  const facts: QuantFacts = { decls: [], layers: [], applications: [], declByKey: new Map(), layerByKey: new Map() };
  for (const site of ctx.calls('TensorQuantizer', 'FakeQuantize', 'FusedMovingAvgObsFakeQuantize')) {
    const name = selfAttrTarget(ctx, site.node);
    if (!name) continue;
    const classNode = ctx.enclosing(site.node, 'class_definition');
    const decl: QuantizerDecl = { name, classNode, call: site.node, axis: quantizerAxis(ctx, site.node) };
    facts.decls.push(decl);
    facts.declByKey.set(classKey(classNode, name), decl);
  }
  LAYER_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = LAYER_RE.exec(ctx.text))) {
    const id = ctx.root.descendantForIndex(m.index, m.index + m[1].length);
    if (id.type !== 'identifier') continue;
    const fn = id.parent?.type === 'attribute' ? id.parent : id;
    const call = fn.parent;
    if (call?.type !== 'call' || call.childForFieldName('function')?.id !== fn.id) continue;
    const name = selfAttrTarget(ctx, call);
    if (!name) continue;
    const ctor = m[1];
    const kind = /Transpose/.test(ctor) ? 'convtranspose' : /Conv/.test(ctor) ? 'conv' : 'linear';
    const classNode = ctx.enclosing(call, 'class_definition');
    const layer: LayerDecl = {
      name,
      classNode,
      kind,
      quantized: ctor.startsWith('Quant') || isQdqQuantWrapped(ctx, call),
      call,
    };
    facts.layers.push(layer);
    facts.layerByKey.set(classKey(classNode, name), layer);
  }
  APPLY_RE.lastIndex = 0;
  while ((m = APPLY_RE.exec(ctx.text))) {
    const name = m[1];
    const selfNode = ctx.root.descendantForIndex(m.index, m.index + 4);
    const attr = selfNode.parent;
    const call = attr?.parent;
    if (attr?.type !== 'attribute' || call?.type !== 'call' || call.childForFieldName('function')?.id !== attr.id)
      continue;
    const classNode = ctx.enclosing(call, 'class_definition');
    if (!name.endsWith('quantizer') && !facts.declByKey.has(classKey(classNode, name))) continue;
    const args = call.childForFieldName('arguments');
    const arg = args && args.namedChildCount >= 1 ? args.namedChildren[0] : null;
    facts.applications.push({ call, name, arg, classNode });
  }
  return facts;
}

/** `self.q(x)` -> 'q' when `node` (parentheses stripped) is a quantizer application. */
export function appliedQuantizer(ctx: RuleContext, facts: QuantFacts, node: SyntaxNode): string | null {
  const n = unparen(node);
  if (n.type !== 'call') return null;
  for (const a of facts.applications) if (a.call.id === n.id) return a.name;
  return null;
}
