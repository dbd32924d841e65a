// textDocument/codeAction and codeAction/resolve.
//
// Listing is cheap: it reads the model index (already built for diagnostics) to decide which actions apply and
// returns them without edits; codeAction/resolve then runs the fix engine for the chosen one. Clients that
// cannot resolve edits get them computed at listing time instead.
import * as fs from 'fs';
import * as path from 'path';
import { lsp } from './lsp';
import type { CodeAction, CodeActionParams, Diagnostic, Position, Range, TextEdit, WorkspaceEdit } from './lsp';
import type { Layer, ModelIndex, ModuleClass, Op, Tree } from '../analysis';
import { quantizeFile, unquantizeFile, keepFloat, keepFp32, helperFileText, quantizableSites } from '../fixes';
import type { QuantizableSites } from '../fixes';
import type { QdqDocument } from './documents';
import type { DiagnosticData } from './diagnostics';
import { uriToPath } from './hover';
import { CodeActionKinds, Commands, DIAGNOSTIC_SOURCE } from '../protocol/lsp_ext';

export type FixScope = { kind: 'file' } | { kind: 'class'; name: string } | { kind: 'site'; offset: number };
export type FixOperation = 'quantize' | 'unquantize' | 'keepFloat' | 'keepFp32';

/** CodeAction.data of the actions that codeAction/resolve completes. */
export interface ActionData {
  qdq: 1;
  uri: string;
  version: number;
  op: FixOperation;
  scope: FixScope;
}

/** What the client can do with a WorkspaceEdit (from its initialize capabilities). */
export interface EditCapabilities {
  documentChanges: boolean;
  createFiles: boolean;
  resolveEdits: boolean;
}

export const HELPER_FILE = 'qdq_quant.py';

/** The helper module's source: the backend's copy is the single source of truth (DESIGN.md). */
export function helperSource(): string {
  return helperFileText();
}

/** URI of qdq_quant.py next to the document, spelled like the document's own URI. */
export function helperUri(docUri: string): string {
  return docUri.slice(0, docUri.lastIndexOf('/') + 1) + HELPER_FILE;
}

const WEIGHTED = new Set(['linear', 'conv', 'convtranspose']);

function overlapsLines(a: Range, b: Range): boolean {
  return a.start.line <= b.end.line && b.start.line <= a.end.line;
}
function containsPos(r: Range, p: Position): boolean {
  return (
    (p.line > r.start.line || (p.line === r.start.line && p.character >= r.start.character)) &&
    (p.line < r.end.line || (p.line === r.end.line && p.character <= r.end.character))
  );
}

interface LayerAt {
  layer: Layer;
  owner?: ModuleClass;
}
interface OpAt {
  op: Op;
  owner?: ModuleClass;
}

function layersOnLines(index: ModelIndex, range: Range): LayerAt[] {
  const out: LayerAt[] = [];
  for (const owner of index.classes)
    for (const layer of owner.layers)
      if (WEIGHTED.has(layer.kind) && overlapsLines(layer.callRange, range)) out.push({ layer, owner });
  for (const f of index.functions)
    for (const layer of f.layers)
      if (WEIGHTED.has(layer.kind) && overlapsLines(layer.callRange, range)) out.push({ layer });
  // The innermost first when calls nest (a layer built inside a Sequential on the same line).
  return out.sort((a, b) => a.layer.callSpan.start - b.layer.callSpan.start);
}

/** Ops on the selected lines that the fix engine would quantize, or that carry quantizers to remove. */
function opsOnLines(index: ModelIndex, sites: QuantizableSites, removable: (op: Op) => boolean, range: Range): OpAt[] {
  const out: OpAt[] = [];
  const relevant = (op: Op) => sites.opOperands(op).length > 0 || removable(op);
  for (const owner of index.classes)
    for (const op of owner.ops) if (relevant(op) && overlapsLines(op.range, range)) out.push({ op, owner });
  for (const f of index.functions)
    for (const op of f.ops) if (relevant(op) && overlapsLines(op.range, range)) out.push({ op });
  return out;
}

function classAt(index: ModelIndex, pos: Position): ModuleClass | undefined {
  let best: ModuleClass | undefined;
  for (const c of index.classes)
    if (c.isModule && containsPos(c.range, pos) && (!best || c.span.start > best.span.start)) best = c;
  return best;
}

/**
 * Ops whose operands carry quantizers qdq generated (`# qdq` declarations): the only ones the unquantize pass
 * removes. pytorch-quantization's own TensorQuantizers are the user's and are left alone.
 */
function removableOps(index: ModelIndex): (op: Op) => boolean {
  const generated = new Set(index.classes.flatMap((c) => c.quantizers.filter((q) => q.generated).map((q) => q.name)));
  return (op) => op.operandQuantizers.some((q) => q !== null && generated.has(q));
}

function classHasWork(
  c: ModuleClass,
  sites: QuantizableSites,
  removable: (op: Op) => boolean,
): { quantize: boolean; remove: boolean } {
  let quantize = false;
  let remove = c.quantizers.some((q) => q.generated);
  for (const l of c.layers) {
    if (!WEIGHTED.has(l.kind)) continue;
    if (l.wrapped === null) quantize ||= sites.layerWraps(l, 'class');
    else remove = true;
  }
  for (const op of c.ops) {
    if (sites.opOperands(op).length) quantize = true;
    if (removable(op)) remove = true;
  }
  return { quantize, remove };
}

/**
 * What the file-wide quantize / remove actions (and the palette commands, through qdq/fileState) would change in
 * the document version `index` was built from (`tree`, `text`).
 */
export function fileHasWork(index: ModelIndex, tree: Tree, text: string): { quantize: boolean; remove: boolean } {
  const sites = quantizableSites(index, tree, text);
  const removable = removableOps(index);
  let quantize = false;
  let remove = index.imports.qdqImportLine !== undefined;
  for (const c of index.classes) {
    const w = classHasWork(c, sites, removable);
    quantize ||= w.quantize;
    remove ||= w.remove;
  }
  for (const f of index.functions)
    for (const l of f.layers) {
      if (!WEIGHTED.has(l.kind)) continue;
      if (l.wrapped === null) quantize ||= sites.layerWraps(l, 'file');
      else remove = true;
    }
  return { quantize, remove };
}

function layerLabel(l: Layer): string {
  return l.attr ? `${l.attr} (${l.ctor})` : l.ctor;
}

function opLabel(op: Op): string {
  if (op.kind === 'add' || op.kind === 'iadd') return `residual add (${op.callee})`;
  return op.callee;
}

/** Lists the applicable actions for the request (without edits when the client resolves them). */
/** Quick fixes of qdq diagnostics (their edits travel in Diagnostic.data), and the missing-helper fix. */
function quickFixes(doc: QdqDocument, params: CodeActionParams, caps: EditCapabilities): CodeAction[] {
  const actions: CodeAction[] = [];
  for (const d of params.context.diagnostics) {
    if (d.source !== DIAGNOSTIC_SOURCE) continue;
    const data = d.data as DiagnosticData | undefined;
    if (data?.fix && data.version === doc.version) {
      const unsafe = data.fix.safety === 'unsafe';
      actions.push({
        title: unsafe ? `${data.fix.title} (changes results: review)` : data.fix.title,
        kind: lsp.CodeActionKind.QuickFix,
        diagnostics: [d],
        isPreferred: !unsafe,
        edit: caps.documentChanges
          ? { documentChanges: [lsp.TextDocumentEdit.create({ uri: doc.uri, version: doc.version }, data.fix.edits)] }
          : { changes: { [doc.uri]: data.fix.edits } },
      });
    }
  }
  // qdq_quant.py missing next to a quantized file: add it again.
  for (const d of params.context.diagnostics) {
    const data = d.data as { missingHelper?: string } | undefined;
    if (d.source !== DIAGNOSTIC_SOURCE || !data?.missingHelper) continue;
    const fix = buildWorkspaceEdit(doc, { edits: [], helperNeeded: true }, caps);
    actions.push({
      title: `Add ${HELPER_FILE} next to this file`,
      kind: lsp.CodeActionKind.QuickFix,
      diagnostics: [d],
      isPreferred: true,
      ...fix,
    });
  }
  return actions;
}

export function listCodeActions(doc: QdqDocument, params: CodeActionParams, caps: EditCapabilities): CodeAction[] {
  const only = params.context.only;
  const wants = (kind: string) => !only || only.some((o) => kind === o || kind.startsWith(o + '.'));
  const actions: CodeAction[] = [];

  if (wants(lsp.CodeActionKind.QuickFix)) actions.push(...quickFixes(doc, params, caps));

  const index = doc.getIndex();
  // The fix engine says which sites its quantize pass wraps; this module only renders that.
  const sites = quantizableSites(index, doc.getTree(), doc.getText());
  const removable = removableOps(index);
  const pending: { title: string; kind: string; data: ActionData; preferred?: boolean }[] = [];
  const add = (title: string, kind: string, op: FixOperation, scope: FixScope, preferred?: boolean) => {
    if (wants(kind))
      pending.push({ title, kind, data: { qdq: 1, uri: doc.uri, version: doc.version, op, scope }, preferred });
  };

  // 2. The site(s) on the selected lines.
  for (const { layer } of layersOnLines(index, params.range)) {
    const offset = layer.callSpan.start;
    if (layer.wrapped === null) {
      if (sites.layerWraps(layer, 'site'))
        add(`Quantize this layer: ${layerLabel(layer)}`, CodeActionKinds.quantize, 'quantize', {
          kind: 'site',
          offset,
        });
      add(`Keep ${layerLabel(layer)} in float`, CodeActionKinds.keepFloat, 'keepFloat', { kind: 'site', offset });
    } else {
      if (layer.wrapped === 'quant')
        add(`Keep ${layerLabel(layer)} in float`, CodeActionKinds.keepFloat, 'keepFloat', { kind: 'site', offset });
      add(`Remove quantizers: ${layerLabel(layer)}`, CodeActionKinds.remove, 'unquantize', { kind: 'site', offset });
    } // TensorRT 11's strongly typed export runs kept-float layers in FP16 unless marked FP32 (fixes/keepFp32.ts).
    if (!layer.keepFp32)
      add(`Keep ${layerLabel(layer)} in FP32`, CodeActionKinds.keepFloat, 'keepFp32', { kind: 'site', offset });
  }
  for (const { op } of opsOnLines(index, sites, removable, params.range)) {
    const offset = op.span.start;
    if (sites.opOperands(op).length)
      add(`Quantize this op: ${opLabel(op)}`, CodeActionKinds.quantize, 'quantize', { kind: 'site', offset });
    if (removable(op))
      add(`Remove quantizers: ${opLabel(op)}`, CodeActionKinds.remove, 'unquantize', { kind: 'site', offset });
  }

  // 3. The enclosing class, 4. the file.
  const klass = classAt(index, params.range.start);
  if (klass) {
    const work = classHasWork(klass, sites, removable);
    if (work.quantize)
      add(`Quantize class ${klass.name}`, CodeActionKinds.quantize, 'quantize', { kind: 'class', name: klass.name });
    if (work.remove)
      add(`Remove quantizers from class ${klass.name}`, CodeActionKinds.remove, 'unquantize', {
        kind: 'class',
        name: klass.name,
      });
    // Dynamic INT8 rewrites the exported model's weight MatMul/Gemm nodes (nn.Linear), so it is offered on classes
    // that build Linear layers. It runs the project's model (the backend refuses in an untrusted workspace).
    if (klass.layers.some((l) => l.kind === 'linear') && wants(CodeActionKinds.dynamic)) {
      actions.push({
        title: `Quantize ${klass.name} dynamically for CPU (dynamic INT8 ONNX export)`,
        kind: CodeActionKinds.dynamic,
        command: { title: 'QDQ: Export Dynamic INT8', command: Commands.exportDynamic, arguments: [{ uri: doc.uri }] },
      });
    }
  }
  const fileWork = fileHasWork(index, doc.getTree(), doc.getText());
  if (fileWork.quantize) {
    add('Quantize file', CodeActionKinds.quantize, 'quantize', { kind: 'file' });
    // Only on explicit request (source.fixAll.qdq, or the Source Action menu's `source`): a generic
    // "source.fixAll" on save must not quantize a model.
    if (only?.some((o) => o === CodeActionKinds.fixAll || o === 'source'))
      add('Quantize file', CodeActionKinds.fixAll, 'quantize', { kind: 'file' });
  }
  if (fileWork.remove) add('Remove quantizers from file', CodeActionKinds.remove, 'unquantize', { kind: 'file' });

  for (const p of pending) {
    const action: CodeAction = { title: p.title, kind: p.kind, data: p.data };
    if (!caps.resolveEdits) {
      try {
        Object.assign(action, resolveAction(doc, p.data, caps));
      } catch {
        continue; // an action whose edit cannot be computed is not offered
      }
    }
    actions.push(action);
  }
  return actions;
}

export function isActionData(x: unknown): x is ActionData {
  return !!x && typeof x === 'object' && (x as ActionData).qdq === 1 && typeof (x as ActionData).uri === 'string';
}

export interface FixResult {
  edits: TextEdit[];
  helperNeeded: boolean;
}

/** Runs the fix engine for one action on the current text. */
export function computeFix(text: string, op: FixOperation, scope: FixScope): FixResult {
  if (op === 'quantize') {
    const r = quantizeFile(text, { scope });
    return { edits: r.edits, helperNeeded: r.helperNeeded };
  }
  if (op === 'keepFp32') {
    if (scope.kind !== 'site') throw new Error('keep in FP32 applies to one layer');
    const r = keepFp32(text, scope.offset);
    return { edits: r.edits, helperNeeded: /\bqdq_quant\./.test(r.text) };
  }
  if (op === 'keepFloat') {
    if (scope.kind !== 'site') throw new Error('keep in float applies to one layer');
    const r = keepFloat(text, scope.offset);
    return { edits: r.edits, helperNeeded: /\bqdq_quant\./.test(r.text) };
  }
  const r = unquantizeFile(text, scope);
  return { edits: r.edits, helperNeeded: false };
}

/** The WorkspaceEdit for a fix: the document's edits, plus qdq_quant.py next to it when it is needed and absent. */
export function buildWorkspaceEdit(
  doc: QdqDocument,
  fix: FixResult,
  caps: EditCapabilities,
): { edit: WorkspaceEdit; command?: CodeAction['command'] } {
  const docPath = uriToPath(doc.uri);
  const helperMissing =
    fix.helperNeeded && doc.uri.startsWith('file:') && !fs.existsSync(path.join(path.dirname(docPath), HELPER_FILE));
  if (caps.documentChanges) {
    const changes: WorkspaceEdit['documentChanges'] = [];
    if (helperMissing && caps.createFiles) {
      const uri = helperUri(doc.uri);
      changes.push(lsp.CreateFile.create(uri, { ignoreIfExists: true }));
      changes.push(
        lsp.TextDocumentEdit.create(lsp.OptionalVersionedTextDocumentIdentifier.create(uri, null), [
          lsp.TextEdit.insert({ line: 0, character: 0 }, helperSource()),
        ]),
      );
    }
    changes.push(lsp.TextDocumentEdit.create({ uri: doc.uri, version: doc.version }, fix.edits));
    const out: { edit: WorkspaceEdit; command?: CodeAction['command'] } = { edit: { documentChanges: changes } };
    if (helperMissing && !caps.createFiles)
      out.command = {
        title: `Add ${HELPER_FILE}`,
        command: Commands.writeHelperFile,
        arguments: [{ dir: path.dirname(docPath) }],
      };
    return out;
  }
  const out: { edit: WorkspaceEdit; command?: CodeAction['command'] } = { edit: { changes: { [doc.uri]: fix.edits } } };
  if (helperMissing)
    out.command = {
      title: `Add ${HELPER_FILE}`,
      command: Commands.writeHelperFile,
      arguments: [{ dir: path.dirname(docPath) }],
    };
  return out;
}

/** codeAction/resolve: the edit (and command) of a listed action, for the document as it is now. */
export function resolveAction(
  doc: QdqDocument,
  data: ActionData,
  caps: EditCapabilities,
): Pick<CodeAction, 'edit' | 'command'> {
  if (data.version !== doc.version && data.scope.kind === 'site') {
    // The offset names a place in an older text; better no edit than an edit in the wrong place.
    throw new lsp.ResponseError(
      lsp.LSPErrorCodes.ContentModified,
      'The document changed since the code actions were listed; ask for them again.',
    );
  }
  const fix = computeFix(doc.getText(), data.op, data.scope);
  return buildWorkspaceEdit(doc, fix, caps);
}

/** Diagnostics passed in by the client that belong to qdq (for tests and logging). */
export function qdqDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return ds.filter((d) => d.source === DIAGNOSTIC_SOURCE);
}
