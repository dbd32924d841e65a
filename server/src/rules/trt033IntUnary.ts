// TRT033: FP-only unary math on integer tensors (floor/ceil/round/sqrt/exp/log/erf/trig/reciprocal).
import { intVerdict, quoteSrc, trtScope } from './common';
import { isPrimary, type CallSite, type RuleContext } from './context';
import type { QdqDiagnostic, QdqFix, Rule, SyntaxNode } from './types';

/** torch returns the input unchanged for these on integer tensors, so the call can simply go. */
const IDENTITY_ON_INT = new Set(['floor', 'ceil', 'round', 'trunc']);
/** torch promotes integer inputs of these to the default float type, so an explicit `.float()` gives the same result. */
const FLOAT_PROMOTING = new Set([
  'sqrt',
  'rsqrt',
  'exp',
  'expm1',
  'exp2',
  'log',
  'log2',
  'log10',
  'log1p',
  'erf',
  'erfc',
  'erfinv',
  'sin',
  'cos',
  'tan',
  'asin',
  'acos',
  'atan',
  'sinh',
  'cosh',
  'asinh',
  'acosh',
  'atanh',
  'reciprocal',
]);

const why = (ctx: RuleContext) =>
  `TensorRT unary layers accept FP32/FP16/BF16 only for these ops and reject INT32/INT64/BOOL ("does not support the given operator ... input data type INT32"), ${trtScope(ctx)}`;

export const trt033IntUnary: Rule = {
  code: 'TRT033',
  title: 'Float-only unary op on integers',
  defaultSeverity: 'error',
  traced: true,
  docs: '**TRT033 unary math on integers.** `torch.floor/ceil/round/sqrt/exp/log/erf/sin/cos/reciprocal` (and methods) on integer tensors export Floor/Ceil/Sqrt/... on INT, which TensorRT rejects. floor/ceil/round/trunc of an integer tensor is the tensor itself, so the call can go; the others promote to float in PyTorch, so an explicit `.float()` on the input gives the same result.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    for (const site of ctx.calls(...IDENTITY_ON_INT, ...FLOAT_PROMOTING)) {
      const isMethod = site.receiver !== null;
      if (isMethod ? ctx.src(site.receiver!) === 'self' : !ctx.isTorch(site, 'torch', 'torch.special')) continue;
      const x = isMethod ? site.receiver! : (site.args[0] ?? null);
      if (!x) continue;
      if (site.name === 'round' && (site.kwargs.has('decimals') || (!isMethod && site.args.length > 1))) continue;
      const v = intVerdict(ctx, x);
      if (v.level === 'known') {
        out.push(
          ctx.diag(
            'TRT033',
            'error',
            site.node,
            `\`${site.name}\` on the ${v.info.kind === 'bool' ? 'bool' : 'integer'} tensor ${quoteSrc(ctx, x)} (${v.info.why}): ${why(ctx)}.`,
            fixFor(ctx, site, x, isMethod) ?? undefined,
          ),
        );
      } else if (v.level === 'maybe') {
        out.push(
          ctx.diag(
            'TRT033',
            'hint',
            site.node,
            `\`${site.name}\` on ${quoteSrc(ctx, x)}, which may be an integer tensor (${v.info.why}); if so: ${why(ctx)}.`,
          ),
        );
      }
    }
    return out;
  },
};

function fixFor(ctx: RuleContext, site: CallSite, x: SyntaxNode, isMethod: boolean): QdqFix | null {
  if (
    site.kwargs.has('out') ||
    (!isMethod && site.args.length !== 1) ||
    (isMethod && site.args.length !== 0) ||
    site.kwargs.size
  )
    return null;
  const xText = ctx.src(x);
  if (IDENTITY_ON_INT.has(site.name)) {
    const inferred = intVerdict(ctx, x);
    if (inferred.info.kind === 'bool') return null; // floor(bool) is an error in torch itself; leave it to the author
    return {
      title: `Remove \`${site.name}\` (identity on integer tensors)`,
      safety: 'safe',
      edits: [ctx.replace(site.node, isPrimary(x) ? xText : `(${xText})`)],
    };
  }
  const cast = isPrimary(x) ? `${xText}.float()` : `(${xText}).float()`;
  return {
    title: `Cast the input to float (${site.name} promotes integers to float anyway)`,
    safety: 'safe',
    edits: [ctx.replace(x, cast)],
  };
}
