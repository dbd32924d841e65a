// Library models (HF transformers and the like): the source of an installed module goes through exactly the
// passes a user's own file gets (`qdq fix`, then `qdq quantize`), and the result is what the backend runs in
// memory. Text in, text out; finding and reading the module is resolve.ts's job (given the module's file, the
// layer classes it imports are read from beside it, as for a user's file).
import { quantizeFile } from '../fixes';
import { importedWeightedLayers } from '../fixes/importedLayers';
import type { WeightedNames } from '../analysis/weightedCalls';
import { applyTrtFixes } from '../fixes/trtFixes';
import { QdqError } from '../common/errors';

export interface LibraryPatch {
  module: string;
  /** The source that will run: TensorRT fixes applied, quantizers inserted. */
  text: string;
  /** One line per TensorRT fix applied (`TRT001 ...`). */
  fixes: string[];
  sites: SiteCounts;
}

export interface SiteCounts {
  /** Weighted layers wrapped with qdq_quant.quant(...). */
  layers: number;
  /** Activation quantizers on matmul/bmm/einsum operands. */
  matmulOperands: number;
  /** Activation quantizers on residual-add inputs. */
  residualInputs: number;
}

/** What the passes must find in a module we know, so a library version that moved its code fails loudly. */
interface Expectation {
  minimum: SiteCounts;
  /** TensorRT fixes that must have been applied (rule codes). */
  fixes: string[];
  why: string;
}

// The counts follow the QDQBERT placement (quantization-toolkits.md section 5): q/k/v/output/intermediate
// Linear layers, both operands of the score and context matmuls, the residual inputs before LayerNorm.
const KNOWN: Record<string, Expectation> = {
  'transformers.models.bert.modeling_bert': {
    minimum: { layers: 6, matmulOperands: 4, residualInputs: 2 },
    fixes: [],
    why: 'BERT self-attention (query/key/value, score and context matmuls) and the two residual LayerNorms',
  },
  'transformers.models.roberta.modeling_roberta': {
    minimum: { layers: 6, matmulOperands: 4, residualInputs: 2 },
    fixes: ['TRT001'],
    why: 'RoBERTa attention as BERT, plus the integer cumsum of create_position_ids_from_input_ids',
  },
  'transformers.models.distilbert.modeling_distilbert': {
    minimum: { layers: 6, matmulOperands: 4, residualInputs: 2 },
    fixes: [],
    why: 'DistilBERT multi-head attention (q/k/v/out_lin, score and context matmuls) and its residual LayerNorms',
  },
  'transformers.models.vit.modeling_vit': {
    minimum: { layers: 6, matmulOperands: 4, residualInputs: 0 },
    fixes: [],
    why: 'ViT self-attention (query/key/value, score and context matmuls) and the MLP',
  },
};

export class LibraryPatchError extends Error {
  constructor(
    message: string,
    readonly hint: string,
    /** `empty`: the passes found nothing to quantize; `mismatch`: a known module lacks what it should have. */
    readonly reason: 'empty' | 'mismatch' = 'mismatch',
  ) {
    super(message);
    this.name = 'LibraryPatchError';
  }
}

/** patchLibrarySource for the pipeline and the CLI: a version mismatch is a `config` error (message + hint, no stack). */
export function libraryPatchOrConfigError(module: string, source: string, opts: PatchOptions = {}): LibraryPatch {
  try {
    return patchLibrarySource(module, source, opts);
  } catch (e) {
    if (e instanceof LibraryPatchError) throw new QdqError('config', e.message, e.hint);
    throw e;
  }
}

export function countSites(text: string): SiteCounts {
  const layers = (text.match(/\bqdq_quant\.quant\(/g) ?? []).length;
  let matmulOperands = 0;
  let residualInputs = 0;
  // Declarations are whole `# qdq` lines: `self.<op><n>_<role>_quantizer = qdq_quant.TensorQuantizer()  # qdq`.
  for (const m of text.matchAll(/\.(\w+)_quantizer = qdq_quant\.TensorQuantizer\(/g)) {
    const name = m[1];
    if (/^(matmul|bmm|einsum|linear)\d/.test(name)) matmulOperands++;
    else if (/^(add|iadd)\d/.test(name)) residualInputs++;
  }
  return { layers, matmulOperands, residualInputs };
}

export interface PatchOptions {
  trtVersion?: string;
  /** Layer classes and factories the module imports (timm's Linear): layersImportedBy its file on disk. */
  externalLayers?: WeightedNames;
}

/** The layers a library module imports from beside it, looked up from its file (read asynchronously). */
export async function layersImportedBy(file: string | undefined, source: string): Promise<WeightedNames | undefined> {
  return file ? importedWeightedLayers(file, source) : undefined;
}

/** Runs the TensorRT fixes and the quantize pass over a library module's source, and checks the result. */
export function patchLibrarySource(module: string, source: string, opts: PatchOptions = {}): LibraryPatch {
  const fixed = applyTrtFixes(source, { trtVersion: opts.trtVersion });
  const { externalLayers } = opts;
  // Library packages use relative imports, but the backend serves qdq_quant as a top-level module.
  const quantized = quantizeFile(fixed.text, { scope: { kind: 'file' }, relativeImport: false, externalLayers });
  const sites = countSites(quantized.text);
  const patch: LibraryPatch = { module, text: quantized.text, fixes: fixed.applied, sites };
  checkExpectations(patch);
  return patch;
}

function checkExpectations(patch: LibraryPatch): void {
  const expected = KNOWN[patch.module];
  const { sites } = patch;
  if (!expected) {
    if (sites.layers + sites.matmulOperands + sites.residualInputs === 0) {
      throw new LibraryPatchError(
        `${patch.module}: the quantize pass found nothing to quantize (no nn.Linear/Conv layers, matmuls or residual adds)`,
        'check that this module defines the model classes (not only re-exports them); patch the module that does',
        'empty',
      );
    }
    return;
  }
  const short: string[] = [];
  for (const key of Object.keys(expected.minimum) as (keyof SiteCounts)[]) {
    if (sites[key] < expected.minimum[key])
      short.push(`${key}: found ${sites[key]}, expected at least ${expected.minimum[key]}`);
  }
  const fixCodes = new Set(patch.fixes.map((line) => line.split(/\s/)[0]));
  for (const code of expected.fixes) if (!fixCodes.has(code)) short.push(`TensorRT fix ${code} was not applied`);
  if (short.length) {
    throw new LibraryPatchError(
      `${patch.module}: the installed version does not match what qdq's passes expect (${expected.why}): ${short.join('; ')}`,
      `run \`qdq quantize --module ${patch.module}\` to read what was produced, and pin a transformers version qdq supports (see README)`,
    );
  }
}
