// Linears for ONNX Runtime's CPU provider (target "ort-cpu"): each MatMul/Gemm with an INT8 weight becomes one
// com.microsoft MatMulIntegerToFloat that reads the activation's quantized tensor (the Q output) directly, takes
// the weight and activation scales, and adds the bias itself; the output stays float. ORT's own QDQ fusion of
// the same linear needs a Q on the output (QLinearMatMul), then a DQ, the bias Add in float and a Q again for the
// next op: on the 8-token matmuls of examples/digits-transformer that fixed work cost more than the integer
// kernel saved (INT8 0.80x FP32). With one kernel per linear, as FP32 has (MatMul + Add), the graph keeps
// FP32's node count and only the matmul arithmetic changes.
//
// What is left in float, and why (the per-op cost model):
//  - a linear or a MatMul of two activations (attention's q.k^T and attn.v) doing fewer than `minMacsPerItem`
//    multiply-adds per batch item (default 4096; sizes from shapes.ts): its matmul is too small for the integer
//    kernel to win back the QuantizeLinear in front of it. Measured on digits-transformer (batch 32, 2 threads,
//    interleaved medians): everything integer 1.21x FP32, embed (3,072), classifier (480) and the attention
//    matmuls (3,072) float 1.26x, and also q/k/v/out (18,432) float 1.08x; on the BERT-sized encoder the
//    attention matmuls (12.6M) are worth keeping integer. A float linear's weight is dequantized ahead of time,
//    so it runs as in the FP32 model. An op whose shapes are unknown stays integer;
//  - a Q -> DQ pair that then feeds nothing ORT runs in integer (a float Add, LayerNorm, GELU, Reshape to a
//    float op, a graph output): it only adds rounding and two passes over the tensor.
import {
  Model,
  Node,
  Graph,
  DataType,
  indexGraph,
  constantTensor,
  dims,
  elementCount,
  getAttr,
  num,
  attrInt,
  attrFloat,
  tensorToInts,
  tensorToFloat32,
  makeTensor,
  floatTensor,
  int8Tensor,
  uint8Tensor,
  makeNode,
  NameAllocator,
  ensureOpset,
  GraphIndex,
  Tensor,
  topoSort,
  onlyReader,
} from './model';
import { inferShapes, matMulMacsPerItem } from './shapes';

export interface OrtCpuLinearOptions {
  /** MatMuls and linears doing fewer multiply-adds per batch item stay float (when their shapes are known). */
  minMacsPerItem?: number;
  /**
   * Op kinds left in float whatever their size, with the reason to record (ortCpuMeasured.ts: ORT ran the graph
   * slower with them integer).
   */
  floatLinears?: string;
  floatActivationMatMuls?: string;
  /** Store INT8 activations as UINT8 with the zero point shifted by 128 (the same values; x86's u8 x s8 kernels). */
  unsignedActivations?: boolean;
}

export interface OrtCpuLinearResult {
  /** Linears rewritten to MatMulIntegerToFloat: name, K, N. */
  integer: { node: string; k: number; n: number }[];
  /** Linears and activation MatMuls left in float, with the reason. */
  float: { node: string; reason: string }[];
  /** Q -> DQ pairs bypassed because nothing after them runs in integer. */
  pairsBypassed: number;
}

export const DEFAULT_MIN_MACS_PER_ITEM = 4096;

const LAYOUT_OPS = new Set(['Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze']);
const POOL_OPS = new Set(['MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Concat', 'Resize']);

interface QParams {
  scale: string;
  zp: string;
  zpTensor?: Tensor;
  scalar: boolean;
}

function qParams(idx: GraphIndex, n: Node): QParams | undefined {
  const s = constantTensor(idx, n.input[1]);
  if (!s) return undefined;
  const z = n.input[2] ? constantTensor(idx, n.input[2]) : undefined;
  if (n.input[2] && !z) return undefined;
  return {
    scale: n.input[1],
    zp: n.input[2] ?? '',
    zpTensor: z,
    scalar: elementCount(dims(s)) === 1 && (!z || elementCount(dims(z)) === 1),
  };
}

function label(n: Node): string {
  return n.name || n.output[0];
}
function base(n: Node): string {
  return label(n).replace(/^\//, '').replace(/\//g, '_');
}

/** An INT8 weight [K, N] with per-column (or one) scales, read from INT8 initializer -> DQ [-> Transpose]. */
interface Weight {
  q: Int8Array;
  k: number;
  n: number;
  scales: Float32Array;
  zeros: Int8Array;
  consumed: Node[];
}

function transposeInt8(q: Int8Array, rows: number, cols: number): Int8Array {
  const t = new Int8Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = q[i * cols + j];
  return t;
}

/**
 * The weight a MatMul (input 1) or Gemm reads, as [K, N]: DQ(INT8 [K, N], axis 1) or DQ(INT8 [N, K], axis 0) ->
 * Transpose, or for Gemm with transB=1 DQ(INT8 [N, K], axis 0).
 */
function readWeight(idx: GraphIndex, g: Graph, value: string, transB: boolean): Weight | undefined {
  let v = value;
  let transposed = transB;
  const consumed: Node[] = [];
  const t = idx.producer.get(v);
  if (t?.op_type === 'Transpose' && !transB) {
    const perm = getAttr(t, 'perm')?.ints?.map(num);
    if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return undefined;
    if ((idx.consumers.get(v) ?? []).length !== 1) return undefined;
    consumed.push(t);
    v = t.input[0];
    transposed = true;
  }
  const dq = idx.producer.get(v);
  if (
    dq?.op_type !== 'DequantizeLinear' ||
    (idx.consumers.get(v) ?? []).length !== 1 ||
    g.output.some((o) => o.name === v)
  )
    return undefined;
  consumed.push(dq);
  const w = constantTensor(idx, dq.input[0]);
  const s = constantTensor(idx, dq.input[1]);
  const z = dq.input[2] ? constantTensor(idx, dq.input[2]) : undefined;
  if (!w || w.data_type !== DataType.INT8 || !s || (dq.input[2] && (!z || z.data_type !== DataType.INT8)))
    return undefined;
  const shape = dims(w);
  if (shape.length !== 2) return undefined;
  // Columns of the [K, N] product are rows of a transposed weight.
  const [k, n] = transposed ? [shape[1], shape[0]] : shape;
  const colAxis = transposed ? 0 : 1;
  const sv = tensorToFloat32(s);
  const zv = z ? Int8Array.from(tensorToInts(z)) : new Int8Array(sv.length);
  let scales: Float32Array, zeros: Int8Array;
  if (sv.length === 1) {
    scales = new Float32Array(n).fill(sv[0]);
    zeros = new Int8Array(n).fill(zv[0]);
  } else {
    let axis = attrInt(dq, 'axis', 1);
    if (axis < 0) axis += 2;
    if (axis !== colAxis || sv.length !== n || zv.length !== n) return undefined;
    scales = sv;
    zeros = zv;
  }
  const raw = Int8Array.from(tensorToInts(w));
  return { q: transposed ? transposeInt8(raw, n, k) : raw, k, n, scales, zeros, consumed };
}

/**
 * The quantized activation a linear reads: DQ(Q(x)) with scalar parameters, directly or through one Reshape.
 * transformers' Conv1D (GPT-2) flattens its input to [batch x tokens, K] before addmm, so torch's export puts a
 * Reshape between the input quantizer's DQ and the Gemm.
 */
function readActivation(
  idx: GraphIndex,
  g: Graph,
  value: string,
): { dq: Node; q: Node; params: QParams; reshape?: Node } | undefined {
  let dq = idx.producer.get(value);
  let reshape: Node | undefined;
  if (dq?.op_type === 'Reshape' && (!dq.domain || dq.domain === 'ai.onnx')) {
    reshape = dq;
    dq = idx.producer.get(reshape.input[0]);
  }
  if (dq?.op_type !== 'DequantizeLinear') return undefined;
  const q = idx.producer.get(dq.input[0]);
  const params = q?.op_type === 'QuantizeLinear' ? qParams(idx, dq) : undefined;
  if (!q || !params?.scalar) return undefined;
  if (reshape && g.output.some((o) => o.name === reshape!.output[0])) return undefined;
  return { dq, q, params, reshape };
}

/** A copy of `reshape` applied to `input` instead (its shape input and attributes kept). */
function reshaped(names: NameAllocator, reshape: Node, input: string): Node {
  const out = names.fresh(`${input}_reshaped`);
  return makeNode('Reshape', [input, ...reshape.input.slice(1)], [out], names.fresh(`${label(reshape)}_moved`), [
    ...(reshape.attribute ?? []),
  ]);
}

/** Float [K, N] of a weight, for the linears the cost model leaves in float. */
function dequantize(w: Weight): Float32Array {
  const f = new Float32Array(w.k * w.n);
  for (let i = 0; i < w.k; i++)
    for (let j = 0; j < w.n; j++) f[i * w.n + j] = (w.q[i * w.n + j] - w.zeros[j]) * w.scales[j];
  return f;
}

/** A linear's bias: Gemm's C (times beta), or a constant [N] Add that is the MatMul's only reader; null: unusable C. */
function linearBias(
  idx: GraphIndex,
  g: Graph,
  mm: Node,
  n: number,
  beta: number,
): { bias: Float32Array | undefined; out: string; biasAdd: Node | undefined } | null {
  let bias: Float32Array | undefined;
  let out = mm.output[0];
  let biasAdd: Node | undefined;
  if (mm.op_type === 'Gemm' && mm.input[2]) {
    const c = constantTensor(idx, mm.input[2]);
    if (!c || (elementCount(dims(c)) !== n && elementCount(dims(c)) !== 1)) return null;
    const cv = tensorToFloat32(c);
    bias = Float32Array.from({ length: n }, (_, j) => beta * cv[cv.length === 1 ? 0 : j]);
  } else if (mm.op_type === 'MatMul') {
    const reader = onlyReader(idx, mm.output[0], g);
    const add = reader?.op_type === 'Add' ? reader : undefined;
    const other = add ? (add.input[0] === mm.output[0] ? add.input[1] : add.input[0]) : '';
    const c = add ? constantTensor(idx, other) : undefined;
    if (
      add &&
      c &&
      c.data_type === DataType.FLOAT &&
      elementCount(dims(c)) === n &&
      dims(c)
        .slice(0, -1)
        .every((d) => d === 1)
    ) {
      bias = tensorToFloat32(c);
      biasAdd = add;
      out = add.output[0];
    }
  }
  return { bias, out, biasAdd };
}

/** The float form of a linear too small for integer kernels: its weight dequantized ahead of time. */
function floatLinear(
  g: Graph,
  names: NameAllocator,
  mm: Node,
  w: Weight,
  activation: string,
  bias: Float32Array | undefined,
  out: string,
): Node[] {
  const b = base(mm);
  const wf = dequantize(w);
  const wName = names.fresh(`${b}_weight_float`);
  g.initializer.push(floatTensor(wName, [w.k, w.n], wf));
  const nodes: Node[] = [];
  const inputs = [activation, wName];
  if (bias) {
    const bName = names.fresh(`${b}_bias`);
    g.initializer.push(floatTensor(bName, [w.n], bias));
    inputs.push(bName);
  }
  nodes.push(
    bias && mm.op_type === 'Gemm'
      ? makeNode('Gemm', inputs, [out], names.fresh(`${label(mm)}_float`))
      : makeNode(
          'MatMul',
          inputs.slice(0, 2),
          [bias ? names.fresh(`${mm.output[0]}_float`) : out],
          names.fresh(`${label(mm)}_float`),
        ),
  );
  if (bias && mm.op_type !== 'Gemm')
    nodes.push(makeNode('Add', [nodes[0].output[0], inputs[2]], [out], names.fresh(`${label(mm)}_bias_Add`)));
  return nodes;
}

/** Activation x activation MatMuls doing too little work for integer: their inputs read before the Q. */
function floatSmallActivationMatMuls(
  g: Graph,
  shapes: ReturnType<typeof inferShapes>,
  minMacs: number,
  result: OrtCpuLinearResult,
  forced?: string,
): Set<Node> {
  const idx = indexGraph(g);
  const floatMatMuls = new Set<Node>();
  for (const mm of g.node) {
    if (mm.op_type !== 'MatMul' || (mm.domain && mm.domain !== 'ai.onnx')) continue;
    const dqs = mm.input.map((i) => idx.producer.get(i));
    if (!dqs.every((d) => d?.op_type === 'DequantizeLinear' && !constantTensor(idx, d.input[0]))) continue;
    const macs = matMulMacsPerItem(shapes, mm.input[0], mm.input[1]);
    if (!forced && (macs === undefined || macs >= minMacs)) continue;
    floatMatMuls.add(mm);
    mm.input = mm.input.map((i, k) => {
      const q = idx.producer.get(dqs[k]!.input[0]);
      return q?.op_type === 'QuantizeLinear' ? q.input[0] : i;
    });
    result.float.push({
      node: label(mm),
      reason: forced ?? `activation x activation MatMul, ${macs} multiply-adds per batch item, below ${minMacs}`,
    });
  }
  return floatMatMuls;
}

export function rewriteLinearsForOrtCpu(model: Model, opts: OrtCpuLinearOptions = {}): OrtCpuLinearResult {
  const g = model.graph;
  const names = new NameAllocator(g);
  const result: OrtCpuLinearResult = { integer: [], float: [], pairsBypassed: 0 };
  const minMacs = opts.minMacsPerItem ?? DEFAULT_MIN_MACS_PER_ITEM;
  topoSort(g); // earlier passes append nodes; shapes are worked out in order
  const shapes = inferShapes(g);
  const idx = indexGraph(g);
  const replaced = new Map<Node, Node[]>();
  const dropped = new Set<Node>();

  for (const mm of g.node) {
    if ((mm.op_type !== 'MatMul' && mm.op_type !== 'Gemm') || (mm.domain && mm.domain !== 'ai.onnx')) continue;
    let transB = false,
      alpha = 1,
      beta = 1;
    if (mm.op_type === 'Gemm') {
      if (attrInt(mm, 'transA', 0) !== 0) continue;
      transB = attrInt(mm, 'transB', 0) !== 0;
      alpha = attrFloat(mm, 'alpha', 1);
      beta = attrFloat(mm, 'beta', 1);
    }
    const w = readWeight(idx, g, mm.input[1], transB);
    if (!w) continue;
    const act = readActivation(idx, g, mm.input[0]);
    if (!act) continue;
    const { dq: aDq, q: aQ, params: aParams } = act;
    const withBias = linearBias(idx, g, mm, w.n, beta);
    if (!withBias) continue;
    const { bias, out, biasAdd } = withBias;
    const scales = alpha === 1 ? w.scales : w.scales.map((s) => s * alpha);
    const b = base(mm);
    const consumedNodes = [...w.consumed, ...(biasAdd ? [biasAdd] : [])];
    // Rows per batch item from the shape before a Conv1D's Reshape, which folds the tokens into the batch.
    const a = shapes.shapes.get(act.reshape ? act.reshape.input[0] : mm.input[0]);
    const macs = a ? (a.length >= 3 ? a[a.length - 2] : 1) * w.k * w.n : undefined;
    if (opts.floatLinears || (macs !== undefined && macs < minMacs)) {
      // Float: the weight dequantized ahead of time, the activation read before its Q.
      const floatIn = act.reshape ? reshaped(names, act.reshape, aQ.input[0]) : undefined;
      const linear = floatLinear(g, names, mm, { ...w, scales }, floatIn?.output[0] ?? aQ.input[0], bias, out);
      replaced.set(mm, floatIn ? [floatIn, ...linear] : linear);
      for (const n of consumedNodes) dropped.add(n);
      result.float.push({
        node: label(mm),
        reason: opts.floatLinears ?? `${macs} multiply-adds per batch item (K ${w.k}, N ${w.n}), below ${minMacs}`,
      });
      continue;
    }
    const wName = names.fresh(`${b}_weight_int8`),
      sName = names.fresh(`${b}_weight_scale`);
    g.initializer.push(makeTensor(wName, DataType.INT8, [w.k, w.n], w.q), floatTensor(sName, [w.n], scales));
    // HF Conv1D's Reshape moves to the quantized tensor (a Reshape of UINT8 is as cheap as of float).
    const intIn = act.reshape ? reshaped(names, act.reshape, aDq.input[0]) : undefined;
    const inputs = [intIn?.output[0] ?? aDq.input[0], wName, aParams.scale, sName, aParams.zp];
    if (w.zeros.some((z) => z !== 0) || bias) {
      const zName = names.fresh(`${b}_weight_zero_point`);
      g.initializer.push(int8Tensor(zName, [w.n], w.zeros));
      inputs.push(zName);
    }
    if (bias) {
      const bName = names.fresh(`${b}_bias`);
      g.initializer.push(floatTensor(bName, [w.n], bias));
      inputs.push(bName);
    }
    replaced.set(mm, [
      ...(intIn ? [intIn] : []),
      makeNode('MatMulIntegerToFloat', inputs, [out], names.fresh(`${label(mm)}_integer`), [], 'com.microsoft'),
    ]);
    for (const n of consumedNodes) dropped.add(n);
    result.integer.push({ node: label(mm), k: w.k, n: w.n });
  }
  if (replaced.size) {
    g.node = g.node.filter((n) => !dropped.has(n)).flatMap((n) => replaced.get(n) ?? [n]);
    ensureOpset(model, 'com.microsoft', 1);
  }

  // Activation x activation MatMuls too small for integer: read their inputs before the Q.
  const floatMatMuls = floatSmallActivationMatMuls(g, shapes, minMacs, result, opts.floatActivationMatMuls);

  removeDead(g);
  result.pairsBypassed = bypassIdlePairs(g, floatMatMuls);
  if (opts.unsignedActivations) toUnsignedActivations(g, names);
  return result;
}

/** Does the value reach, through layout ops, an op ORT's CPU provider runs in integer from its DQ inputs? */
function feedsInteger(g: Graph, idx: GraphIndex, floatOps: Set<Node>, value: string, depth = 0): boolean {
  if (depth > 8) return true;
  for (const r of idx.consumers.get(value) ?? []) {
    if (r.domain === 'com.microsoft') return true;
    if (POOL_OPS.has(r.op_type)) return true;
    // A weighted op is integer only when both its operands are dequantized (through layout ops, which ORT moves DQ across).
    if (
      (r.op_type === 'Conv' || r.op_type === 'MatMul' || r.op_type === 'Gemm') &&
      !floatOps.has(r) &&
      r.input.slice(0, 2).every((i) => dequantized(idx, i))
    )
      return true;
    // QLinearAdd / QLinearMul: both operands dequantized and the result quantized (and only that).
    const after = idx.consumers.get(r.output[0]) ?? [];
    if (
      (r.op_type === 'Add' || r.op_type === 'Mul') &&
      r.input.every((i) => idx.producer.get(i)?.op_type === 'DequantizeLinear') &&
      after.length > 0 &&
      after.every((n) => n.op_type === 'QuantizeLinear') &&
      !g.output.some((o) => o.name === r.output[0])
    )
      return true;
    // A requantization (DQ -> Q): integer only when what that Q feeds is.
    if (
      r.op_type === 'QuantizeLinear' &&
      (idx.consumers.get(r.output[0]) ?? []).some(
        (n) => n.op_type !== 'DequantizeLinear' || feedsInteger(g, idx, floatOps, n.output[0], depth + 1),
      )
    )
      return true;
    if (LAYOUT_OPS.has(r.op_type) && r.input[0] === value && feedsInteger(g, idx, floatOps, r.output[0], depth + 1))
      return true;
  }
  return false;
}

function dequantized(idx: GraphIndex, value: string, depth = 0): boolean {
  const p = idx.producer.get(value);
  if (!p || depth > 8) return false;
  if (p.op_type === 'DequantizeLinear') return true;
  return LAYOUT_OPS.has(p.op_type) && dequantized(idx, p.input[0], depth + 1);
}

/** Is the Q's input the output of an op ORT runs in integer only when its output is quantized? */
function fedByInteger(idx: GraphIndex, q: Node): boolean {
  const p = idx.producer.get(q.input[0]);
  if (!p) return false;
  if (p.op_type === 'Conv' || p.op_type === 'MatMul' || p.op_type === 'Gemm' || POOL_OPS.has(p.op_type)) {
    return p.input.some((i) => idx.producer.get(i)?.op_type === 'DequantizeLinear');
  }
  if (p.op_type === 'Add' || p.op_type === 'Mul')
    return p.input.every((i) => idx.producer.get(i)?.op_type === 'DequantizeLinear');
  return false;
}

/**
 * Q -> DQ pairs (scalar parameters) whose DQ feeds nothing integer and whose Q follows nothing integer: the DQ's
 * readers read the Q's input instead. The Q stays while something else (a MatMulIntegerToFloat) reads it.
 */
function bypassIdlePairs(g: Graph, floatOps: Set<Node>): number {
  let count = 0;
  for (let changed = true; changed;) {
    changed = false;
    const idx = indexGraph(g);
    for (const dq of g.node) {
      if (dq.op_type !== 'DequantizeLinear') continue;
      const q = idx.producer.get(dq.input[0]);
      if (q?.op_type !== 'QuantizeLinear') continue;
      const p = qParams(idx, dq);
      if (!p?.scalar) continue;
      if (feedsInteger(g, idx, floatOps, dq.output[0]) || fedByInteger(idx, q)) continue;
      const src = q.input[0];
      const isOutput = g.output.some((o) => o.name === dq.output[0]);
      if (isOutput) {
        // Keep the graph output's name: the float value is renamed to it at its producer.
        const prod = idx.producer.get(src);
        if (!prod || g.output.some((o) => o.name === src) || (idx.consumers.get(src) ?? []).some((n) => n !== q))
          continue;
        prod.output = prod.output.map((o) => (o === src ? dq.output[0] : o));
        q.input[0] = dq.output[0];
        dq.output = [];
      } else {
        for (const r of idx.consumers.get(dq.output[0]) ?? [])
          r.input = r.input.map((i) => (i === dq.output[0] ? src : i));
      }
      count++;
      changed = true;
      break;
    }
    if (changed) removeDead(g);
  }
  return count;
}

function removeDead(g: Graph): void {
  for (let again = true; again;) {
    again = false;
    const used = new Set<string>(g.output.map((o) => o.name));
    for (const n of g.node) for (const i of n.input) if (i) used.add(i);
    const keep = g.node.filter((n) => n.output.some((o) => o && used.has(o)));
    if (keep.length !== g.node.length) {
      g.node = keep;
      again = true;
    }
  }
  const used = new Set<string>();
  for (const n of g.node) for (const i of n.input) used.add(i);
  g.initializer = g.initializer.filter((t) => used.has(t.name || ''));
}

/**
 * INT8 activation quantizers (read by MatMulIntegerToFloat) as UINT8 with zero point + 128: the same real values,
 * in the u8 x s8 form x86 integer kernels take directly.
 */
function toUnsignedActivations(g: Graph, names: NameAllocator): void {
  const idx = indexGraph(g);
  for (const q of g.node) {
    if (q.op_type !== 'QuantizeLinear' || !q.input[2]) continue;
    const z = constantTensor(idx, q.input[2]);
    if (!z || z.data_type !== DataType.INT8 || elementCount(dims(z)) !== 1) continue;
    const readers = idx.consumers.get(q.output[0]) ?? [];
    // A Reshape moved onto the quantized tensor (readActivation) passes the new type on to its linears.
    const linearsOf = (r: Node) =>
      r.op_type === 'Reshape' && r.input[0] === q.output[0] ? (idx.consumers.get(r.output[0]) ?? []) : [r];
    const isLinear = (r: Node) => r.op_type === 'MatMulIntegerToFloat';
    if (!readers.some((r) => linearsOf(r).some(isLinear))) continue;
    // Every reader must take the new type: DQs (same values with the shifted zero point) and the integer linears.
    const takesUint8 = (r: Node) =>
      r.op_type === 'DequantizeLinear' ||
      isLinear(r) ||
      (r.op_type === 'Reshape' && linearsOf(r).every((l) => isLinear(l) && l.input[0] === r.output[0]));
    if (!readers.every(takesUint8)) continue;
    const zName = names.fresh(`${q.input[2]}_uint8`);
    g.initializer.push(uint8Tensor(zName, dims(z), [tensorToInts(z)[0] + 128]));
    const old = q.input[2];
    q.input[2] = zName;
    for (const r of readers.flatMap(linearsOf))
      r.input = r.input.map((i, k) => (i === old && (r.op_type !== 'MatMulIntegerToFloat' || k === 4) ? zName : i));
  }
}
