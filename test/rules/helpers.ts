// Shared helpers for the rule tests: parse with the real tree-sitter parser, build the real model index, run rules.
import { parsePython } from '../../server/src/analysis/parser';
import { buildModelIndex } from '../../server/src/analysis/model';
import { runRuleStrict, runRules, ruleByCode } from '../../server/src/rules';
import type { QdqDiagnostic, RuleOptions } from '../../server/src/rules/types';

/** Runs one rule WITHOUT runRules' safety net, so a throwing rule fails the test. */
export function diagnose(code: string, text: string, opts: RuleOptions = {}): QdqDiagnostic[] {
  const rule = ruleByCode(code);
  if (!rule) throw new Error(`no rule ${code}`);
  const tree = parsePython(text);
  return runRuleStrict(rule, buildModelIndex(tree, text), tree, text, opts);
}

export function diagnoseAll(text: string, opts: RuleOptions = {}): QdqDiagnostic[] {
  const tree = parsePython(text);
  return runRules(buildModelIndex(tree, text), tree, text, opts);
}

/** Dedent a template literal (first line empty, common indentation removed). */
export function py(strings: TemplateStringsArray, ...values: unknown[]): string {
  const raw = String.raw({ raw: strings }, ...values).replace(/^\n/, '');
  const lines = raw.split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

/** Text covered by a diagnostic's range. */
export function textAt(text: string, d: QdqDiagnostic): string {
  const lines = text.split('\n');
  const { start, end } = d.range;
  if (start.line === end.line) return lines[start.line].slice(start.character, end.character);
  return [
    lines[start.line].slice(start.character),
    ...lines.slice(start.line + 1, end.line),
    lines[end.line].slice(0, end.character),
  ].join('\n');
}
