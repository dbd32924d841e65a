// What a quantized file still builds in float, with the reason, for `qdq quantize` to print: weighted layers
// kept float on purpose (keep_float), ones the pass found but could not wrap, and layers built through a
// name whose class only exists at run time (a parameter without a default, an import qdq could not read),
// which stay float unless they are wrapped by hand.
import { buildModelIndex, LineIndex, parsePython, type SyntaxNode } from '../analysis';
import { WEIGHTED_LAYERS } from '../analysis/canonical';
import { fromImports, indirectWeightedCalls, isWeightedCtor, type WeightedNames } from '../analysis/weightedCalls';
import type { Layer } from '../analysis/types';

export interface FloatLayer {
  /** 1-based line of the constructor call. */
  line: number;
  /** `self.fc1 = linear_layer(...)` -> `fc1`, when assigned to an attribute. */
  attr?: string;
  /** The call's callee as written. */
  callee: string;
  cls?: string;
  reason: string;
}

/** Layer-class parameter names that build weighted layers in the libraries' code (conv_layer, linear_layer). */
const WEIGHTED_WORD = /conv|linear/i;

function enclosing(node: SyntaxNode, type: string): SyntaxNode | null {
  for (let p = node.parent; p; p = p.parent) if (p.type === type) return p;
  return null;
}

export function floatWeightedLayers(text: string, externalLayers: WeightedNames = {}): FloatLayer[] {
  const tree = parsePython(text);
  if (tree.rootNode.hasError) return [];
  const index = buildModelIndex(tree, text);
  const lines = new LineIndex(text);
  const out: FloatLayer[] = [];
  const all: Layer[] = [
    ...index.classes.flatMap((c) => c.layers),
    ...index.functions.flatMap((f) => f.layers),
    ...index.topLevelLayers,
  ];
  const known = new Set(all.map((l) => l.callSpan.start));
  const indirect = indirectWeightedCalls(tree, text, index.imports, known, externalLayers);
  const clsAt = (offset: number): string | undefined =>
    index.classes.find((c) => c.span.start <= offset && offset < c.span.end)?.name;
  const callee = (l: Layer): string => text.slice(l.callSpan.start, l.callSpan.end).replace(/\(.*$/s, '');
  for (const l of [...all.filter((x) => WEIGHTED_LAYERS.has(x.ctor) && !x.inHelper), ...indirect]) {
    if (l.wrapped === 'quant' || !isWeightedCtor(l.ctor)) continue;
    const reason =
      l.wrapped === 'keep_float'
        ? 'kept float on purpose (qdq_quant.keep_float)'
        : `a ${l.ctor} the quantize pass could not wrap here (no __init__ to declare in, or outside the scope quantized); wrap it in qdq_quant.quant(...) by hand`;
    out.push({
      line: lines.positionAt(l.callSpan.start).line + 1,
      attr: l.attr,
      callee: callee(l),
      cls: clsAt(l.callSpan.start),
      reason,
    });
  }
  // Calls through names whose class is known only at run time.
  const imported = new Map(fromImports(tree).map((i) => [i.local, i.module] as const));
  const wrappedOrKnown = new Set([...known, ...indirect.map((l) => l.callSpan.start)]);
  for (const m of text.matchAll(/self\.(\w+)\s*=\s*([A-Za-z_]\w*)\s*\(/g)) {
    const name = m[2];
    const start = m.index! + m[0].lastIndexOf(name);
    if (wrappedOrKnown.has(start)) continue;
    const node = tree.rootNode.descendantForIndex(start, start + name.length);
    const call = node?.parent?.type === 'call' ? node.parent : null;
    if (!call || call.startIndex !== start) continue;
    let reason: string | undefined;
    const fn = enclosing(call, 'function_definition');
    const params = fn?.childForFieldName('parameters')?.namedChildren ?? [];
    const param = params.find(
      (p) =>
        (p.type === 'identifier' ? p.text : p.childForFieldName('name')?.text) === name ||
        p.namedChildren[0]?.text === name,
    );
    if (param && WEIGHTED_WORD.test(name)) {
      const dflt = param.childForFieldName('value')?.text;
      reason = dflt
        ? `built by parameter \`${name}\` (default \`${dflt}\`, not a layer class qdq can resolve): a weighted layer passed in stays float`
        : `built by parameter \`${name}\`, whose class is known only at run time: a weighted layer passed in stays float`;
    } else if (imported.has(name) && WEIGHTED_WORD.test(name) && !externalLayers[name]) {
      reason = `\`${name}\` is imported from ${imported.get(name)}, whose source qdq could not read or resolve to a layer class`;
    }
    if (!reason) continue;
    out.push({
      line: lines.positionAt(start).line + 1,
      attr: m[1],
      callee: name,
      cls: clsAt(start),
      reason: `${reason}; wrap the call in qdq_quant.quant(...) to quantize it`,
    });
  }
  return out.sort((a, b) => a.line - b.line);
}
