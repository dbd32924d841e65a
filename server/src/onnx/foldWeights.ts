// Weight folding: FP32 weight -> QuantizeLinear -> DequantizeLinear becomes INT8 initializer -> DequantizeLinear.
// The file shrinks about 4x and runtimes skip quantizing the weights on every run.
import {
  Model,
  Node,
  DataType,
  indexGraph,
  constantTensor,
  tensorToFloat32,
  tensorToInts,
  dims,
  num,
  getAttr,
  makeTensor,
  NameAllocator,
  removeUnused,
  elementCount,
} from './model';
import { roundHalfEven, saturate } from './quantMath';

export interface FoldResult {
  folded: string[];
}

export function foldWeights(model: Model): FoldResult {
  const g = model.graph;
  const idx = indexGraph(g);
  const names = new NameAllocator(g);
  const folded: string[] = [];
  const removeNodes = new Set<Node>();
  const rename = new Map<string, string>();

  for (const q of g.node) {
    if (q.op_type !== 'QuantizeLinear' || (q.domain && q.domain !== 'ai.onnx')) continue;
    const w = constantTensor(idx, q.input[0]);
    const scaleT = constantTensor(idx, q.input[1]);
    const zpT = q.input[2] ? constantTensor(idx, q.input[2]) : undefined;
    if (!w || !scaleT || (q.input[2] && !zpT)) continue;
    if (w.data_type !== DataType.FLOAT) continue;
    const wDims = dims(w);
    const x = tensorToFloat32(w);
    const scales = tensorToFloat32(scaleT);
    const zps = zpT ? tensorToInts(zpT) : [0];
    const outType = zpT ? zpT.data_type : DataType.UINT8;
    if (outType !== DataType.INT8 && outType !== DataType.UINT8) continue;
    const [lo, hi] = outType === DataType.INT8 ? [-128, 127] : [0, 255];
    const perChannel = scales.length > 1;
    let axis = 1;
    const axisAttr = getAttr(q, 'axis');
    if (axisAttr) axis = num(axisAttr.i);
    if (axis < 0) axis += wDims.length;
    // Elements between consecutive channels along `axis`, to find each element's channel in row-major order.
    const inner = elementCount(wDims.slice(axis + 1));
    const channels = perChannel ? wDims[axis] : 1;
    if (perChannel && channels !== scales.length) continue;
    const out = outType === DataType.INT8 ? new Int8Array(x.length) : new Uint8Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const c = perChannel ? Math.floor(i / inner) % channels : 0;
      const zp = zps.length > 1 ? zps[c] : zps[0];
      out[i] = saturate(roundHalfEven(x[i] / scales[c]) + zp, lo, hi);
    }
    const qName = names.fresh(`${w.name || q.input[0]}_quantized`);
    g.initializer.push(makeTensor(qName, outType, wDims, out));
    rename.set(q.output[0], qName);
    removeNodes.add(q);
    folded.push(w.name || q.input[0]);
  }
  if (folded.length === 0) return { folded };
  g.node = g.node.filter((n) => !removeNodes.has(n));
  for (const n of g.node) n.input = n.input.map((i) => rename.get(i) ?? i);
  removeUnused(g);
  return { folded };
}
