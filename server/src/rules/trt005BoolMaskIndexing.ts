// TRT005: boolean-mask indexing (x[mask]) and masked_select: NonZero + GatherND.
import { inferDtype } from './dtype';
import { quoteSrc } from './common';
import { boolSites, operandParent } from './boolProducers';
import type { RuleContext } from './context';
import type { QdqDiagnostic, Rule, Severity, SyntaxNode } from './types';

function versionText(ctx: RuleContext): { sev: Severity; text: string } {
  if (!ctx.trtAtLeast(8, 5))
    return { sev: 'error', text: `TensorRT ${ctx.trt.text} has no NonZero importer (added in 8.5)` };
  return {
    sev: 'warning',
    text: 'the result has a data-dependent shape (NonZero, TensorRT 8.5+ only, not on TensorRT-RTX; Myelin may reject it)',
  };
}

export const trt005BoolMaskIndexing: Rule = {
  code: 'TRT005',
  title: 'Boolean-mask indexing',
  defaultSeverity: 'warning',
  traced: true,
  docs: '**TRT005 boolean-mask indexing.** `x[mask]` with a bool mask and `torch.masked_select` export as ONNX `NonZero` + `GatherND`: a data-dependent output shape (unsupported before TensorRT 8.5 and on TensorRT-RTX). Keep the shape static with `torch.where(mask, x, fill)` or `x * mask`.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const { sev, text } = versionText(ctx);
    for (const site of ctx.calls('masked_select')) {
      if (site.receiver ? ctx.src(site.receiver) === 'self' : !ctx.isTorch(site)) continue;
      out.push(
        ctx.diag(
          'TRT005',
          sev,
          site.node,
          `\`masked_select\` exports as NonZero + GatherND: ${text}. Use torch.where(mask, x, fill) or x * mask to keep a static shape.`,
        ),
      );
    }
    const seen = new Set<number>();
    const sites = boolSites(ctx);
    for (const n of [...sites.exprs, ...sites.reads]) {
      const { parent, child } = operandParent(n);
      if (parent?.type !== 'subscript' || parent.childForFieldName('subscript')?.id !== child.id || seen.has(parent.id))
        continue;
      seen.add(parent.id);
      check(ctx, parent, sev, text, out);
    }
    return out;
  },
};

function check(ctx: RuleContext, sub: SyntaxNode, sev: Severity, text: string, out: QdqDiagnostic[]): void {
  const index = sub.childForFieldName('subscript');
  if (!index || sub.namedChildren.length !== 2) return; // x[a, b]: tuple indexing, not judged
  const d = inferDtype(ctx, index);
  if (d.kind !== 'bool' || d.tensor === false) return;
  // Assigning through a mask (`x[mask] = 0`) exports as Where (fine) or ScatterND (TRT006), not GatherND.
  const p = sub.parent;
  if (p && (p.type === 'assignment' || p.type === 'augmented_assignment') && p.childForFieldName('left')?.id === sub.id)
    return;
  const severity = d.tensor === true && d.certain ? sev : 'information';
  const certainty = d.tensor === true ? '' : ' (if it is a tensor)';
  out.push(
    ctx.diag(
      'TRT005',
      severity,
      sub,
      `Indexing with the bool mask ${quoteSrc(ctx, index)}${certainty} exports as NonZero + GatherND: ${text}. Use torch.where(mask, x, fill) or x * mask to keep a static shape.`,
    ),
  );
}
