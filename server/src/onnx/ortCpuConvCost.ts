// Convolutions that ONNX Runtime's CPU provider runs faster in float (target "ort-cpu"): the cost model for Conv.
//
// An integer convolution pays a fixed price per output value (requantization, and the Q/DQ in front of and behind
// it) and saves on the multiply-adds behind that value: (input channels / group) x kernel height x kernel width.
// Below MIN_CONV_MACS_PER_OUTPUT it does not win that price back. Measured with onnxruntime-node 1.30 on this
// project's 2-core AMD EPYC (AVX-512 VNNI), 2 threads, batch 1, one Conv as Q -> DQ -> Conv(DQ weight) -> Q -> DQ
// against the FP32 Conv, medians of 15 runs (the machine is shared, so read the ratios):
//
// | conv                                   | MACs/output | INT8 / FP32 time |
// |----------------------------------------|-------------|------------------|
// | depthwise 3x3, 32 ch, 112x112          |      9      |      9.0x        |
// | depthwise 3x3, 96 ch, 56x56            |      9      |      4.2x        |
// | depthwise 3x3, 144 ch, 56x56           |      9      |      7.4x        |
// | depthwise 5x5, 240 ch, 28x28           |     25      |      1.09x       |
// | depthwise 3x3, 480 ch, 14x14           |      9      |      1.26x       |
// | depthwise 5x5, 672 ch, 14x14           |     25      |      1.13x       |
// | pointwise 16 -> 16, 112x112            |     16      |      1.09x       |
// | pointwise 32 -> 96, 56x56              |     32      |      0.62x       |
// | pointwise 96 -> 24, 28x28              |     96      |      0.70x       |
// | pointwise 240 -> 40, 14x14             |    240      |      0.62x       |
// | 3x3, 64 -> 64, 56x56                   |    576      |      0.05x       |
//
// | dense 3x3, 3 -> 32, 112x112 (a stem)   |     27      |      2.6x        |
// | dense 3x3, 3 -> 64, 32x32 (a stem)     |     27      |      1.16x       |
//
// Only grouped convolutions go by this rule at first. Depthwise ones (MobileNet, EfficientNet, ConvNeXt) are the common
// case: ORT has no integer depthwise kernel that beats its float one. Dense convolutions stay integer: measured
// alone, each pays for a Q in front and a DQ behind that a chain of integer convs shares, and a stem's few input
// channels are zero-padded to ORT's faster symmetric kernel instead (ortCpuConvPad.ts; examples/digits-cnn ran
// 1.3x FP32 speed with it).
//
// In a network, though, a float conv next to an integer one costs a layout change at each boundary (ORT runs float
// convs in its blocked NCHWc layout and integer ones in NHWC), plus the Q and DQ. So a dense conv doing fewer
// than MIN_DENSE_MACS_BESIDE_FLOAT multiply-adds per output value that reads from or feeds a float conv (through
// activations, Q/DQ and adds) goes float too, to a fixed point: in MobileNet that is every expand and the narrow
// project convs; ResNet, with no grouped conv, is untouched. torchvision mobilenet_v2 (width 0.5, trained on
// digits, 32x32, batch 99; onnxruntime-node 1.30, 2 threads, interleaved paired runs), INT8 / FP32 time:
//   integer everywhere 1.7x | depthwise float 1.67x | + dense < 200 beside float 0.84-0.95x | + dense < 600 0.90x
//   | every conv float 0.93x (cosine 0.99958 with 45 of 52 convs float, 0.99800 with all integer). A Conv left in float reads the float tensor in front of its input quantizer
// and a float copy of its dequantized weight, exactly as in the FP32 model; the Q -> DQ pairs then idle around
// it are bypassed by the linear pass (ortCpuLinear.ts).
import {
  Graph,
  Node,
  DataType,
  indexGraph,
  constantTensor,
  dims,
  elementCount,
  getAttr,
  num,
  tensorToInts,
  tensorToFloat32,
  floatTensor,
  NameAllocator,
  GraphIndex,
} from './model';

/** Grouped convs with fewer multiply-adds per output value than this stay float (table above). */
export const MIN_CONV_MACS_PER_OUTPUT = 32;
/** Dense convs with fewer multiply-adds per output value than this stay float beside a float conv (see above). */
export const MIN_DENSE_MACS_BESIDE_FLOAT = 200;

/** Ops a value passes through between two convolutions without changing layout cost: activations, Q/DQ, adds. */
const PASS_THROUGH = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'Relu',
  'Clip',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Mul',
  'Add',
  'Identity',
]);

/** The Convs feeding `conv`'s input or fed by its output through PASS_THROUGH ops only (a few steps). */
function convNeighbours(idx: GraphIndex, conv: Node): Set<Node> {
  const found = new Set<Node>();
  const walk = (value: string, down: boolean, depth: number) => {
    if (depth > 6) return;
    const next = down ? (idx.consumers.get(value) ?? []) : [idx.producer.get(value)].filter((n): n is Node => !!n);
    for (const n of next) {
      if (n === conv) continue;
      if (n.op_type === 'Conv') found.add(n);
      else if (PASS_THROUGH.has(n.op_type)) {
        if (down) walk(n.output[0], true, depth + 1);
        else for (const i of n.op_type.endsWith('QuantizeLinear') ? [n.input[0]] : n.input) walk(i, false, depth + 1);
      }
    }
  };
  walk(conv.output[0], true, 0);
  walk(conv.input[0], false, 0);
  return found;
}

export interface FloatConv {
  node: string;
  reason: string;
}

/** The Conv's weight as a float tensor, when it is INT8 initializer -> DQ (per tensor or per output channel). */
function dequantizedWeight(g: Graph, idx: GraphIndex, conv: Node): Float32Array | undefined {
  const dq = idx.producer.get(conv.input[1]);
  if (dq?.op_type !== 'DequantizeLinear') return undefined;
  const w = constantTensor(idx, dq.input[0]);
  const s = constantTensor(idx, dq.input[1]);
  const z = dq.input[2] ? constantTensor(idx, dq.input[2]) : undefined;
  if (!w || w.data_type !== DataType.INT8 || !s || (dq.input[2] && !z)) return undefined;
  const shape = dims(w);
  const scales = tensorToFloat32(s);
  const zeros = z ? tensorToInts(z) : [0];
  const channels = shape[0];
  if (scales.length !== 1 && scales.length !== channels) return undefined;
  if (scales.length > 1) {
    const axis = num(getAttr(dq, 'axis')?.i ?? 1);
    if (axis !== 0 && axis !== -shape.length) return undefined;
  }
  const q = tensorToInts(w);
  const perOut = q.length / channels;
  return Float32Array.from(q, (v, k) => {
    const c = Math.floor(k / perOut);
    const i = scales.length === 1 ? 0 : c;
    return (v - (zeros[zeros.length === 1 ? 0 : c] ?? 0)) * scales[i];
  });
}

/**
 * Grouped convs doing fewer than `minMacs` multiply-adds per output value run in float: the weight becomes a float
 * initializer, the input reads the float tensor in front of its Q -> DQ. Returns those convs with the reason.
 */
export function keepCheapConvsFloat(
  g: Graph,
  names: NameAllocator,
  minMacs = MIN_CONV_MACS_PER_OUTPUT,
  minDenseMacsBesideFloat = MIN_DENSE_MACS_BESIDE_FLOAT,
  forced: { grouped?: string; dense?: string } = {},
): FloatConv[] {
  const idx = indexGraph(g);
  const quantized = new Map<Node, { macs: number; group: number; shape: number[] }>();
  for (const conv of g.node) {
    if (conv.op_type !== 'Conv') continue;
    const wDq = idx.producer.get(conv.input[1]);
    const wInit = wDq?.op_type === 'DequantizeLinear' ? constantTensor(idx, wDq.input[0]) : undefined;
    if (!wInit || dims(wInit).length < 3 || !dequantizedWeight(g, idx, conv)) continue;
    const shape = dims(wInit);
    quantized.set(conv, { macs: elementCount(shape.slice(1)), group: num(getAttr(conv, 'group')?.i ?? 1), shape });
  }
  // Grouped convs below the threshold, then (to a fixed point) cheap dense convs beside a float conv.
  // `forced`: every grouped / dense conv float, with that reason (ortCpuMeasured.ts measured them slower).
  const forcedWhy = (c: { group: number }) => (c.group > 1 ? forced.grouped : forced.dense);
  const float = new Set(
    [...quantized].filter(([, c]) => forcedWhy(c) || (c.group > 1 && c.macs < minMacs)).map(([n]) => n),
  );
  for (let grew = float.size > 0; grew;) {
    grew = false;
    for (const [conv, c] of quantized) {
      if (float.has(conv) || c.macs >= minDenseMacsBesideFloat) continue;
      if ([...convNeighbours(idx, conv)].some((n) => float.has(n))) {
        float.add(conv);
        grew = true;
      }
    }
  }
  const kept: FloatConv[] = [];
  for (const conv of g.node) {
    if (!float.has(conv)) continue;
    const { macs, group, shape } = quantized.get(conv)!;
    const weight = dequantizedWeight(g, idx, conv)!;
    const base = (conv.name || 'Conv').replace(/^\//, '').replace(/\//g, '_');
    const wName = names.fresh(`${base}_weight_float`);
    g.initializer.push(floatTensor(wName, shape, weight));
    conv.input = [conv.input[0], wName, ...conv.input.slice(2)];
    const inDq = idx.producer.get(conv.input[0]);
    const inQ = inDq?.op_type === 'DequantizeLinear' ? idx.producer.get(inDq.input[0]) : undefined;
    if (inQ?.op_type === 'QuantizeLinear') conv.input = [inQ.input[0], ...conv.input.slice(1)];
    const kind = group === 1 ? 'convolution' : group === shape[0] ? 'depthwise convolution' : 'grouped convolution';
    const why =
      group === 1
        ? `${macs} multiply-adds per output value (< ${minDenseMacsBesideFloat}) beside a convolution left in float: the layout changes around an integer kernel cost more than it saves`
        : `${macs} multiply-adds per output value (< ${minMacs}): ONNX Runtime's integer kernel is slower than float here`;
    const reason = forcedWhy(quantized.get(conv)!) ?? `${kind} with ${why} (onnx/ortCpuConvCost.ts)`;
    kept.push({ node: conv.name || conv.output[0], reason });
  }
  return kept;
}
