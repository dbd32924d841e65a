// TensorRT knowledge for hovers and for checking exported graphs: the ONNX-TensorRT operator matrices of
// TensorRT 10.15 (trtOperators.json, generate-operators.js) and 11.x (trtOperators11.json, generate-operators-11.js:
// the 10.15 rows carried over and marked unverified, plus the 11.x facts confirmed from a source), selected by the
// target version, and the PyTorch -> ONNX export map.
import data = require('./trtOperators.json');
import data11 = require('./trtOperators11.json');
import { DEFAULT_TRT_VERSION, parseTrtVersion } from '../rules/version';
import { LAYERS, OPS, type TorchMapping } from './pytorchToOnnx';

export interface TrtOperatorInfo {
  op: string;
  supported: boolean;
  /** Element types TensorRT 10.15 accepts for the op, e.g. ['FP32', 'FP16', 'BF16']. */
  types: string[];
  /** Restriction text from the operator table ('' when none). */
  restrictions: string;
  /** Flags: U unsupported, T dtype, C constant, S shape, V version-sensitive (with notes). */
  flags?: string;
  /** One-line summary, also what the ONNX verifier shows. */
  note: string;
  /** The matrix the answer comes from ("10.15", "11.5"). */
  matrixVersion: string;
  /** Where the row comes from when it is not confirmed for that version (11.x rows carried over from 10.15). */
  provenance?: string;
}

interface RawOp {
  supported: boolean;
  types: string[];
  restrictions: string;
  flags?: string;
  provenance?: string;
}
interface Matrix {
  trtVersion: string;
  opset: { min: number; max: number };
  ops: Record<string, RawOp>;
}
const MATRIX_10 = data as unknown as Matrix;
const MATRIX_11 = data11 as unknown as Matrix;

/** The operator matrix for a target version: 11.x from 11.0, else the 10.15 one (the oldest qdq has). */
export function trtMatrixFor(trtVersion: string = DEFAULT_TRT_VERSION): Matrix {
  return parseTrtVersion(trtVersion).major >= 11 ? MATRIX_11 : MATRIX_10;
}
const OPS_TABLE = (data as unknown as { ops: Record<string, RawOp> }).ops;
export const TRT_KNOWLEDGE_VERSION: string = (data as unknown as { trtVersion: string }).trtVersion;
export const TRT_OPSET_RANGE = (data as unknown as { opset: { min: number; max: number } }).opset;

const byLowerName = new Map<string, string>(Object.keys(OPS_TABLE).map((k) => [k.toLowerCase(), k]));

/**
 * TensorRT support for one ONNX operator type (default domain), or undefined when the op is not in the matrix
 * (which the verifier treats as unsupported).
 */
export function trtOperatorSupport(opType: string, trtVersion?: string): TrtOperatorInfo | undefined {
  const matrix = trtMatrixFor(trtVersion);
  const table = matrix.ops;
  const lower = Object.keys(table).find((k) => k.toLowerCase() === opType.toLowerCase());
  const key = table[opType] ? opType : (byLowerName.get(opType.toLowerCase()) ?? lower);
  if (!key || !table[key]) return undefined;
  const raw = table[key];
  const note = raw.supported
    ? `${raw.types.join(', ')}${raw.restrictions ? '. ' + stripTicks(raw.restrictions) : ''}`
    : `not supported by TensorRT ${matrix.trtVersion}${raw.restrictions ? ': ' + stripTicks(raw.restrictions) : ''}`;
  return {
    matrixVersion: matrix.trtVersion,
    provenance: raw.provenance,
    op: key,
    supported: raw.supported,
    types: raw.types.slice(),
    restrictions: raw.restrictions,
    flags: raw.flags,
    note,
  };
}

export function allTrtOperators(): string[] {
  return Object.keys(OPS_TABLE);
}

function stripTicks(s: string): string {
  return s.replace(/`/g, '');
}

// ------------------------------------------------------------------------------------------ PyTorch names

const LAYER_ALIASES: Array<[RegExp, string]> = [
  [/^(?:torch\.)?nn\.(?:modules\.\w+\.)?/, 'nn.'],
  [/^(?:pytorch_quantization\.)?(?:quant_)?nn\.Quant/, 'nn.'],
  [/^Quant(?=Linear|Conv)/, 'nn.'],
];

/** `torch.nn.Conv2d`, `nn.Conv2d`, `Conv2d`, `quant_nn.QuantConv2d` -> `nn.Conv2d`. */
export function normalizeLayerName(name: string): string {
  let n = name.trim();
  for (const [re, rep] of LAYER_ALIASES) if (re.test(n)) return n.replace(re, rep);
  if (!n.includes('.')) n = 'nn.' + n;
  return n;
}

/** `torch.matmul`, `x.cumsum`, `F.linear`, `torch.nn.functional.linear`, `@` -> a key of OPS. */
function opKeys(name: string): string[] {
  const n = name.trim().replace(/\(.*$/s, '');
  if (OPS[n]) return [n];
  const fn = n.replace(/^torch\.nn\.functional\./, 'F.').replace(/^functional\./, 'F.');
  const last = fn.split('.').pop()!.replace(/_$/, '');
  return [fn, last, last.replace(/^_+/, '')];
}

export interface HoverKnowledge {
  onnxOps: string[];
  /** Markdown: per ONNX op, what TensorRT 10.15 supports; plus export notes and the rules to look at. */
  trtSupport: string;
}

function lookup(kind: 'layer' | 'op', name: string): TorchMapping | undefined {
  if (kind === 'layer') return LAYERS[normalizeLayerName(name)];
  for (const k of opKeys(name)) if (OPS[k]) return OPS[k];
  return undefined;
}

function markdownFor(mapping: TorchMapping): string {
  const lines: string[] = [];
  const version = trtMatrixFor().trtVersion;
  let carried = false;
  if (!mapping.onnx.length) {
    lines.push(
      `**TensorRT ${version}:** not exportable to ONNX${mapping.note ? ` (${mapping.note.replace(/^not exportable to ONNX ?/, '').replace(/^\((.*)\)$/, '$1')})` : ''}, so TensorRT never sees it.`,
    );
  } else {
    lines.push(`**TensorRT ${version}** (ONNX → TensorRT):`);
    for (const op of mapping.onnx) {
      const s = trtOperatorSupport(op);
      if (!s) {
        lines.push(`- \`${op}\`: not in TensorRT's operator matrix`);
        continue;
      }
      if (!s.supported) {
        lines.push(`- \`${op}\`: **not supported**${s.restrictions ? ` (${stripTicks(s.restrictions)})` : ''}`);
        continue;
      }
      const restr = s.restrictions ? `; ${s.restrictions}` : '';
      const mark = s.provenance?.startsWith('carried over') ? ' †' : '';
      carried ||= mark !== '';
      lines.push(`- \`${op}\`: supported, ${s.types.join('/')}${restr}${mark}`);
    }
    if (carried) lines.push('', `† carried over from TensorRT 10.15; not yet confirmed for ${version}.`);
    if (mapping.note) lines.push('', `Export: ${mapping.note}.`);
  }
  if (mapping.rules?.length) lines.push('', `qdq checks: ${mapping.rules.join(', ')}.`);
  return lines.join('\n');
}

/**
 * Hover text for a layer constructor (`nn.Conv2d`) or an op (`torch.matmul`, `x.cumsum`, `@`, `+`).
 * Two-argument form: structured result. One-argument form (kind guessed from the name): markdown only.
 */
export function describeForHover(kind: 'layer' | 'op', name: string): HoverKnowledge | undefined;
export function describeForHover(name: string): string | undefined;
export function describeForHover(a: string, b?: string): HoverKnowledge | string | undefined {
  if (b === undefined) {
    const name = a;
    const asLayer = /^(?:torch\.)?nn\.[A-Z]|^quant_nn\.|^[A-Z]\w*$/.test(name) ? lookup('layer', name) : undefined;
    const mapping = asLayer ?? lookup('op', name);
    return mapping ? markdownFor(mapping) : undefined;
  }
  const kind = a === 'layer' ? 'layer' : 'op';
  const mapping = lookup(kind, b);
  if (!mapping) return undefined;
  return { onnxOps: mapping.onnx.slice(), trtSupport: markdownFor(mapping) };
}

export { LAYERS as TORCH_LAYER_TO_ONNX, OPS as TORCH_OP_TO_ONNX };
export type { TorchMapping };
