// The measured ort-cpu form (server/src/onnx/ortCpuMeasured.ts): the INT8 graph timed against FP32, op kinds left
// in float while INT8 is slower, the FP32 graph written when nothing helps. The decisions are tested with an
// injected timer that prices the graph it is given (timings on this shared machine would make them flaky); one
// test times real sessions, for the plumbing only.
import { before, test } from 'node:test';
import { probeU8S8Saturation } from '../../server/src/onnx/cpuInt8';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  Model,
  Node,
  Tensor,
  DataType,
  makeNode,
  makeTensor,
  floatTensor,
  int8Tensor,
  intAttr,
  writeModel,
  readModel,
  encodeModel,
  decodeModel,
  indexGraph,
  num,
  getAttr,
} from '../../server/src/onnx/model';
import { foldWeights } from '../../server/src/onnx/foldWeights';
import { optimizeForOrtCpu } from '../../server/src/onnx/ortCpu';
import {
  measureOrtCpuForm,
  measuredNote,
  pairedBestLatency,
  PairTimer,
  PARITY,
} from '../../server/src/onnx/ortCpuMeasured';
import { randn } from './helpers';

const C = 16;

function valueInfo(name: string, shape: number[]) {
  return {
    name,
    type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: shape.map((d) => ({ dim_value: d })) } } },
  };
}

/**
 * Depthwise 7x7 (49 multiply-adds per output: integer by the cost model, as in ConvNeXt) -> pointwise 16 -> 32
 * (float beside a float depthwise) -> dense 3x3 32 -> 32 (288: integer whatever its neighbours).
 */
function convChain(quantized: boolean): Model {
  const nodes: Node[] = [];
  const inits: Tensor[] = [];
  const conv = (p: string, input: string, cin: number, cout: number, k: number, group: number, seed: number) => {
    const wShape = [cout, cin / group, k, k];
    const n = wShape.reduce((a, b) => a * b, 1);
    const q = Int8Array.from(randn(n, seed), (v) => Math.max(-127, Math.min(127, Math.round(v * 40))));
    const attrs = [intAttr('group', group), { name: 'pads', type: 7, ints: new Array(4).fill(k >> 1) }];
    if (!quantized) {
      inits.push(
        floatTensor(
          `${p}.w`,
          wShape,
          Float32Array.from(q, (v) => v * 0.01),
        ),
      );
      nodes.push(makeNode('Conv', [input, `${p}.w`], [`${p}.y`], `${p}/Conv`, attrs));
      return `${p}.y`;
    }
    inits.push(
      floatTensor(`${p}.x_scale`, [], [4 / 127]),
      int8Tensor(`${p}.x_zp`, [], [0]),
      makeTensor(`${p}.w`, DataType.INT8, wShape, q),
      floatTensor(`${p}.w_scale`, [cout], new Array(cout).fill(0.01)),
    );
    nodes.push(
      makeNode('QuantizeLinear', [input, `${p}.x_scale`, `${p}.x_zp`], [`${p}.xq`], `${p}/input_Q`),
      makeNode('DequantizeLinear', [`${p}.xq`, `${p}.x_scale`, `${p}.x_zp`], [`${p}.xdq`], `${p}/input_DQ`),
      makeNode('DequantizeLinear', [`${p}.w`, `${p}.w_scale`], [`${p}.wdq`], `${p}/weight_DQ`, [intAttr('axis', 0)]),
      makeNode('Conv', [`${p}.xdq`, `${p}.wdq`], [`${p}.y`], `${p}/Conv`, attrs),
    );
    return `${p}.y`;
  };
  const dw = conv('dw', 'x', C, C, 7, C, 1);
  const pw = conv('pw', dw, C, 32, 1, 1, 2);
  const dense = conv('dense', pw, 32, 32, 3, 1, 3);
  nodes.push(makeNode('Identity', [dense], ['y'], 'out'));
  return {
    ir_version: 8,
    producer_name: 'qdq-test',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'conv_chain',
      node: nodes,
      initializer: inits,
      value_info: [],
      input: [valueInfo('x', [1, C, 8, 8])],
      output: [valueInfo('y', [1, 32, 8, 8])],
    },
  };
}

/** The files measureOrtCpuForm starts from: FP32, and the cost models' ort-cpu rewrite of the INT8 graph. */
function setUp(dir: string) {
  const fp32File = path.join(dir, 'fp32.onnx'),
    int8File = path.join(dir, 'int8.ort-cpu.onnx');
  writeModel(convChain(false), fp32File);
  const source = encodeModel(convChain(true));
  const m = decodeModel(source);
  foldWeights(m);
  const rewrite = optimizeForOrtCpu(m);
  writeModel(m, int8File);
  return { fp32File, int8File, source, rewrite, calibration: {} };
}

/** Integer (DQ-weighted) convs in the file: depthwise and dense. */
function integerConvs(file: string): { grouped: number; dense: number } {
  const g = readModel(file).graph;
  const idx = indexGraph(g);
  const convs = g.node.filter(
    (n) => n.op_type === 'Conv' && idx.producer.get(n.input[1])?.op_type === 'DequantizeLinear',
  );
  const grouped = convs.filter((n) => num(getAttr(n, 'group')?.i ?? 1) > 1).length;
  return { grouped, dense: convs.length - grouped };
}

function withDir(f: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-ortcpu-measured-'));
    try {
      await f(dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

// The integer forms follow this CPU's kernels (cpuInt8.ts): ask it before building any.
before(() => probeU8S8Saturation());
test(
  'measured ort-cpu: INT8 already faster than FP32 -> one timing, the file and the rewrite unchanged, no note',
  withDir(async (dir) => {
    const s = setUp(dir);
    const before = fs.readFileSync(s.int8File);
    let calls = 0;
    const timer: PairTimer = async () => (calls++, { fp32: 2, int8: 1 });
    const r = await measureOrtCpuForm({ ...s, timer });
    assert.equal(calls, 1);
    assert.equal(r.rewrite, undefined);
    assert.deepEqual(r.measured.float_kinds, []);
    assert.equal(r.measured.fp32_fallback, false);
    assert.ok(fs.readFileSync(s.int8File).equals(before));
    assert.equal(measuredNote(r.measured), undefined);
  }),
);

test(
  'measured ort-cpu: INT8 slower because of its depthwise conv -> grouped convs left float (the worst kind first), with reasons',
  withDir(async (dir) => {
    const s = setUp(dir);
    assert.deepEqual(
      integerConvs(s.int8File),
      { grouped: 1, dense: 2 },
      'the cost model keeps the 7x7 depthwise integer',
    );
    // A slow integer depthwise conv (0.5), cheap integer dense ones (0.1 each), against FP32's 1.3.
    const timer: PairTimer = async (_fp32, int8) => {
      const c = integerConvs(int8);
      return { fp32: 1.3, int8: 1 + 0.5 * c.grouped + 0.1 * c.dense };
    };
    const r = await measureOrtCpuForm({ ...s, timer });
    assert.deepEqual(r.measured.float_kinds, ['groupedConv'], JSON.stringify(r.measured.trials));
    assert.equal(r.measured.fp32_fallback, false);
    // Tried: the graph as rewritten, grouped convs float; then done (INT8 faster). Dense convs float was not
    // timed: the depthwise conv beside them goes float too (ortCpuConvCost.ts), and a graph with no integer
    // weighted op left loses to the FP32 one anyway.
    assert.deepEqual(
      r.measured.trials.map((t) => t.float_kinds.join('+')),
      ['', 'groupedConv'],
    );
    // The written file is the chosen graph: the depthwise conv float, the pointwise one beside it too, the 3x3 integer.
    assert.deepEqual(integerConvs(s.int8File), { grouped: 0, dense: 1 });
    const reasons = r.rewrite!.linears.float.map((f) => f.reason);
    assert.ok(
      reasons.some((why) => /grouped \(depthwise\) convolutions left in float: .*measured/.test(why)),
      reasons.join('\n'),
    );
    assert.match(measuredNote(r.measured)!, /grouped \(depthwise\) convolutions left in float, measured faster/);
  }),
);

test(
  'measured ort-cpu: INT8 slower whatever is left float -> the FP32 graph is written as the ort-cpu file, with a note',
  withDir(async (dir) => {
    const s = setUp(dir);
    const timer: PairTimer = async () => ({ fp32: 1, int8: 2 });
    const r = await measureOrtCpuForm({ ...s, timer });
    assert.equal(r.measured.fp32_fallback, true);
    assert.equal(r.rewrite, undefined);
    assert.deepEqual(
      r.measured.trials.map((t) => t.float_kinds.join('+')),
      ['', 'groupedConv'],
      'each kind that leaves an integer op tried once, then given up',
    );
    assert.ok(fs.readFileSync(s.int8File).equals(fs.readFileSync(s.fp32File)));
    assert.match(measuredNote(r.measured)!, /the ort-cpu file is the FP32 graph/);
  }),
);

test(
  `measured ort-cpu: within ${PARITY}x of FP32 counts as as fast (noise), the INT8 graph stays`,
  withDir(async (dir) => {
    const s = setUp(dir);
    const timer: PairTimer = async () => ({ fp32: 1, int8: (PARITY + 1) / 2 });
    const r = await measureOrtCpuForm({ ...s, timer });
    assert.equal(r.measured.fp32_fallback, false);
    assert.deepEqual(integerConvs(s.int8File), { grouped: 1, dense: 2 });
  }),
);

test(
  'pairedBestLatency times both graphs in onnxruntime-node (the real timer; its figures are not asserted)',
  withDir(async (dir) => {
    const s = setUp(dir);
    const batch = { inputs: [{ name: 'x', dtype: 'float32' as const, shape: [1, C, 8, 8], data: randn(C * 64, 3) }] };
    const t = await pairedBestLatency(s.fp32File, s.int8File, batch, 3, 1);
    assert.ok(t.fp32 > 0 && Number.isFinite(t.fp32) && t.int8 > 0 && Number.isFinite(t.int8), JSON.stringify(t));
  }),
);

test(
  'measured ort-cpu: a graph with kinds left float must be at least as fast as FP32 (no parity allowance) or FP32 is written',
  withDir(async (dir) => {
    const s = setUp(dir);
    // Grouped convs float helps (1.5 -> 1.01) but not to FP32's speed.
    const timer: PairTimer = async (_fp32, int8) => ({ fp32: 1, int8: integerConvs(int8).grouped ? 1.5 : 1.01 });
    const r = await measureOrtCpuForm({ ...s, timer });
    assert.deepEqual(
      r.measured.trials.map((t) => t.float_kinds.join('+')),
      ['', 'groupedConv'],
    );
    assert.equal(r.measured.fp32_fallback, true);
    assert.ok(fs.readFileSync(s.int8File).equals(fs.readFileSync(s.fp32File)));
  }),
);

test(
  'measured ort-cpu: a close call is timed again, each file taking its best over both timings',
  withDir(async (dir) => {
    const s = setUp(dir);
    // Grouped convs float: once 4% faster than FP32 (FP32 timed on a slow spell), then FP32 at 0.97.
    let floatTries = 0;
    const timer: PairTimer = async (_fp32, int8) => {
      if (integerConvs(int8).grouped) return { fp32: 1, int8: 1.5 };
      return floatTries++ === 0 ? { fp32: 1.04, int8: 1 } : { fp32: 0.97, int8: 1.02 };
    };
    const r = await measureOrtCpuForm({ ...s, timer });
    const last = r.measured.trials[r.measured.trials.length - 1];
    assert.equal(last.confirmation, true, JSON.stringify(r.measured.trials));
    assert.deepEqual([last.fp32_ms, last.int8_ms], [0.97, 1]);
    assert.equal(r.measured.fp32_fallback, true, 'INT8 1.00 ms against FP32 0.97 ms: slower, so FP32');
  }),
);
