// TRT004: nonzero / argwhere / one-argument where: data-dependent output shapes.
import type { RuleContext } from './context';
import type { QdqDiagnostic, Rule, Severity } from './types';

function versions(ctx: RuleContext): { sev: Severity; text: string } {
  if (!ctx.trtAtLeast(8, 5)) return { sev: 'error', text: `TensorRT ${ctx.trt.text} has no NonZero importer (added in 8.5)` };
  return { sev: 'warning', text: 'NonZero has a data-dependent output shape: supported only from TensorRT 8.5, not on TensorRT-RTX, and Myelin may reject it ("data-dependent shape")' };
}

export const trt004NonZero: Rule = {
  code: 'TRT004',
  title: 'NonZero (data-dependent shape)',
  defaultSeverity: 'warning',
  docs: '**TRT004 NonZero.** `torch.nonzero`, `x.nonzero()`, `torch.argwhere` and one-argument `torch.where(cond)` export as ONNX `NonZero`, whose output shape depends on the data. Unsupported before TensorRT 8.5 and on TensorRT-RTX; later versions may still fail with "data-dependent shape". Keep shapes static: `torch.where(cond, x, fill)`, multiply by the mask, or a fixed-K `topk`.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const { sev, text } = versions(ctx);
    for (const site of ctx.calls('nonzero', 'argwhere', 'where')) {
      const isMethod = site.receiver !== null;
      if (!isMethod && !ctx.isTorch(site)) continue;
      if (isMethod && ctx.src(site.receiver!) === 'self') continue;
      if (site.name === 'where') {
        if (isMethod || site.args.length !== 1 || site.kwargs.size) continue;
      }
      const what = site.name === 'where' ? '`torch.where(cond)` with one argument' : `\`${site.name}\``;
      out.push(ctx.diag('TRT004', sev, site.node, `${what} exports as ONNX NonZero. ${text}. Keep shapes static: torch.where(cond, x, fill), multiply by the mask, or topk with a fixed k.`));
    }
    return out;
  },
};
