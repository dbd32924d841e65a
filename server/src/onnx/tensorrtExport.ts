// The pipeline's one call for target tensorrt (TensorRT 11, strongly typed): type the folded Q/DQ graph
// (strongTyping.ts) and build report.precision, each layer INT8 / FP16 / BF16 / FP32 with its reason and,
// where the layer's module has quantizers, the source site they came from.
import { Model } from './model';
import { strongTyping, FloatPrecision } from './strongTyping';
import { auditPrecision, LayerPrecisionRow } from './precisionAudit';
import { Fp32Marker } from './precisionRules';
import { modulePathFromNodeName, QuantizerInfo, SourceSite } from './qdqStats';

export interface PrecisionReport {
  float_precision: FloatPrecision;
  opset: number;
  casts: number;
  float_compute_ops: number;
  /** Share of float compute ops TensorRT runs in INT8 or the low float precision. */
  low_share: number;
  scales_ok: boolean;
  weighted_ops: number;
  dq_fed_weighted_ops: number;
  layers: (LayerPrecisionRow & { module: string | null; site: SourceSite | null })[];
}

/** Sites by module path: "layers.0.attn.q.input_quantizer" belongs to module "layers.0.attn.q". */
function sitesByModule(quantizers: QuantizerInfo[]): Map<string, SourceSite> {
  const out = new Map<string, SourceSite>();
  for (const q of quantizers) {
    const module = q.name.replace(/\.[^.]+$/, '');
    if (q.site && !out.has(module)) out.set(module, q.site);
  }
  return out;
}

function siteFor(module: string | null, sites: Map<string, SourceSite>): SourceSite | null {
  for (let m = module; m; m = m.includes('.') ? m.replace(/\.[^.]+$/, '') : null) {
    const s = sites.get(m);
    if (s) return s;
  }
  return null;
}

export function typeForTensorrt(
  model: Model,
  precision: FloatPrecision,
  quantizers: QuantizerInfo[] = [],
  fp32Markers: Fp32Marker[] = [],
): PrecisionReport {
  const r = strongTyping(model, { precision, fp32Markers });
  const a = auditPrecision(model);
  const sites = sitesByModule(quantizers);
  return {
    float_precision: precision,
    opset: r.opset,
    casts: a.casts,
    float_compute_ops: a.float_compute_ops,
    low_share: a.low_share,
    scales_ok: a.scales_ok,
    weighted_ops: a.weighted_ops,
    dq_fed_weighted_ops: a.dq_fed_weighted_ops,
    layers: a.layers.map((l) => {
      const module = modulePathFromNodeName(l.node);
      return { ...l, module, site: siteFor(module, sites) };
    }),
  };
}
