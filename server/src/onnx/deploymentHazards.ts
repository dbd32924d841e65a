// The deployment hazards of rules TRT062-TRT065 found on the exported graph, for what the source does not show
// (a rank that only the trace knows, layer sizes from variables, a LayerNorm built by a library): INT8 convolutions
// on <= 3 input channels, INT8 MatMuls and quantized LayerNorms on rank-4 activations, INT8 GEMMs with K or N < 16,
// and the decomposed LayerNorm of an export below opset 17. Each names its node and, where the quantizers say,
// the source site, so `qdq run` can point back at the line (report.deployment_hazards and the CLI's notes).
import { Model, Node, Graph, GraphIndex, indexGraph, dims, getAttr, num, opsetVersion } from './model';
import { inferShapes, ShapeInfo } from './shapes';
import { decomposedLayerNormNodes } from './precisionRules';
import * as path from 'path';
import { modulePathFromNodeName, QuantizerInfo, SourceSite } from './qdqStats';

export interface GraphHazard {
  code: 'TRT062' | 'TRT063' | 'TRT064' | 'TRT065';
  node: string;
  module: string | null;
  site: SourceSite | null;
  message: string;
}

const MIN_GEMM = 16;

/** The DequantizeLinear behind `value` (through shape-only ops), or null when the value is not dequantized. */
function dqBehind(idx: GraphIndex, value: string): { dq: Node; transposes: number } | null {
  let v = value;
  let transposes = 0;
  for (let depth = 0; depth < 4; depth++) {
    const p = idx.producer.get(v);
    if (!p) return null;
    if (p.op_type === 'DequantizeLinear') return { dq: p, transposes };
    if (p.op_type === 'Transpose') transposes++;
    else if (p.op_type !== 'Reshape' && p.op_type !== 'Cast') return null;
    v = p.input[0];
  }
  return null;
}

/** Shape of a 2-D or conv weight as the op sees it: the initializer itself, or the one its DequantizeLinear reads. */
function weightShape(idx: GraphIndex, value: string): number[] | null {
  const direct = idx.initializers.get(value);
  if (direct) return dims(direct);
  const behind = dqBehind(idx, value);
  const w = behind ? idx.initializers.get(behind.dq.input[0]) : undefined;
  if (!w) return null;
  const d = dims(w);
  // torch's Linear exports W (out, in) transposed in front of the MatMul.
  return d.length === 2 && behind!.transposes % 2 === 1 ? [d[1], d[0]] : d;
}

function siteLookup(quantizers: QuantizerInfo[]): (module: string | null) => SourceSite | null {
  const byModule = new Map<string, SourceSite>();
  for (const q of quantizers) {
    const m = q.name.replace(/\.[^.]+$/, '');
    if (q.site && !byModule.has(m)) byModule.set(m, q.site);
  }
  return (module) => {
    for (let m = module; m; m = m.includes('.') ? m.replace(/\.[^.]+$/, '') : null) {
      const s = byModule.get(m);
      if (s) return s;
    }
    return null;
  };
}

function rank(shapes: ShapeInfo, g: Graph, value: string): number | null {
  const s = shapes.shapes.get(value);
  if (s) return s.length;
  const vi = [...g.input, ...g.value_info].find((v) => v.name === value);
  const d = vi?.type?.tensor_type?.shape?.dim;
  return Array.isArray(d) ? d.length : null;
}

export function graphHazards(model: Model, quantizers: QuantizerInfo[] = []): GraphHazard[] {
  const g = model.graph;
  const idx = indexGraph(g);
  const shapes = inferShapes(g);
  const siteOf = siteLookup(quantizers);
  const out: GraphHazard[] = [];
  const add = (code: GraphHazard['code'], n: Node, message: string) => {
    const module = modulePathFromNodeName(n.name ?? '');
    // A LayerNorm has no quantizer of its own: the nearest one up the module path would point at another line.
    out.push({ code, node: n.name || n.output[0], module, site: code === 'TRT064' ? null : siteOf(module), message });
  };
  for (const n of g.node) {
    const activationDq = n.input[0] ? dqBehind(idx, n.input[0]) : null;
    if (!activationDq) continue;
    if (n.op_type === 'Conv') {
      const w = weightShape(idx, n.input[1]);
      const group = num(getAttr(n, 'group')?.i ?? 1) || 1;
      if (w && w.length >= 2 && w[1] * group <= 3)
        add(
          'TRT062',
          n,
          `INT8 Conv on ${w[1] * group} input channel${w[1] * group === 1 ? '' : 's'}: keep the first convolution in float`,
        );
    } else if (n.op_type === 'MatMul' || n.op_type === 'Gemm') {
      const w = weightShape(idx, n.input[1]);
      // Only Linear layers (a constant weight): activation-activation MatMuls on (B, heads, S, d) are attention.
      if (w && rank(shapes, g, n.input[0]) === 4)
        add('TRT063', n, `INT8 ${n.op_type} on a rank-4 activation: flatten to (B, H*W, C) or keep it in float`);
      if (w && w.length === 2 && dqBehind(idx, n.input[1])) {
        const transB = n.op_type === 'Gemm' && num(getAttr(n, 'transB')?.i ?? 0) === 1;
        const [k, nOut] = transB ? [w[1], w[0]] : [w[0], w[1]];
        if (k < MIN_GEMM || nOut < MIN_GEMM)
          add(
            'TRT065',
            n,
            `INT8 ${n.op_type} with K=${k}, N=${nOut} (below ${MIN_GEMM}): no gain from INT8, keep it in float`,
          );
      }
    } else if (n.op_type === 'LayerNormalization') {
      if (rank(shapes, g, n.input[0]) === 4)
        add('TRT063', n, 'quantized LayerNormalization input of rank 4: the normalization runs in float anyway');
    }
  }
  const opset = opsetVersion(model);
  const decomposed = [...decomposedLayerNormNodes(g, idx)].filter((n) => n.op_type === 'Pow');
  if (decomposed.length)
    add(
      'TRT064',
      decomposed[0],
      `${decomposed.length} LayerNorm${decomposed.length > 1 ? 's' : ''} exported decomposed (opset ${opset} at export < 17): the Pow overflows FP16, so those paths stay FP32; export with opset >= 17`,
    );
  return out;
}

/** One note per hazard code: how many, the first few nodes and where their quantizers are in the source. */
export function hazardNotes(hazards: GraphHazard[]): string[] {
  const byCode = new Map<string, GraphHazard[]>();
  for (const h of hazards) byCode.set(h.code, [...(byCode.get(h.code) ?? []), h]);
  return [...byCode].map(([code, list]) => {
    const shown = list.slice(0, 3).map((h) => {
      const where = h.site
        ? ` (${h.site.file ? path.basename(h.site.file) : ''} ${h.site.cls ?? ''}.${h.site.attr ?? ''})`
        : '';
      return `${h.node}${where}: ${h.message}`;
    });
    const more = list.length > 3 ? `; and ${list.length - 3} more (report.deployment_hazards)` : '';
    return `${code} on the exported graph: ${shown.join('; ')}${more}`;
  });
}
