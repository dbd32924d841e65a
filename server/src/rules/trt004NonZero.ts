// TRT004: nonzero / argwhere / one-argument where: data-dependent output shapes.
import type { RuleContext } from './context';
import type { QdqDiagnostic, Rule, Severity } from './types';

function versions(ctx: RuleContext): { sev: Severity; text: string } {
  if (!ctx.trtAtLeast(8, 5))
    return { sev: 'error', text: `TensorRT ${ctx.trt.text} has no NonZero importer (added in 8.5)` };
  return {
    sev: 'warning',
    text: 'NonZero has a data-dependent output shape: supported only from TensorRT 8.5, not on TensorRT-RTX, and Myelin may reject it ("data-dependent shape")',
  };
}

export const trt004NonZero: Rule = {
  code: 'TRT004',
  title: 'NonZero (data-dependent shape)',
  defaultSeverity: 'warning',
  traced: true,
  docs: '**TRT004 NonZero.** `torch.nonzero`, `x.nonzero()`, `torch.argwhere` and one-argument `torch.where(cond)` export as ONNX `NonZero`, whose output shape depends on the data. Unsupported before TensorRT 8.5 and on TensorRT-RTX; later versions may still fail with "data-dependent shape". Keep shapes static: `torch.where(cond, x, fill)`, multiply by the mask, or a fixed-K `topk`.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const { sev, text } = versions(ctx);
    const sites = [
      ...ctx.calls('nonzero', 'argwhere'),
      ...ctx.callsFiltered(['where'], (at) => oneArgument(ctx.text, at + 5)),
    ];
    for (const site of sites) {
      const isMethod = site.receiver !== null;
      if (!isMethod && !ctx.isTorch(site)) continue;
      if (isMethod && ctx.src(site.receiver!) === 'self') continue;
      if (site.name === 'where') {
        if (isMethod || site.args.length !== 1 || site.kwargs.size) continue;
      }
      const what = site.name === 'where' ? '`torch.where(cond)` with one argument' : `\`${site.name}\``;
      out.push(
        ctx.diag(
          'TRT004',
          sev,
          site.node,
          `${what} exports as ONNX NonZero. ${text}. Keep shapes static: torch.where(cond, x, fill), multiply by the mask, or topk with a fixed k.`,
        ),
      );
    }
    return out;
  },
};

/** From the text alone: does the call whose '(' follows `from` have exactly one top-level argument? */
function oneArgument(text: string, from: number): boolean {
  let i = text.indexOf('(', from);
  if (i < 0 || i - from > 8) return false;
  let depth = 0;
  for (i++; i < text.length && i < from + 2000; i++) {
    const c = text[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) return true;
      depth--;
    } else if (c === ',' && depth === 0) {
      return /^\s*\)/.test(text.slice(i + 1, i + 40)); // `where(cond,)`
    } else if (c === '"' || c === "'") {
      return true; // strings inside the call: let the tree decide
    }
  }
  return true;
}
