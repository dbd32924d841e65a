// What an exported graph quantizes: QDQ pairs, and every weighted op (Conv/ConvTranspose/Gemm/MatMul)
// whose data inputs are not all fed by DequantizeLinear, traced back to the module (and source site) it came from.
import { Model, Node, indexGraph, GraphIndex, constantTensor, DataType } from './model';

export const WEIGHTED_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

// Ops that only move or reshape data: TensorRT propagates Q/DQ through them, so a DQ behind one still feeds
// the weighted op in the sense that matters (e.g. torch's exported `k.transpose(-1, -2)` before a matmul).
const SHAPE_ONLY = new Set(['Transpose', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Expand']);

export interface SourceSite {
  file?: string;
  cls?: string;
  attr?: string;
}
export interface QuantizerInfo {
  name: string;
  site?: SourceSite | null;
}

export interface UnquantizedOp {
  node: string;
  op: string;
  module: string | null;
  inputs_not_dq_fed: number[];
  site: SourceSite | null;
}

export interface QdqStats {
  qdq_pairs: number;
  quantize_linear: number;
  dequantize_linear: number;
  folded_weights: number;
  weighted_ops: number;
  unquantized_weighted_ops: UnquantizedOp[];
  op_histogram: Record<string, number>;
}

/** The data inputs of a weighted op (bias excluded). */
function dataInputs(n: Node): number[] {
  return n.op_type === 'MatMul' ? [0, 1] : [0, 1];
}

function isDqFed(idx: GraphIndex, value: string): boolean {
  let v = value;
  for (let depth = 0; depth < 8; depth++) {
    const p = idx.producer.get(v);
    if (!p) return false;
    if (p.op_type === 'DequantizeLinear') return true;
    if (!SHAPE_ONLY.has(p.op_type)) return false;
    v = p.input[0];
  }
  return false;
}

/**
 * Module path from a TorchScript-exporter node name: "/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1".
 * Each scope segment is either a full dotted path extending the previous one or a child name.
 */
export function modulePathFromNodeName(name: string): string | null {
  if (!name || !name.startsWith('/')) return null;
  const segs = name.split('/').filter(Boolean);
  segs.pop();
  if (segs.length === 0) return null;
  let path = '';
  for (const s of segs) path = !path ? s : s.startsWith(path + '.') ? s : `${path}.${s}`;
  return path;
}

function moduleFromWeight(idx: GraphIndex, n: Node): string | null {
  // Weight initializers keep the parameter name ("fc1.weight") under both exporters.
  let v = n.input[1];
  for (let depth = 0; depth < 4 && v; depth++) {
    if (idx.initializers.has(v)) {
      const m = /^(.*)\.weight(_quantized)?$/.exec(v);
      return m ? m[1] : null;
    }
    const p = idx.producer.get(v);
    if (!p) return null;
    v = p.input[0];
  }
  return null;
}

export function qdqStats(model: Model, quantizers: QuantizerInfo[] = []): QdqStats {
  const g = model.graph;
  const idx = indexGraph(g);
  const hist: Record<string, number> = {};
  let pairs = 0,
    ql = 0,
    dql = 0,
    folded = 0,
    weighted = 0;
  const unq: UnquantizedOp[] = [];
  const siteByModule = new Map<string, SourceSite>();
  for (const q of quantizers) {
    const m = /^(.*)\.(input|weight)_quantizer$/.exec(q.name);
    if (m && q.site && !siteByModule.has(m[1])) siteByModule.set(m[1], q.site);
  }
  for (const n of g.node) {
    const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.op_type}` : n.op_type;
    hist[key] = (hist[key] || 0) + 1;
    if (n.op_type === 'QuantizeLinear') ql++;
    if (n.op_type === 'DequantizeLinear') {
      dql++;
      const p = idx.producer.get(n.input[0]);
      if (p && p.op_type === 'QuantizeLinear') pairs++;
      else {
        const c = constantTensor(idx, n.input[0]);
        if (c && (c.data_type === DataType.INT8 || c.data_type === DataType.UINT8)) {
          pairs++;
          folded++;
        }
      }
    }
    // ort-cpu linears (onnx/ortCpuLinear.ts): the activation's Q and the INT8 weight feed the integer kernel
    // directly, which dequantizes inside; each counts as a quantized weighted op with two pairs.
    if (n.op_type === 'MatMulIntegerToFloat' && n.domain === 'com.microsoft') {
      weighted++;
      pairs += 2;
      if (constantTensor(idx, n.input[1])) folded++;
    }
    if (WEIGHTED_OPS.has(n.op_type) && (!n.domain || n.domain === 'ai.onnx')) {
      weighted++;
      const missing = dataInputs(n).filter((i) => n.input[i] && !isDqFed(idx, n.input[i]));
      if (missing.length) {
        const module = modulePathFromNodeName(n.name || '') ?? moduleFromWeight(idx, n);
        unq.push({
          node: n.name || n.output[0],
          op: n.op_type,
          module,
          inputs_not_dq_fed: missing,
          site: module ? (siteByModule.get(module) ?? null) : null,
        });
      }
    }
  }
  return {
    qdq_pairs: pairs,
    quantize_linear: ql,
    dequantize_linear: dql,
    folded_weights: folded,
    weighted_ops: weighted,
    unquantized_weighted_ops: unq,
    op_histogram: hist,
  };
}
