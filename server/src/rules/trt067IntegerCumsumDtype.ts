// TRT067: cumsum that is integer whatever its input says: an explicit integer dtype, or the reversed cumsum of an
// attention mask (`mask.flip(-1).cumsum(-1)`, transformers' left-padding idiom; masks there are int64).
import { isPrimary, unparen, type CallSite, type RuleContext } from './context';
import { intVerdict, quoteSrc, trtScope } from './common';
import type { QdqDiagnostic, QdqFix, Rule, SyntaxNode } from './types';

const INT_DTYPE = /^(?:torch\.)?(int64|long|int32|int|int16|short|int8|uint8|bool)$/;
const CAST_BACK: Record<string, string> = { int64: 'long', long: 'long', int32: 'int', int: 'int' };

function why(ctx: RuleContext): string {
  return `TensorRT documents CumSum for FP32/FP16/BF16 only (${trtScope(ctx)})`;
}

/** The cumsum's input: the receiver of `x.cumsum(...)`, or the first argument of `torch.cumsum(x, ...)`. */
function cumsumInput(ctx: RuleContext, site: CallSite): SyntaxNode | null {
  if (site.receiver) return ctx.src(site.receiver) === 'self' ? null : site.receiver;
  return ctx.isTorch(site) ? ctx.arg(site, 0, 'input') : null;
}

/** `m` for `m.flip(...)` / `torch.flip(m, ...)` when m is named like a mask, else null. */
function flippedMask(ctx: RuleContext, x: SyntaxNode): SyntaxNode | null {
  const n = unparen(x);
  if (n.type !== 'call') return null;
  const s = ctx.callSite(n);
  if (!s || s.name !== 'flip') return null;
  const inner = s.receiver ?? (ctx.isTorch(s) ? ctx.arg(s, 0, 'input') : null);
  if (!inner) return null;
  const base = unparen(inner);
  const name = base.type === 'identifier' || base.type === 'attribute' ? ctx.src(base) : '';
  return /mask/i.test(name) ? base : null;
}

/**
 * The reversed cumsum over a mask whose dtype the source does not show (TRT001 then only says "could not
 * determine"): reported here, and TRT001 leaves the site alone.
 */
export function isReversedMaskCumsum(ctx: RuleContext, site: CallSite): boolean {
  const x = cumsumInput(ctx, site);
  const mask = x ? flippedMask(ctx, x) : null;
  if (!mask) return false;
  const level = intVerdict(ctx, mask).level;
  return level === 'unknown' || level === 'maybe';
}

function dtypeFix(ctx: RuleContext, site: CallSite, dtype: SyntaxNode, name: string): QdqFix | undefined {
  const back = CAST_BACK[name];
  if (!back || site.kwargs.has('out')) return undefined;
  return {
    title: `Accumulate in float32 and cast the result back with .${back}()`,
    // Sums of integers are exact in float32 below 2^24, far above any sequence length a mask is summed over.
    safety: 'safe',
    edits: [ctx.replace(dtype, 'torch.float32'), ctx.insertAfter(site.node, `.${back}()`)],
  };
}

export const trt067IntegerCumsumDtype: Rule = {
  code: 'TRT067',
  title: 'Integer cumsum by dtype or over a reversed mask',
  defaultSeverity: 'warning',
  traced: true,
  docs: "**TRT067 integer cumsum by dtype, reversed mask cumsum.** `cumsum(..., dtype=torch.int64)` (or int32/long/int) exports an integer CumSum whatever the input is, and TensorRT documents CumSum for FP32/FP16/BF16 only (every version through 11.x; integer CumSum crashed conversion on 7.x/8.x). The reversed cumsum of an attention mask, `mask.flip(-1).cumsum(-1)` (transformers' left-padding idiom), is the same integer CumSum: masks there are int64. Accumulate in float32 (exact below 2^24) and cast back: `x.cumsum(-1, dtype=torch.float32).long()`; for the mask, `mask.float().flip(-1).cumsum(-1)`.",
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    for (const site of ctx.calls('cumsum')) {
      if (site.node.parent?.type === 'decorator') continue;
      const x = cumsumInput(ctx, site);
      if (!x) continue;
      const dtype = site.kwargs.get('dtype');
      const name = dtype ? INT_DTYPE.exec(ctx.src(dtype).replace(/\s+/g, ''))?.[1] : undefined;
      if (dtype && name) {
        out.push(
          ctx.diag(
            'TRT067',
            'warning',
            site.node,
            `cumsum(dtype=${ctx.src(dtype)}) accumulates in ${name}: ${why(ctx)}. Accumulate in float32 and cast back.`,
            dtypeFix(ctx, site, dtype, name),
          ),
        );
        continue;
      }
      if (dtype || !isReversedMaskCumsum(ctx, site)) continue;
      const mask = flippedMask(ctx, x)!;
      const cast = isPrimary(mask) ? `${ctx.src(mask)}.float()` : `(${ctx.src(mask)}).float()`;
      out.push(
        ctx.diag(
          'TRT067',
          'warning',
          site.node,
          `Reversed cumsum over the mask ${quoteSrc(ctx, mask)}: attention masks are integer (int64 in transformers), so this is an integer CumSum: ${why(ctx)}. Cast the mask to float first.`,
          {
            title: `Cast ${quoteSrc(ctx, mask)} to float before the flip`,
            // The result becomes float: code that uses it as an index or compares dtypes needs a look.
            safety: 'unsafe',
            edits: [ctx.replace(mask, cast)],
          },
        ),
      );
    }
    return out;
  },
};
