// Rules that fire on a call by name alone (the op is unsupported whatever the input): unique, bincount, ...
import type { CallSite, RuleContext } from './context';
import type { QdqDiagnostic, Rule, Severity } from './types';

export interface SimpleCallRuleSpec {
  code: string;
  title: string;
  defaultSeverity: Severity;
  docs: string;
  /** Callee last segments (must be listed in context.ts CALL_WORDS). */
  names: string[];
  /** Accept module functions under these prefixes (`torch`, `torch.fft`); methods on tensors when `methods`. */
  modules: string[];
  methods: boolean;
  message(ctx: RuleContext, site: CallSite): string | null;
  severity?(ctx: RuleContext, site: CallSite): Severity;
  /** See Rule.traced. */
  traced?: boolean;
}

export function simpleCallRule(spec: SimpleCallRuleSpec): Rule {
  return {
    code: spec.code,
    title: spec.title,
    defaultSeverity: spec.defaultSeverity,
    docs: spec.docs,
    traced: spec.traced,
    check(ctx) {
      const out: QdqDiagnostic[] = [];
      for (const site of ctx.calls(...spec.names)) {
        const accepted = site.receiver ? spec.methods && !isModuleLike(ctx, site) : ctx.isTorch(site, ...spec.modules);
        if (!accepted) continue;
        const msg = spec.message(ctx, site);
        if (!msg) continue;
        out.push(ctx.diag(spec.code, spec.severity ? spec.severity(ctx, site) : spec.defaultSeverity, site.node, msg));
      }
      return out;
    },
  };
}

/** `np.unique(...)` and `self.unique(...)` are not tensor methods we can judge; `x.unique()` is. */
function isModuleLike(ctx: RuleContext, site: CallSite): boolean {
  const r = site.receiver!;
  if (r.type !== 'identifier') return false;
  const name = ctx.src(r);
  return (
    name === 'self' ||
    name === 'np' ||
    name === 'numpy' ||
    name === 'math' ||
    name === 'cls' ||
    name === 'scipy' ||
    (ctx.aliases.has(name) && !/^torch/.test(ctx.aliases.get(name)!))
  );
}
