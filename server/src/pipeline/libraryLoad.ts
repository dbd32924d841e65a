// The backend's `load` step with library models patched in memory: the one path `qdq run`, `qdq sensitivity`,
// `qdq tune` and `qdq qat` take (their --nproc workers load the params it returns, so every process runs the same
// patched modules). A model built from library classes (`timm.create_model(...)`, `GPT2Model(config)`) is loaded
// once as written, which tells which installed modules define its classes; those are patched (library/auto.ts)
// and the model is loaded again. `patch-modules` set by hand: the listed modules are patched before the one load.
import type { BackendClient, RequestOptions } from './backendClient';
import type { LoadParams, LoadResult } from './backendProtocol.generated';
import type { QdqConfig, Target } from './config';
import { patchModules, patchNote, planPatches } from '../library/auto';

export interface LibraryLoad {
  /** What was loaded, patch_modules included: what a worker process must load to run the same model. */
  params: LoadParams;
  loaded: LoadResult;
  /** Library modules patched in memory (none for a model whose layers are in the user's own files). */
  patchedModules: string[];
  /** What the load changed (the patch note, the backend's own notes), for the report and the terminal. */
  notes: string[];
}

/** The export target the backend knows: tensorrt10 exports the same Q/DQ placement as tensorrt. */
export function backendTarget(target: Target): 'tensorrt' | 'ort-cpu' {
  return target === 'ort-cpu' ? 'ort-cpu' : 'tensorrt';
}

/** The load params of a project before any patching (the quantized copy of the user's file as the override). */
export function baseLoadParams(
  projectDir: string,
  cfg: QdqConfig,
  override: LoadParams['model_source_override'],
): LoadParams {
  return {
    project_dir: projectDir,
    model: cfg.model,
    example_inputs: cfg.exampleInputs,
    input_shapes: cfg.inputShapes,
    calibration_data: cfg.calibrationData,
    eval_data: cfg.evalData,
    model_source_override: override,
  };
}

/** `load` on `backend`, with the library modules the model is made of patched; `base` is not changed. */
export async function loadPatched(
  backend: BackendClient,
  cfg: QdqConfig,
  base: LoadParams,
  rpc: RequestOptions,
  onLoad: (message: string) => void = () => undefined,
): Promise<LibraryLoad> {
  const source = async (module: string) => await backend.moduleSource({ module }, rpc);
  const firstPlan = planPatches(cfg.patchModules, []);
  let patched = firstPlan.automatic ? null : await patchModules(firstPlan, source);
  const asParams = (p: NonNullable<typeof patched>) => p.patches.map((m) => ({ module: m.module, source: m.text }));
  const params: LoadParams = { ...base, patch_modules: patched?.patches.length ? asParams(patched) : undefined };
  onLoad(`loading ${cfg.model}`);
  let loaded = await backend.load(params, rpc);
  let plan = firstPlan;
  if (firstPlan.automatic && loaded.library_modules?.length) {
    plan = planPatches(cfg.patchModules, loaded.library_modules);
    patched = await patchModules(plan, source);
    if (patched.patches.length) {
      onLoad(`loading ${cfg.model} with patched library modules`);
      params.patch_modules = asParams(patched);
      loaded = await backend.load(params, rpc);
    }
  }
  const notes: string[] = [];
  if (patched && (patched.patches.length || patched.skipped.length)) notes.push(patchNote(plan, patched));
  notes.push(...(loaded.notes ?? []));
  return { params, loaded, patchedModules: patched?.patches.map((p) => p.module) ?? [], notes };
}
