// Input channels of integer convolutions for ONNX Runtime's CPU provider (target "ort-cpu").
// ORT runs a QDQ Conv as QLinearConv, which has two x86 paths: a symmetric kernel (weights INT8 with zero point 0,
// requantization fused, reading the input through an indirection buffer) that needs the input channels to be a
// multiple of 4 and at least 16 output channels in multiples of 8 (4 with AVX-512), and a generic one (im2col
// into a buffer, a u8 x s8 GEMM into INT32, then a separate requantization pass). A first layer on grayscale or
// RGB images (1 or 3 channels) takes the generic path. Zero input channels up to the next multiple of 4 put it
// on the symmetric one: the weight gets zero filters for them, so the result is the same whatever they hold, and
// the activation gets them from a Pad in front of its QuantizeLinear (0 quantizes to the zero point, which
// dequantizes to 0 exactly).
// Measured on examples/digits-cnn (1 input channel, 8x8, batch 32, onnxruntime-node, one thread): the stem's
// QLinearConv 56 us -> 31 us, the Pad and the larger Q and layout Transpose about 9 us, the whole INT8 run
// about 9% faster. Only short filters are padded (input channels x kernel positions under 64): the generic path
// does well enough on long ones, and padding adds multiply-adds. Measured with one QDQ Conv, batch medians on one
// thread: 1 -> 16 channels 3x3 on 28x28 x32 0.79 -> 0.58 ms, 3 -> 32 channels 3x3 on 32x32 x32 2.65 -> 1.70 ms,
// but ResNet's 3 -> 64 channels 7x7 stride 2 on 224x224 (147 per filter) 1.93 -> 2.41 ms.
// The rule is for x86 builds of ORT: on ARM64 the symmetric kernel wants 64 input channels.
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
  attrInt,
  tensorToInts,
  makeTensor,
  int64Tensor,
  makeNode,
  NameAllocator,
  onlyReader,
  scalarQuantParams,
} from './model';

/** Input channels the symmetric kernel takes in steps of; output channels it needs at least, and in steps of. */
export const CONV_INPUT_CHANNEL_ALIGN = 4;
export const CONV_MIN_OUTPUT_CHANNELS = 16;
export const CONV_OUTPUT_CHANNEL_ALIGN = 8;
/** Filters at least this long (input channels x kernel positions) are left as they are; see above. */
export const CONV_PAD_MAX_FILTER_LENGTH = 64;

export interface ConvPadResult {
  node: string;
  from: number;
  to: number;
}

/**
 * Zero-pad the input channels of every DQ-fed Conv (group 1, INT8 weight with zero points 0, activation from a
 * per-tensor Q of a float value) whose channel count keeps it off ORT's symmetric kernel; see above.
 */
export function padConvInputChannels(g: Graph, names: NameAllocator): ConvPadResult[] {
  const idx = indexGraph(g);
  const padded: ConvPadResult[] = [];
  const added: Node[] = [];
  for (const conv of g.node) {
    if (conv.op_type !== 'Conv' || (conv.domain && conv.domain !== 'ai.onnx') || attrInt(conv, 'group', 1) !== 1)
      continue;
    const xDq = idx.producer.get(conv.input[0]);
    const xQ = xDq?.op_type === 'DequantizeLinear' ? idx.producer.get(xDq.input[0]) : undefined;
    if (!xDq || xQ?.op_type !== 'QuantizeLinear' || !scalarQuantParams(idx, xDq) || !scalarQuantParams(idx, xQ))
      continue;
    if (constantTensor(idx, xQ.input[0])) continue;
    const wDq = idx.producer.get(conv.input[1]);
    if (wDq?.op_type !== 'DequantizeLinear' || onlyReader(idx, wDq.output[0], g) !== conv) continue;
    const w = constantTensor(idx, wDq.input[0]);
    if (!w || w.data_type !== DataType.INT8) continue;
    const wZp = wDq.input[2] ? constantTensor(idx, wDq.input[2]) : undefined;
    if (wDq.input[2] && (!wZp || tensorToInts(wZp).some((z) => z !== 0))) continue;
    const axisAttr = getAttr(wDq, 'axis');
    const wShape = dims(w);
    const scale = constantTensor(idx, wDq.input[1]);
    if (!scale || (elementCount(dims(scale)) > 1 && (axisAttr ? num(axisAttr.i) : 1) !== 0)) continue;
    const [m, c] = wShape;
    // 2-D convolutions only: the figures above are for them.
    if (wShape.length !== 4 || c % CONV_INPUT_CHANNEL_ALIGN === 0) continue;
    const kernel = elementCount(wShape.slice(2));
    if (c * kernel >= CONV_PAD_MAX_FILTER_LENGTH) continue;
    if (m < CONV_MIN_OUTPUT_CHANNELS || m % CONV_OUTPUT_CHANNEL_ALIGN !== 0) continue;
    const cPadded = Math.ceil(c / CONV_INPUT_CHANNEL_ALIGN) * CONV_INPUT_CHANNEL_ALIGN;

    // Weight [M, C, k...] -> [M, C', k...] with zero filters for the new channels.
    const q = tensorToInts(w);
    const out = new Int8Array(m * cPadded * kernel);
    for (let o = 0; o < m; o++) {
      for (let i = 0; i < c * kernel; i++) out[o * cPadded * kernel + i] = q[o * c * kernel + i];
    }
    const base = (conv.name || 'Conv').replace(/^\//, '').replace(/\//g, '_');
    const wName = names.fresh(`${w.name || base}_channels_padded`);
    g.initializer.push(makeTensor(wName, DataType.INT8, [m, cPadded, ...wShape.slice(2)], out));
    wDq.input = [wName, ...wDq.input.slice(1)];

    // Activation: Pad (zeros at the end of axis 1) in front of the Q. The Q -> DQ chain gets its own copy unless
    // this Conv is its only reader, so other readers keep the unpadded tensor.
    const rank = wShape.length;
    const pads = new Array(2 * rank).fill(0);
    pads[rank + 1] = cPadded - c;
    const padsName = names.fresh(`${base}_input_channel_pads`);
    g.initializer.push(int64Tensor(padsName, [2 * rank], pads));
    const paddedValue = names.fresh(`${xQ.input[0]}_channels_padded`);
    added.push(makeNode('Pad', [xQ.input[0], padsName], [paddedValue], names.fresh(`${base}_input_channel_Pad`)));
    if (onlyReader(idx, xQ.output[0], g) === xDq && onlyReader(idx, xDq.output[0], g) === conv) {
      xQ.input = [paddedValue, ...xQ.input.slice(1)];
    } else {
      const qOut = names.fresh(`${xQ.output[0]}_channels_padded`),
        dqOut = names.fresh(`${xDq.output[0]}_channels_padded`);
      added.push(
        makeNode(
          'QuantizeLinear',
          [paddedValue, ...xQ.input.slice(1)],
          [qOut],
          names.fresh(`${xQ.name || 'QuantizeLinear'}_channels_padded`),
          xQ.attribute,
        ),
        makeNode(
          'DequantizeLinear',
          [qOut, ...xDq.input.slice(1)],
          [dqOut],
          names.fresh(`${xDq.name || 'DequantizeLinear'}_channels_padded`),
          xDq.attribute,
        ),
      );
      conv.input = [dqOut, ...conv.input.slice(1)];
    }
    padded.push({ node: conv.name || conv.output[0], from: c, to: cPadded });
  }
  g.node.push(...added);
  return padded;
}
