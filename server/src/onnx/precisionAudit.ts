// Audit of a typed Q/DQ graph: which float compute runs in which precision and why, whether each Q/DQ scale is in the
// type of the tensor it quantizes, whether each weighted op reads its weight through DequantizeLinear, and how many
// Casts there are. Read from the graph itself (types, and the doc_string strongTyping.ts writes), so it also checks
// graphs qdq did not type.
import { Model, Node, DataType, GraphIndex, indexGraph, constantTensor } from './model';
import { BFLOAT16, inferElemTypes, isFloatType } from './floatTypes';
import { FOLLOW_OPS, TYPE_AGNOSTIC_OPS } from './precisionRules';
import { DOC_PREFIX } from './strongTyping';

export type LayerPrecision = 'INT8' | 'FP16' | 'BF16' | 'FP32';

export interface LayerPrecisionRow {
  node: string;
  op: string;
  precision: LayerPrecision;
  /** Why the op is in this precision: "Q/DQ on weight and input", a placement rule, an overflow, the user's marker. */
  reason: string;
}

export interface PrecisionAudit {
  /** Float compute ops (not data movement, not Q/DQ or Cast), the INT8 ones included. */
  float_compute_ops: number;
  low_precision_ops: number;
  /** low_precision_ops / float_compute_ops: the share TensorRT 11 runs in FP16/BF16 (INT8 layers count as low). */
  low_share: number;
  fp32_ops: { node: string; op: string; reason: string }[];
  scales: { node: string; op: string; scale_type: string; tensor_type: string; ok: boolean }[];
  scales_ok: boolean;
  weighted_ops: number;
  dq_fed_weighted_ops: number;
  not_dq_fed: string[];
  casts: number;
  layers: LayerPrecisionRow[];
}

const WEIGHTED = new Set(['MatMul', 'Gemm', 'Conv', 'ConvTranspose']);
const TYPE_NAME: Record<number, string> = {
  [DataType.FLOAT]: 'FP32',
  [DataType.FLOAT16]: 'FP16',
  [BFLOAT16]: 'BF16',
  [DataType.DOUBLE]: 'FP64',
};

/** The DequantizeLinear a value comes from, looking through data movement. */
function dqSource(idx: GraphIndex, v: string, depth = 0): Node | undefined {
  const p = idx.producer.get(v);
  if (!p || depth > 8) return undefined;
  if (p.op_type === 'DequantizeLinear') return p;
  if (FOLLOW_OPS.has(p.op_type) || p.op_type === 'Cast') return dqSource(idx, p.input[0], depth + 1);
  return undefined;
}

function reasonOf(n: Node): string | undefined {
  const d = typeof n.doc_string === 'string' ? n.doc_string : '';
  return d.startsWith(DOC_PREFIX) ? d.slice(DOC_PREFIX.length) : undefined;
}

export function auditPrecision(model: Model): PrecisionAudit {
  const g = model.graph;
  const idx = indexGraph(g);
  const types = inferElemTypes(g);
  const a: PrecisionAudit = {
    float_compute_ops: 0,
    low_precision_ops: 0,
    low_share: 0,
    fp32_ops: [],
    scales: [],
    scales_ok: true,
    weighted_ops: 0,
    dq_fed_weighted_ops: 0,
    not_dq_fed: [],
    casts: g.node.filter((n) => n.op_type === 'Cast').length,
    layers: [],
  };
  for (const n of g.node) {
    if (n.op_type === 'QuantizeLinear' || n.op_type === 'DequantizeLinear') auditScale(a, n, types, idx);
    if (FOLLOW_OPS.has(n.op_type) || TYPE_AGNOSTIC_OPS.has(n.op_type) || n.op_type === 'Constant') continue;
    const outType = n.output.map((o) => types.get(o)).find(isFloatType);
    if (outType === undefined) continue;
    a.float_compute_ops++;
    const name = n.name ?? '';
    let row: LayerPrecisionRow = { node: name, op: n.op_type, precision: 'FP32', reason: reasonOf(n) ?? 'as exported' };
    if (WEIGHTED.has(n.op_type)) {
      a.weighted_ops++;
      const wDq = dqSource(idx, n.input[1]);
      const xDq = dqSource(idx, n.input[0]);
      if (wDq) a.dq_fed_weighted_ops++;
      else if (constantTensor(idx, n.input[1])) a.not_dq_fed.push(name);
      if (wDq && xDq) row = { ...row, precision: 'INT8', reason: 'Q/DQ on weight and input' };
    }
    if (row.precision !== 'INT8') {
      const p = TYPE_NAME[outType] ?? 'FP32';
      row = { ...row, precision: p === 'FP16' || p === 'BF16' ? p : 'FP32' };
      if (row.precision !== 'FP32') row.reason = reasonOf(n)?.startsWith('FP') ? row.reason : 'low float precision';
    }
    if (row.precision === 'FP32') a.fp32_ops.push({ node: name, op: n.op_type, reason: row.reason });
    else a.low_precision_ops++;
    a.layers.push(row);
  }
  a.low_share = a.float_compute_ops ? a.low_precision_ops / a.float_compute_ops : 0;
  a.scales_ok = a.scales.every((s) => s.ok);
  return a;
}

/** A Q's scale must match its input's type; a DQ's output (its scale's type) must be what its readers run in. */
function auditScale(a: PrecisionAudit, n: Node, types: Map<string, number>, idx: GraphIndex): void {
  const scale = types.get(n.input[1]);
  let tensor: number | undefined;
  if (n.op_type === 'QuantizeLinear') tensor = types.get(n.input[0]);
  else {
    // A DQ read only through a Cast dequantizes into the wrong type.
    const readers = idx.consumers.get(n.output[0]) ?? [];
    const cast = readers.length > 0 && readers.every((r) => r.op_type === 'Cast');
    tensor = cast ? types.get(readers[0].output[0]) : scale;
  }
  const name = (t: number | undefined) => (t === undefined ? 'unknown' : (TYPE_NAME[t] ?? String(t)));
  a.scales.push({
    node: n.name ?? '',
    op: n.op_type,
    scale_type: name(scale),
    tensor_type: name(tensor),
    ok: scale !== undefined && scale === tensor,
  });
}
