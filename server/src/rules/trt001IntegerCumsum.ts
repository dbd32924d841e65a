// TRT001: cumsum over an integer or bool tensor (HF RoBERTa-family create_position_ids_from_input_ids).
import { isPrimary, unparen, type CallSite, type RuleContext } from './context';
import { intVerdict, lower, quoteSrc, trtScope } from './common';
import { isReversedMaskCumsum } from './trt067IntegerCumsumDtype';
import type { QdqDiagnostic, QdqFix, Rule, SyntaxNode } from './types';

const docs = `**TRT001 integer cumsum.** ONNX \`CumSum\` is documented for FP32/FP16/BF16 only in every TensorRT version through 11.x.
Integer input crashed conversion on TensorRT 7.x/8.x (NVIDIA/TensorRT#411, transformer-deploy's RoBERTa patch); the later
ICumulativeLayer importer is still documented FP-only. Fix: cast to float before the cumsum and back to an integer after, as
transformer-deploy does for RoBERTa: \`mask = input_ids.ne(padding_idx).float()\`.`;

function severityFor(ctx: RuleContext) {
  return ctx.trtAtLeast(10) ? ('warning' as const) : ('error' as const);
}

function versionText(ctx: RuleContext): string {
  return ctx.trtAtLeast(10)
    ? `TensorRT documents CumSum for FP32/FP16/BF16 only (${trtScope(ctx)}); integer CumSum crashed conversion on 7.x-8.x`
    : `TensorRT ${ctx.trt.text} rejects integer CumSum (FP32/FP16/BF16 only; conversion crashes on 7.x-8.x)`;
}

/**
 * transformer-deploy's exact RoBERTa rewrite: `mask = X.int()` becomes `mask = X.float()` when the mask is a
 * 0/1 comparison result, its only other uses are `.type_as(mask)` and `* mask`, and the cumsum result is cast
 * back with `.long()`/`.int()` before it leaves the function. Values are identical (float is exact below 2^24).
 */
function robertaFix(ctx: RuleContext, site: CallSite, x: SyntaxNode): QdqFix | null {
  if (x.type !== 'identifier') return null;
  const scope = ctx.scope(site.node);
  const name = ctx.src(x);
  const assigns = ctx.assignmentsOf(scope, name);
  if (assigns.length !== 1 || !assigns[0].value) return null;
  const value = unparen(assigns[0].value);
  if (value.type !== 'call') return null;
  const castSite = ctx.callSite(value);
  if (!castSite || !castSite.receiver || (castSite.name !== 'int' && castSite.name !== 'long') || castSite.args.length)
    return null;
  const inner = intVerdict(ctx, castSite.receiver);
  if (inner.info.kind !== 'bool' || !inner.info.certain) return null;
  for (const use of ctx.readsOf(scope, name)) {
    if (use.startIndex === x.startIndex) continue;
    const p = use.parent!;
    const okTypeAs =
      p.type === 'argument_list' && p.parent?.type === 'call' && ctx.callSite(p.parent)?.name === 'type_as';
    const okMul = p.type === 'binary_operator' && ctx.src(p.childForFieldName('operator')!) === '*';
    if (!okTypeAs && !okMul) return null;
  }
  // The cumsum result must be cast back to an integer: `v = <...cumsum...>` and every read of v is `v.long()`.
  const stmt = ctx.statementOf(site.node);
  const assign = stmt.type === 'expression_statement' ? stmt.namedChildren[0] : null;
  if (!assign || assign.type !== 'assignment') return null;
  const target = assign.childForFieldName('left');
  if (!target || target.type !== 'identifier') return null;
  const reads = ctx.readsOf(scope, ctx.src(target)).filter((r) => r.startIndex > assign.endIndex);
  if (!reads.length) return null;
  for (const r of reads) {
    const attr = r.parent;
    if (attr?.type !== 'attribute' || attr.parent?.type !== 'call') return null;
    const cast = ctx.src(attr.childForFieldName('attribute')!);
    if (cast !== 'long' && cast !== 'int') return null;
  }
  const method = value.childForFieldName('function')!.childForFieldName('attribute')!;
  return {
    title: `Cast \`${name}\` to float before cumsum (transformer-deploy's RoBERTa patch)`,
    safety: 'safe',
    edits: [ctx.replace(method, 'float')],
  };
}

export const trt001IntegerCumsum: Rule = {
  code: 'TRT001',
  title: 'Integer cumsum',
  defaultSeverity: 'warning',
  traced: true,
  docs,
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    for (const site of ctx.calls('cumsum')) {
      const isMethod = site.receiver !== null;
      if (!isMethod && !ctx.isTorch(site)) continue;
      if (site.name !== 'cumsum' || site.node.parent?.type === 'decorator') continue;
      const x = isMethod ? site.receiver! : ctx.arg(site, 0, 'input');
      if (!x) continue;
      // A literal dtype decides the CumSum's type: float is fine, integer is TRT067's finding.
      const explicitDtype = site.kwargs.get('dtype');
      if (explicitDtype && /float|half|bfloat16|double|int|long|short|bool/.test(ctx.src(explicitDtype))) continue;
      const v = intVerdict(ctx, x);
      const sev = severityFor(ctx);
      if (v.level === 'known') {
        const fix = robertaFix(ctx, site, x) ?? castFix(ctx, site, x);
        out.push(
          ctx.diag(
            'TRT001',
            sev,
            site.node,
            `cumsum over ${v.info.kind === 'bool' ? 'a bool' : 'an integer'} tensor ${quoteSrc(ctx, x)} (${v.info.why}): ${versionText(ctx)}. Cast to float before the cumsum and back after.`,
            fix ?? undefined,
          ),
        );
      } else if (v.level === 'maybe' && !isReversedMaskCumsum(ctx, site)) {
        out.push(
          ctx.diag(
            'TRT001',
            lower(sev),
            site.node,
            `cumsum over ${quoteSrc(ctx, x)}, which may be an integer tensor (${v.info.why}): ${versionText(ctx)}. If it is, cast to float before the cumsum.`,
          ),
        );
      } else if (v.level === 'unknown' && !isReversedMaskCumsum(ctx, site)) {
        out.push(
          ctx.diag(
            'TRT001',
            'hint',
            site.node,
            `Could not determine the element type of ${quoteSrc(ctx, x)} passed to cumsum. If it is an integer or bool tensor: ${versionText(ctx)}.`,
          ),
        );
      }
    }
    return out;
  },
};

/** Local rewrite: `torch.cumsum(x, d)` -> `torch.cumsum(x.float(), d).long()`; cumsum of int/bool gives int64, so does `.long()`. */
function castFix(ctx: RuleContext, site: CallSite, x: SyntaxNode): QdqFix | null {
  if (site.kwargs.has('dtype') || site.kwargs.has('out')) return null;
  const xText = ctx.src(x);
  const cast = isPrimary(x) ? `${xText}.float()` : `(${xText}).float()`;
  return {
    title: 'Run the cumsum in float and cast the result back to int64',
    safety: 'safe',
    edits: [ctx.replace(x, cast), ctx.insertAfter(site.node, '.long()')],
  };
}
