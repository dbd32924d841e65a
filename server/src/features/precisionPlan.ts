// "QDQ: Apply Precision Plan": tune.json's mixed.float_sites written into the model file as keep_float through
// the fix engine (the same applyKeepFloat `qdq tune --write` uses), sent as one workspace edit.
import * as path from 'path';
import { pathToFileURL } from 'url';
import { lsp } from './lsp';
import type { TextEdit, WorkspaceEdit } from './lsp';
import type { Session } from '../session/session';
import { buildModelIndex, parsePython } from '../analysis';
import { quantizeFile } from '../fixes';
import { applyKeepFloat } from '../pipeline/tune';
import * as fs from 'fs';
import { buildWorkspaceEdit, fileHasWork, HELPER_FILE, helperSource } from './codeActions';
import { writeNewFile } from '../common/files';
import { uriToPath } from './hover';
import { resultsFor } from './precisionView';
import { parseSite } from './sensitivity';
import { readWorkspaceFile } from './workspaceFiles';
import type { CommandArgs, EditCommandResult } from '../protocol/lsp_ext';

const MAX_MODEL_BYTES = 8 * 1024 * 1024;

/**
 * The model text with the plan applied: a file with no quantizers at all is quantized first (the plan is
 * "all INT8 but these"), then every float site of `file` gets keep_float. `missing`: sites it could not place.
 */
export function planText(
  text: string,
  file: string,
  floatSites: string[],
): { text: string; missing: string[]; quantized: boolean } {
  const tree = parsePython(text);
  const index = buildModelIndex(tree, text);
  const work = fileHasWork(index, tree, text);
  const quantize = work.quantize && !work.remove;
  const relativeImport = index.imports.usesRelativeImports;
  const start = quantize ? quantizeFile(text, { scope: { kind: 'file' }, relativeImport }).text : text;
  const edited = applyKeepFloat(start, file, floatSites);
  return { text: edited.text, missing: edited.missing, quantized: quantize };
}

/**
 * Line edits turning `before` into `after`. qdq's edits change lines in place or add/remove whole lines, so a
 * greedy walk that resynchronises on the nearest pair of equal lines finds them; any walk gives a correct edit,
 * this one keeps it small. Lines keep their "\n", so the last line (with or without one) needs no special case.
 */
export function lineEdits(before: string, after: string): TextEdit[] {
  const a = before.split(/(?<=\n)/);
  const b = after.split(/(?<=\n)/);
  const endOfText = before.endsWith('\n')
    ? { line: a.length, character: 0 }
    : { line: a.length - 1, character: a[a.length - 1].length };
  const at = (line: number) => (line < a.length ? { line, character: 0 } : endOfText);
  const edits: TextEdit[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++;
      j++;
      continue;
    }
    let next: [number, number] = [a.length, b.length];
    search: for (let d = 1; d <= 400; d++)
      for (let di = 0; di <= d; di++) {
        const [i2, j2] = [i + di, j + d - di];
        if (i2 < a.length && j2 < b.length && a[i2] === b[j2]) {
          next = [i2, j2];
          break search;
        }
      }
    edits.push({ range: { start: at(i), end: at(next[0]) }, newText: b.slice(j, next[1]).join('') });
    [i, j] = next;
  }
  return edits;
}

/** The file the plan is about (the first float site's), or undefined for an empty or foreign plan. */
function planFile(floatSites: string[], projectDir: string): string | undefined {
  for (const s of floatSites) {
    const parsed = parseSite(s, projectDir);
    if (parsed) return parsed.file;
  }
  return undefined;
}

export async function applyPrecisionPlan(ctx: Session, arg: CommandArgs): Promise<EditCommandResult> {
  if (!arg.uri)
    throw new lsp.ResponseError(lsp.ErrorCodes.InvalidParams, 'Pass a file of the project: [{"uri": "..."}].');
  const { projectDir, results } = await resultsFor(ctx, uriToPath(arg.uri));
  const plan = results.plan?.data;
  if (!plan)
    return {
      applied: false,
      changedLines: 0,
      message: 'No precision plan yet: run "QDQ: Tune Precision (Accuracy Budget)" first; it writes tune.json.',
    };
  const file = planFile(plan.floatSites, projectDir);
  if (!file)
    return { applied: true, changedLines: 0, message: 'The plan keeps every layer in INT8: nothing to change.' };
  const doc = ctx.documents.all().find((d) => path.resolve(uriToPath(d.uri)) === file);
  const text = doc ? doc.getText() : await readWorkspaceFile(file, MAX_MODEL_BYTES);
  if (text === undefined) return { applied: false, changedLines: 0, message: `${file} no longer exists.` };
  const next = planText(text, file, plan.floatSites);
  const edits = lineEdits(text, next.text);
  const note = next.missing.length ? ` Could not place: ${next.missing.join(', ')}.` : '';
  if (!edits.length)
    return { applied: true, changedLines: 0, message: `The plan is already in ${path.basename(file)}.${note}` };
  const fix = { text: next.text, edits, helperNeeded: true };
  const edit: WorkspaceEdit = doc
    ? buildWorkspaceEdit(doc, fix, ctx.features.edits).edit
    : { changes: { [pathToFileURL(file).toString()]: edits } };
  const result = await ctx.connection.workspace.applyEdit({ label: 'Apply precision plan', edit });
  // The edit imports qdq_quant; a client that could not create the helper (or a file edited unopened) gets it here,
  // as qdq.writeHelperFile would write it: only when absent (the user owns it once it exists).
  const helper = path.join(path.dirname(file), HELPER_FILE);
  if (result.applied && !fs.existsSync(helper)) writeNewFile(helper, helperSource());
  const changedLines = edits.reduce((n, e) => n + Math.max(1, e.newText.split('\n').length - 1), 0);
  const what = `${next.quantized ? 'quantized the file and ' : ''}kept ${plan.floatSites.length} site(s) in float`;
  return {
    applied: result.applied,
    changedLines,
    message: result.applied ? `Precision plan: ${what} in ${path.basename(file)}.${note}` : result.failureReason,
  };
}
