// Post-processing of a QDQ export for ONNX Runtime's CPU provider (target "ort-cpu").
// ORT fuses DQ -> MatMul -> Q into an integer kernel only when the DQs feed the MatMul directly and a Q
// follows it directly (shared/reference/ort-cpu-int8.md). torch's export puts a Transpose between the weight's
// DQ and the MatMul (nn.Linear stores W as [out, in]) and the bias Add between the MatMul and the output Q.
// Both are rewritten here:
//  1. INT8 weight -> DQ(axis a) -> Transpose(perm) becomes transposed INT8 weight -> DQ(axis perm^-1(a));
//  2. MatMul -> Add(constant bias) -> Q(s, z) gets Q(s, z) -> DQ inserted between the MatMul and the Add,
//     reusing the calibrated output scale (the bias shifts the range by little);
//  3. an activation Q read by several weighted nodes (torch merges identical Q/DQ pairs, e.g. the q/k/v
//     projections' inputs) gets one Q -> DQ pair per weighted reader (see below for why);
//  0. Conv -> [Q -> DQ] -> BatchNormalization is folded into the Conv (INT8 weights unchanged, per-channel
//     weight scales and an INT32 bias absorb the BN), so ORT sees DQ -> Conv -> Q (see foldBatchNorms);
//     a residual DQ + DQ -> Add -> Relu [-> MaxPool] -> Q gets a Q after the Add, and so does a last block's
//     Add -> Relu that goes on in float (see quantizeReluAdds);
//  4. Q(UINT8, 0) -> DQ -> Relu -> Q(same) chains lose the Relu and the requantization (dropRequantizedRelus);
//  0b. a grouped Conv doing too few multiply-adds per output value for ORT's integer kernel to pay (depthwise)
//     runs in float (ortCpuConvCost.ts, with the measured table);
//  5. a Conv whose input channels keep it off ORT's symmetric integer kernel (a 1- or 3-channel image) gets zero
//     channels up to a multiple of 4 (ortCpuConvPad.ts);
//  6. where this CPU's u8 x s8 kernels saturate (no VNNI), the integer weights narrowed to 7 bits
//     (ortCpuNarrowWeights.ts, cpuInt8.ts).
import { u8s8Saturates } from './cpuInt8';
import {
  Model,
  Node,
  DataType,
  indexGraph,
  constantTensor,
  dims,
  num,
  getAttr,
  makeTensor,
  makeNode,
  NameAllocator,
  removeUnused,
  topoSort,
  intAttr,
  opsetVersion,
  onlyReader,
  scalarQuantParams,
  tensorToInts,
  elementCount,
  tensorToFloat32,
  floatTensor,
  int8Tensor,
  uint8Tensor,
  Graph,
  Tensor,
  GraphIndex,
} from './model';
import { rewriteLinearsForOrtCpu, OrtCpuLinearResult, OrtCpuLinearOptions } from './ortCpuLinear';
import { padConvInputChannels, ConvPadResult } from './ortCpuConvPad';
import { narrowIntegerWeights } from './ortCpuNarrowWeights';
import { keepCheapConvsFloat } from './ortCpuConvCost';

/** Ranges the backend calibrated for the rewrite (export's result). */
export interface OrtCpuCalibration {
  /** BatchNorm weight initializer name -> calibrated amax of the BN output (backend/qdq_backend/bn_ranges.py). */
  batchNormOutputAmax?: Record<string, number>;
}

/**
 * Op kinds the measured fallback (ortCpuMeasured.ts) leaves in float whatever the cost models say, each with the
 * reason to record: grouped (depthwise) convs, dense convs, activation x activation MatMuls, linears.
 */
export type OrtCpuFloatKinds = Partial<Record<'groupedConv' | 'conv' | 'activationMatMul' | 'linear', string>>;

export interface OrtCpuResult {
  transposesFolded: number;
  outputsQuantized: number;
  dequantizeDuplicated: number;
  batchNormsFolded: number;
  /** Folded BNs whose output quantizer takes the backend's calibrated BN range (else a next Q's or the grid's). */
  batchNormsCalibrated: number;
  addsQuantized: number;
  /** Q(u8, zp 0) -> DQ -> Relu -> Q(same params) chains whose Relu and requantization were dropped (dropRequantizedRelus). */
  relusDropped: number;
  /** Convs whose input channels were zero-padded to a multiple of 4 for ORT's symmetric kernel (ortCpuConvPad.ts). */
  convInputsPadded: ConvPadResult[];
  /** Linears rewritten to MatMulIntegerToFloat, ops the cost model left in float, idle Q -> DQ pairs bypassed (ortCpuLinear.ts). */
  linears: OrtCpuLinearResult;
}

function permute(
  data: Int8Array | Uint8Array,
  shape: number[],
  perm: number[],
): { data: Int8Array | Uint8Array; shape: number[] } {
  const outShape = perm.map((p) => shape[p]);
  const inStrides = shape.map((_, i) => elementCount(shape.slice(i + 1)));
  const out = new (data.constructor as Int8ArrayConstructor)(data.length);
  const idx = new Array(outShape.length).fill(0);
  for (let o = 0; o < data.length; o++) {
    let src = 0;
    for (let d = 0; d < outShape.length; d++) src += idx[d] * inStrides[perm[d]];
    out[o] = data[src];
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (++idx[d] < outShape[d]) break;
      idx[d] = 0;
    }
  }
  return { data: out, shape: outShape };
}

/**
 * `linearOptions` tunes the linear rewrite (ortCpuLinear.ts); `false` skips it, leaving linears in the QDQ form
 * ORT fuses into QLinearMatMul (steps 1-3 below), which was the ort-cpu form before the rewrite.
 */
export function optimizeForOrtCpu(
  model: Model,
  linearOptions: OrtCpuLinearOptions | false = {},
  calibration: OrtCpuCalibration = {},
  floatKinds: OrtCpuFloatKinds = {},
): OrtCpuResult {
  const g = model.graph;
  let names = new NameAllocator(g);
  const result: OrtCpuResult = {
    transposesFolded: 0,
    outputsQuantized: 0,
    dequantizeDuplicated: 0,
    batchNormsFolded: 0,
    batchNormsCalibrated: 0,
    addsQuantized: 0,
    relusDropped: 0,
    convInputsPadded: [],
    linears: { integer: [], float: [], pairsBypassed: 0 },
  };
  const bn = foldBatchNorms(g, names, calibration.batchNormOutputAmax);
  result.batchNormsFolded = bn.folded;
  result.batchNormsCalibrated = bn.calibrated;
  result.addsQuantized = quantizeReluAdds(g, names);
  // Convs too cheap per output value for ORT's integer kernel (depthwise ones) go float (ortCpuConvCost.ts);
  // before the linear pass, which then bypasses the Q -> DQ pairs left idle around them.
  const floatConvs =
    linearOptions === false
      ? []
      : keepCheapConvsFloat(g, names, undefined, undefined, {
          grouped: floatKinds.groupedConv,
          dense: floatKinds.conv,
        });
  if (result.batchNormsFolded) quantizeConvBiases(g, names);
  // Linears (MatMul/Gemm with INT8 weights) -> MatMulIntegerToFloat, small ones and idle Q/DQ pairs -> float.
  // What it leaves DQ-fed (Conv, activation MatMuls big enough for integer) goes through the steps below.
  if (linearOptions !== false)
    result.linears = rewriteLinearsForOrtCpu(model, {
      unsignedActivations: true,
      floatLinears: floatKinds.linear,
      floatActivationMatMuls: floatKinds.activationMatMul,
      ...linearOptions,
    });
  result.linears.float.push(...floatConvs);
  names = new NameAllocator(g);

  // 1. Fold Transposes of constant quantized weights into the initializer.
  result.transposesFolded = foldWeightTransposes(g, names);
  // 3 (before 2, which looks for DQ-fed MatMuls). One Q -> DQ pair per weighted reader of an activation.
  result.dequantizeDuplicated = pairPerWeightedReader(g, names);
  // 2. Quantize MatMul outputs that reach their Q only through a bias Add.
  result.outputsQuantized = quantizeBiasedMatMulOutputs(g, names);
  // 4. After the copies of step 3, so each reader keeps its own DQ.
  result.relusDropped = dropRequantizedRelus(g);
  // 5. Last: it pads the input of the Q -> DQ pair each Conv ends up with.
  // Pad takes its pads as an input from opset 11 (the exporter writes 13 or later).
  if (opsetVersion(model) >= 11) result.convInputsPadded = padConvInputChannels(g, names);
  // 6. Where this CPU's u8 x s8 kernels saturate, the integer weights in 7 bits (cpuInt8.ts).
  if (u8s8Saturates()) narrowIntegerWeights(g, names);
  if (ortCpuRewriteChanged(result)) {
    removeUnused(g);
    topoSort(g);
  }
  return result;
}

/** Step 1 of optimizeForOrtCpu: Transposes of constant INT8 weights folded into the initializer; how many. */
function foldWeightTransposes(g: Graph, names: NameAllocator): number {
  let count = 0;
  const idx = indexGraph(g);
  const dropped = new Set<Node>();
  for (const t of g.node) {
    if (t.op_type !== 'Transpose') continue;
    const dq = idx.producer.get(t.input[0]);
    if (!dq || dq.op_type !== 'DequantizeLinear') continue;
    const w = constantTensor(idx, dq.input[0]);
    if (!w || (w.data_type !== DataType.INT8 && w.data_type !== DataType.UINT8)) continue;
    // The DQ must have no other reader, or the untransposed weight is still needed.
    if ((idx.consumers.get(dq.output[0]) ?? []).length !== 1) continue;
    const shape = dims(w);
    const permAttr = getAttr(t, 'perm');
    const perm = permAttr?.ints ? permAttr.ints.map(num) : shape.map((_, i) => shape.length - 1 - i);
    const raw = tensorToInts(w);
    const typed = w.data_type === DataType.INT8 ? Int8Array.from(raw) : Uint8Array.from(raw);
    const p = permute(typed, shape, perm);
    const scale = constantTensor(idx, dq.input[1]);
    const perChannel = scale ? elementCount(dims(scale)) > 1 : false;
    const wName = names.fresh(`${w.name}_transposed`);
    g.initializer.push(makeTensor(wName, w.data_type, p.shape, p.data));
    const axisAttr = getAttr(dq, 'axis');
    let axis = axisAttr ? num(axisAttr.i) : 1;
    if (axis < 0) axis += shape.length;
    const newAxis = perm.indexOf(axis);
    const newDq = makeNode(
      'DequantizeLinear',
      [wName, ...dq.input.slice(1)],
      [t.output[0]],
      names.fresh(`${dq.name || 'DequantizeLinear'}_transposed`),
      perChannel ? [intAttr('axis', newAxis)] : [],
    );
    dropped.add(t);
    dropped.add(dq);
    g.node.push(newDq);
    count++;
  }
  if (dropped.size) g.node = g.node.filter((n) => !dropped.has(n));

  return count;
}

/** Step 3 of optimizeForOrtCpu: each weighted reader of a quantized activation gets its own Q -> DQ pair; how many. */
function pairPerWeightedReader(g: Graph, names: NameAllocator): number {
  let count = 0;
  // 3 (before 2, which looks for DQ-fed MatMuls). One Q -> DQ pair per weighted reader of an activation.
  // Measured with onnxruntime-node 1.30: two MatMuls reading one Q (through one shared DQ or two DQs) fuse
  // into neither; each with its own Q -> DQ fuses into QLinearMatMul. Identical copies would be merged back
  // by ORT (scalar constant sharing, then common-subexpression elimination), so each copy's scale and zero
  // point are stored as 1-element tensors: still per-tensor quantization, but not mergeable.
  const idx = indexGraph(g);
  const copies: Node[] = [];
  for (const q of g.node) {
    if (q.op_type !== 'QuantizeLinear') continue;
    const scaleT = constantTensor(idx, q.input[1]);
    const zpT = q.input[2] ? constantTensor(idx, q.input[2]) : undefined;
    if (!scaleT || elementCount(dims(scaleT)) !== 1 || (q.input[2] && !zpT)) continue;
    const uses: { dq: Node; reader: Node }[] = [];
    for (const dq of idx.consumers.get(q.output[0]) ?? []) {
      if (dq.op_type !== 'DequantizeLinear') continue;
      for (const reader of idx.consumers.get(dq.output[0]) ?? []) uses.push({ dq, reader });
    }
    const weighted = uses.filter(
      (u) => u.reader.op_type === 'MatMul' || u.reader.op_type === 'Gemm' || u.reader.op_type === 'Conv',
    );
    if (uses.length < 2 || weighted.length === 0) continue;
    // The first use keeps the original pair when it is the only reader of its DQ; every other weighted use gets its own.
    const keep = uses.filter((u) => u.dq === uses[0].dq).length === 1 ? uses[0] : undefined;
    const scale = tensorToFloat32(scaleT)[0];
    const zp = zpT ? tensorToInts(zpT)[0] : 0;
    const zpType = zpT ? zpT.data_type : DataType.UINT8;
    for (const u of weighted) {
      if (u === keep) continue;
      const tag = (u.reader.name || u.reader.op_type).replace(/^\//, '').replace(/\//g, '_');
      const s1 = names.fresh(`${q.input[1]}_for_${tag}`),
        z1 = names.fresh(`${q.input[2] || 'zero_point'}_for_${tag}`);
      g.initializer.push(
        floatTensor(s1, [1], [scale]),
        zpType === DataType.INT8 ? int8Tensor(z1, [1], [zp]) : uint8Tensor(z1, [1], [zp]),
      );
      const qOut = names.fresh(`${q.output[0]}_for_${tag}`),
        dqOut = names.fresh(`${u.dq.output[0]}_for_${tag}`);
      copies.push(
        makeNode(
          'QuantizeLinear',
          [q.input[0], s1, z1],
          [qOut],
          names.fresh(`${q.name || 'QuantizeLinear'}_for_${tag}`),
        ),
        makeNode(
          'DequantizeLinear',
          [qOut, s1, z1],
          [dqOut],
          names.fresh(`${u.dq.name || 'DequantizeLinear'}_for_${tag}`),
        ),
      );
      u.reader.input = u.reader.input.map((i) => (i === u.dq.output[0] ? dqOut : i));
      count++;
    }
  }
  g.node.push(...copies);

  return count;
}

/** Step 2 of optimizeForOrtCpu: MatMul outputs that reach their Q only through a bias Add get a Q -> DQ; how many. */
function quantizeBiasedMatMulOutputs(g: Graph, names: NameAllocator): number {
  let count = 0;
  const idx = indexGraph(g);
  const inserted: Node[] = [];
  for (const mm of g.node) {
    if (mm.op_type !== 'MatMul') continue;
    const fedByDq = mm.input.every((i) => idx.producer.get(i)?.op_type === 'DequantizeLinear');
    if (!fedByDq) continue;
    const readers = idx.consumers.get(mm.output[0]) ?? [];
    if (readers.length !== 1 || readers[0].op_type !== 'Add') continue;
    const add = readers[0];
    const other = add.input[0] === mm.output[0] ? add.input[1] : add.input[0];
    if (!constantTensor(idx, other)) continue;
    const after = idx.consumers.get(add.output[0]) ?? [];
    const q = after.find((n) => n.op_type === 'QuantizeLinear');
    if (!q || after.length !== 1) continue;
    const qOut = names.fresh(`${mm.output[0]}_quantized`);
    const dqOut = names.fresh(`${mm.output[0]}_dequantized`);
    inserted.push(
      makeNode(
        'QuantizeLinear',
        [mm.output[0], ...q.input.slice(1)],
        [qOut],
        names.fresh(`${mm.name || 'MatMul'}_output_QuantizeLinear`),
      ),
      makeNode(
        'DequantizeLinear',
        [qOut, ...q.input.slice(1)],
        [dqOut],
        names.fresh(`${mm.name || 'MatMul'}_output_DequantizeLinear`),
      ),
    );
    add.input = add.input.map((i) => (i === mm.output[0] ? dqOut : i));
    count++;
  }
  g.node.push(...inserted);
  return count;
}

/** Whether optimizeForOrtCpu changed the graph (then the model file is written again). */
export function ortCpuRewriteChanged(r: OrtCpuResult): boolean {
  return (
    r.transposesFolded +
      r.outputsQuantized +
      r.dequantizeDuplicated +
      r.batchNormsFolded +
      r.addsQuantized +
      r.relusDropped +
      r.convInputsPadded.length +
      r.linears.integer.length +
      r.linears.float.length +
      r.linears.pairsBypassed >
    0
  );
}

/**
 * Fold BatchNormalization into the Conv before it, for Conv weights stored as INT8 initializer -> DQ.
 * The FP32 export folds BN into the weights; the QDQ export cannot (the weight goes through DQ), which leaves
 * Conv -> [Q -> DQ] -> BN: without the Q, ORT cannot use an integer convolution at all; with it (ort-cpu), the
 * BN, its DQ and Q and the layout Transposes around each run in float (measured on examples/digits-cnn:
 * 12 Transposes and 6 BNs left; INT8 0.8x FP32 speed before this fold, 1.3x after). Per output channel c with
 * s_c = gamma_c / sqrt(var_c + eps): the weight scale becomes scale_c * |s_c| (the INT8 values are unchanged,
 * negated where s_c < 0), and the bias becomes (b_c - mean_c) * s_c + beta_c (quantizeConvBiases stores it
 * as INT32 later). The weight part is exact.
 * The quantizer torch placed on the Conv output was calibrated before BN, so it no longer fits. Its
 * replacement on the folded output is, in order of preference:
 *  - BN -> Relu [-> MaxPool] -> Q(next layer's input): that Q's range; clipping before the Relu to a range that contains 0
 *    and then applying Relu gives exactly what Relu then Q gives (for a symmetric INT8 Q both become UINT8,
 *    see below);
 *  - BN -> Q(next) with no Relu: that Q's range;
 *  - otherwise the BN output's calibrated range (the backend calibrates it for this, `batchNormAmax`), capped by
 *    the exact range BN maps the old quantizer's grid to (every value the unfolded graph could produce), as a
 *    symmetric INT8 quantizer; without calibration, that grid range;
 *  - no quantizer was on the Conv output (target tensorrt): none is added.
 */
type QuantParams = { scale: number; zp: number; zpType: number };

/**
 * foldBatchNorms, one Conv: the BN's scale folded into the INT8 weight's per-channel scales (a negative one negates
 * the channel) and its shift into an FP32 bias; null (nothing changed) when the Conv's weight or the BN's
 * parameters are not the constants this needs.
 */
function foldWeightsAndBias(
  idx: GraphIndex,
  g: Graph,
  names: NameAllocator,
  addInit: (...ts: Tensor[]) => void,
  conv: Node,
  bn: Node,
): { channels: number; s: number[]; foldedBias: number[]; base: string } | null {
  // Weight: INT8 initializer -> DQ (per-tensor, or per-channel on axis 0) read only by this Conv.
  const dqW = idx.producer.get(conv.input[1]);
  if (dqW?.op_type !== 'DequantizeLinear' || onlyReader(idx, dqW.output[0], g) !== conv) return null;
  const w = constantTensor(idx, dqW.input[0]);
  const wScaleT = constantTensor(idx, dqW.input[1]);
  const wZpT = dqW.input[2] ? constantTensor(idx, dqW.input[2]) : undefined;
  if (!w || w.data_type !== DataType.INT8 || !wScaleT || (dqW.input[2] && !wZpT)) return null;
  const wShape = dims(w);
  const channels = wShape[0];
  const perChannel = elementCount(dims(wScaleT)) > 1;
  if (perChannel) {
    const axisAttr = getAttr(dqW, 'axis');
    const axis = axisAttr ? num(axisAttr.i) : 1;
    if ((axis !== 0 && axis !== -wShape.length) || elementCount(dims(wScaleT)) !== channels) return null;
  }
  if (wZpT && tensorToInts(wZpT).some((z) => z !== 0)) return null;
  // BN and bias parameters: constants of C elements.
  const params = bn.input.slice(1, 5).map((n) => constantTensor(idx, n));
  if (params.some((t) => !t || elementCount(dims(t)) !== channels)) return null;
  const [gamma, beta, mean, variance] = params.map((t) => tensorToFloat32(t!));
  let bias: Float32Array = new Float32Array(channels);
  if (conv.input[2]) {
    const b = constantTensor(idx, conv.input[2]);
    if (!b || b.data_type !== DataType.FLOAT || elementCount(dims(b)) !== channels) return null;
    bias = tensorToFloat32(b);
  }
  const eps = getAttr(bn, 'epsilon')?.f ?? 1e-5;
  const wScaleIn = tensorToFloat32(wScaleT);
  const q = Int8Array.from(tensorToInts(w));
  const perOut = q.length / channels;
  const s = Array.from(gamma, (gm, c) => gm / Math.sqrt(variance[c] + eps));
  // Negating a channel is exact only without -128 in it (symmetric weights never use it).
  let negatable = true;
  for (let c = 0; c < channels && negatable; c++) {
    if (s[c] >= 0) continue;
    for (let k = c * perOut; k < (c + 1) * perOut; k++)
      if (q[k] === -128) {
        negatable = false;
        break;
      }
  }
  if (!negatable) return null;
  const newScale = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    newScale[c] = (perChannel ? wScaleIn[c] : wScaleIn[0]) * Math.abs(s[c]);
    if (s[c] < 0) for (let k = c * perOut; k < (c + 1) * perOut; k++) q[k] = -q[k];
  }
  const foldedBias = Array.from(s, (sc, c) => (bias[c] - mean[c]) * sc + beta[c]);
  if (newScale.some((v) => !(v > 0) || !Number.isFinite(v)) || foldedBias.some((v) => !Number.isFinite(v))) return null;

  const base = (conv.name || 'Conv').replace(/^\//, '').replace(/\//g, '_');
  const wName = names.fresh(`${w.name || base}_bn_folded`),
    sName = names.fresh(`${base}_weight_scale_bn_folded`);
  addInit(makeTensor(wName, DataType.INT8, wShape, q), floatTensor(sName, [channels], newScale));
  dqW.input = [wName, sName];
  dqW.attribute = [intAttr('axis', 0)];
  // FP32 here; quantizeConvBiases turns it into INT32 -> DQ once every input scale is final.
  const bName = names.fresh(`${base}_bias_bn_folded`);
  addInit(floatTensor(bName, [channels], foldedBias));
  conv.input = [conv.input[0], conv.input[1], bName];
  return { channels, s, foldedBias, base };
}

/**
 * foldBatchNorms, one Conv: the quantizer its folded output gets: the next quantizer's grid after a Relu (as UINT8
 * when that one is symmetric INT8), a quantizer read directly, or a grid holding every value the folded Conv can
 * produce (narrowed to the calibrated BN output when the backend measured it).
 */
function foldedOutputQuantizer(
  idx: GraphIndex,
  g: Graph,
  names: NameAllocator,
  addInit: (...ts: Tensor[]) => void,
  at: {
    bn: Node;
    pre: QuantParams | undefined;
    base: string;
    channels: number;
    s: number[];
    foldedBias: number[];
    batchNormAmax?: Record<string, number>;
  },
): { outQ: QuantParams | undefined; relu: Node | undefined; reluIsIdentity: boolean; calibrated: boolean } {
  const { bn, pre, base, channels, s, foldedBias, batchNormAmax } = at;
  let usedCalibration = false;
  // The quantizer on the folded output (see above).
  const y = bn.output[0];
  let outQ: { scale: number; zp: number; zpType: number } | undefined;
  const relu = onlyReader(idx, y, g);
  let reluIsIdentity = false;
  if (pre && relu?.op_type === 'Relu') {
    const nextQs = quantizersAfter(idx, g, relu.output[0]);
    const params = nextQs.map((n) => scalarQuantParams(idx, n));
    const first = params[0];
    if (first && params.every((p) => p && p.scale === first.scale && p.zp === first.zp && p.zpType === first.zpType)) {
      outQ = first;
      // A symmetric INT8 quantizer after Relu spends its negative half on nothing. The same range [0, 127 s]
      // as UINT8 with zero point 0 and scale 127 s / 255 has twice the resolution, and ORT then drops the
      // Relu (a Q whose zero point is the lowest level clips at 0 itself) and the DQ -> Q between the convs.
      if (first.zpType === DataType.INT8 && first.zp === 0) {
        outQ = { scale: Math.fround((first.scale * 127) / 255), zp: 0, zpType: DataType.UINT8 };
        const sName = names.fresh(`${base}_relu_scale`),
          zName = names.fresh(`${base}_relu_zero_point`);
        addInit(floatTensor(sName, [], [outQ.scale]), uint8Tensor(zName, [], [outQ.zp]));
        for (const nq of nextQs) {
          const old = [nq.input[1], nq.input[2]];
          nq.input = [nq.input[0], sName, zName];
          for (const dq of idx.consumers.get(nq.output[0]) ?? []) {
            if (dq.op_type === 'DequantizeLinear' && dq.input[1] === old[0] && (dq.input[2] ?? '') === (old[1] ?? ''))
              dq.input = [dq.input[0], sName, zName];
          }
        }
      }
    }
  }
  reluIsIdentity = outQ !== undefined && outQ.zpType === DataType.UINT8 && outQ.zp === 0;
  if (pre && !outQ) {
    // BN -> Q(next) directly (a downsample branch into its residual quantizer): that Q's grid, which the
    // next Q then reproduces exactly.
    const readers = idx.consumers.get(y) ?? [];
    const direct = readers.map((n) => (n.op_type === 'QuantizeLinear' ? scalarQuantParams(idx, n) : undefined));
    const d0 = direct[0];
    if (
      d0 &&
      !g.output.some((o) => o.name === y) &&
      direct.every((p) => p && p.scale === d0.scale && p.zp === d0.zp && p.zpType === d0.zpType)
    )
      outQ = d0;
  }
  if (pre && !outQ) {
    const [lo, hi] = pre.zpType === DataType.INT8 ? [-128, 127] : [0, 255];
    let amax = 0;
    for (let c = 0; c < channels; c++) {
      for (const level of [lo, hi])
        amax = Math.max(amax, Math.abs(s[c] * (level - pre.zp) * pre.scale + foldedBias[c]));
    }
    // The grid's range holds every value the unfolded graph could produce, but on a trained resnet18 it is
    // 1.4-3.1x what the data reaches; the backend's calibrated BN output (bn_ranges.py) is used when known.
    const measured = batchNormAmax?.[bn.input[1]];
    if (measured !== undefined && measured > 0 && measured < amax) {
      amax = measured;
      usedCalibration = true;
    }
    outQ = { scale: amax / 127, zp: 0, zpType: DataType.INT8 };
  }
  return { outQ, relu, reluIsIdentity, calibrated: usedCalibration };
}

function foldBatchNorms(
  g: Graph,
  names: NameAllocator,
  batchNormAmax?: Record<string, number>,
): { folded: number; calibrated: number } {
  const idx = indexGraph(g);
  // New initializers go into the index too: a later fold reads the scales an earlier one rewrote.
  const addInit = (...ts: Tensor[]) => {
    for (const t of ts) {
      g.initializer.push(t);
      idx.initializers.set(t.name || '', t);
    }
  };
  const dropped = new Set<Node>();
  const added: Node[] = [];
  let folded = 0,
    calibratedCount = 0;
  for (const bn of g.node) {
    if (bn.op_type !== 'BatchNormalization' || bn.output.filter(Boolean).length !== 1) continue;
    if (getAttr(bn, 'training_mode') && num(getAttr(bn, 'training_mode')!.i) !== 0) continue;
    // Conv -> BN, or Conv -> Q -> DQ -> BN with each link read only by the next.
    let conv = idx.producer.get(bn.input[0]);
    let preQ: Node | undefined, preDq: Node | undefined;
    if (conv?.op_type === 'DequantizeLinear') {
      preDq = conv;
      preQ = idx.producer.get(preDq.input[0]);
      if (
        preQ?.op_type !== 'QuantizeLinear' ||
        onlyReader(idx, preDq.output[0], g) !== bn ||
        onlyReader(idx, preQ.output[0], g) !== preDq
      )
        continue;
      conv = idx.producer.get(preQ.input[0]);
      if (!conv || onlyReader(idx, conv.output[0], g) !== preQ) continue;
    } else if (!conv || onlyReader(idx, conv.output[0], g) !== bn) continue;
    if (conv.op_type !== 'Conv' || dropped.has(conv)) continue;
    const pre = preQ ? scalarQuantParams(idx, preQ) : undefined;
    if (preQ && !pre) continue;
    const folding = foldWeightsAndBias(idx, g, names, addInit, conv, bn);
    if (!folding) continue;
    const { channels, s, foldedBias, base } = folding;
    const y = bn.output[0];
    const out = foldedOutputQuantizer(idx, g, names, addInit, {
      bn,
      pre,
      base,
      channels,
      s,
      foldedBias,
      batchNormAmax,
    });
    const { outQ, relu, reluIsIdentity } = out;
    if (out.calibrated) calibratedCount++;
    if (outQ && outQ.scale > 0) {
      const sOut = names.fresh(`${base}_output_scale`),
        zOut = names.fresh(`${base}_output_zero_point`);
      addInit(
        floatTensor(sOut, [], [outQ.scale]),
        outQ.zpType === DataType.INT8 ? int8Tensor(zOut, [], [outQ.zp]) : uint8Tensor(zOut, [], [outQ.zp]),
      );
      const qOut = names.fresh(`${conv.output[0]}_quantized`);
      added.push(
        makeNode('QuantizeLinear', [conv.output[0], sOut, zOut], [qOut], names.fresh(`${base}_output_QuantizeLinear`)),
        makeNode('DequantizeLinear', [qOut, sOut, zOut], [y], names.fresh(`${base}_output_DequantizeLinear`)),
      );
    } else {
      conv.output = [y];
    }
    // A Relu after a UINT8 quantizer with zero point 0 sees no negative value: before a MaxPool (which ORT does
    // not look through to drop it) its reader reads the DQ instead.
    // With a Q right after the Relu, dropRequantizedRelus takes it out later, with the requantization.
    const pooled = relu ? (idx.consumers.get(relu.output[0]) ?? []) : [];
    const beforePool = pooled.length === 1 && pooled[0].op_type === 'MaxPool';
    if (reluIsIdentity && beforePool && relu && outQ && !g.output.some((o) => o.name === relu.output[0])) {
      for (const r of idx.consumers.get(relu.output[0]) ?? [])
        r.input = r.input.map((i) => (i === relu.output[0] ? y : i));
      dropped.add(relu);
    }
    dropped.add(bn);
    if (preQ) dropped.add(preQ);
    if (preDq) dropped.add(preDq);
    folded++;
  }
  if (dropped.size) g.node = g.node.filter((n) => !dropped.has(n));
  g.node.push(...added);
  return { folded, calibrated: calibratedCount };
}

/**
 * The quantizers reading `value`, directly or through one MaxPool (max commutes with a monotonic quantizer, so
 * quantizing before the pool gives what quantizing after it gives); empty when anything else reads it.
 */
function quantizersAfter(idx: GraphIndex, g: Graph, value: string): Node[] {
  let readers = idx.consumers.get(value) ?? [];
  if (readers.length === 1 && readers[0].op_type === 'MaxPool' && readers[0].output.filter(Boolean).length === 1) {
    const pooled = readers[0].output[0];
    if (g.output.some((o) => o.name === pooled)) return [];
    readers = idx.consumers.get(pooled) ?? [];
  }
  return readers.length && readers.every((n) => n.op_type === 'QuantizeLinear') ? readers : [];
}

/**
 * Residual blocks end in DQ + DQ -> Add -> Relu [-> MaxPool] -> Q(next layer's input); ORT runs that Add in
 * float. A UINT8 quantizer with zero point 0 on the Add output, covering the next Q's range [0, 127 s] with scale
 * 127 s / 255, clips at 0 itself, so the Relu goes; the next Q takes the same parameters (values on its grid
 * pass through unchanged), so ORT fuses QLinearAdd and an integer MaxPool. Clipping at the top before MaxPool is
 * the same as after it (max is monotonic); average pooling is not, so only MaxPool is looked through.
 */
function quantizeReluAdds(g: Graph, names: NameAllocator): number {
  const idx = indexGraph(g);
  const dropped = new Set<Node>();
  const added: Node[] = [];
  let count = 0;
  for (const add of g.node) {
    if (add.op_type !== 'Add' || add.input.length !== 2) continue;
    if (!add.input.every((i) => idx.producer.get(i)?.op_type === 'DequantizeLinear')) continue;
    const relu = onlyReader(idx, add.output[0], g);
    if (relu?.op_type !== 'Relu' || g.output.some((o) => o.name === relu.output[0])) continue;
    let pool: Node | undefined;
    let qs = idx.consumers.get(relu.output[0]) ?? [];
    if (qs.length === 1 && qs[0].op_type === 'MaxPool' && qs[0].output.filter(Boolean).length === 1) {
      pool = qs[0];
      if (g.output.some((o) => o.name === pool!.output[0])) continue;
      qs = idx.consumers.get(pool.output[0]) ?? [];
    }
    // The block's output either goes on in float (a network's last block: Add -> Relu -> GlobalAveragePool -> FC)
    // or into quantizers of the next layer.
    const floatTail = !pool && qs.length > 0 && !qs.some((n) => n.op_type === 'QuantizeLinear');
    let scale: number;
    if (floatTail) {
      // No calibrated range follows. The bound of the two inputs' grids, |a| + |b|, holds every sum: UINT8 over
      // [0, bound] clips nothing but the negative half (the Relu's job), and ORT then runs the Add as QLinearAdd
      // instead of two DQs, their layout Transposes and a float Add and Relu.
      const ins = add.input.map((i) => scalarQuantParams(idx, idx.producer.get(i)!));
      if (ins.some((p) => !p || !(p.scale > 0))) continue;
      const bound = ins.reduce((acc, p) => {
        const [lo, hi] = p!.zpType === DataType.INT8 ? [-128, 127] : [0, 255];
        return acc + p!.scale * Math.max(Math.abs(lo - p!.zp), Math.abs(hi - p!.zp));
      }, 0);
      scale = Math.fround(bound / 255);
      if (!(scale > 0) || !Number.isFinite(scale)) continue;
    } else {
      if (!qs.length || !qs.every((n) => n.op_type === 'QuantizeLinear')) continue;
      const params = qs.map((n) => scalarQuantParams(idx, n));
      const first = params[0];
      if (
        !first ||
        !params.every((p) => p && p.scale === first.scale && p.zp === first.zp && p.zpType === first.zpType)
      )
        continue;
      if (first.zp !== 0 || !(first.scale > 0)) continue;
      scale = first.zpType === DataType.INT8 ? Math.fround((first.scale * 127) / 255) : first.scale;
    }
    const base = (add.name || 'Add').replace(/^\//, '').replace(/\//g, '_');
    const sName = names.fresh(`${base}_output_scale`),
      zName = names.fresh(`${base}_output_zero_point`);
    const t = [floatTensor(sName, [], [scale]), uint8Tensor(zName, [], [0])];
    g.initializer.push(...t);
    for (const x of t) idx.initializers.set(x.name || '', x);
    if (!floatTail) {
      for (const nq of qs) {
        const old = [nq.input[1], nq.input[2] ?? ''];
        nq.input = [nq.input[0], sName, zName];
        for (const dq of idx.consumers.get(nq.output[0]) ?? []) {
          if (dq.op_type === 'DequantizeLinear' && dq.input[1] === old[0] && (dq.input[2] ?? '') === old[1])
            dq.input = [dq.input[0], sName, zName];
        }
      }
    }
    // In a float tail the DQ takes over the Relu's output name, so its float readers stay as they are.
    const qOut = names.fresh(`${add.output[0]}_quantized`);
    const dqOut = floatTail ? relu.output[0] : names.fresh(`${add.output[0]}_dequantized`);
    added.push(
      makeNode('QuantizeLinear', [add.output[0], sName, zName], [qOut], names.fresh(`${base}_output_QuantizeLinear`)),
      makeNode('DequantizeLinear', [qOut, sName, zName], [dqOut], names.fresh(`${base}_output_DequantizeLinear`)),
    );
    if (pool) pool.input = [dqOut, ...pool.input.slice(1)];
    else if (!floatTail) for (const nq of qs) nq.input = [dqOut, ...nq.input.slice(1)];
    dropped.add(relu);
    count++;
  }
  if (dropped.size) g.node = g.node.filter((n) => !dropped.has(n));
  g.node.push(...added);
  return count;
}

/**
 * Q(s, UINT8 zero point 0) -> DQ -> Relu -> Q(s, UINT8 0), ... (foldBatchNorms leaves this after Conv -> BN -> Relu):
 * the first Q already clips at 0, so the Relu sees no negative value and each later Q gives back exactly the
 * levels of the first. Their readers read the first Q instead, and the DQ, the Relu and the later Qs go.
 * ORT would drop the Relu itself only when the Relu had a single Q reader; step 3's copies (one Q per
 * weighted reader, plus the residual branch's) give it several, and then DQ -> Relu -> Q ran in float between
 * two integer convolutions (measured on examples/digits-cnn: about 8% of the INT8 run time).
 */
function dropRequantizedRelus(g: Graph): number {
  const idx = indexGraph(g);
  const dropped = new Set<Node>();
  for (const relu of g.node) {
    if (relu.op_type !== 'Relu' || g.output.some((o) => o.name === relu.output[0])) continue;
    const dq = idx.producer.get(relu.input[0]);
    if (dq?.op_type !== 'DequantizeLinear' || onlyReader(idx, dq.output[0], g) !== relu) continue;
    const q = idx.producer.get(dq.input[0]);
    if (q?.op_type !== 'QuantizeLinear') continue;
    const first = scalarQuantParams(idx, q);
    const dqParams = scalarQuantParams(idx, dq);
    if (!first || !dqParams || first.zpType !== DataType.UINT8 || first.zp !== 0 || !(first.scale > 0)) continue;
    if (dqParams.scale !== first.scale || dqParams.zp !== 0 || dqParams.zpType !== DataType.UINT8) continue;
    const later = idx.consumers.get(relu.output[0]) ?? [];
    if (!later.length || !later.every((n) => n.op_type === 'QuantizeLinear')) continue;
    const same = later.every((n) => {
      const p = scalarQuantParams(idx, n);
      return p && p.scale === first.scale && p.zp === 0 && p.zpType === DataType.UINT8;
    });
    if (!same || later.some((n) => g.output.some((o) => o.name === n.output[0]))) continue;
    for (const nq of later) {
      for (const reader of idx.consumers.get(nq.output[0]) ?? []) {
        reader.input = reader.input.map((i) => (i === nq.output[0] ? q.output[0] : i));
      }
      dropped.add(nq);
    }
    dropped.add(relu);
    dropped.add(dq);
  }
  if (dropped.size) g.node = g.node.filter((n) => !dropped.has(n));
  return dropped.size ? [...dropped].filter((n) => n.op_type === 'Relu').length : 0;
}

/**
 * FP32 Conv biases -> INT32 initializer -> DQ(input_scale * weight_scale_c, axis 0): ORT's QDQ Conv fusion takes
 * a bias only in that form. Rounds each bias to the accumulator grid (at most half a step of
 * input_scale * weight_scale_c). Runs last, after the passes above have settled the input scales.
 */
function quantizeConvBiases(g: Graph, names: NameAllocator): void {
  const idx = indexGraph(g);
  for (const conv of g.node) {
    if (conv.op_type !== 'Conv' || !conv.input[2]) continue;
    const b = constantTensor(idx, conv.input[2]);
    if (!b || b.data_type !== DataType.FLOAT || idx.producer.get(conv.input[2])) continue;
    const inDq = idx.producer.get(conv.input[0]);
    const dqW = idx.producer.get(conv.input[1]);
    if (inDq?.op_type !== 'DequantizeLinear' || dqW?.op_type !== 'DequantizeLinear') continue;
    const inQ = scalarQuantParams(idx, inDq);
    const wScaleT = constantTensor(idx, dqW.input[1]);
    const w = constantTensor(idx, dqW.input[0]);
    if (!inQ || !wScaleT || !w || w.data_type !== DataType.INT8) continue;
    const bias = tensorToFloat32(b);
    const channels = bias.length;
    const wScale = tensorToFloat32(wScaleT);
    if (wScale.length !== channels && wScale.length !== 1) continue;
    const biasScale = Array.from({ length: channels }, (_, c) =>
      Math.fround(inQ.scale * wScale[wScale.length === 1 ? 0 : c]),
    );
    const biasInt = Array.from(bias, (v, c) => Math.round(v / biasScale[c]));
    if (!biasScale.every((v) => v > 0) || !biasInt.every((v) => Math.abs(v) < 2 ** 31 - 1)) continue;
    const base = (conv.name || 'Conv').replace(/^\//, '').replace(/\//g, '_');
    const bq = names.fresh(`${base}_bias_int32`),
      bs = names.fresh(`${base}_bias_scale`),
      bOut = names.fresh(`${base}_bias`);
    g.initializer.push(
      makeTensor(bq, DataType.INT32, [channels], Int32Array.from(biasInt)),
      floatTensor(bs, [channels], biasScale),
    );
    g.node.push(
      makeNode('DequantizeLinear', [bq, bs], [bOut], names.fresh(`${base}_bias_DequantizeLinear`), [
        intAttr('axis', 0),
      ]),
    );
    conv.input = [conv.input[0], conv.input[1], bOut];
  }
}
