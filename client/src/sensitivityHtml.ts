// The sensitivity view's page (pure, tested in node): one bar per site group, worst first, the loss when only that
// group is INT8 and the gain when only it is float, each row linking to its source line (qdq.openSource), and
// "Apply precision plan" (qdq.applyPrecisionPlan) when a tune run left one. No scripts: links are command URIs.
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { SensitivityGroupView, SensitivityResultView } from '../../server/src/protocol/lsp_ext';
import { escapeHtml } from './reportHtml';

export interface SensitivityHtmlOptions {
  cspSource: string;
  nonce: string;
}

const unit = (metric: string) => (metric === 'top1' ? ' pt' : metric === 'sqnr_db' ? ' dB' : '');

function delta(v: number, metric: string): string {
  const sign = v > 0 ? '+' : v < 0 ? '−' : '±';
  return `${sign}${Math.abs(v).toFixed(2)}${unit(metric)}`;
}

function openLink(g: SensitivityGroupView): string | undefined {
  const at = g.locations[0];
  if (!at) return undefined;
  let file: string;
  try {
    file = fileURLToPath(at.uri);
  } catch {
    return undefined;
  }
  return `command:qdq.openSource?${encodeURIComponent(JSON.stringify([{ file, line: at.line + 1 }]))}`;
}

/**
 * Bar width class `w0`..`w100` (steps of 5%): the largest magnitude across all groups is the full width. Classes,
 * not style attributes, because the page's policy allows only its own nonce'd stylesheet.
 */
function scale(groups: SensitivityGroupView[]): (v: number) => string {
  const max = Math.max(1e-9, ...groups.flatMap((g) => [Math.abs(g.int8Delta), Math.abs(g.floatDelta)]));
  return (v) => `w${Math.round((Math.abs(v) / max) * 20) * 5}`;
}

const WIDTH_CLASSES = Array.from({ length: 21 }, (_, i) => `.w${i * 5} { width: ${i * 5}%; }`).join(' ');

function row(g: SensitivityGroupView, metric: string, width: (v: number) => string): string {
  const link = openLink(g);
  const where = g.locations[0] ? `${g.locations[0].uri.split('/').pop()}:${g.locations[0].line + 1}` : 'not found';
  const name = link
    ? `<a href="${escapeHtml(link)}" title="${escapeHtml(g.sites.join('\n'))}">${escapeHtml(g.label)}</a>`
    : `<span title="${escapeHtml(g.sites.join('\n'))}">${escapeHtml(g.label)}</span>`;
  return `<tr${g.inPlan ? ' class="plan"' : ''}>
<td class="name">${name}<div class="muted">${escapeHtml(where)} · ${g.instances} quantizer${g.instances === 1 ? '' : 's'}${g.inPlan ? ' · plan: float' : ''}</div></td>
<td class="num">${escapeHtml(delta(g.int8Delta, metric))}</td>
<td class="bars"><div class="bar int8${g.int8Delta < 0 ? ' loss' : ''} ${width(g.int8Delta)}"></div></td>
<td class="num">${escapeHtml(delta(g.floatDelta, metric))}</td>
<td class="bars"><div class="bar float ${width(g.floatDelta)}"></div></td>
</tr>`;
}

export function renderSensitivityHtml(view: SensitivityResultView, opts: SensitivityHtmlOptions): string {
  const csp = `default-src 'none'; style-src 'nonce-${opts.nonce}'; script-src 'none';`;
  const width = scale(view.groups);
  const metric =
    view.metric === 'top1'
      ? `top-1 on ${view.samples} eval-data samples`
      : view.metric === 'sqnr_db'
        ? `output SQNR vs FP32 on ${view.samples} held-out samples`
        : `${view.metric} ([tool.qdq] metric, higher is better)`;
  const plan = view.plan
    ? `<p>Last tune run: ${view.plan.floatSites.length} site${view.plan.floatSites.length === 1 ? '' : 's'} in float, ` +
      `${escapeHtml(view.plan.accuracy.toFixed(2))}${view.plan.withinBudget ? ' (within the budget)' : ' (budget not met)'}. ` +
      (view.plan.floatSites.length
        ? `<a href="command:qdq.applyPrecisionPlan?${encodeURIComponent(JSON.stringify([{ uri: pathToFileURL(path.join(view.projectDir, 'pyproject.toml')).toString() }]))}">Apply precision plan</a> (keep_float edits in the source)`
        : 'All INT8 holds: nothing to keep in float.') +
      '</p>'
    : '<p class="muted">No precision plan yet: "QDQ: Tune Precision (Accuracy Budget)" writes one.</p>';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<title>QDQ sensitivity</title>
<style nonce="${opts.nonce}">
body { font-family: var(--vscode-font-family); color: var(--vscode-foreground); padding: 0 1rem 2rem; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid var(--vscode-panel-border, #8884); padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.bars { width: 22%; }
.bar { height: 10px; margin-top: 4px; min-width: 1px; }
.bar.int8 { background: var(--vscode-charts-blue, #3794ff); }
.bar.int8.loss { background: var(--vscode-charts-red, #f14c4c); }
.bar.float { background: var(--vscode-charts-green, #89d185); }
tr.plan td.name { font-weight: 600; }
.muted { opacity: .7; font-size: 90%; }
${WIDTH_CLASSES}
</style></head><body>
<h2>Sensitivity by layer</h2>
<p>${escapeHtml(metric)}: FP32 ${escapeHtml(view.fp32.toFixed(2))}, all INT8 ${escapeHtml(view.allInt8.toFixed(2))}. Worst first.</p>
${plan}
<table>
<thead><tr><th>group (click: source)</th><th colspan="2">only this INT8 (vs FP32)</th><th colspan="2">only this float (vs all INT8)</th></tr></thead>
<tbody>
${view.groups.map((g) => row(g, view.metric, width)).join('\n')}
</tbody></table>
<p class="muted">${escapeHtml(view.path)}</p>
</body></html>`;
}
