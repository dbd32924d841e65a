// Every node of an exported graph against TensorRT's ONNX operator matrix (server/src/knowledge).
import { Model } from './model';
import { trtOperatorSupport } from '../knowledge';

export interface TrtOpSupport {
  supported: boolean;
  note?: string;
}
/** The narrow interface this check needs from the knowledge base: one op type in, support out. */
export type TrtSupportLookup = (opType: string) => TrtOpSupport | undefined;

export interface TrtUnsupportedOp {
  op: string;
  nodes: string[];
  count: number;
  note?: string;
}

/** Adapts server/src/knowledge's answer (or any {supported, note}-like value) to TrtOpSupport. */
function normalize(v: unknown): TrtOpSupport | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return { supported: v };
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const note =
      typeof o.note === 'string'
        ? o.note
        : typeof o.notes === 'string'
          ? o.notes
          : typeof o.restrictions === 'string'
            ? o.restrictions
            : undefined;
    if (typeof o.supported === 'boolean') return { supported: o.supported, note };
    const status = o.supported ?? o.status ?? o.support;
    if (typeof status === 'string') return { supported: !/^(no|unsupported|none|false)$/i.test(status), note };
  }
  return undefined;
}

/** The knowledge base's lookup (server/src/knowledge, TensorRT's ONNX operator matrix). */
export function defaultTrtLookup(): TrtSupportLookup {
  return (op: string) => normalize(trtOperatorSupport(op));
}

export interface TrtCheckResult {
  checked: boolean;
  unsupported: TrtUnsupportedOp[];
  unknown: string[];
}

export function trtCheck(model: Model, lookup: TrtSupportLookup | null = defaultTrtLookup()): TrtCheckResult {
  if (!lookup) return { checked: false, unsupported: [], unknown: [] };
  const byOp = new Map<string, TrtUnsupportedOp>();
  const unknown = new Set<string>();
  for (const n of model.graph.node) {
    // Custom-domain ops (com.microsoft) are not ONNX operators: TensorRT has no importer for them.
    const custom = n.domain && n.domain !== 'ai.onnx';
    const s = custom ? { supported: false, note: `custom op from domain ${n.domain}` } : lookup(n.op_type);
    if (!s) unknown.add(n.op_type);
    const support = s ?? { supported: false, note: "not in TensorRT's ONNX operator matrix" };
    if (support.supported) continue;
    const key = custom ? `${n.domain}.${n.op_type}` : n.op_type;
    const e = byOp.get(key) ?? { op: key, nodes: [], count: 0, note: support.note };
    e.count++;
    if (e.nodes.length < 5) e.nodes.push(n.name || n.output[0]);
    byOp.set(key, e);
  }
  return { checked: true, unsupported: [...byOp.values()], unknown: [...unknown] };
}
