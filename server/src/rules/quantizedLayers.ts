// Weighted layers built quantized, for the deployment-hazard rules (TRT062/TRT063/TRT065): qdq's
// `qdq_quant.quant(nn.Conv2d(...))` from the model index (also inside containers and helpers) and
// pytorch-quantization's `quant_nn.QuantConv2d(...)`/`QuantLinear(...)` assigned to attributes (quantizers.ts).
import { quantFacts } from './quantizers';
import type { RuleContext } from './context';
import type { Layer } from '../analysis/types';
import type { QdqFix, SyntaxNode } from './types';

export interface QuantizedLayer {
  /** `nn.Conv2d`, `nn.Linear`, `quant_nn.QuantConv2d` ... as written canonically. */
  ctor: string;
  kind: 'linear' | 'conv' | 'convtranspose';
  /** The constructor call `C(...)`. */
  call: SyntaxNode;
  /** `self.<attr>` it is assigned to, when it is. */
  attr: string | null;
  /** The `qdq_quant.quant(...)` wrapper call, when qdq built it (then keep_float is a one-word edit). */
  wrapper: SyntaxNode | null;
  classNode: SyntaxNode | null;
}

const cache = new WeakMap<RuleContext, QuantizedLayer[]>();

function callNodeAt(ctx: RuleContext, start: number, end: number): SyntaxNode | null {
  for (let n: SyntaxNode | null = ctx.root.descendantForIndex(start, end); n; n = n.parent)
    if (n.type === 'call' && n.startIndex === start && n.endIndex === end) return n;
  return null;
}

function kindOf(ctor: string): QuantizedLayer['kind'] | null {
  if (/ConvTranspose[123]d$/.test(ctor)) return 'convtranspose';
  if (/Conv[123]d$/.test(ctor)) return 'conv';
  if (/Linear$/.test(ctor)) return 'linear';
  return null;
}

export function quantizedLayers(ctx: RuleContext): QuantizedLayer[] {
  const cached = cache.get(ctx);
  if (cached) return cached;
  const out: QuantizedLayer[] = [];
  const index = ctx.index;
  if (index) {
    const all: Layer[] = [
      ...index.classes.flatMap((c) => c.layers),
      ...index.functions.flatMap((f) => f.layers),
      ...index.topLevelLayers,
    ];
    for (const l of all) {
      const kind = kindOf(l.ctor);
      if (l.wrapped !== 'quant' || !kind || !l.wrapperSpan) continue;
      const call = callNodeAt(ctx, l.callSpan.start, l.callSpan.end);
      const wrapper = callNodeAt(ctx, l.wrapperSpan.start, l.wrapperSpan.end);
      if (!call) continue;
      out.push({
        ctor: l.ctor,
        kind,
        call,
        attr: l.attr ?? null,
        wrapper,
        classNode: ctx.enclosing(call, 'class_definition'),
      });
    }
  }
  const facts = quantFacts(ctx);
  for (const l of facts?.layers ?? []) {
    const ctor = ctx.src(l.call.childForFieldName('function')!);
    if (!/(?:^|\.)Quant(?:Linear|Conv|ConvTranspose)/.test(ctor)) continue;
    out.push({ ctor, kind: l.kind, call: l.call, attr: l.name, wrapper: null, classNode: l.classNode });
  }
  cache.set(ctx, out);
  return out;
}

/** An integer literal argument (positional `index` or keyword `kw`), or null when it is not a literal. */
export function intArg(ctx: RuleContext, call: SyntaxNode, index: number, kw: string): number | null {
  const site = ctx.callSite(call);
  if (!site) return null;
  const node = site.kwargs.get(kw) ?? site.args[index];
  if (!node || node.type !== 'integer') return null;
  const v = Number(ctx.src(node).replace(/_/g, ''));
  return Number.isFinite(v) ? v : null;
}

/** `qdq_quant.quant(C(...))` -> `qdq_quant.keep_float(C(...))`: the layer stays float (its quantizers never exist). */
export function keepFloatFix(ctx: RuleContext, layer: QuantizedLayer): QdqFix | undefined {
  const fn = layer.wrapper?.childForFieldName('function');
  const word = fn?.type === 'attribute' ? fn.childForFieldName('attribute') : fn;
  if (!word || ctx.src(word) !== 'quant') return undefined;
  return {
    title: 'Keep this layer in float (qdq_quant.keep_float)',
    // The engine's numbers change (closer to the float model): reviewed, not applied blindly.
    safety: 'unsafe',
    edits: [ctx.replace(word, 'keep_float')],
  };
}
