// The ort-cpu form's last step on CPUs whose u8 x s8 kernels saturate (cpuInt8.ts): every INT8 weight that ONNX
// Runtime runs in an integer kernel is narrowed to |q| <= 64 with its scale doubled, ONNX Runtime's reduce_range.
// ORT fuses DQ-fed Convs and MatMuls into QLinearConv / QLinearMatMul, which take u8 activations on x86 whatever
// the graph says, so signed activations alone do not avoid the saturation there.
import {
  DataType,
  Graph,
  GraphIndex,
  NameAllocator,
  Node,
  constantTensor,
  dims,
  floatTensor,
  indexGraph,
  int8Tensor,
  makeTensor,
  removeUnused,
  tensorToFloat32,
  tensorToInts,
} from './model';
import { roundHalfEven, saturate } from './quantMath';
import { NARROW_WEIGHT_MAX } from './cpuInt8';

const WEIGHTED = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm']);

/** Narrows the weights; how many weight tensors were narrowed. */
export function narrowIntegerWeights(g: Graph, names: NameAllocator): number {
  const idx = indexGraph(g);
  let narrowed = 0;
  for (const node of [...g.node]) {
    if (node.op_type === 'DequantizeLinear' && feedsWeight(idx, node)) {
      if (!narrowInput(g, idx, names, node, 0, 1)) continue;
      narrowed++;
      for (const op of idx.consumers.get(node.output[0]) ?? []) halveBias(g, idx, names, op);
    } else if (node.op_type === 'MatMulIntegerToFloat' && narrowInput(g, idx, names, node, 1, 3)) narrowed++;
  }
  if (narrowed) removeUnused(g);
  return narrowed;
}

function feedsWeight(idx: GraphIndex, dq: Node): boolean {
  const readers = idx.consumers.get(dq.output[0]) ?? [];
  return readers.length > 0 && readers.every((r) => WEIGHTED.has(r.op_type) && r.input[1] === dq.output[0]);
}

/** node.input[at] (an INT8 initializer, zero point 0) to |q| <= 64, node.input[scaleAt] doubled; both new tensors. */
function narrowInput(g: Graph, idx: GraphIndex, names: NameAllocator, node: Node, at: number, scaleAt: number) {
  const w = constantTensor(idx, node.input[at]);
  const scale = constantTensor(idx, node.input[scaleAt]);
  if (!w || w.data_type !== DataType.INT8 || !scale || scale.data_type !== DataType.FLOAT) return false;
  const q = tensorToInts(w);
  if (q.every((v) => Math.abs(v) <= NARROW_WEIGHT_MAX)) return false;
  const wName = names.fresh(`${node.input[at]}_7bit`);
  const sName = names.fresh(`${node.input[scaleAt]}_7bit`);
  g.initializer.push(
    int8Tensor(
      wName,
      dims(w),
      q.map((v) => saturate(roundHalfEven(v / 2), -NARROW_WEIGHT_MAX, NARROW_WEIGHT_MAX)),
    ),
    floatTensor(
      sName,
      dims(scale),
      Array.from(tensorToFloat32(scale), (s) => s * 2),
    ),
  );
  node.input[at] = wName;
  node.input[scaleAt] = sName;
  return true;
}

/** A Conv's INT32 bias (scale = input scale x weight scale) halved to the doubled weight scale. */
function halveBias(g: Graph, idx: GraphIndex, names: NameAllocator, op: Node): void {
  const dq = op.input[2] ? idx.producer.get(op.input[2]) : undefined;
  if (dq?.op_type !== 'DequantizeLinear') return;
  const b = constantTensor(idx, dq.input[0]);
  const scale = constantTensor(idx, dq.input[1]);
  if (!b || b.data_type !== DataType.INT32 || !scale || scale.data_type !== DataType.FLOAT) return;
  const bName = names.fresh(`${dq.input[0]}_7bit`);
  const sName = names.fresh(`${dq.input[1]}_7bit`);
  g.initializer.push(
    makeTensor(
      bName,
      DataType.INT32,
      dims(b),
      Int32Array.from(tensorToInts(b), (v) => roundHalfEven(v / 2)),
    ),
    floatTensor(
      sName,
      dims(scale),
      Array.from(tensorToFloat32(scale), (s) => s * 2),
    ),
  );
  dq.input[0] = bName;
  dq.input[1] = sName;
}
