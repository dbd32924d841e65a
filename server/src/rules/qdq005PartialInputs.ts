// QDQ005: weighted op / matmul with only one input quantized.
import { appliedQuantizer, classKey, quantFacts } from './quantizers';
import { unparen } from './context';
import type { QdqDiagnostic, Range, Rule } from './types';

const WHY =
  'TensorRT picks INT8 kernels only when all inputs of a weighted op are quantized (activation and weight; both matmul operands); otherwise it runs in float with extra Q/DQ cost';

export const qdq005PartialInputs: Rule = {
  code: 'QDQ005',
  title: 'Only one input quantized',
  defaultSeverity: 'information',
  scope: 'file',
  docs: '**QDQ005 partially quantized op.** "Quantize all inputs of weighted-operations" (TensorRT Q/DQ placement guide): nn.Linear/nn.Conv* need an input and a weight quantizer, and activation-activation matmuls need both operands quantized, or TensorRT cannot use INT8 kernels.',
  check(ctx) {
    const facts = quantFacts(ctx);
    if (!facts) return [];
    const out: QdqDiagnostic[] = [];
    const seen = new Set<string>();
    const key = (r: Range) => `${r.start.line}:${r.start.character}`;
    // Matmuls, from the model index when there is one (it knows operands and quantizer wrappers).
    const ops = ctx.index
      ? [
          ...ctx.index.classes.flatMap((c) => c.ops),
          ...ctx.index.functions.flatMap((f) => f.ops),
          ...ctx.index.topLevelOps,
        ]
      : [];
    for (const op of ops) {
      if (op.kind !== 'matmul' && op.kind !== 'bmm') continue;
      if (op.operands.length !== 2) continue;
      const activations = op.quantizedOperands.filter((_, i) => !op.operandIsParam[i]);
      const quantized = activations.filter(Boolean).length;
      if (activations.length === 2 && quantized === 1) {
        seen.add(key(op.range));
        out.push({
          code: 'QDQ005',
          severity: 'information',
          range: op.range,
          message: `\`${op.callee}\` has only one of its two operands quantized: ${WHY}. Quantize the other operand too.`,
        });
      }
    }
    // A quantizer feeding a plain (unquantized) nn.Linear/Conv: `self.fc(self.q(x))`.
    for (const app of facts.applications) {
      const outer = app.call.parent?.type === 'argument_list' ? app.call.parent.parent : null;
      if (!outer || outer.type !== 'call') continue;
      const fn = outer.childForFieldName('function');
      if (fn?.type !== 'attribute' || ctx.src(fn.childForFieldName('object')!) !== 'self') continue;
      const layer = facts.layerByKey.get(classKey(app.classNode, ctx.src(fn.childForFieldName('attribute')!)));
      if (!layer || layer.quantized) continue;
      out.push(
        ctx.diag(
          'QDQ005',
          'information',
          outer,
          `The input of \`self.${layer.name}\` is quantized but its weight is not (a plain nn layer): ${WHY}. Quantize the layer (input and weight quantizers).`,
        ),
      );
    }
    // `.input_quantizer.disable()` / `.weight_quantizer.disable()` leaves the other input quantized.
    for (const site of ctx.calls('disable')) {
      const r = site.receiver ? unparen(site.receiver) : null;
      if (!r || r.type !== 'attribute') continue;
      const which = ctx.src(r.childForFieldName('attribute')!);
      if (!/^_?(input|weight)_quantizer$/.test(which)) continue;
      out.push(
        ctx.diag(
          'QDQ005',
          'information',
          site.node,
          `Disabling \`${which}\` leaves only the ${which.includes('input') ? 'weight' : 'input'} quantized: ${WHY}. Keep the whole layer in float instead (qdq: "keep float").`,
        ),
      );
    }
    // Calls to matmul/bmm without an index (index missing): judge from the source.
    if (!ctx.index) {
      for (const site of ctx.calls('matmul', 'bmm')) {
        if (!ctx.isTorch(site) || site.args.length < 2) continue;
        const q = site.args.slice(0, 2).map((a) => appliedQuantizer(ctx, facts, a));
        if (q.filter(Boolean).length === 1 && !site.args.slice(0, 2).some((a) => /weight$/.test(ctx.src(a)))) {
          out.push(
            ctx.diag(
              'QDQ005',
              'information',
              site.node,
              `\`${site.qualified}\` has only one of its two operands quantized: ${WHY}. Quantize the other operand too.`,
            ),
          );
        }
      }
    }
    return out;
  },
};
