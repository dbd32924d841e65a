// Element types of every value in a graph, without running ONNX shape inference: graph inputs, initializers,
// Constant nodes and value_info where the exporter wrote them, then a forward pass of per-op type rules.
// The strongly typed pass (strongTyping.ts) needs to know which values are float before it retypes them.
import { Graph, DataType, Node, ValueInfo, getAttr, num } from './model';

export const BFLOAT16 = 16;
const BOOL = 9;

/** Ops whose outputs are int64 whatever their inputs are. */
const INT64_OUT = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);
/** Ops whose outputs are bool. */
const BOOL_OUT = new Set([
  'Equal',
  'Less',
  'LessOrEqual',
  'Greater',
  'GreaterOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'IsNaN',
  'IsInf',
]);

export function isFloatType(t: number | undefined): boolean {
  return t === DataType.FLOAT || t === DataType.FLOAT16 || t === BFLOAT16 || t === DataType.DOUBLE;
}

export function valueElemType(v: ValueInfo): number | undefined {
  const e = v.type?.tensor_type?.elem_type;
  return e === undefined || e === null || e === 0 ? undefined : num(e);
}

/** The element type of each output of `n`, given the types known so far (undefined where unknown). */
function outputTypes(n: Node, types: Map<string, number>): (number | undefined)[] {
  const first = types.get(n.input[0]);
  switch (n.op_type) {
    case 'Constant': {
      const v = getAttr(n, 'value');
      if (v?.t) return [v.t.data_type];
      if (getAttr(n, 'value_float') || getAttr(n, 'value_floats')) return [DataType.FLOAT];
      return [DataType.INT64];
    }
    case 'Cast':
      return [num(getAttr(n, 'to')?.i)];
    case 'QuantizeLinear': {
      const zp = n.input[2] ? types.get(n.input[2]) : undefined;
      return [zp ?? DataType.UINT8];
    }
    case 'DequantizeLinear':
      return [types.get(n.input[1]) ?? DataType.FLOAT];
    case 'ConstantOfShape': {
      const v = getAttr(n, 'value');
      return [v?.t ? v.t.data_type : DataType.FLOAT];
    }
    case 'Where':
      return [types.get(n.input[1])];
    case 'TopK':
    case 'MaxPool':
      return [first, DataType.INT64];
    case 'Unique':
      return [first, DataType.INT64, DataType.INT64, DataType.INT64];
    case 'DynamicQuantizeLinear':
      return [DataType.UINT8, DataType.FLOAT, DataType.UINT8];
    case 'MatMulInteger':
    case 'ConvInteger':
      return [DataType.INT32];
  }
  if (INT64_OUT.has(n.op_type)) return n.output.map(() => DataType.INT64);
  if (BOOL_OUT.has(n.op_type)) return n.output.map(() => BOOL);
  return n.output.map(() => first);
}

/** Element type by value name for every value whose type can be told. */
export function inferElemTypes(g: Graph): Map<string, number> {
  const types = new Map<string, number>();
  for (const v of [...g.input, ...g.output, ...g.value_info]) {
    const t = valueElemType(v);
    if (t !== undefined) types.set(v.name, t);
  }
  for (const t of g.initializer) types.set(t.name || '', t.data_type);
  for (const n of g.node) {
    const outs = outputTypes(n, types);
    n.output.forEach((o, i) => {
      const t = outs[i];
      if (o && t !== undefined && !types.has(o)) types.set(o, t);
    });
  }
  return types;
}
