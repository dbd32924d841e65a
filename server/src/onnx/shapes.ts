// Static shapes of a graph's values for one concrete input size, for the ort-cpu cost model (how many
// multiply-adds a MatMul does per batch item). torch's export leaves no value_info and computes Reshape targets
// at run time (Shape -> Gather -> Unsqueeze -> Concat), so the shape computations are evaluated here on small
// int64 values. Every symbolic input dimension is taken as 1. Ops not covered leave their outputs unknown.
import { Graph, Node, DataType, ValueInfo, dims, tensorToInts, getAttr, num, attrInt } from './model';

export interface ShapeInfo {
  /** Shape of each value whose shape could be worked out. */
  shapes: Map<string, number[]>;
  /** Contents of small int64/int32 values (shape computations). */
  ints: Map<string, number[]>;
}

const SAME_SHAPE = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'Relu',
  'Erf',
  'Sqrt',
  'Softmax',
  'Gelu',
  'Tanh',
  'Sigmoid',
  'Cast',
  'Identity',
  'LayerNormalization',
  'BatchNormalization',
  'Neg',
  'Exp',
  'Log',
  'Abs',
  'Clip',
  'LeakyRelu',
  'HardSigmoid',
]);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Where', 'Equal', 'Max', 'Min']);

function broadcast(a: number[], b: number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1,
      y = b[b.length - n + i] ?? 1;
    out.push(x === 1 ? y : x);
  }
  return out;
}

function valueShape(v: ValueInfo | undefined): number[] | undefined {
  const d = v?.type?.tensor_type?.shape?.dim;
  if (!d) return undefined;
  return d.map((x) =>
    x.dim_value !== undefined && x.dim_value !== null && num(x.dim_value) > 0 ? num(x.dim_value) : 1,
  );
}

export function inferShapes(g: Graph): ShapeInfo {
  const shapes = new Map<string, number[]>();
  const ints = new Map<string, number[]>();
  for (const i of g.input) {
    const s = valueShape(i);
    if (s) shapes.set(i.name, s);
  }
  for (const t of g.initializer) {
    shapes.set(t.name || '', dims(t));
    if ((t.data_type === DataType.INT64 || t.data_type === DataType.INT32) && dims(t).reduce((a, b) => a * b, 1) <= 16)
      ints.set(t.name || '', tensorToInts(t));
  }
  for (const n of g.node) {
    try {
      infer(n, shapes, ints);
    } catch {
      /* unknown: leave the outputs without a shape */
    }
  }
  return { shapes, ints };
}

function infer(n: Node, shapes: Map<string, number[]>, ints: Map<string, number[]>): void {
  const s = (k: number) => (n.input[k] ? shapes.get(n.input[k]) : undefined);
  const iv = (k: number) => (n.input[k] ? ints.get(n.input[k]) : undefined);
  const set = (shape: number[] | undefined, values?: number[]) => {
    if (!shape) return;
    shapes.set(n.output[0], shape);
    if (values) ints.set(n.output[0], values);
  };
  const op = n.op_type;
  if (op === 'Constant') {
    const t = getAttr(n, 'value')?.t;
    if (!t) return;
    const v = t.data_type === DataType.INT64 || t.data_type === DataType.INT32 ? tensorToInts(t) : undefined;
    set(dims(t), v);
  } else if (op === 'Shape') {
    const x = s(0);
    if (x) set([x.length], x.slice());
  } else if (op === 'Gather') {
    const data = iv(0),
      idx = iv(1),
      ishape = s(1);
    if (data && idx && ishape && attrInt(n, 'axis', 0) === 0) {
      const vals = idx.map((i) => data[i < 0 ? i + data.length : i]);
      set(ishape, vals);
    }
  } else if (op === 'Unsqueeze' || op === 'Squeeze') {
    const x = s(0);
    const axes = iv(1) ?? getAttr(n, 'axes')?.ints?.map(num);
    if (!x || !axes) return;
    let out = x.slice();
    if (op === 'Unsqueeze') {
      const rank = x.length + axes.length;
      const norm = axes.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
      for (const a of norm) out.splice(a, 0, 1);
    } else {
      const norm = new Set(axes.map((a) => (a < 0 ? a + x.length : a)));
      out = x.filter((_, i) => !norm.has(i));
    }
    set(out, iv(0));
  } else if (op === 'Concat') {
    const parts = n.input.map((_, k) => s(k));
    if (parts.some((p) => !p)) return;
    let axis = attrInt(n, 'axis', 0);
    const rank = parts[0]!.length;
    if (axis < 0) axis += rank;
    const out = parts[0]!.slice();
    out[axis] = parts.reduce((a, p) => a + p![axis], 0);
    const vals = n.input.map((_, k) => iv(k));
    set(out, rank === 1 && vals.every(Boolean) ? vals.flatMap((v) => v!) : undefined);
  } else if (op === 'Reshape') {
    const x = s(0),
      target = iv(1);
    if (!x || !target) return;
    const total = x.reduce((a, b) => a * b, 1);
    const out = target.map((d, i) => (d === 0 ? x[i] : d));
    const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    set(out.map((d) => (d === -1 ? total / known : d)));
  } else if (op === 'Transpose') {
    const x = s(0);
    if (!x) return;
    const perm = getAttr(n, 'perm')?.ints?.map(num) ?? x.map((_, i) => x.length - 1 - i);
    set(perm.map((p) => x[p]));
  } else if (op === 'Flatten') {
    const x = s(0);
    if (!x) return;
    let axis = attrInt(n, 'axis', 1);
    if (axis < 0) axis += x.length;
    set([x.slice(0, axis).reduce((a, b) => a * b, 1), x.slice(axis).reduce((a, b) => a * b, 1)]);
  } else if (op === 'MatMul' || op === 'MatMulIntegerToFloat' || op === 'FusedMatMul') {
    const a = s(0),
      b = s(1);
    if (!a || !b || a.length < 2 || b.length < 2) return;
    const lead = broadcast(a.slice(0, -2), b.slice(0, -2));
    set([...lead, a[a.length - 2], b[b.length - 1]]);
  } else if (op === 'Gemm') {
    const a = s(0),
      b = s(1);
    if (!a || !b) return;
    const m = attrInt(n, 'transA', 0) ? a[1] : a[0];
    const nn = attrInt(n, 'transB', 0) ? b[0] : b[1];
    set([m, nn]);
  } else if (op === 'ReduceMean' || op === 'ReduceSum' || op === 'ReduceMax') {
    const x = s(0);
    if (!x) return;
    const axes = (getAttr(n, 'axes')?.ints?.map(num) ?? iv(1) ?? x.map((_, i) => i)).map((a) =>
      a < 0 ? a + x.length : a,
    );
    const keep = attrInt(n, 'keepdims', 1) !== 0;
    set(keep ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i)));
  } else if (op === 'GlobalAveragePool' || op === 'GlobalMaxPool') {
    const x = s(0);
    if (x) set([...x.slice(0, 2), ...x.slice(2).map(() => 1)]);
  } else if (op === 'Conv' || op === 'MaxPool' || op === 'AveragePool') {
    const x = s(0);
    if (!x || x.length < 3) return;
    const spatial = x.length - 2;
    const kernel = getAttr(n, 'kernel_shape')?.ints?.map(num) ?? (op === 'Conv' ? s(1)?.slice(2) : undefined);
    if (!kernel || kernel.length !== spatial) return;
    const autoPad = getAttr(n, 'auto_pad')?.s;
    if (autoPad && String(Buffer.from(autoPad)) !== 'NOTSET') return;
    const strides = getAttr(n, 'strides')?.ints?.map(num) ?? kernel.map(() => 1);
    const dil = getAttr(n, 'dilations')?.ints?.map(num) ?? kernel.map(() => 1);
    const pads = getAttr(n, 'pads')?.ints?.map(num) ?? kernel.map(() => 0).concat(kernel.map(() => 0));
    if (attrInt(n, 'ceil_mode', 0)) return;
    const out = kernel.map(
      (k, i) => Math.floor((x[2 + i] + pads[i] + pads[i + spatial] - dil[i] * (k - 1) - 1) / strides[i]) + 1,
    );
    const channels = op === 'Conv' ? s(1)?.[0] : x[1];
    if (channels === undefined) return;
    set([x[0], channels, ...out]);
  } else if (SAME_SHAPE.has(op)) {
    set(s(0));
  } else if (BROADCAST.has(op)) {
    const shapesIn = n.input.map((_, k) => s(k));
    if (shapesIn.some((x) => !x)) return;
    set(shapesIn.reduce((a, b) => broadcast(a!, b!)));
  }
}

/** Multiply-adds of a MatMul (inputs [..., M, K] x [..., K, N]) per item of the leading batch dimension. */
export function matMulMacsPerItem(info: ShapeInfo, a: string, b: string): number | undefined {
  const x = info.shapes.get(a),
    y = info.shapes.get(b);
  if (!x || !y || x.length < 2 || y.length < 2) return undefined;
  const lead = broadcast(x.slice(0, -2), y.slice(0, -2));
  // The first dimension is the batch (taken as 1) when there are leading dimensions; a 2-D A is [batch, K].
  const m = x.length === 2 ? 1 : x[x.length - 2];
  const perItem = lead.length ? lead.slice(1).reduce((p, d) => p * d, 1) : 1;
  return perItem * m * x[x.length - 1] * y[y.length - 1];
}
