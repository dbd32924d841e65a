// TRT064: a model with LayerNorm exported below opset 17 (decomposed; its x² overflows in FP16).
import type { CallSite, RuleContext } from './context';
import type { QdqDiagnostic, Rule } from './types';

const LAYER_NORM = /\b(?:LayerNorm|layer_norm)\s*\(/g;

/** torch.onnx.export sites, the way TRT013 finds them (`export(` is common: only `<onnx>.export(` or a bare import). */
function exportSites(ctx: RuleContext): CallSite[] {
  const bareExport = ctx.aliases.get('export') === 'torch.onnx.export';
  return ctx
    .callsFiltered(['export'], (at) => {
      if (ctx.text.charCodeAt(at - 1) !== 46 /* . */) return bareExport;
      const owner = /(\w+)\s*\.$/.exec(ctx.text.slice(Math.max(0, at - 40), at))?.[1] ?? '';
      return owner === 'onnx' || ctx.aliases.get(owner) === 'torch.onnx';
    })
    .filter((s) => ctx.isTorch(s, 'torch.onnx'));
}

function usesLayerNorm(ctx: RuleContext): boolean {
  if (ctx.index?.classes.some((c) => c.layers.some((l) => l.ctor === 'nn.LayerNorm'))) return true;
  LAYER_NORM.lastIndex = 0;
  for (let m = LAYER_NORM.exec(ctx.text); m; m = LAYER_NORM.exec(ctx.text)) if (ctx.isCode(m.index)) return true;
  return false;
}

export const trt064LayerNormOpset: Rule = {
  code: 'TRT064',
  title: 'LayerNorm exported below opset 17',
  defaultSeverity: 'warning',
  scope: 'file',
  docs: "**TRT064 LayerNorm below opset 17.** ONNX has `LayerNormalization` from opset 17; below it, `nn.LayerNorm` exports decomposed (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div). In FP16 (TensorRT 11's strongly typed build, or `--fp16` on 10.x) the `Pow(x - mean, 2)` overflows once |x - mean| > 256 (65504 is FP16's largest value) and the variance becomes inf: transformer activations reach that. qdq's typed export keeps that path in FP32 (slower); exporting with `opset_version=17` or later gives one LayerNormalization that TensorRT (8.6+) computes with FP32 statistics. In a qdq project, set `opset = 17` in `[tool.qdq]`.",
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const sites = exportSites(ctx);
    if (!sites.length || !usesLayerNorm(ctx)) return out;
    for (const site of sites) {
      const opset = site.kwargs.get('opset_version');
      if (!opset || opset.type !== 'integer') continue;
      const v = Number(ctx.src(opset));
      if (v >= 17) continue;
      out.push(
        ctx.diag(
          'TRT064',
          'warning',
          opset,
          `opset_version=${v} exports this file's LayerNorm decomposed (ONNX LayerNormalization needs opset 17): in FP16 its Pow(x - mean, 2) overflows once |x - mean| > 256, and the variance turns inf. Export with opset_version=17 or later.`,
          ctx.trtAtLeast(8, 6)
            ? {
                title: 'Export with opset_version=17',
                // Same LayerNorm math, but every other op is re-exported at opset 17 too: reviewed, not applied blindly.
                safety: 'unsafe',
                edits: [ctx.replace(opset, '17')],
              }
            : undefined,
        ),
      );
    }
    return out;
  },
};
