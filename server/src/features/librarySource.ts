// "Show quantized source" on an import of a library model: which installed modules an import line names
// (pure text scan), the code action that offers them, and the `qdq/quantizedModuleSource` request that
// returns what [tool.qdq] patch-modules would run (server/src/library: TensorRT fixes + quantizers).
// Locating the module runs the Python interpreter (importlib's find_spec, which does not execute the module),
// so the request is refused in an untrusted workspace; the answer says which interpreter was asked.
import * as path from 'path';
import { lsp } from './lsp';
import type { CodeAction, CodeActionParams, Range } from './lsp';
import type { QdqDocument } from './documents';
import { uriToPath } from './hover';
import {
  ShowQuantizedSourceCommand,
  ShowQuantizedSourceKind,
  type QuantizedModuleSourceParams,
  type QuantizedModuleSourceResult,
} from '../protocol/lsp_ext';

export interface LibraryImport {
  module: string;
  /** The import statement's lines (0-based, inclusive). */
  startLine: number;
  endLine: number;
}

const MODELING_MODULE = /^transformers\.models\.\w+\.modeling_\w+$/;

// Classes re-exported by `transformers` (or `transformers.models.<x>`) whose code lives in a module qdq knows.
// Only model classes: configs and tokenizers live in other modules. Sub-families with their own modules
// (ViTMAE, ViTHybrid, RobertaPreLayerNorm, ...) do not match the suffix pattern.
const CLASS_FAMILIES: [prefix: string, module: string][] = [
  ['DistilBert', 'transformers.models.distilbert.modeling_distilbert'],
  ['Roberta', 'transformers.models.roberta.modeling_roberta'],
  ['Bert', 'transformers.models.bert.modeling_bert'],
  ['ViT', 'transformers.models.vit.modeling_vit'],
];
const MODEL_SUFFIX = /^(Model|PreTrainedModel|LMHeadModel|For[A-Z]\w*)$/;

/** The module that defines an exported model class, or null for names qdq does not map. */
export function moduleForClass(name: string): string | null {
  for (const [prefix, module] of CLASS_FAMILIES) {
    if (name.startsWith(prefix) && MODEL_SUFFIX.test(name.slice(prefix.length))) return module;
  }
  return null;
}

function lineOf(text: string, offset: number): number {
  let line = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/** Library modules named by the import statements of a Python source (pure). */
export function libraryImports(text: string): LibraryImport[] {
  const found: LibraryImport[] = [];
  const add = (module: string, start: number, end: number) => {
    const startLine = lineOf(text, start);
    if (!found.some((f) => f.module === module && f.startLine === startLine))
      found.push({ module, startLine, endLine: lineOf(text, end) });
  };
  // `from transformers[.x] import A, B` or `from ... import (\n A,\n B,\n)`, at any indentation.
  const fromImport = /^[ \t]*from[ \t]+(transformers(?:\.\w+)*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)/gm;
  for (const m of text.matchAll(fromImport)) {
    const start = m.index ?? 0;
    const end = start + m[0].length;
    const from = m[1];
    if (MODELING_MODULE.test(from)) {
      add(from, start, end);
      continue;
    }
    const names = m[2]
      .replace(/[()\\]/g, ' ')
      .split(',')
      .map((n) => n.trim().split(/\s+/)[0])
      .filter(Boolean);
    for (const name of names) {
      // `from transformers.models.bert import modeling_bert` names the module itself.
      const sub = `${from}.${name}`;
      const module = MODELING_MODULE.test(sub) ? sub : moduleForClass(name);
      if (module) add(module, start, end);
    }
  }
  const plainImport = /^[ \t]*import[ \t]+([^\n#]*)/gm;
  for (const m of text.matchAll(plainImport)) {
    for (const part of m[1].split(',')) {
      const module = part.trim().split(/\s+/)[0];
      if (MODELING_MODULE.test(module)) add(module, m.index ?? 0, (m.index ?? 0) + m[0].length);
    }
  }
  return found.sort((a, b) => a.startLine - b.startLine);
}

function overlaps(imp: LibraryImport, range: Range): boolean {
  return imp.startLine <= range.end.line && imp.endLine >= range.start.line;
}

/** Code actions for the import lines in the requested range; disabled (with the reason) when untrusted. */
export function libraryCodeActions(doc: QdqDocument, params: CodeActionParams, trusted: boolean): CodeAction[] {
  const only = params.context.only;
  if (only && !only.some((k) => ShowQuantizedSourceKind === k || ShowQuantizedSourceKind.startsWith(k + '.')))
    return [];
  return libraryImports(doc.getText())
    .filter((imp) => overlaps(imp, params.range))
    .map((imp): CodeAction => {
      const args: QuantizedModuleSourceParams = { uri: doc.uri, module: imp.module };
      const action: CodeAction = {
        title: `Show quantized source of ${imp.module}`,
        kind: ShowQuantizedSourceKind,
        command: {
          title: `Show quantized source of ${imp.module}`,
          command: ShowQuantizedSourceCommand,
          arguments: [args],
        },
      };
      if (!trusted)
        action.disabled = {
          reason: 'Workspace not trusted: locating the installed module runs the Python interpreter',
        };
      return action;
    });
}

export interface LibrarySourceContext {
  trusted(): boolean;
  /** The interpreter setting or the one the client selected; undefined means discovery. */
  python(): string | undefined;
  log(line: string): void;
}

/** The request handler: resolve through the interpreter, patch in memory, answer with the text and who was asked. */
export async function quantizedModuleSource(
  params: QuantizedModuleSourceParams,
  ctx: LibrarySourceContext,
): Promise<QuantizedModuleSourceResult> {
  if (!params || typeof params.module !== 'string') {
    throw new lsp.ResponseError(lsp.ErrorCodes.InvalidParams, 'qdq/quantizedModuleSource needs {module: string}');
  }
  if (!ctx.trusted()) {
    throw new lsp.ResponseError(
      lsp.ErrorCodes.InvalidRequest,
      `Workspace not trusted: showing the quantized source of ${params.module} runs the Python interpreter to locate it. Trust the workspace to use it.`,
    );
  }
  // Loaded on demand: the pipeline's interpreter discovery is not needed for analysis.
  const { resolveLibraryModule } = await import('../library/resolve');
  const { layersImportedBy, libraryPatchOrConfigError } = await import('../library/patch');
  const { QdqError } = await import('../pipeline/errors');
  const cwd = params.uri && params.uri.startsWith('file:') ? path.dirname(uriToPath(params.uri)) : undefined;
  try {
    const found = await resolveLibraryModule(params.module, { python: ctx.python(), cwd });
    const externalLayers = await layersImportedBy(found.file, found.text);
    const patch = libraryPatchOrConfigError(found.module, found.text, { externalLayers });
    ctx.log(`qdq: quantized source of ${found.module} from ${found.file} (interpreter ${found.python})`);
    return {
      module: found.module,
      file: found.file,
      python: found.python,
      text: patch.text,
      fixes: patch.fixes,
      sites: patch.sites,
      message:
        `Quantized source of ${found.module} (read-only; site-packages is not changed), located with ${found.python} ` +
        `in ${found.file}: ${patch.sites.layers} layers and ${patch.sites.matmulOperands + patch.sites.residualInputs} activation sites quantized` +
        `${patch.fixes.length ? `, ${patch.fixes.length} TensorRT fix${patch.fixes.length === 1 ? '' : 'es'}` : ''}. ` +
        'Add it to [tool.qdq] patch-modules to run this code in memory.',
    };
  } catch (e) {
    if (e instanceof QdqError)
      throw new lsp.ResponseError(lsp.ErrorCodes.InvalidRequest, `${e.message}. ${e.hint}`, { kind: e.kind });
    throw e;
  }
}
