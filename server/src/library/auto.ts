// Which installed modules `qdq run/calibrate/export` patch in memory. A model built from library classes
// (`timm.create_model(...)`, `GPT2Model(config)`) needs no configuration: the backend lists the modules that
// define the model's classes at load, and each is run through the same passes as a user's file (patch.ts).
// `patch-modules` overrides the list: plain names make it exact, `!name` drops one, `[]` patches nothing.
import { QdqError } from '../common/errors';
import {
  layersImportedBy,
  libraryPatchOrConfigError,
  LibraryPatch,
  LibraryPatchError,
  patchLibrarySource,
} from './patch';

export interface PatchPlan {
  /** Modules to look at, in the order met; empty: patch nothing. */
  modules: string[];
  /** True when the list came from the model itself (patch-modules unset or only exclusions). */
  automatic: boolean;
  excluded: string[];
}

/** `configured` is patch-modules as written (undefined when unset); `discovered` what the backend found. */
export function planPatches(configured: string[] | undefined, discovered: string[]): PatchPlan {
  const excluded = (configured ?? []).filter((m) => m.startsWith('!')).map((m) => m.slice(1));
  const listed = (configured ?? []).filter((m) => !m.startsWith('!'));
  if (listed.length) return { modules: listed, automatic: false, excluded };
  if (configured && configured.length === 0) return { modules: [], automatic: false, excluded };
  const drop = (m: string) => excluded.some((e) => m === e || m.startsWith(e + '.'));
  return { modules: discovered.filter((m) => !drop(m)), automatic: true, excluded };
}

export interface PatchedModules {
  patches: LibraryPatch[];
  /** Automatic mode: modules the passes found nothing to quantize in (utility layers, activations). */
  skipped: string[];
}

/**
 * Runs the passes over each module's source. In automatic mode a module with nothing to quantize is skipped
 * (timm's `Linear` or an activation module); listed by hand, it is an error, since the user named it.
 */
export async function patchModules(
  plan: PatchPlan,
  source: (module: string) => Promise<string | { source: string; file: string }>,
): Promise<PatchedModules> {
  const patches: LibraryPatch[] = [];
  const skipped: string[] = [];
  for (const module of plan.modules) {
    const found = await source(module);
    const text = typeof found === 'string' ? found : found.source;
    const externalLayers = await layersImportedBy(typeof found === 'string' ? undefined : found.file, text);
    if (!plan.automatic) {
      patches.push(libraryPatchOrConfigError(module, text, { externalLayers }));
      continue;
    }
    try {
      patches.push(patchLibrarySource(module, text, { externalLayers }));
    } catch (e) {
      if (!(e instanceof LibraryPatchError)) throw e;
      if (e.reason !== 'empty') throw new QdqError('config', e.message, e.hint);
      skipped.push(module);
    }
  }
  return { patches, skipped };
}

/** The note `qdq run` prints and the report keeps. */
export function patchNote(plan: PatchPlan, done: PatchedModules): string {
  const fixes = done.patches.flatMap((p) => p.fixes);
  const names = done.patches.map((p) => p.module).join(', ') || 'none';
  const how = plan.automatic
    ? 'found from the model\'s classes; set patch-modules to choose, "!module" to exclude one'
    : 'patch-modules';
  const skipped = done.skipped.length ? `; nothing to quantize in ${done.skipped.join(', ')}` : '';
  const excluded = plan.excluded.length ? `; excluded ${plan.excluded.join(', ')}` : '';
  return `patched in memory (${how}): ${names}${skipped}${excluded}${fixes.length ? ` (TensorRT fixes: ${fixes.join('; ')})` : ''}`;
}
