// Which float ops of a Q/DQ graph may run in FP16/BF16 and which stay FP32, and why. Pure: graph in, decisions out.
// The rules follow TensorRT 11's strong typing: the ONNX types are the precisions, so an op FP16 cannot carry
// (softmax, normalization statistics, exponentials, accumulating reductions) must be FP32 in the file itself.
import { Graph, Node, GraphIndex } from './model';
import { modulePathFromNodeName } from './qdqStats';

/** Ops that move or select data without arithmetic: they run in whatever type their data input has. */
export const FOLLOW_OPS = new Set([
  'Reshape',
  'Transpose',
  'Squeeze',
  'Unsqueeze',
  'Flatten',
  'Identity',
  'Gather',
  'GatherElements',
  'GatherND',
  'Slice',
  'Split',
  'Concat',
  'Expand',
  'Tile',
  'Pad',
  'Where',
  'Dropout',
  'DepthToSpace',
  'SpaceToDepth',
  'ScatterND',
  'ScatterElements',
]);

/** Ops that accept any input type without a cast (they read shapes, or convert). */
export const TYPE_AGNOSTIC_OPS = new Set(['Shape', 'Size', 'Cast', 'CastLike', 'QuantizeLinear', 'DequantizeLinear']);

/** Inputs that keep their own type whatever the op runs in (Resize's roi and scales are FP32 by the spec). */
export function typeExemptInput(op: string, i: number): boolean {
  return (op === 'Resize' && (i === 1 || i === 2)) || (op === 'Upsample' && i === 1);
}

/** FP32 by placement rule, with the reason the report shows. */
const FP32_BY_OP: Record<string, string> = {
  Softmax: 'softmax: exponentials and the normalizing sum overflow or lose precision in FP16',
  LogSoftmax: 'log-softmax: exponentials and the normalizing sum overflow or lose precision in FP16',
  LayerNormalization: 'LayerNormalization: mean and variance statistics need FP32',
  GroupNormalization: 'GroupNormalization: mean and variance statistics need FP32',
  InstanceNormalization: 'InstanceNormalization: mean and variance statistics need FP32',
  Exp: 'Exp overflows FP16 for inputs above 11.1',
  Pow: 'Pow overflows FP16 (x² passes 65504 once |x| > 256)',
  ReduceSum: 'accumulating reduction: the sum can pass 65504',
  ReduceSumSquare: 'accumulating reduction: the sum of squares can pass 65504',
  ReduceL2: 'accumulating reduction: the sum of squares can pass 65504',
  ReduceLogSumExp: 'accumulating reduction of exponentials',
  ReduceProd: 'accumulating product',
  CumSum: 'accumulating sum along an axis',
};

/** A module path ("layers.0.head") whose ops stay FP32, and the source site that said so. */
export interface Fp32Marker {
  module: string;
  site: string;
}

export type Fp32Reason = { kind: 'rule' | 'overflow' | 'underflow' | 'marker'; reason: string; site?: string };

/**
 * Decomposed LayerNorm (the TorchScript exporter's form below opset 17): ReduceMean -> Sub -> Pow -> ReduceMean ->
 * Add(eps) -> Sqrt -> Div. Its variance path (Pow, the second ReduceMean, Add, Sqrt) is what overflows in FP16.
 */
export function decomposedLayerNormNodes(g: Graph, idx: GraphIndex): Set<Node> {
  const out = new Set<Node>();
  for (const pow of g.node) {
    if (pow.op_type !== 'Pow') continue;
    const sub = idx.producer.get(pow.input[0]);
    if (!sub || sub.op_type !== 'Sub') continue;
    const mean = idx.producer.get(sub.input[1]);
    if (!mean || mean.op_type !== 'ReduceMean' || mean.input[0] !== sub.input[0]) continue;
    const chain = [pow];
    let cur = pow;
    for (const op of ['ReduceMean', 'Add', 'Sqrt']) {
      const next = (idx.consumers.get(cur.output[0]) ?? []).find((c) => c.op_type === op);
      if (!next) break;
      chain.push(next);
      cur = next;
    }
    if (chain.length === 4) for (const n of chain) out.add(n);
  }
  return out;
}

export interface RuleInputs {
  lowName: 'FP16' | 'BF16';
  /** Largest magnitude the low type holds (65504 for FP16). */
  limit: number;
  /** Smallest normal magnitude of the low type; calibrated ranges under it underflow. */
  tiny: number;
  /** Calibrated amax by value name. */
  ranges: Map<string, number>;
  /** Modules the user marked FP32 (keep_float(X, "fp32")), with their source site. */
  fp32Markers: Fp32Marker[];
  layerNormNodes: Set<Node>;
}

/** The reason a float compute node must stay FP32, or null when the low precision is safe for it. */
export function fp32Reason(n: Node, r: RuleInputs): Fp32Reason | null {
  const module = modulePathFromNodeName(n.name ?? '');
  const marker = module
    ? r.fp32Markers.find((m) => m.module && (module === m.module || module.startsWith(m.module + '.')))
    : undefined;
  if (marker) return { kind: 'marker', reason: `keep_float(..., "fp32") at ${marker.site}`, site: marker.site };
  if (r.layerNormNodes.has(n))
    return {
      kind: 'rule',
      reason:
        'decomposed LayerNorm variance (opset < 17): x² overflows FP16; export with opset >= 17 for LayerNormalization',
    };
  const byOp = FP32_BY_OP[n.op_type];
  if (byOp) return { kind: 'rule', reason: byOp };
  if (n.op_type === 'Sum' && n.input.length > 2)
    return { kind: 'rule', reason: 'accumulating Sum of more than two tensors' };
  for (const o of n.output) {
    const amax = r.ranges.get(o);
    if (amax === undefined || !Number.isFinite(amax)) continue;
    if (amax > r.limit)
      return { kind: 'overflow', reason: `calibrated range ${fmt(amax)} exceeds the ${r.lowName} maximum ${r.limit}` };
    if (amax > 0 && amax < r.tiny)
      return { kind: 'underflow', reason: `calibrated range ${fmt(amax)} is below the ${r.lowName} normal range` };
  }
  return null;
}

function fmt(v: number): string {
  return v >= 1e-3 && v < 1e6 ? String(+v.toPrecision(4)) : v.toExponential(3);
}
