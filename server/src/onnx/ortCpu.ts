// Post-processing of a QDQ export for ONNX Runtime's CPU provider (target "ort-cpu").
// ORT fuses DQ -> MatMul -> Q into an integer kernel only when the DQs feed the MatMul directly and a Q
// follows it directly (shared/reference/ort-cpu-int8.md). torch's export puts a Transpose between the weight's
// DQ and the MatMul (nn.Linear stores W as [out, in]) and the bias Add between the MatMul and the output Q.
// Both are rewritten here:
//  1. INT8 weight -> DQ(axis a) -> Transpose(perm) becomes transposed INT8 weight -> DQ(axis perm^-1(a));
//  2. MatMul -> Add(constant bias) -> Q(s, z) gets Q(s, z) -> DQ inserted between the MatMul and the Add,
//     reusing the calibrated output scale (the bias shifts the range by little);
//  3. an activation Q read by several weighted nodes (torch merges identical Q/DQ pairs, e.g. the q/k/v
//     projections' inputs) gets one Q -> DQ pair per weighted reader (see below for why).
import {
  Model, Node, DataType, indexGraph, constantTensor, dims, num, getAttr, makeTensor, makeNode, NameAllocator,
  removeUnused, topoSort, intAttr, tensorToInts, elementCount, tensorToFloat32, floatTensor, int8Tensor, uint8Tensor,
} from './model';

export interface OrtCpuResult { transposesFolded: number; outputsQuantized: number; dequantizeDuplicated: number }

function permute(data: Int8Array | Uint8Array, shape: number[], perm: number[]): { data: Int8Array | Uint8Array; shape: number[] } {
  const outShape = perm.map((p) => shape[p]);
  const inStrides = shape.map((_, i) => elementCount(shape.slice(i + 1)));
  const out = new (data.constructor as Int8ArrayConstructor)(data.length);
  const idx = new Array(outShape.length).fill(0);
  for (let o = 0; o < data.length; o++) {
    let src = 0;
    for (let d = 0; d < outShape.length; d++) src += idx[d] * inStrides[perm[d]];
    out[o] = data[src];
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (++idx[d] < outShape[d]) break;
      idx[d] = 0;
    }
  }
  return { data: out, shape: outShape };
}

export function optimizeForOrtCpu(model: Model): OrtCpuResult {
  const g = model.graph;
  const names = new NameAllocator(g);
  const result: OrtCpuResult = { transposesFolded: 0, outputsQuantized: 0, dequantizeDuplicated: 0 };

  // 1. Fold Transposes of constant quantized weights into the initializer.
  let idx = indexGraph(g);
  const dropped = new Set<Node>();
  for (const t of g.node) {
    if (t.op_type !== 'Transpose') continue;
    const dq = idx.producer.get(t.input[0]);
    if (!dq || dq.op_type !== 'DequantizeLinear') continue;
    const w = constantTensor(idx, dq.input[0]);
    if (!w || (w.data_type !== DataType.INT8 && w.data_type !== DataType.UINT8)) continue;
    // The DQ must have no other reader, or the untransposed weight is still needed.
    if ((idx.consumers.get(dq.output[0]) ?? []).length !== 1) continue;
    const shape = dims(w);
    const permAttr = getAttr(t, 'perm');
    const perm = permAttr?.ints ? permAttr.ints.map(num) : shape.map((_, i) => shape.length - 1 - i);
    const raw = tensorToInts(w);
    const typed = w.data_type === DataType.INT8 ? Int8Array.from(raw) : Uint8Array.from(raw);
    const p = permute(typed, shape, perm);
    const scale = constantTensor(idx, dq.input[1]);
    const perChannel = scale ? elementCount(dims(scale)) > 1 : false;
    const wName = names.fresh(`${w.name}_transposed`);
    g.initializer.push(makeTensor(wName, w.data_type, p.shape, p.data));
    const axisAttr = getAttr(dq, 'axis');
    let axis = axisAttr ? num(axisAttr.i) : 1;
    if (axis < 0) axis += shape.length;
    const newAxis = perm.indexOf(axis);
    const newDq = makeNode('DequantizeLinear', [wName, ...dq.input.slice(1)], [t.output[0]], names.fresh(`${dq.name || 'DequantizeLinear'}_transposed`),
      perChannel ? [intAttr('axis', newAxis)] : []);
    dropped.add(t);
    dropped.add(dq);
    g.node.push(newDq);
    result.transposesFolded++;
  }
  if (dropped.size) g.node = g.node.filter((n) => !dropped.has(n));

  // 3 (before 2, which looks for DQ-fed MatMuls). One Q -> DQ pair per weighted reader of an activation.
  // Measured with onnxruntime-node 1.30: two MatMuls reading one Q (through one shared DQ or two DQs) fuse
  // into neither; each with its own Q -> DQ fuses into QLinearMatMul. Identical copies would be merged back
  // by ORT (scalar constant sharing, then common-subexpression elimination), so each copy's scale and zero
  // point are stored as 1-element tensors: still per-tensor quantization, but not mergeable.
  idx = indexGraph(g);
  const copies: Node[] = [];
  for (const q of g.node) {
    if (q.op_type !== 'QuantizeLinear') continue;
    const scaleT = constantTensor(idx, q.input[1]);
    const zpT = q.input[2] ? constantTensor(idx, q.input[2]) : undefined;
    if (!scaleT || elementCount(dims(scaleT)) !== 1 || (q.input[2] && !zpT)) continue;
    const uses: { dq: Node; reader: Node }[] = [];
    for (const dq of idx.consumers.get(q.output[0]) ?? []) {
      if (dq.op_type !== 'DequantizeLinear') continue;
      for (const reader of idx.consumers.get(dq.output[0]) ?? []) uses.push({ dq, reader });
    }
    const weighted = uses.filter((u) => u.reader.op_type === 'MatMul' || u.reader.op_type === 'Gemm' || u.reader.op_type === 'Conv');
    if (uses.length < 2 || weighted.length === 0) continue;
    // The first use keeps the original pair when it is the only reader of its DQ; every other weighted use gets its own.
    const keep = uses.filter((u) => u.dq === uses[0].dq).length === 1 ? uses[0] : undefined;
    const scale = tensorToFloat32(scaleT)[0];
    const zp = zpT ? tensorToInts(zpT)[0] : 0;
    const zpType = zpT ? zpT.data_type : DataType.UINT8;
    for (const u of weighted) {
      if (u === keep) continue;
      const tag = (u.reader.name || u.reader.op_type).replace(/^\//, '').replace(/\//g, '_');
      const s1 = names.fresh(`${q.input[1]}_for_${tag}`), z1 = names.fresh(`${q.input[2] || 'zero_point'}_for_${tag}`);
      g.initializer.push(floatTensor(s1, [1], [scale]),
        zpType === DataType.INT8 ? int8Tensor(z1, [1], [zp]) : uint8Tensor(z1, [1], [zp]));
      const qOut = names.fresh(`${q.output[0]}_for_${tag}`), dqOut = names.fresh(`${u.dq.output[0]}_for_${tag}`);
      copies.push(
        makeNode('QuantizeLinear', [q.input[0], s1, z1], [qOut], names.fresh(`${q.name || 'QuantizeLinear'}_for_${tag}`)),
        makeNode('DequantizeLinear', [qOut, s1, z1], [dqOut], names.fresh(`${u.dq.name || 'DequantizeLinear'}_for_${tag}`)),
      );
      u.reader.input = u.reader.input.map((i) => (i === u.dq.output[0] ? dqOut : i));
      result.dequantizeDuplicated++;
    }
  }
  g.node.push(...copies);

  // 2. Quantize MatMul outputs that reach their Q only through a bias Add.
  idx = indexGraph(g);
  const inserted: Node[] = [];
  for (const mm of g.node) {
    if (mm.op_type !== 'MatMul') continue;
    const fedByDq = mm.input.every((i) => idx.producer.get(i)?.op_type === 'DequantizeLinear');
    if (!fedByDq) continue;
    const readers = idx.consumers.get(mm.output[0]) ?? [];
    if (readers.length !== 1 || readers[0].op_type !== 'Add') continue;
    const add = readers[0];
    const other = add.input[0] === mm.output[0] ? add.input[1] : add.input[0];
    if (!constantTensor(idx, other)) continue;
    const after = idx.consumers.get(add.output[0]) ?? [];
    const q = after.find((n) => n.op_type === 'QuantizeLinear');
    if (!q || after.length !== 1) continue;
    const qOut = names.fresh(`${mm.output[0]}_quantized`);
    const dqOut = names.fresh(`${mm.output[0]}_dequantized`);
    inserted.push(
      makeNode('QuantizeLinear', [mm.output[0], ...q.input.slice(1)], [qOut], names.fresh(`${mm.name || 'MatMul'}_output_QuantizeLinear`)),
      makeNode('DequantizeLinear', [qOut, ...q.input.slice(1)], [dqOut], names.fresh(`${mm.name || 'MatMul'}_output_DequantizeLinear`)),
    );
    add.input = add.input.map((i) => (i === mm.output[0] ? dqOut : i));
    result.outputsQuantized++;
  }
  g.node.push(...inserted);
  if (result.transposesFolded || inserted.length || copies.length) {
    removeUnused(g);
    topoSort(g);
  }
  return result;
}
