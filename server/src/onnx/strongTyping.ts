// Strongly typed export for TensorRT 11: TensorRT 11 builds only strongly typed networks, so the ONNX types are the
// precisions. This pass takes the FP32 + Q/DQ graph the backend exports and retypes every float op that is not
// quantized to FP16 (or BF16), leaving FP32 islands where the low type is unsafe (precisionRules.ts). Q/DQ scales
// take the type of the tensor they quantize; Casts go only where a region of one type meets another; graph inputs
// and outputs keep their types. Each node's decision is written into its doc_string ("qdq precision: ...") so the
// file carries its own explanation and auditPrecision (precisionAudit.ts) can read it back.
import {
  Model,
  Graph,
  Node,
  Tensor,
  DataType,
  GraphIndex,
  indexGraph,
  constantTensor,
  tensorToFloat32,
  dims,
  makeNode,
  intAttr,
  NameAllocator,
  removeUnused,
  topoSort,
  opsetVersion,
  getAttr,
  num,
  int64Tensor,
  scalarQuantParams,
} from './model';
import { BFLOAT16, inferElemTypes } from './floatTypes';
import { toBFloat16Bits, toFloat16Bits } from './halfFloat';
import {
  FOLLOW_OPS,
  TYPE_AGNOSTIC_OPS,
  typeExemptInput,
  fp32Reason,
  decomposedLayerNormNodes,
  RuleInputs,
  Fp32Reason,
  Fp32Marker,
} from './precisionRules';

export type FloatPrecision = 'fp16' | 'bf16' | 'fp32';

export interface StrongTypingOptions {
  precision: FloatPrecision;
  /** Calibrated amax by ONNX value name (Q nodes' own scales add to it: amax = scale * 127). */
  ranges?: Map<string, number>;
  /** Modules (keep_float(X, "fp32")) whose ops stay FP32, with the source site. */
  fp32Markers?: Fp32Marker[];
}

export interface NodePrecision {
  node: string;
  op: string;
  precision: 'FP16' | 'BF16' | 'FP32';
  reason?: string;
  kind?: Fp32Reason['kind'];
  site?: string;
}

export interface StrongTypingResult {
  precision: FloatPrecision;
  opset: number;
  casts: number;
  fp32: NodePrecision[];
  low: number;
}

const LOW_TYPE = { fp16: DataType.FLOAT16, bf16: BFLOAT16 } as const;
/** DequantizeLinear/QuantizeLinear take FP16/BF16 scales from opset 19; Conv, pooling and most math take BF16 from 22. */
const TYPED_OPSET = { fp16: 19, bf16: 22 } as const;
const REDUCE_AXES_INPUT_OPS = new Set([
  'ReduceMean',
  'ReduceMax',
  'ReduceMin',
  'ReduceProd',
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'ReduceSumSquare',
]);
export const DOC_PREFIX = 'qdq precision: ';

/** Calibrated ranges the graph states itself: a QuantizeLinear's input amax is scale * 127. */
function rangesFromQuantizers(g: Graph, idx: GraphIndex, into: Map<string, number>): void {
  for (const q of g.node) {
    if (q.op_type !== 'QuantizeLinear' || constantTensor(idx, q.input[0])) continue;
    const p = scalarQuantParams(idx, q);
    if (p && !into.has(q.input[0])) into.set(q.input[0], p.scale * 127);
  }
}

function isFloat32(types: Map<string, number>, v: string): boolean {
  return types.get(v) === DataType.FLOAT;
}

/** Float compute: an op with an FP32 output that neither moves data nor converts types. */
function isFloatCompute(n: Node, types: Map<string, number>): boolean {
  if (FOLLOW_OPS.has(n.op_type) || TYPE_AGNOSTIC_OPS.has(n.op_type) || n.op_type === 'Constant') return false;
  return n.output.some((o) => isFloat32(types, o));
}

/** Opset 18 moved the axes of most Reduce ops from an attribute to an input. */
function moveReduceAxesToInputs(g: Graph, names: NameAllocator): void {
  for (const n of g.node) {
    if (!REDUCE_AXES_INPUT_OPS.has(n.op_type)) continue;
    const a = getAttr(n, 'axes');
    if (!a) continue;
    const axes = (a.ints ?? []).map(num);
    const t = int64Tensor(names.fresh(`${n.name || n.op_type}_axes`), [axes.length], axes);
    g.initializer.push(t);
    n.attribute = n.attribute.filter((x) => x.name !== 'axes');
    n.input = [n.input[0], t.name!];
  }
}

function upgradeOpset(model: Model, names: NameAllocator, want: number): number {
  const o = model.opset_import.find((x) => !x.domain || x.domain === 'ai.onnx');
  const v = opsetVersion(model);
  if (v >= want || !o) return v;
  if (v < 18) moveReduceAxesToInputs(model.graph, names);
  o.version = want;
  // IR 9 came with opset 19, IR 10 with opset 21.
  const ir = want >= 21 ? 10 : 9;
  if (num(model.ir_version) < ir) model.ir_version = ir;
  return want;
}

function convertTensor(t: Tensor, name: string, type: number): Tensor {
  const src = tensorToFloat32(t);
  const bits = new Uint16Array(src.length);
  const conv = type === DataType.FLOAT16 ? toFloat16Bits : toBFloat16Bits;
  for (let i = 0; i < src.length; i++) bits[i] = conv(src[i]);
  return { name, data_type: type, dims: dims(t), raw_data: Buffer.from(bits.buffer) };
}

interface Ctx {
  g: Graph;
  idx: GraphIndex;
  names: NameAllocator;
  types: Map<string, number>;
  low: number;
  /** Converted constants and inserted Casts, by "value|type". */
  typed: Map<string, string>;
  casts: number;
  newNodes: Node[];
}

/** `v` as type `type`: itself, a converted copy of a constant, or a (shared) Cast. */
function asType(c: Ctx, v: string, type: number): string {
  const have = c.types.get(v);
  if (have === type || have === undefined) return v;
  const key = `${v}|${type}`;
  const done = c.typed.get(key);
  if (done) return done;
  const k = constantTensor(c.idx, v);
  let out: string;
  if (k && (k.data_type === DataType.FLOAT || k.data_type === DataType.FLOAT16 || k.data_type === BFLOAT16)) {
    out = c.names.fresh(`${v}_${type === DataType.FLOAT ? 'fp32' : type === DataType.FLOAT16 ? 'fp16' : 'bf16'}`);
    const t = k.data_type === DataType.FLOAT ? k : { ...k, data_type: DataType.FLOAT };
    c.g.initializer.push(type === DataType.FLOAT ? { ...t, name: out } : convertTensor(t, out, type));
  } else {
    out = c.names.fresh(`${v}_cast_${type === DataType.FLOAT ? 'fp32' : 'low'}`);
    c.newNodes.push(makeNode('Cast', [v], [out], c.names.fresh(`${v}_Cast`), [intAttr('to', type)]));
    c.casts++;
  }
  c.types.set(out, type);
  c.typed.set(key, out);
  return out;
}

/** Does any reader of `v` (looking through data-movement ops) run in the low type? */
function wantsLow(c: Ctx, v: string, decided: Map<Node, number>, seen = new Set<string>()): boolean {
  if (seen.has(v)) return false;
  seen.add(v);
  for (const r of c.idx.consumers.get(v) ?? []) {
    if (r.op_type === 'QuantizeLinear') continue;
    if (FOLLOW_OPS.has(r.op_type)) {
      if (r.output.some((o) => wantsLow(c, o, decided, seen))) return true;
    } else if (decided.get(r) === c.low) return true;
  }
  return false;
}

/** Set the doc_string that records a node's precision and reason. */
function record(n: Node, text: string): void {
  n.doc_string = DOC_PREFIX + text;
}

/** Ops that make float data from nothing float (their type is an attribute): left as exported. */
const SOURCE_OPS = new Set([
  'ConstantOfShape',
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'EyeLike',
  'Bernoulli',
  'If',
  'Loop',
  'Scan',
]);

function ruleInputs(g: Graph, idx: GraphIndex, opts: StrongTypingOptions): RuleInputs {
  const ranges = new Map(opts.ranges ?? []);
  rangesFromQuantizers(g, idx, ranges);
  const fp16 = opts.precision === 'fp16';
  return {
    lowName: fp16 ? 'FP16' : 'BF16',
    limit: fp16 ? 65504 : 3.38e38,
    tiny: fp16 ? 2 ** -14 : 1.18e-38,
    ranges,
    fp32Markers: opts.fp32Markers ?? [],
    layerNormNodes: decomposedLayerNormNodes(g, idx),
  };
}

/** Pass 1: each float compute op runs low unless a rule, a calibrated range or the user's marker says FP32. */
function decideCompute(c: Ctx, rules: RuleInputs, fp32: NodePrecision[]): Map<Node, number> {
  const decided = new Map<Node, number>();
  for (const n of c.g.node) {
    if ((n.domain && n.domain !== 'ai.onnx') || SOURCE_OPS.has(n.op_type) || !isFloatCompute(n, c.types)) continue;
    const why = unheldScale(c, n) ?? fp32Reason(n, rules);
    if (why) {
      decided.set(n, DataType.FLOAT);
      record(n, `FP32 (${why.kind}): ${why.reason}`);
      fp32.push({
        node: n.name ?? '',
        op: n.op_type,
        precision: 'FP32',
        reason: why.reason,
        kind: why.kind,
        site: why.site,
      });
    } else {
      decided.set(n, c.low);
      record(n, rules.lowName);
    }
  }
  return decided;
}

/** The DequantizeLinear feeding input `v` of a compute op, looking back through data movement, if any. */
function feedingDq(c: Ctx, v: string): Node | undefined {
  for (let p = c.idx.producer.get(v); p; p = c.idx.producer.get(p.input[0])) {
    if (p.op_type === 'DequantizeLinear') return p;
    if (!FOLLOW_OPS.has(p.op_type)) return undefined;
  }
  return undefined;
}

/**
 * An op fed by a DequantizeLinear whose scale the low type cannot hold runs in FP32: that Q/DQ stays FP32, and a
 * Cast between the DQ and its consumer would break the INT8 fusion (TensorRT fuses DQ -> Conv/MatMul only when the
 * DQ feeds the op itself). The layer still computes in INT8; its inputs and output stay FP32.
 */
function unheldScale(c: Ctx, n: Node): Fp32Reason | null {
  for (const [i, v] of n.input.entries()) {
    if (!v || typeExemptInput(n.op_type, i)) continue;
    const dq = feedingDq(c, v);
    if (dq && !scaleFitsLow(c, dq.input[1]))
      return {
        kind: 'underflow',
        reason:
          `the Q/DQ scale of ${dq.name || v} is below the FP16 normal range, so that Q/DQ stays FP32 and this ` +
          'INT8 layer keeps FP32 inputs and output (its DequantizeLinear feeds it directly)',
      };
  }
  return null;
}

/** Scales that the low type cannot hold within 1% (FP16 subnormals, zero) keep their Q/DQ in FP32. */
function scaleFitsLow(c: Ctx, scale: string): boolean {
  if (c.low !== DataType.FLOAT16) return true;
  const t = constantTensor(c.idx, scale);
  if (!t) return false;
  for (const s of tensorToFloat32(t)) {
    const h = Math.abs(s);
    if (h > 65504 || (h < 2 ** -14 && h !== 0)) return false;
  }
  return true;
}

/** The type a non-compute node with float inputs runs in: low when any computed (non-constant) float input is low. */
function unifiedType(c: Ctx, n: Node, decided: Map<Node, number>): number {
  const floats = n.input.filter((v, i) => v && !typeExemptInput(n.op_type, i) && isFloatish(c, v));
  const computed = floats.filter((v) => !constantTensor(c.idx, v));
  if (computed.some((v) => c.types.get(v) === c.low)) return c.low;
  if (computed.length === 0 && n.output.some((o) => wantsLow(c, o, decided))) return c.low;
  return DataType.FLOAT;
}

function isFloatish(c: Ctx, v: string): boolean {
  const t = c.types.get(v);
  return t === DataType.FLOAT || t === c.low;
}

/** Pass 2, in graph order: Q/DQ, Casts and data movement take their types; every mismatched input gets a Cast. */
function retypeNode(c: Ctx, n: Node, decided: Map<Node, number>): void {
  const origOut = n.output.map((o) => c.types.get(o));
  let t: number | undefined = decided.get(n);
  if (n.op_type === 'QuantizeLinear') {
    let xType = c.types.get(n.input[0]) ?? DataType.FLOAT;
    if (xType === c.low && !scaleFitsLow(c, n.input[1])) {
      n.input[0] = asType(c, n.input[0], DataType.FLOAT);
      xType = DataType.FLOAT;
      record(n, 'FP32 (underflow): scale not representable in the low precision');
    }
    n.input[1] = asType(c, n.input[1], xType);
    return;
  }
  if (n.op_type === 'DequantizeLinear') {
    t = wantsLow(c, n.output[0], decided) && scaleFitsLow(c, n.input[1]) ? c.low : DataType.FLOAT;
    n.input[1] = asType(c, n.input[1], t);
    c.types.set(n.output[0], t);
    return;
  }
  if (n.op_type === 'Cast') {
    if (num(getAttr(n, 'to')?.i) === DataType.FLOAT && wantsLow(c, n.output[0], decided)) {
      getAttr(n, 'to')!.i = c.low;
      c.types.set(n.output[0], c.low);
    }
    return;
  }
  if (TYPE_AGNOSTIC_OPS.has(n.op_type) || SOURCE_OPS.has(n.op_type) || (n.domain && n.domain !== 'ai.onnx')) return;
  if (t === undefined) {
    if (!n.input.some((v) => v && isFloatish(c, v))) return;
    t = unifiedType(c, n, decided);
  }
  n.input = n.input.map((v, i) => (v && !typeExemptInput(n.op_type, i) && isFloatish(c, v) ? asType(c, v, t!) : v));
  n.output.forEach((o, i) => {
    if (origOut[i] === DataType.FLOAT) c.types.set(o, t!);
  });
}

/** Graph outputs keep their declared type: a value the pass made low is renamed and cast back under its name. */
function restoreOutputTypes(c: Ctx): void {
  for (const out of c.g.output) {
    const now = c.types.get(out.name);
    if (now !== c.low) continue;
    const inner = c.names.fresh(`${out.name}_low`);
    for (const n of c.g.node) {
      n.output = n.output.map((o) => (o === out.name ? inner : o));
      n.input = n.input.map((i) => (i === out.name ? inner : i));
    }
    c.g.node.push(
      makeNode('Cast', [inner], [out.name], c.names.fresh(`${out.name}_Cast`), [intAttr('to', DataType.FLOAT)]),
    );
    c.types.set(inner, c.low);
    c.types.set(out.name, DataType.FLOAT);
    c.casts++;
  }
}

/** Keep value_info consistent with the new types (strict shape inference compares them). */
function syncValueInfo(c: Ctx): void {
  for (const v of c.g.value_info) {
    const t = c.types.get(v.name);
    const tt = v.type?.tensor_type;
    if (tt && t !== undefined && num(tt.elem_type) !== t) tt.elem_type = t;
  }
}

/**
 * Retype `model` in place for a strongly typed build. fp32 leaves it as exported (TensorRT 10's FP32 + Q/DQ form).
 */
export function strongTyping(model: Model, opts: StrongTypingOptions): StrongTypingResult {
  const g = model.graph;
  if (opts.precision === 'fp32') return { precision: 'fp32', opset: opsetVersion(model), casts: 0, fp32: [], low: 0 };
  topoSort(g);
  const names = new NameAllocator(g);
  const opset = upgradeOpset(model, names, TYPED_OPSET[opts.precision]);
  const idx = indexGraph(g);
  const c: Ctx = {
    g,
    idx,
    names,
    types: inferElemTypes(g),
    low: LOW_TYPE[opts.precision],
    typed: new Map(),
    casts: 0,
    newNodes: [],
  };
  const rules = ruleInputs(g, idx, opts);
  const fp32: NodePrecision[] = [];
  const decided = decideCompute(c, rules, fp32);
  for (const n of g.node.slice()) retypeNode(c, n, decided);
  g.node.push(...c.newNodes);
  restoreOutputTypes(c);
  syncValueInfo(c);
  removeUnused(g);
  topoSort(g);
  const low = [...decided.values()].filter((t) => t === c.low).length;
  return { precision: opts.precision, opset, casts: c.casts, fp32, low };
}
