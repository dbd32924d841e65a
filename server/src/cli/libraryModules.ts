// `qdq check --module M` and `qdq quantize --module M`: the CLI reads an installed library module (found by
// the interpreter that would run the model) instead of a FILE. check reports the TensorRT diagnostics of the
// installed code as it is; quantize prints exactly what patch-modules runs (TensorRT fixes + quantizers).
// Site-packages is never written: --write with --module is refused.
import type { ModelSource, SourceResolver, SourceSpec } from './source';
import { InputError, registerSourceResolver } from './source';
import type { LibraryModuleSource } from '../library/resolve';

export interface ModuleSpec extends SourceSpec {
  module: string;
  /** Interpreter to ask (`--python`); otherwise the pipeline's discovery (virtualenv, conda, PATH). */
  python?: string;
}

async function lookUp(spec: ModuleSpec, cwd: string): Promise<LibraryModuleSource> {
  // Loaded on demand: plain `qdq check FILE` does not pay for interpreter discovery.
  const { resolveLibraryModule } = await import('../library/resolve');
  const { QdqError } = await import('../common/errors');
  try {
    return await resolveLibraryModule(spec.module, { python: spec.python, cwd });
  } catch (e) {
    if (e instanceof QdqError) throw new InputError(`${e.message}\n  fix: ${e.hint}${e.detail ? `\n${e.detail}` : ''}`);
    throw e;
  }
}

/** Source resolver for `{module}` specs: the installed file's text, named by the module. */
export function libraryModuleResolver(cwd = process.cwd()): SourceResolver {
  return async (spec: SourceSpec): Promise<ModelSource | undefined> => {
    if (spec.module === undefined || spec.file !== undefined) return undefined;
    const found = await lookUp(spec as ModuleSpec, cwd);
    // Diagnostics name the installed file, so `path:line:col` opens it in a terminal or editor.
    return { path: found.file, text: found.text, display: found.file, validUtf8: true };
  };
}

let registered = false;

/** Called once by the CLI: `--module` specs resolve through the interpreter. */
export function registerLibraryModules(): void {
  if (registered) return;
  registered = true;
  registerSourceResolver(libraryModuleResolver());
}

export interface ModuleQuantizeResult {
  /** The patched source, exactly what patch-modules runs. */
  text: string;
  /** One line for stderr, plus one line per TensorRT fix applied. */
  summary: string;
  details: string[];
}

/** `qdq quantize --module M`: the library source through patchLibrarySource; never written anywhere. */
export async function quantizeLibraryModule(
  spec: ModuleSpec & { write?: boolean; trtVersion?: string },
  cwd = process.cwd(),
): Promise<ModuleQuantizeResult> {
  if (spec.write) {
    throw new InputError(
      `--write cannot be used with --module: qdq never writes into installed packages (${spec.module}); ` +
        'add it to [tool.qdq] patch-modules to run the patched code in memory, or drop --write to read it',
    );
  }
  const found = await lookUp(spec, cwd);
  const { layersImportedBy, libraryPatchOrConfigError } = await import('../library/patch');
  const { QdqError } = await import('../common/errors');
  let patch;
  try {
    const externalLayers = await layersImportedBy(found.file, found.text);
    patch = libraryPatchOrConfigError(found.module, found.text, { trtVersion: spec.trtVersion, externalLayers });
  } catch (e) {
    if (e instanceof QdqError) throw new InputError(`${e.message}\n  fix: ${e.hint}`);
    throw e;
  }
  const s = patch.sites;
  return {
    text: patch.text,
    summary:
      `${found.module}: ${s.layers} layers, ${s.matmulOperands} matmul operands, ${s.residualInputs} residual inputs quantized, ` +
      `${patch.fixes.length} TensorRT fix${patch.fixes.length === 1 ? '' : 'es'} (read from ${found.file} with ${found.python}; ` +
      'nothing written: this is the source [tool.qdq] patch-modules runs in memory)',
    details: patch.fixes,
  };
}
