// ONNX read/write with protobufjs and the onnx.proto schema committed beside this file.
// Field names keep the schema's snake_case (op_type, raw_data, data_type) so code reads like the ONNX spec.
import * as fs from 'fs';
import * as path from 'path';
import * as protobuf from 'protobufjs';
import { writeFileAtomic } from './atomic';
import { MAX_MODEL_BYTES, readRegularBytes, readRegularBytesSync, requireRegular } from '../common/files';

export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  FLOAT16: 10,
  DOUBLE: 11,
} as const;

export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

// Loose structural types for the decoded messages: protobufjs returns message instances whose
// int64 fields are Long objects; `num()` turns those into numbers where a value is needed.
export interface Attribute {
  name: string;
  type?: number;
  f?: number;
  i?: unknown;
  s?: Uint8Array;
  t?: Tensor;
  floats?: number[];
  ints?: unknown[];
  [k: string]: unknown;
}
export interface Node {
  input: string[];
  output: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute: Attribute[];
  [k: string]: unknown;
}
export interface Tensor {
  name?: string;
  dims: unknown[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: unknown[];
  double_data?: number[];
  data_location?: number;
  external_data?: unknown[];
  [k: string]: unknown;
}
/** protobufjs decodes int64 fields as numbers or Long objects: read them through num(). */
export type Int64 = number | string | { toNumber(): number } | null;
/** TypeProto, the part qdq reads and writes: a tensor's element type and dims. */
export interface ValueType {
  tensor_type?: {
    elem_type?: Int64;
    shape?: { dim?: { dim_value?: Int64; dim_param?: string }[] };
  };
  [k: string]: unknown;
}
export interface ValueInfo {
  name: string;
  type?: ValueType;
  [k: string]: unknown;
}
export interface Graph {
  node: Node[];
  initializer: Tensor[];
  input: ValueInfo[];
  output: ValueInfo[];
  value_info: ValueInfo[];
  name?: string;
  [k: string]: unknown;
}
export interface OpsetId {
  domain?: string;
  version: unknown;
}
export interface Model {
  graph: Graph;
  opset_import: OpsetId[];
  ir_version?: unknown;
  producer_name?: string;
  [k: string]: unknown;
}

let modelType: protobuf.Type | undefined;

function findProto(): string {
  // The .proto is not compiled by tsc; look for it in the source tree next to the compiled output.
  const candidates = [
    path.join(__dirname, 'onnx.proto'),
    path.resolve(__dirname, '../../../../server/src/onnx/onnx.proto'),
  ];
  for (const c of candidates) if (fs.existsSync(c)) return c;
  throw new Error(`onnx.proto not found (looked in ${candidates.join(', ')})`);
}

function getModelType(): protobuf.Type {
  if (!modelType) {
    const root = protobuf.parse(fs.readFileSync(findProto(), 'utf8'), { keepCase: true }).root;
    modelType = root.lookupType('onnx.ModelProto');
  }
  return modelType;
}

export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v === undefined || v === null) return 0;
  if (typeof v === 'object' && v !== null && 'toNumber' in v) return (v as { toNumber(): number }).toNumber();
  return Number(v);
}

export function decodeModel(bytes: Uint8Array): Model {
  const m = getModelType().decode(bytes) as unknown as Model;
  if (!m.graph) throw new Error('not an ONNX model: no graph');
  for (const t of m.graph.initializer) {
    if (t.data_location === 1 || (t.external_data && t.external_data.length > 0)) {
      throw new Error(`initializer ${t.name} is stored in an external data file; qdq reads single-file models only`);
    }
  }
  return m;
}

export function readModel(file: string): Model {
  // A model in the workspace may be a FIFO or a link to a device: refused, and the size capped (issue 14).
  return decodeModel(requireRegular(file, readRegularBytesSync(file, MAX_MODEL_BYTES)));
}

/** readModel without blocking the event loop while the file is read (the pipeline, in the language server). */
export async function loadModel(file: string): Promise<Model> {
  return decodeModel(requireRegular(file, await readRegularBytes(file, MAX_MODEL_BYTES)));
}

export function encodeModel(model: Model): Uint8Array {
  const T = getModelType();
  return T.encode(T.fromObject(model as unknown as Record<string, unknown>)).finish();
}

export function writeModel(model: Model, file: string): number {
  const bytes = encodeModel(model);
  writeFileAtomic(file, bytes);
  return bytes.length;
}

export function dims(t: Tensor): number[] {
  return (t.dims || []).map(num);
}

export function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Copy raw_data into an aligned buffer (protobufjs slices may start at an odd offset). */
function rawCopy(t: Tensor): ArrayBuffer {
  const raw = t.raw_data!;
  const ab = new ArrayBuffer(raw.byteLength);
  new Uint8Array(ab).set(raw);
  return ab;
}

export function tensorToFloat32(t: Tensor): Float32Array {
  const n = elementCount(dims(t));
  if (t.data_type === DataType.FLOAT) {
    if (t.raw_data && t.raw_data.byteLength > 0) return new Float32Array(rawCopy(t));
    return Float32Array.from(t.float_data || []);
  }
  if (t.data_type === DataType.DOUBLE) {
    if (t.raw_data && t.raw_data.byteLength > 0) return Float32Array.from(new Float64Array(rawCopy(t)));
    return Float32Array.from(t.double_data || []);
  }
  if (t.data_type === DataType.INT8 || t.data_type === DataType.UINT8 || t.data_type === DataType.INT32) {
    const ints = tensorToInts(t);
    return Float32Array.from(ints);
  }
  throw new Error(`tensor ${t.name}: data type ${t.data_type} is not a float type (${n} elements)`);
}

export function tensorToInts(t: Tensor): number[] {
  if (t.raw_data && t.raw_data.byteLength > 0) {
    const ab = rawCopy(t);
    switch (t.data_type) {
      case DataType.INT8:
        return Array.from(new Int8Array(ab));
      case DataType.UINT8:
        return Array.from(new Uint8Array(ab));
      case DataType.INT32:
        return Array.from(new Int32Array(ab));
      case DataType.INT64:
        return Array.from(new BigInt64Array(ab), (b) => Number(b));
    }
  }
  if (t.data_type === DataType.INT64) return (t.int64_data || []).map(num);
  return (t.int32_data || []).slice();
}

export function makeTensor(
  name: string,
  dataType: number,
  shape: number[],
  data: Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array,
): Tensor {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { name, data_type: dataType, dims: shape.slice(), raw_data: Buffer.from(bytes) };
}

export function floatTensor(name: string, shape: number[], data: ArrayLike<number>): Tensor {
  return makeTensor(name, DataType.FLOAT, shape, Float32Array.from(data));
}
export function int8Tensor(name: string, shape: number[], data: ArrayLike<number>): Tensor {
  return makeTensor(name, DataType.INT8, shape, Int8Array.from(data));
}
export function uint8Tensor(name: string, shape: number[], data: ArrayLike<number>): Tensor {
  return makeTensor(name, DataType.UINT8, shape, Uint8Array.from(data));
}
export function int64Tensor(name: string, shape: number[], data: number[]): Tensor {
  return makeTensor(name, DataType.INT64, shape, BigInt64Array.from(data.map((v) => BigInt(v))));
}

export function getAttr(node: Node, name: string): Attribute | undefined {
  return node.attribute.find((a) => a.name === name);
}
export function attrInt(node: Node, name: string, dflt: number): number {
  const a = getAttr(node, name);
  return a ? num(a.i) : dflt;
}
export function attrFloat(node: Node, name: string, dflt: number): number {
  const a = getAttr(node, name);
  return a && a.f !== undefined ? a.f : dflt;
}
export function intAttr(name: string, value: number): Attribute {
  return { name, type: AttrType.INT, i: value };
}
export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  name: string,
  attributes: Attribute[] = [],
  domain = '',
): Node {
  const n: Node = { op_type: opType, input: inputs, output: outputs, name, attribute: attributes };
  if (domain) n.domain = domain;
  return n;
}

export function opsetVersion(model: Model, domain = ''): number {
  const o = model.opset_import.find((x) => (x.domain || '') === domain || (domain === '' && x.domain === 'ai.onnx'));
  return o ? num(o.version) : 0;
}

export function ensureOpset(model: Model, domain: string, version: number): void {
  const o = model.opset_import.find((x) => (x.domain || '') === domain);
  if (!o) model.opset_import.push({ domain, version });
  else if (num(o.version) < version) o.version = version;
}

/** Index of the graph: which node produces each value, which nodes consume it, initializers by name. */
export interface GraphIndex {
  producer: Map<string, Node>;
  consumers: Map<string, Node[]>;
  initializers: Map<string, Tensor>;
}

export function indexGraph(g: Graph): GraphIndex {
  const producer = new Map<string, Node>();
  const consumers = new Map<string, Node[]>();
  for (const n of g.node) {
    for (const o of n.output) if (o) producer.set(o, n);
    for (const i of n.input) {
      if (!i) continue;
      const list = consumers.get(i);
      if (list) list.push(n);
      else consumers.set(i, [n]);
    }
  }
  const initializers = new Map<string, Tensor>();
  for (const t of g.initializer) initializers.set(t.name || '', t);
  return { producer, consumers, initializers };
}

/** A constant value: an initializer, or the output of a Constant node with a `value` tensor. */
export function constantTensor(idx: GraphIndex, name: string): Tensor | undefined {
  const init = idx.initializers.get(name);
  if (init) return init;
  const p = idx.producer.get(name);
  // The TorchScript exporter shares tied/deduplicated weights through Identity nodes.
  if (p && p.op_type === 'Identity') return constantTensor(idx, p.input[0]);
  if (p && p.op_type === 'Constant') {
    const v = getAttr(p, 'value');
    if (v && v.t) return v.t;
  }
  return undefined;
}

/** Fresh names that collide with no existing value, node or initializer. */
export class NameAllocator {
  private used = new Set<string>();
  constructor(g: Graph) {
    for (const n of g.node) {
      if (n.name) this.used.add(n.name);
      for (const x of [...n.input, ...n.output]) this.used.add(x);
    }
    for (const t of g.initializer) this.used.add(t.name || '');
    for (const v of [...g.input, ...g.output]) this.used.add(v.name);
  }
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

/** 1-element constant scale and zero point of a Q or DQ node, or undefined when they are not constant scalars. */
export function scalarQuantParams(idx: GraphIndex, n: Node): { scale: number; zp: number; zpType: number } | undefined {
  const s = constantTensor(idx, n.input[1]);
  if (!s || elementCount(dims(s)) !== 1) return undefined;
  const z = n.input[2] ? constantTensor(idx, n.input[2]) : undefined;
  if (n.input[2] && (!z || elementCount(dims(z)) !== 1)) return undefined;
  return { scale: tensorToFloat32(s)[0], zp: z ? tensorToInts(z)[0] : 0, zpType: z ? z.data_type : DataType.UINT8 };
}

/** The one node reading `value`, unless several (or none) do or it is a graph output. */
export function onlyReader(idx: GraphIndex, value: string, g: { output: { name: string }[] }): Node | undefined {
  const readers = idx.consumers.get(value) ?? [];
  if (readers.length !== 1 || g.output.some((o) => o.name === value)) return undefined;
  return readers[0];
}

/** Drop initializers and Constant nodes nothing reads any more (after a rewrite replaced their consumers). */
export function removeUnused(g: Graph): void {
  const read = new Set<string>();
  for (const n of g.node) for (const i of n.input) read.add(i);
  for (const o of g.output) read.add(o.name);
  g.node = g.node.filter((n) => n.op_type !== 'Constant' || n.output.some((o) => read.has(o)));
  const removed = new Set(g.initializer.filter((t) => !read.has(t.name || '')).map((t) => t.name || ''));
  g.initializer = g.initializer.filter((t) => !removed.has(t.name || ''));
  // Older exports list initializers among the graph inputs too; drop those entries with them.
  g.input = g.input.filter((v) => !removed.has(v.name));
}

/** Reorder nodes topologically (rewrites append nodes; ORT accepts any order but other tools do not). */
export function topoSort(g: Graph): void {
  const available = new Set<string>(['']);
  for (const v of g.input) available.add(v.name);
  for (const t of g.initializer) available.add(t.name || '');
  const pending = g.node.slice();
  const out: Node[] = [];
  while (pending.length) {
    let progressed = false;
    for (let i = 0; i < pending.length; i++) {
      const n = pending[i];
      if (n.input.every((x) => available.has(x))) {
        out.push(n);
        for (const o of n.output) available.add(o);
        pending.splice(i, 1);
        i--;
        progressed = true;
      }
    }
    // Inputs produced outside (subgraph captures) would never appear: keep the remaining order.
    if (!progressed) {
      out.push(...pending);
      break;
    }
  }
  g.node = out;
}
