// QDQ006: a quantizer on the output of a Linear/Conv.
import { quantFacts, classKey } from './quantizers';
import { unparen } from './context';
import type { QdqDiagnostic, Rule } from './types';

export const qdq006OutputQuantizer: Rule = {
  code: 'QDQ006',
  title: 'Quantized output of a weighted op',
  defaultSeverity: 'information',
  scope: 'file',
  docs: '**QDQ006 output quantizer.** "By default, do not quantize the outputs of weighted-operations" (TensorRT Q/DQ placement guide): keep the higher-precision output of Linear/Conv when an activation such as SiLU/GELU/Softmax follows. Quantize the inputs of the next weighted op instead.',
  check(ctx) {
    const facts = quantFacts(ctx);
    if (!facts) return [];
    const out: QdqDiagnostic[] = [];
    for (const app of facts.applications) {
      if (!app.arg) continue;
      const inner = unparen(app.arg);
      if (inner.type !== 'call') continue;
      const site = ctx.callSite(inner);
      if (!site) continue;
      let what: string | null = null;
      if (site.receiver && ctx.src(site.receiver) === 'self') {
        const layer = facts.layerByKey.get(classKey(app.classNode, site.name));
        if (layer) what = `\`self.${site.name}\``;
      } else if (
        site.qualified &&
        /^torch\.nn\.functional\.(linear|conv[123]d|conv_transpose[123]d)$/.test(site.qualified)
      ) {
        what = `\`${site.qualified.replace('torch.nn.functional', 'F')}\``;
      }
      if (!what) continue;
      out.push(
        ctx.diag(
          'QDQ006',
          'information',
          app.call,
          `\`self.${app.name}\` quantizes the output of ${what}: TensorRT recommends not quantizing outputs of weighted ops (the next layer's input quantizer covers it, and a following SiLU/GELU/Softmax needs the precision).`,
          {
            title: `Remove self.${app.name} around the layer output`,
            safety: 'unsafe',
            edits: [ctx.replace(app.call, ctx.src(app.arg))],
          },
        ),
      );
    }
    return out;
  },
};
