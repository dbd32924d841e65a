// QDQ008: a functional-op quantizer declared in __init__ but called nowhere in the class (its operation was edited
// away by hand), or called but declared nowhere (its declaration was deleted: AttributeError at run time).
import type { ModuleClass } from '../analysis';
import type { RuleContext } from './context';
import type { QdqDiagnostic, Rule } from './types';

function positionAt(text: string, offset: number): { line: number; character: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length - 1;
  return { line, character: offset - (before.lastIndexOf('\n') + 1) };
}

/** Offsets (in the document) of `self.<name>(` calls in the class, comments and strings left out. */
function callOffsets(ctx: RuleContext, cls: ModuleClass, name: string): number[] {
  const body = ctx.text.slice(cls.span.start, cls.span.end);
  const call = new RegExp(`\\bself\\.${name}\\s*\\(`, 'g');
  const out: number[] = [];
  for (let m = call.exec(body); m; m = call.exec(body))
    if (ctx.isCode(cls.span.start + m.index)) out.push(cls.span.start + m.index);
  return out;
}

/** The whole line of a declaration, newline included, as the deletion a fix makes. */
function lineRange(line: number): QdqDiagnostic['range'] {
  return { start: { line, character: 0 }, end: { line: line + 1, character: 0 } };
}

export const qdq008OrphanQuantizer: Rule = {
  code: 'QDQ008',
  title: 'Orphaned quantizer',
  defaultSeverity: 'warning',
  scope: 'file',
  docs: '**QDQ008 orphaned quantizer.** A functional-op quantizer (`self.<op><n>_<role>_quantizer = qdq_quant.TensorQuantizer()`) that nothing in its class calls: the matmul or add it quantized was rewritten by hand. It exports nothing, is never calibrated and only adds an entry to the state dict; delete the declaration, or quantize the operation again. The reverse, a `self.<name>_quantizer(...)` call with no declaration, fails with AttributeError when the model runs: restore the declaration or unwrap the call.',
  check(ctx) {
    if (!ctx.index) return [];
    const out: QdqDiagnostic[] = [];
    for (const cls of ctx.index.classes) {
      const declared = new Set(cls.quantizers.map((q) => q.name));
      for (const q of cls.quantizers) {
        if (callOffsets(ctx, cls, q.name).some((o) => positionAt(ctx.text, o).line !== q.range.start.line)) continue;
        out.push({
          code: 'QDQ008',
          severity: 'warning',
          range: q.range,
          message: `\`self.${q.name}\` is declared in ${cls.name} but nothing calls it: the operation it quantized was edited away. It stays an uncalibrated module that puts no Q/DQ pair in the ONNX file; delete the declaration or quantize the operation again.`,
          fix: q.generated
            ? {
                title: `Delete the unused declaration of self.${q.name}`,
                safety: 'unsafe',
                edits: [{ range: lineRange(q.range.start.line), newText: '' }],
              }
            : undefined,
        });
      }
      const body = ctx.text.slice(cls.span.start, cls.span.end);
      const call = /\bself\.(\w+_quantizer)\s*\(/g;
      const layerAttrs = new Set(cls.layers.map((l) => l.attr));
      const flagged = new Set<string>();
      for (let m = call.exec(body); m; m = call.exec(body)) {
        const name = m[1];
        if (!ctx.isCode(cls.span.start + m.index)) continue;
        if (declared.has(name) || layerAttrs.has(name) || flagged.has(name)) continue;
        // Assigned some other way (a loop, setattr, a helper): only a name never assigned in the class is missing.
        if (
          new RegExp(`\\bself\\.${name}\\s*(:[^=\\n]*)?=(?!=)`).test(body) ||
          body.includes(`'${name}'`) ||
          body.includes(`"${name}"`)
        )
          continue;
        flagged.add(name);
        const start = positionAt(ctx.text, cls.span.start + m.index);
        const end = positionAt(ctx.text, cls.span.start + m.index + m[0].length - 1);
        out.push({
          code: 'QDQ008',
          severity: 'warning',
          range: { start, end },
          message: `\`self.${name}\` is called in ${cls.name} but never declared: the model fails with AttributeError when it runs (and when it is exported to ONNX). Restore \`self.${name} = qdq_quant.TensorQuantizer()  # qdq\` in __init__, or remove the call around its argument.`,
        });
      }
    }
    return out;
  },
};
