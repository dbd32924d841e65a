// The rule registry and runRules: every TRT/QDQ rule over one file. Pure: tree + text in, diagnostics out.
import { RuleContext } from './context';
import type { ModelIndex } from '../analysis/types';
import type { QdqDiagnostic, Rule, RuleOptions, Tree } from './types';
import { documentCaches, statementLayout } from '../analysis/model';
import { inRanges } from './lexer';
import { downgradeUnexported } from './exportTime';
import {
  isKeepable,
  keptDiagnostics,
  sharedKey,
  spansToCheck,
  statementOf,
  type StatementDiagnostics,
} from './statementCache';
import { trt001IntegerCumsum } from './trt001IntegerCumsum';
import { trt004NonZero } from './trt004NonZero';
import { trt005BoolMaskIndexing } from './trt005BoolMaskIndexing';
import { trt007Unique } from './trt007Unique';
import { trt008Bincount } from './trt008Bincount';
import { trt009Histc } from './trt009Histc';
import { trt010Searchsorted } from './trt010Searchsorted';
import { trt029Fft } from './trt029Fft';
import { trt049TorchAo } from './trt049TorchAo';
import { trt013TrainingExport } from './trt013TrainingExport';
import { trt017IntMatmul } from './trt017IntMatmul';
import { trt022TopK } from './trt022TopK';
import { trt025ScatterReduce } from './trt025ScatterReduce';
import { trt026IndexPutAccumulate } from './trt026IndexPutAccumulate';
import { trt030Bitwise } from './trt030Bitwise';
import { trt031BoolArithmetic } from './trt031BoolArithmetic';
import { trt032Uint8 } from './trt032Uint8';
import { trt033IntUnary } from './trt033IntUnary';
import { trt060WeakTypingApi } from './trt060WeakTypingApi';
import { trt061TrtexecFlags } from './trt061TrtexecFlags';
import { trt062FirstConvInt8 } from './trt062FirstConvInt8';
import { trt063Rank4QuantizedInput } from './trt063Rank4QuantizedInput';
import { trt064LayerNormOpset } from './trt064LayerNormOpset';
import { trt065SmallGemm } from './trt065SmallGemm';
import { trt066SortTopK } from './trt066SortTopK';
import { trt067IntegerCumsumDtype } from './trt067IntegerCumsumDtype';
import { qdq001Asymmetric } from './qdq001Asymmetric';
import { qdq002Scale } from './qdq002Scale';
import { qdq003PerChannelActivation } from './qdq003PerChannelActivation';
import { qdq004WeightAxis } from './qdq004WeightAxis';
import { qdq005PartialInputs } from './qdq005PartialInputs';
import { qdq006OutputQuantizer } from './qdq006OutputQuantizer';
import { qdq007ResidualInput } from './qdq007ResidualInput';
import { qdq008OrphanQuantizer } from './qdq008OrphanQuantizer';
import { qdq010ConcatScales } from './qdq010ConcatScales';

export type { QdqDiagnostic, QdqFix, Rule, RuleOptions, Severity, TextEdit, Range, Position } from './types';
export { DEFAULT_TRT_VERSION } from './version';

export const allRules: readonly Rule[] = [
  trt001IntegerCumsum,
  trt004NonZero,
  trt005BoolMaskIndexing,
  trt007Unique,
  trt008Bincount,
  trt009Histc,
  trt010Searchsorted,
  trt013TrainingExport,
  trt017IntMatmul,
  trt022TopK,
  trt025ScatterReduce,
  trt026IndexPutAccumulate,
  trt029Fft,
  trt030Bitwise,
  trt031BoolArithmetic,
  trt032Uint8,
  trt033IntUnary,
  trt049TorchAo,
  trt060WeakTypingApi,
  trt061TrtexecFlags,
  trt062FirstConvInt8,
  trt063Rank4QuantizedInput,
  trt064LayerNormOpset,
  trt065SmallGemm,
  trt066SortTopK,
  trt067IntegerCumsumDtype,
  qdq001Asymmetric,
  qdq002Scale,
  qdq003PerChannelActivation,
  qdq004WeightAxis,
  qdq005PartialInputs,
  qdq006OutputQuantizer,
  qdq007ResidualInput,
  qdq008OrphanQuantizer,
  qdq010ConcatScales,
];

export function ruleByCode(code: string): Rule | undefined {
  return allRules.find((r) => r.code === code);
}

export interface RunRulesOptions extends RuleOptions {
  /** Only these codes (default: all). */
  only?: readonly string[];
}

/**
 * Runs every rule. Never throws: a rule that fails on odd input (a file mid-edit) contributes nothing rather than
 * taking the server down. Diagnostics are sorted by position, then code.
 *
 * With an index built incrementally (the server's didChange), the diagnostics of unchanged top-level def and class
 * statements are kept from the last run and only the sites of the other statements are checked
 * (statementCache.ts); the result is the same as a run on the whole file (test/rules/incremental.test.ts).
 */
export function runRules(
  index: ModelIndex | null | undefined,
  tree: Tree,
  text: string,
  opts: RunRulesOptions = {},
): QdqDiagnostic[] {
  let ctx: RuleContext;
  try {
    ctx = new RuleContext(tree, text, opts, index ?? null);
  } catch {
    return [];
  }
  text = ctx.text;
  const rules = opts.only ? allRules.filter((r) => opts.only!.includes(r.code)) : allRules;
  const layout = opts.only ? undefined : statementLayout(index, text);
  const caches = opts.only ? undefined : documentCaches(index);
  if (!layout || !caches || !ctx.scan.piecewise) {
    // A string left open (or an import) across statements makes what is code depend on text before each
    // statement: nothing is kept from this run.
    if (caches) delete caches.ruleDiagnostics;
    const { perStatement, fileWide } = runEach(ctx, rules, null);
    return sorted(safeDowngrade(ctx, rules, [...perStatement, ...fileWide]));
  }

  const key = sharedKey(text, layout, ctx.trt.text, ctx.aliasKey());
  const kept = keptDiagnostics(caches.ruleDiagnostics, key, layout, text);
  const spans = spansToCheck(kept, layout, text.length);
  const checkAll = spans.length === 2 && spans[0] === 0 && spans[1] === text.length;
  const { perStatement, fileWide } = runEach(ctx, rules, checkAll ? null : (offset) => inRanges(spans, offset));
  // File the new diagnostics under their statements; those in kept statements are already there.
  const byStatement = kept.map((k) => (k ? k.slice() : []));
  for (const d of perStatement) {
    const i = statementOf(d, layout, text);
    if (!kept[i]) byStatement[i].push(d);
  }
  caches.ruleDiagnostics = {
    key,
    text,
    byStatement: byStatement.map((ds, i) => (isKeepable(layout.types[i]) ? ds : null)),
  } satisfies StatementDiagnostics;
  // After the cache: it keeps each rule's own findings; whether code reaches the export is decided on every run.
  return sorted(safeDowngrade(ctx, rules, [...byStatement.flat(), ...fileWide]));
}

/**
 * Runs each rule, those of scope 'statement' on the sites `siteFilter` accepts (all when null), those of scope
 * 'file' on all; a rule that throws gives nothing.
 */
function runEach(
  ctx: RuleContext,
  rules: readonly Rule[],
  siteFilter: ((offset: number) => boolean) | null,
): { perStatement: QdqDiagnostic[]; fileWide: QdqDiagnostic[] } {
  const perStatement: QdqDiagnostic[] = [];
  const fileWide: QdqDiagnostic[] = [];
  for (const rule of rules) {
    const fileScope = rule.scope === 'file';
    ctx.siteFilter = fileScope ? null : siteFilter;
    try {
      (fileScope ? fileWide : perStatement).push(...rule.check(ctx));
    } catch {
      // Deliberately swallowed: see runRules. Tests exercise rules directly to surface bugs.
    }
  }
  ctx.siteFilter = null;
  return { perStatement, fileWide };
}

function sorted(ds: QdqDiagnostic[]): QdqDiagnostic[] {
  return ds.sort(
    (a, b) =>
      a.range.start.line - b.range.start.line ||
      a.range.start.character - b.range.start.character ||
      a.code.localeCompare(b.code),
  );
}

/** Runs one rule without the safety net (tests use it so that a throwing rule fails loudly). */
export function runRuleStrict(
  rule: Rule,
  index: ModelIndex | null | undefined,
  tree: Tree,
  text: string,
  opts: RuleOptions = {},
): QdqDiagnostic[] {
  const ctx = new RuleContext(tree, text, opts, index ?? null);
  return downgradeUnexported(ctx, [rule], rule.check(ctx));
}

function safeDowngrade(ctx: RuleContext, rules: readonly Rule[], found: QdqDiagnostic[]): QdqDiagnostic[] {
  try {
    return downgradeUnexported(ctx, rules, found);
  } catch {
    return found; // see runRules: odd input never takes the server down
  }
}
