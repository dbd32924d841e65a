// Import aliases and canonical names: `nn.Conv2d`, `torch.matmul`, `F.linear` whatever the file calls them.
import type { SyntaxNode } from './parser';
import type { ImportInfo, LayerKind } from './types';

const LAYER_KINDS: Record<string, LayerKind> = {};
function kinds(kind: LayerKind, names: string[]): void {
  for (const n of names) LAYER_KINDS[n] = kind;
}
kinds('linear', ['Linear', 'LazyLinear', 'Bilinear']);
kinds('conv', ['Conv1d', 'Conv2d', 'Conv3d', 'LazyConv1d', 'LazyConv2d', 'LazyConv3d']);
kinds('convtranspose', [
  'ConvTranspose1d',
  'ConvTranspose2d',
  'ConvTranspose3d',
  'LazyConvTranspose1d',
  'LazyConvTranspose2d',
  'LazyConvTranspose3d',
]);
kinds('norm', [
  'BatchNorm1d',
  'BatchNorm2d',
  'BatchNorm3d',
  'SyncBatchNorm',
  'LayerNorm',
  'GroupNorm',
  'InstanceNorm1d',
  'InstanceNorm2d',
  'InstanceNorm3d',
  'LocalResponseNorm',
  'RMSNorm',
]);
kinds('activation', [
  'ReLU',
  'ReLU6',
  'GELU',
  'SiLU',
  'Sigmoid',
  'Tanh',
  'Softmax',
  'LogSoftmax',
  'Softmin',
  'Hardswish',
  'Hardsigmoid',
  'Hardtanh',
  'LeakyReLU',
  'PReLU',
  'ELU',
  'SELU',
  'CELU',
  'Mish',
  'Softplus',
  'Softsign',
  'GLU',
  'Tanhshrink',
  'Threshold',
]);
kinds('pool', [
  'MaxPool1d',
  'MaxPool2d',
  'MaxPool3d',
  'AvgPool1d',
  'AvgPool2d',
  'AvgPool3d',
  'AdaptiveAvgPool1d',
  'AdaptiveAvgPool2d',
  'AdaptiveAvgPool3d',
  'AdaptiveMaxPool1d',
  'AdaptiveMaxPool2d',
  'AdaptiveMaxPool3d',
  'LPPool1d',
  'LPPool2d',
  'FractionalMaxPool2d',
  'FractionalMaxPool3d',
]);

/** Layers qdq wraps with qdq_quant.quant(...): the weighted ops TensorRT runs in INT8 (design contract item 2). */
export const WEIGHTED_LAYERS = new Set([
  'nn.Linear',
  'nn.Conv1d',
  'nn.Conv2d',
  'nn.Conv3d',
  'nn.ConvTranspose1d',
  'nn.ConvTranspose2d',
  'nn.ConvTranspose3d',
]);

export const CONTAINERS = new Set(['nn.Sequential', 'nn.ModuleList', 'nn.ModuleDict']);

export function layerKind(canonical: string): LayerKind {
  return LAYER_KINDS[canonical.slice(3)] ?? 'other';
}

/** `nn.Xyz` with a capitalised class name: a layer (module) constructor. */
export function isLayerCtor(canonical: string): boolean {
  if (!canonical.startsWith('nn.')) return false;
  const c = canonical.charCodeAt(3);
  return c >= 65 && c <= 90 && canonical.indexOf('.', 3) < 0;
}

export const POOL_FUNCTIONS = new Set([
  'F.max_pool1d',
  'F.max_pool2d',
  'F.max_pool3d',
  'F.avg_pool1d',
  'F.avg_pool2d',
  'F.avg_pool3d',
  'F.adaptive_avg_pool1d',
  'F.adaptive_avg_pool2d',
  'F.adaptive_avg_pool3d',
  'F.adaptive_max_pool1d',
  'F.adaptive_max_pool2d',
  'F.adaptive_max_pool3d',
  'torch.max_pool2d',
  'torch.avg_pool1d',
  'torch.adaptive_avg_pool1d',
  'F.lp_pool2d',
]);

export function emptyImports(): ImportInfo {
  return {
    torch: [],
    nn: [],
    functional: [],
    nnNames: {},
    funcNames: {},
    usesRelativeImports: false,
    insertAfterLine: -1,
  };
}

/** Collect import aliases from top-level statements (and one level into try/if blocks). */
export function scanImports(root: SyntaxNode, topLevel?: SyntaxNode[], text?: string, starts?: number[]): ImportInfo {
  const info = emptyImports();
  let lastImportRow = -1;
  let docOrFutureRow = -1;
  let firstStatementRow = -1;
  const children = topLevel ?? root.namedChildren;
  for (let i = 0; i < children.length; i++) {
    const st = children[i];
    // With the text at hand, statements that cannot be imports/try/if are skipped without native calls.
    if (text && starts && firstStatementRow >= 0 && !MAYBE_IMPORT.test(text.slice(starts[i], starts[i] + 6))) continue;
    if (st.type === 'comment') continue;
    const isFirst = firstStatementRow < 0;
    if (isFirst) firstStatementRow = st.startPosition.row;
    if (isFirst && isDocstring(st)) docOrFutureRow = st.endPosition.row;
    if (st.type === 'import_statement' || st.type === 'import_from_statement') {
      const isQdq = /^(import qdq_quant|from \.* ?import qdq_quant)\b/.test(st.text);
      if (isQdq && /#\s*qdq\s*$/.test(lineTail(root, st))) info.qdqImportLine = st.startPosition.row;
      else lastImportRow = st.endPosition.row;
      recordImport(st, info);
    } else if (st.type === 'future_import_statement') {
      docOrFutureRow = st.endPosition.row;
    } else if (st.type === 'try_statement' || st.type === 'if_statement') {
      for (const block of st.namedChildren) scanNested(block, info, 0);
    }
  }
  if (lastImportRow >= 0) info.insertAfterLine = lastImportRow;
  else if (docOrFutureRow >= 0) info.insertAfterLine = docOrFutureRow;
  else info.insertAfterLine = firstStatementRow > 0 ? firstStatementRow - 1 : -1;
  if (info.torch.length === 0) info.torch.push('torch');
  if (info.nn.length === 0) info.nn.push('nn');
  if (info.functional.length === 0) info.functional.push('F');
  return info;
}

const MAYBE_IMPORT = /^(import|from|try|if)\b/;

function isDocstring(st: SyntaxNode): boolean {
  return st.type === 'expression_statement' && st.namedChildCount === 1 && st.namedChildren[0].type === 'string';
}

function lineTail(root: SyntaxNode, st: SyntaxNode): string {
  // The comment following the statement on the same line, if any.
  const next = st.nextSibling;
  if (next && next.type === 'comment' && next.startPosition.row === st.endPosition.row) return next.text;
  return '';
}

function scanNested(node: SyntaxNode, info: ImportInfo, depth: number): void {
  if (depth > 3) return;
  for (const c of node.namedChildren) {
    if (c.type === 'import_statement' || c.type === 'import_from_statement') recordImport(c, info);
    else if (
      c.type === 'block' ||
      c.type === 'except_clause' ||
      c.type === 'else_clause' ||
      c.type === 'finally_clause'
    )
      scanNested(c, info, depth + 1);
  }
}

const TORCH_NN_SUBMODULES = new Set([
  'module',
  'linear',
  'conv',
  'normalization',
  'activation',
  'container',
  'dropout',
  'pooling',
  'batchnorm',
  'sparse',
  'transformer',
  'flatten',
  'padding',
  'upsampling',
  'instancenorm',
  'pixelshuffle',
  'rnn',
]);

function recordImport(st: SyntaxNode, info: ImportInfo): void {
  if (st.type === 'import_statement') {
    for (const c of st.namedChildren) {
      if (c.type === 'dotted_name') {
        const name = c.text;
        if (name === 'torch' || name.startsWith('torch.')) {
          if (!info.torch.includes('torch')) info.torch.push('torch');
        }
      } else if (c.type === 'aliased_import') {
        const name = c.childForFieldName('name')?.text ?? '';
        const alias = c.childForFieldName('alias')?.text ?? '';
        if (name === 'torch') info.torch.push(alias);
        else if (name === 'torch.nn') info.nn.push(alias);
        else if (name === 'torch.nn.functional') info.functional.push(alias);
      }
    }
    return;
  }
  // import_from_statement
  const mod = st.childForFieldName('module_name');
  if (!mod) return;
  if (mod.type === 'relative_import') {
    info.usesRelativeImports = true;
    // Inside torch.nn itself (torch/nn/modules/transformer.py): `from .linear import Linear`,
    // `from .. import functional as F`. The submodule names are torch.nn.modules' own.
    const rel = mod.text.replace(/^\.+/, '');
    for (const c of st.namedChildren) {
      if (c.id === mod.id) continue; // node objects are not unique (the binding recreates collected ones): compare ids
      const name =
        c.type === 'aliased_import'
          ? (c.childForFieldName('name')?.text ?? '')
          : c.type === 'dotted_name'
            ? c.text
            : '';
      const alias = c.type === 'aliased_import' ? (c.childForFieldName('alias')?.text ?? '') : name;
      if (!name) continue;
      if (TORCH_NN_SUBMODULES.has(rel) && /^[A-Z]/.test(name)) info.nnNames[alias] = 'nn.' + name;
      else if (rel === '' && name === 'functional' && /^\.\.$/.test(mod.text)) info.functional.push(alias);
    }
    return;
  }
  const from = mod.text;
  for (const c of st.namedChildren) {
    if (c.id === mod.id) continue;
    let name = '';
    let alias = '';
    if (c.type === 'dotted_name') name = alias = c.text;
    else if (c.type === 'aliased_import') {
      name = c.childForFieldName('name')?.text ?? '';
      alias = c.childForFieldName('alias')?.text ?? '';
    } else continue;
    if (from === 'torch') {
      if (name === 'nn') info.nn.push(alias);
      else info.funcNames[alias] = 'torch.' + name;
    } else if (from === 'torch.nn') {
      if (name === 'functional') info.functional.push(alias);
      else info.nnNames[alias] = 'nn.' + name;
    } else if (from === 'torch.nn.functional') {
      info.funcNames[alias] = 'F.' + name;
    } else if (from === 'torch.nn.modules' || from.startsWith('torch.nn.modules.')) {
      info.nnNames[alias] = 'nn.' + name;
    }
  }
}

/**
 * Canonical name of a dotted callee: `nn.Conv2d`, `torch.matmul`, `F.linear`; the text itself when it is
 * not a torch name.
 */
export function canonicalName(dotted: string, info: ImportInfo): string {
  const dot = dotted.indexOf('.');
  const head = dot < 0 ? dotted : dotted.slice(0, dot);
  if (dot < 0) return info.nnNames[head] ?? info.funcNames[head] ?? dotted;
  const rest = dotted.slice(dot + 1);
  if (info.nn.includes(head)) {
    if (rest.startsWith('functional.')) return 'F.' + rest.slice(11);
    if (rest.startsWith('modules.')) return 'nn.' + rest.slice(rest.lastIndexOf('.') + 1);
    return 'nn.' + rest;
  }
  if (info.functional.includes(head)) return 'F.' + rest;
  if (info.torch.includes(head)) {
    if (rest.startsWith('nn.functional.')) return 'F.' + rest.slice(14);
    if (rest.startsWith('nn.modules.')) {
      const last = rest.slice(rest.lastIndexOf('.') + 1);
      return 'nn.' + last;
    }
    if (rest.startsWith('nn.')) return 'nn.' + rest.slice(3);
    return 'torch.' + rest;
  }
  return dotted;
}
