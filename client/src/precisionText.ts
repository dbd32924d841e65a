// One line for the user after QDQ: Sensitivity Analysis / Tune Precision / Fine-tune (QAT) (pure, tested in node):
// the figures the command measured, read defensively from its answer ({reportPath, outDir, report}).
import { Commands } from '../../server/src/protocol/lsp_ext';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const fixed = (v: unknown) => (num(v) === undefined ? '–' : (v as number).toFixed(2));
const pct = (v: unknown) => (num(v) === undefined ? '–' : `${((v as number) * 100).toFixed(2)}%`);

function sensitivity(r: Json): string {
  const unit = r.metric === 'top1' ? ' pt' : r.metric === 'sqnr_db' ? ' dB' : '';
  const groups = Array.isArray(r.groups) ? r.groups.filter(isObject) : [];
  const fp32 = num(r.fp32) ?? 0;
  const worst = [...groups].sort((a, b) => (num(a.only_int8) ?? 0) - (num(b.only_int8) ?? 0))[0];
  const what = r.metric === 'top1' ? 'top-1' : r.metric === 'sqnr_db' ? 'SQNR' : String(r.metric);
  const head = `Sensitivity (${what} on ${fixed(r.samples).replace(/\.00$/, '')} held-out samples): FP32 ${fixed(r.fp32)}, all INT8 ${fixed(r.all_int8)}`;
  if (!worst) return `${head}.`;
  const d = (num(worst.only_int8) ?? 0) - fp32;
  return `${head}; most sensitive: ${String(worst.label)} (${d >= 0 ? '+' : ''}${d.toFixed(2)}${unit} when only it is INT8).`;
}

function tune(r: Json): string {
  const mixed = isObject(r.mixed) ? r.mixed : {};
  const groups = Array.isArray(mixed.float_groups) ? mixed.float_groups.map(String) : [];
  const fp32 = isObject(r.fp32) ? r.fp32.accuracy : undefined;
  const int8 = isObject(r.all_int8) ? r.all_int8.accuracy : undefined;
  const plan = groups.length
    ? `${groups.length} group(s) kept in float: ${groups.join(', ')}`
    : 'nothing kept in float';
  const budget = r.within_budget === false ? ' The budget cannot be met.' : '';
  return `Tune: FP32 ${fixed(fp32)}, mixed ${fixed(mixed.accuracy)}, all INT8 ${fixed(int8)}; ${plan}.${budget}`;
}

function qat(r: Json): string {
  return `QAT (${String(r.epochs ?? '?')} epochs, ${String(r.processes ?? 1)} process(es)): top-1 on ${String(r.eval_samples ?? '?')} eval-data samples FP32 ${pct(r.fp32)}, PTQ ${pct(r.ptq)}, QAT ${pct(r.qat)}.`;
}

export function precisionSummary(command: string, result: unknown): string | undefined {
  const report = isObject(result) && isObject(result.report) ? result.report : undefined;
  if (!report) return undefined;
  if (command === Commands.sensitivity) return sensitivity(report);
  if (command === Commands.tune) return tune(report);
  if (command === Commands.qat) return qat(report);
  return undefined;
}
