// The session's side of the sensitivity results: which project and out-dir a document belongs to, the results
// read from there, and the sensitivity view's answer (qdq/sensitivity) with source locations for every group.
import * as path from 'path';
import { pathToFileURL } from 'url';
import type { Session } from '../session/session';
import type { QdqDocument } from './documents';
import { buildModelIndex, parsePython, type ModelIndex } from '../analysis';
import { uriToPath } from './hover';
import { findProjectDir } from './project';
import { outDirOf } from './pipelineBridge';
import { readWorkspaceFileOrLog } from './workspaceFiles';
import { siteRange } from './calibration';
import { parseSite, readPrecisionResults, viewGroups, layerSensitivities, type PrecisionResults } from './sensitivity';
import type { LayerSensitivity } from './sensitivity';
import type { SensitivityResultView, SourceLocation } from '../protocol/lsp_ext';

/** Model files read from disk for locations are source code: a few MB at most. */
const MAX_MODEL_BYTES = 8 * 1024 * 1024;

type Ctx = Pick<Session, 'settings' | 'log' | 'documents'>;

export async function resultsFor(ctx: Ctx, file: string): Promise<{ projectDir: string; results: PrecisionResults }> {
  const projectDir = findProjectDir(file);
  const log = (line: string) => ctx.log(line);
  const outDir = await outDirOf(projectDir, ctx.settings, log);
  return { projectDir, results: await readPrecisionResults(outDir, log) };
}

/** The located layers of an open document with their sensitivity (empty without results). */
export async function documentSensitivity(
  ctx: Ctx,
  doc: QdqDocument,
): Promise<{ layers: LayerSensitivity[]; results: PrecisionResults }> {
  const file = uriToPath(doc.uri);
  const { projectDir, results } = await resultsFor(ctx, file);
  if (!results.sensitivity) return { layers: [], results };
  return { layers: layerSensitivities(results, projectDir, file, doc.getIndex(), doc.getText()), results };
}

interface Parsed {
  uri: string;
  index: ModelIndex;
  text: string;
}

/** Open documents as the editor has them, other files as they are on disk (untrusted: regular, size-capped). */
async function parsedFiles(ctx: Ctx, files: string[]): Promise<Map<string, Parsed>> {
  const out = new Map<string, Parsed>();
  const open = new Map(ctx.documents.all().map((d) => [path.resolve(uriToPath(d.uri)), d]));
  for (const file of files) {
    const doc = open.get(file);
    if (doc) {
      out.set(file, { uri: doc.uri, index: doc.getIndex(), text: doc.getText() });
      continue;
    }
    const text = await readWorkspaceFileOrLog(file, MAX_MODEL_BYTES, (l) => ctx.log(l));
    if (text === undefined) continue;
    out.set(file, { uri: pathToFileURL(file).toString(), index: buildModelIndex(parsePython(text), text), text });
  }
  return out;
}

/** qdq/sensitivity: the project's sensitivity results, worst group first, each with where it is in the source. */
export async function sensitivityView(ctx: Ctx, uri: string): Promise<SensitivityResultView | null> {
  const { projectDir, results } = await resultsFor(ctx, uriToPath(uri));
  const sensitivity = results.sensitivity;
  if (!sensitivity) return null;
  const files = new Set<string>();
  for (const g of sensitivity.data.groups)
    for (const s of g.sites) {
      const parsed = parseSite(s, projectDir);
      if (parsed) files.add(parsed.file);
    }
  const parsed = await parsedFiles(ctx, [...files]);
  const locate = (file: string, cls: string, attr: string): SourceLocation | undefined => {
    const p = parsed.get(file);
    const range = p && siteRange(p.index, p.text, cls, attr);
    return p && range ? { uri: p.uri, line: range.start.line, character: range.start.character } : undefined;
  };
  // A group whose sites are all absent (a declared quantizer of an unquantized source): its class, so a click lands.
  const classOf = (site: string): SourceLocation | undefined => {
    const s = parseSite(site, projectDir);
    const p = s && parsed.get(s.file);
    const klass = p?.index.classes.find((c) => c.name === s?.cls);
    return p && klass
      ? { uri: p.uri, line: klass.range.start.line, character: klass.range.start.character }
      : undefined;
  };
  const groups = viewGroups(results, projectDir, locate).map((g) => {
    const fallback = g.locations.length ? undefined : g.sites.map(classOf).find((l) => l !== undefined);
    return fallback ? { ...g, locations: [fallback] } : g;
  });
  const { data } = sensitivity;
  const plan = results.plan;
  return {
    projectDir,
    path: sensitivity.path,
    metric: data.metric,
    samples: data.samples,
    fp32: data.fp32,
    allInt8: data.all_int8,
    groups,
    plan: plan
      ? {
          floatSites: plan.data.floatSites,
          accuracy: plan.data.accuracy,
          withinBudget: plan.data.withinBudget,
          path: plan.path,
        }
      : null,
  };
}
