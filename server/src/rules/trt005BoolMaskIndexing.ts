// TRT005: boolean-mask indexing (x[mask]) and masked_select: NonZero + GatherND.
import { inferDtype } from './dtype';
import { quoteSrc } from './common';
import type { RuleContext } from './context';
import type { QdqDiagnostic, Rule, Severity, SyntaxNode } from './types';

// Tensors used as masks come from comparisons or bool casts; the rule only looks near such producers.
const MASK_HINT = /\.(?:ne|eq|gt|lt|ge|le|bool|logical_\w+|isnan|isinf|isfinite|isin)\s*\(|torch\.(?:eq|ne|gt|lt|ge|le|logical_\w+|isnan|isinf|isfinite|isin)\s*\(|torch\.bool\b|BoolTensor|^[ \t]*\w+[ \t]*=[^=\n]*[^<>=!\n](?:[<>]=?|==|!=)[^=\n]|\[[^\]\n]*(?:[<>]=?|==|!=)[^\]\n]*\]/gm;

function versionText(ctx: RuleContext): { sev: Severity; text: string } {
  if (!ctx.trtAtLeast(8, 5)) return { sev: 'error', text: `TensorRT ${ctx.trt.text} has no NonZero importer (added in 8.5)` };
  return { sev: 'warning', text: 'the result has a data-dependent shape (NonZero, TensorRT 8.5+ only, not on TensorRT-RTX; Myelin may reject it)' };
}

export const trt005BoolMaskIndexing: Rule = {
  code: 'TRT005',
  title: 'Boolean-mask indexing',
  defaultSeverity: 'warning',
  docs: '**TRT005 boolean-mask indexing.** `x[mask]` with a bool mask and `torch.masked_select` export as ONNX `NonZero` + `GatherND`: a data-dependent output shape (unsupported before TensorRT 8.5 and on TensorRT-RTX). Keep the shape static with `torch.where(mask, x, fill)` or `x * mask`.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const { sev, text } = versionText(ctx);
    for (const site of ctx.calls('masked_select')) {
      if (site.receiver ? ctx.src(site.receiver) === 'self' : !ctx.isTorch(site)) continue;
      out.push(ctx.diag('TRT005', sev, site.node, `\`masked_select\` exports as NonZero + GatherND: ${text}. Use torch.where(mask, x, fill) or x * mask to keep a static shape.`));
    }
    // Subscripts in scopes that contain a mask producer.
    const scopes = new Set<number>();
    MASK_HINT.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = MASK_HINT.exec(ctx.text))) {
      const at = m.index + (m[0].length - m[0].trimStart().length);
      const node = ctx.root.descendantForIndex(at, at + 1);
      if (node.type === 'comment' || node.type === 'string_content' || node.type === 'string_start') continue;
      const scope = ctx.scope(node);
      if (scopes.has(scope.node.id)) continue;
      scopes.add(scope.node.id);
      for (const sub of scope.subscripts) check(ctx, sub, sev, text, out);
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
  if (p && (p.type === 'assignment' || p.type === 'augmented_assignment') && p.childForFieldName('left')?.id === sub.id) return;
  const severity = d.tensor === true && d.certain ? sev : 'information';
  const certainty = d.tensor === true ? '' : ' (if it is a tensor)';
  out.push(ctx.diag('TRT005', severity, sub, `Indexing with the bool mask ${quoteSrc(ctx, index)}${certainty} exports as NonZero + GatherND: ${text}. Use torch.where(mask, x, fill) or x * mask to keep a static shape.`));
}
