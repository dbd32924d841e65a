// textDocument/hover on a layer, an op or a quantizer: the ONNX op it exports to, what TensorRT does with it,
// whether it is quantized and how, and after calibration its amax, scale and method.
import * as path from 'path';
import { fileURLToPath } from 'url';
import { lsp } from './lsp';
import type { Hover, Position } from './lsp';
import type { Layer, ModelIndex, ModuleClass, Op, DeclaredQuantizer, Range, FunctionInfo } from '../analysis';
import type { QdqDocument } from './documents';
import { CalibrationStore, formatAmax, SiteCalibration, rangeProblems, layerPath } from './calibration';
import { callSiteMarkdown } from './callSiteHover';

export type HoverTarget =
  | { kind: 'layer'; layer: Layer; owner?: ModuleClass; func?: FunctionInfo; range: Range }
  | { kind: 'op'; op: Op; owner?: ModuleClass; range: Range }
  | { kind: 'quantizer'; quantizer: DeclaredQuantizer; owner: ModuleClass; range: Range };

function contains(range: Range, pos: Position): boolean {
  const afterStart =
    pos.line > range.start.line || (pos.line === range.start.line && pos.character >= range.start.character);
  const beforeEnd = pos.line < range.end.line || (pos.line === range.end.line && pos.character <= range.end.character);
  return afterStart && beforeEnd;
}

function size(range: Range): number {
  // Lines dominate; the smallest enclosing thing wins (an op inside a layer argument, etc.).
  return (range.end.line - range.start.line) * 100000 + (range.end.character - range.start.character);
}

/** The innermost layer, op or quantizer declaration at `pos`. */
export function targetAt(index: ModelIndex, pos: Position): HoverTarget | undefined {
  const found: HoverTarget[] = [];
  for (const owner of index.classes) {
    if (!contains(owner.range, pos)) continue;
    for (const layer of owner.layers)
      if (contains(layer.callRange, pos)) found.push({ kind: 'layer', layer, owner, range: layer.callRange });
    for (const op of owner.ops) if (contains(op.range, pos)) found.push({ kind: 'op', op, owner, range: op.range });
    for (const q of owner.quantizers)
      if (contains(q.range, pos)) found.push({ kind: 'quantizer', quantizer: q, owner, range: q.range });
  }
  for (const func of index.functions) {
    if (!contains(func.range, pos)) continue;
    for (const layer of func.layers)
      if (contains(layer.callRange, pos)) found.push({ kind: 'layer', layer, func, range: layer.callRange });
    for (const op of func.ops) if (contains(op.range, pos)) found.push({ kind: 'op', op, range: op.range });
  }
  for (const op of index.topLevelOps) if (contains(op.range, pos)) found.push({ kind: 'op', op, range: op.range });
  if (found.length === 0) return undefined;
  found.sort((a, b) => size(a.range) - size(b.range));
  return found[0];
}

/** ONNX op a layer or op exports to (TorchScript exporter), for the hover's first line. */
const LAYER_ONNX: Record<string, string> = {
  'nn.Linear': 'Gemm (2-D input) or MatMul + Add',
  'nn.Conv1d': 'Conv',
  'nn.Conv2d': 'Conv',
  'nn.Conv3d': 'Conv',
  'nn.ConvTranspose1d': 'ConvTranspose',
  'nn.ConvTranspose2d': 'ConvTranspose',
  'nn.ConvTranspose3d': 'ConvTranspose',
  'nn.BatchNorm1d': 'BatchNormalization (folded into the preceding Conv by TensorRT)',
  'nn.BatchNorm2d': 'BatchNormalization (folded into the preceding Conv by TensorRT)',
  'nn.LayerNorm': 'LayerNormalization (opset 17) or ReduceMean/Sub/Pow/Sqrt/Div',
  'nn.ReLU': 'Relu',
  'nn.GELU': 'Gelu (opset 20) or Erf-based subgraph',
  'nn.MaxPool2d': 'MaxPool',
  'nn.AvgPool2d': 'AveragePool',
  'nn.AdaptiveAvgPool2d': 'GlobalAveragePool / AveragePool',
  'nn.Embedding': 'Gather',
  'nn.Softmax': 'Softmax',
  'nn.Dropout': '(removed in eval mode)',
};
const OP_ONNX: Record<string, string> = {
  matmul: 'MatMul',
  bmm: 'MatMul',
  einsum: 'Einsum',
  linear: 'Gemm / MatMul + Add',
  add: 'Add',
  iadd: 'Add',
  pool: 'MaxPool / AveragePool',
};

const WEIGHTED = new Set(['linear', 'conv', 'convtranspose']);

function quantSchemeOfLayer(layer: Layer): string {
  if (!WEIGHTED.has(layer.kind))
    return 'Not a weighted layer: TensorRT runs it in the precision of its neighbours; qdq never quantizes its output.';
  const weightAxis = layer.kind === 'convtranspose' ? 1 : 0;
  if (layer.wrapped === 'quant')
    return `**Quantized** (INT8, symmetric): input per-tensor, weight per-channel on axis ${weightAxis}; exports as QuantizeLinear/DequantizeLinear pairs that TensorRT fuses into an INT8 kernel.`;
  if (layer.wrapped === 'keep_float')
    return '**Kept in float** (`qdq_quant.keep_float`): TensorRT runs it in FP16/FP32.';
  return 'Not quantized. The "Quantize this layer" code action wraps it in `qdq_quant.quant(...)`.';
}

function quantSchemeOfOp(op: Op): string | undefined {
  if (op.operands.length === 0) return undefined;
  const parts = op.operands.map((_, i) => {
    const role = op.operandIsParam[i] ? 'weight' : `operand ${i + 1}`;
    const q = op.operandQuantizers[i];
    return q
      ? `${role}: quantized by \`self.${q}\``
      : op.operandIsParam[i]
        ? `${role}: parameter (not an activation)`
        : `${role}: not quantized`;
  });
  return parts.join('; ');
}

function calibrationLines(sites: SiteCalibration[], inSource = true): string[] {
  const all = sites.flatMap((s) => s.quantizers);
  if (all.length === 0) return [];
  // The pipeline quantizes a copy unless told to write: say so, or the figures would seem to contradict the file.
  const lines = [
    '',
    inSource
      ? '**Calibration**'
      : '**Calibration** (of the quantized copy the last run used; this file is not quantized)',
  ];
  const shown = all.slice(0, 6);
  for (const q of shown) {
    const method = q.method ? ` (${q.method})` : '';
    lines.push(`- \`${q.name}\`: ${formatAmax(q)}${method}`);
    for (const p of rangeProblems(q)) lines.push(`  - ⚠ ${p.message}`);
  }
  if (all.length > shown.length)
    lines.push(`- ... and ${all.length - shown.length} more (module instances built by this line)`);
  return lines;
}

// The TensorRT knowledge base (server/src/knowledge) is optional for a hover: without it, or when it fails on an
// odd name, the hover still shows the ONNX op and the quantization state.
type KnowledgeModule = {
  describeForHover?: ((subject: string) => string | undefined | null) &
    ((kind: 'layer' | 'op', name: string) => { onnxOps: string[] } | undefined);
};
let knowledgeModule: KnowledgeModule | null | undefined;
function knowledge(): KnowledgeModule | null {
  if (knowledgeModule === undefined) {
    try {
      knowledgeModule = require('../knowledge') as KnowledgeModule;
    } catch {
      knowledgeModule = null;
    }
  }
  return knowledgeModule;
}

/** ONNX ops from the knowledge base's PyTorch -> ONNX table, when it knows the layer or op. */
function knowledgeOnnx(kind: 'layer' | 'op', name: string): string | undefined {
  try {
    const found = knowledge()?.describeForHover?.(kind, name) as { onnxOps?: string[] } | undefined;
    return found?.onnxOps?.length ? found.onnxOps.join(', ') : undefined;
  } catch {
    return undefined;
  }
}

function knowledgeLines(subject: string): string[] {
  try {
    const text = knowledge()?.describeForHover?.(subject);
    return text ? ['', text] : [];
  } catch {
    return [];
  }
}

export function hoverMarkdown(
  target: HoverTarget,
  file: string,
  store: CalibrationStore,
  text: string,
  index?: ModelIndex,
): string {
  if (target.kind === 'op' && index) {
    const call = callSiteMarkdown(target.op, target.owner, index, file, store, text);
    if (call) return call;
  }
  const lines: string[] = [];
  if (target.kind === 'layer') {
    const { layer, owner } = target;
    const where = owner
      ? `${owner.name}${layer.attr ? '.' + layer.attr : ''}`
      : target.func
        ? `${target.func.name}()`
        : '';
    lines.push(`**${layer.ctor}**${where ? ` — \`${where}\`` : ''}`);
    const onnx = LAYER_ONNX[layer.ctor] ?? knowledgeOnnx('layer', layer.ctor);
    if (onnx) lines.push(`ONNX: ${onnx}`);
    lines.push('', quantSchemeOfLayer(layer));
    lines.push(...knowledgeLines(layer.ctor));
    const p = owner ? layerPath(owner, layer, text) : undefined;
    if (owner && p) lines.push(...calibrationLines(store.forPath(file, owner.name, p), layer.wrapped === 'quant'));
  } else if (target.kind === 'op') {
    const { op, owner } = target;
    lines.push(`**${op.callee}** (${op.kind}) in \`${owner ? owner.name + '.' : ''}${op.method}\``);
    const onnx = OP_ONNX[op.kind] ?? knowledgeOnnx('op', op.callee);
    if (onnx) lines.push(`ONNX: ${onnx}`);
    const scheme = quantSchemeOfOp(op);
    if (scheme) lines.push('', scheme);
    lines.push(...knowledgeLines(op.callee));
    if (owner)
      lines.push(
        ...calibrationLines(op.operandQuantizers.flatMap((q) => (q ? store.forPath(file, owner.name, q) : []))),
      );
  } else {
    const { quantizer, owner } = target;
    lines.push(`**TensorQuantizer** \`${owner.name}.${quantizer.name}\``);
    lines.push(
      'Per-tensor symmetric INT8 activation quantizer (scale = amax / 127, zero point 0); exports as QuantizeLinear/DequantizeLinear.',
    );
    lines.push(
      quantizer.generated
        ? 'Generated by qdq (`# qdq`): "Remove quantizers" takes it out again.'
        : 'Written by hand (no `# qdq` marker): qdq does not remove it.',
    );
    const sites = store.forPath(file, owner.name, quantizer.name);
    lines.push(...(sites.length ? calibrationLines(sites) : ['', 'Not calibrated yet: run **QDQ: Calibrate**.']));
  }
  return lines.join('\n');
}

export function hover(doc: QdqDocument, pos: Position, store: CalibrationStore): Hover | null {
  const index = doc.getIndex();
  const target = targetAt(index, pos);
  if (!target) return null;
  const file = uriToPath(doc.uri);
  return {
    contents: { kind: lsp.MarkupKind.Markdown, value: hoverMarkdown(target, file, store, doc.getText(), index) },
    range: target.range,
  };
}

export function uriToPath(uri: string): string {
  // Untitled and other non-file documents have no place on disk; their path only keys calibration lookups.
  if (!uri.startsWith('file:')) return path.resolve('/', uri.replace(/^[a-z-]+:/i, ''));
  try {
    return fileURLToPath(uri);
  } catch {
    return uri;
  }
}
