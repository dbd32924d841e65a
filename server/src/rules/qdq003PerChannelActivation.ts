// QDQ003: a per-channel quantizer applied to an activation.
import { quantFacts, classKey } from './quantizers';
import { trtScope } from './common';
import type { QdqDiagnostic, Rule } from './types';

export const qdq003PerChannelActivation: Rule = {
  code: 'QDQ003',
  title: 'Per-channel activation quantizer',
  defaultSeverity: 'error',
  scope: 'file',
  docs: '**QDQ003 per-channel activations.** TensorRT quantizes activations per tensor only ("Activations can only be quantized per-tensor"); per-channel scales are accepted only for weights of Conv/Deconv/FC/MatMul with a constant 2-D weight. Create activation quantizers without an axis.',
  check(ctx) {
    const facts = quantFacts(ctx);
    if (!facts) return [];
    const out: QdqDiagnostic[] = [];
    for (const app of facts.applications) {
      const decl = facts.declByKey.get(classKey(app.classNode, app.name));
      if (!decl || !decl.axis || !app.arg) continue;
      const argText = ctx.src(app.arg);
      if (/(?:^|\.)weight$/.test(argText) || /weight/.test(app.name)) continue;
      out.push(
        ctx.diag(
          'QDQ003',
          'error',
          app.call,
          `\`self.${app.name}\` is per-channel (axis=${ctx.src(decl.axis)}) but quantizes the activation \`${argText.slice(0, 40)}\`: TensorRT supports only per-tensor activation quantization (${trtScope(ctx)}). Declare it without an axis.`,
          {
            title: 'Make the quantizer per-tensor (remove the axis)',
            safety: 'unsafe',
            edits: [ctx.replace(decl.axis, 'None')],
          },
        ),
      );
    }
    return out;
  },
};
