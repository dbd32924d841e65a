// QDQ007: residual add after a convolution whose skip input is not quantized, in a class that is being quantized.
// Only adds fed by a convolution: TensorRT fuses those (Conv + Add), and the tensorrt export keeps a residual
// quantizer on no other add (residual_fusion.py), so a transformer's unquantized residual stream is correct.
import { addFollowsConv } from './residualOrigin';
import { quantFacts } from './quantizers';
import type { QdqDiagnostic, Rule } from './types';

export const qdq007ResidualInput: Rule = {
  code: 'QDQ007',
  title: 'Unquantized residual input',
  defaultSeverity: 'information',
  scope: 'file',
  docs: '**QDQ007 residual input.** "Quantize the residual input in skip-connections" (TensorRT Q/DQ placement guide): TensorRT fuses an Add that follows a convolution (BatchNorm between folded in) into the convolution epilogue, and the precision of the skip input decides the fused output precision. Wrap the skip tensor (e.g. `identity`) with a quantizer; ModelOpt leaves the conv-branch input unquantized. Reported only for adds fed by a convolution: an add after a Linear, attention or MLP branch (a transformer residual stream) has no such fusion, and the tensorrt export leaves its residual quantizer off, so it is correct without one.',
  check(ctx) {
    const facts = quantFacts(ctx);
    if (!facts || !ctx.index) return [];
    const out: QdqDiagnostic[] = [];
    for (const cls of ctx.index.classes) {
      const quantized =
        cls.layers.some((l) => l.wrapped === 'quant' || /Quant(Linear|Conv)/.test(l.ctor)) ||
        cls.quantizers.length > 0 ||
        facts.layers.some((l) => l.quantized && l.classNode !== null && l.classNode.startIndex === cls.span.start);
      if (!quantized) continue;
      for (const op of cls.ops) {
        if ((op.kind !== 'add' && op.kind !== 'iadd') || !op.residual) continue;
        if (op.quantizedOperands.some(Boolean)) continue;
        if (!addFollowsConv(ctx.text, cls, op)) continue;
        // The analysis records the skip operand alone (`out + x`, `out += x`: [x]) or both with their roles
        // (`norm(a + b)`); with neither, no name at all: a made-up placeholder in backticks reads as code.
        const at = op.operandRoles
          ? op.operandRoles.indexOf('residual')
          : op.operandSpans.length === 1
            ? 0
            : op.operandSpans.length === 2
              ? 1
              : -1;
        const span = at >= 0 ? op.operandSpans[at] : undefined;
        const skipText = span ? ctx.text.slice(span.start, span.end).replace(/\s+/g, ' ').trim() : '';
        const skip = skipText
          ? `the skip input \`${skipText.length > 40 ? skipText.slice(0, 39) + '…' : skipText}\``
          : 'its skip input';
        out.push({
          code: 'QDQ007',
          severity: 'information',
          range: op.range,
          message: `Residual add in ${cls.name}.${op.method} with ${skip} unquantized: TensorRT fuses the Add into the preceding convolution in INT8 only when the residual input is quantized. Add a residual quantizer (qdq "Quantize" on this line).`,
        });
      }
    }
    return out;
  },
};
