// The strongly typed export pass (server/src/onnx/strongTyping.ts) on a small hand-built Q/DQ graph: which ops go
// FP16 and which stay FP32 (rule, calibrated overflow, the user's marker), scale types, Cast count, graph I/O
// types, onnx's checker with strict shape inference, and onnxruntime agreeing with the FP32 graph.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  Model,
  DataType,
  makeNode,
  floatTensor,
  int8Tensor,
  intAttr,
  writeModel,
  opsetVersion,
  decodeModel,
  encodeModel,
} from '../../server/src/onnx/model';
import { strongTyping } from '../../server/src/onnx/strongTyping';
import { auditPrecision } from '../../server/src/onnx/precisionAudit';
import {
  toFloat16Bits,
  float16BitsToNumber,
  toBFloat16Bits,
  bfloat16BitsToNumber,
} from '../../server/src/onnx/halfFloat';
import { verifyModels } from '../../server/src/onnx/verify';
import { randn } from './helpers';
import { onnxCheck, hasOnnx } from './onnxChecker';

const valueInfo = (name: string, shape: number[]) => ({
  name,
  type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: shape.map((d) => ({ dim_value: d })) } } },
});

/** x -> Q/DQ -> MatMul(INT8 weight via DQ) -> Add(bias) -> Relu -> ReduceMean(axes attr) -> Softmax -> Mul -> y. */
function smallModel(): Model {
  const K = 16;
  const w = Array.from(randn(K * K, 3), (v) => Math.max(-127, Math.min(127, Math.round(v * 40))));
  const nodes = [
    makeNode('QuantizeLinear', ['x', 'x_scale', 'zp'], ['xq'], '/in/Q'),
    makeNode('DequantizeLinear', ['xq', 'x_scale', 'zp'], ['xd'], '/in/DQ'),
    makeNode('DequantizeLinear', ['w_q', 'w_scale', 'w_zp'], ['wd'], '/fc/DQ', [intAttr('axis', 1)]),
    makeNode('MatMul', ['xd', 'wd'], ['mm'], '/fc/MatMul'),
    makeNode('Add', ['mm', 'bias'], ['fc'], '/fc/Add'),
    makeNode('Relu', ['fc'], ['act'], '/act/Relu'),
    makeNode('ReduceMean', ['act'], ['pooled'], '/pool/ReduceMean', [
      { name: 'axes', type: 7, ints: [0] },
      intAttr('keepdims', 1),
    ]),
    makeNode('Softmax', ['pooled'], ['sm'], '/head/Softmax', [intAttr('axis', -1)]),
    makeNode('Mul', ['sm', 'two'], ['y'], '/head/Mul'),
  ];
  return {
    ir_version: 7,
    opset_import: [{ domain: '', version: 13 }],
    producer_name: 'qdq-test',
    graph: {
      name: 'g',
      node: nodes,
      input: [valueInfo('x', [4, K])],
      output: [valueInfo('y', [1, K])],
      value_info: [valueInfo('act', [4, K])],
      initializer: [
        floatTensor('x_scale', [], [0.03]),
        int8Tensor('zp', [], [0]),
        int8Tensor('w_q', [K, K], w),
        floatTensor(
          'w_scale',
          [K],
          Array.from({ length: K }, (_, i) => 0.01 + i * 0.001),
        ),
        int8Tensor('w_zp', [K], new Array(K).fill(0)),
        floatTensor('bias', [K], randn(K, 5)),
        floatTensor('two', [], [2]),
      ],
    },
  };
}

function clone(m: Model): Model {
  return decodeModel(encodeModel(m));
}

test('half-float conversion rounds to nearest even and saturates to infinity', () => {
  assert.equal(float16BitsToNumber(toFloat16Bits(1 / 3)), 0.333251953125);
  assert.equal(float16BitsToNumber(toFloat16Bits(65504)), 65504);
  assert.equal(float16BitsToNumber(toFloat16Bits(70000)), Infinity);
  assert.equal(float16BitsToNumber(toFloat16Bits(2 ** -24)), 2 ** -24);
  assert.equal(float16BitsToNumber(toFloat16Bits(2 ** -26)), 0);
  assert.equal(float16BitsToNumber(toFloat16Bits(-1.5)), -1.5);
  assert.equal(bfloat16BitsToNumber(toBFloat16Bits(1 / 3)), 0.333984375);
  // Ties round to the even mantissa: 1 + 2^-8 down to 1, 1 + 3 * 2^-8 up to 1 + 2^-6.
  assert.equal(bfloat16BitsToNumber(toBFloat16Bits(1 + 2 ** -8)), 1);
  assert.equal(bfloat16BitsToNumber(toBFloat16Bits(1 + 3 * 2 ** -8)), 1 + 2 ** -6);
});

test('fp16: INT8 MatMul, FP16 elsewhere, softmax FP32 by rule, scales typed, 3 Casts, I/O stay FP32', async () => {
  const m = smallModel();
  const fp32 = clone(m);
  const r = strongTyping(m, { precision: 'fp16' });
  assert.equal(opsetVersion(m), 19);
  assert.equal(r.casts, 3, 'into and out of the softmax island, and the FP32 graph output');
  assert.deepEqual(
    r.fp32.map((f) => [f.node, f.kind]),
    [['/head/Softmax', 'rule']],
  );
  const a = auditPrecision(m);
  assert.deepEqual(
    a.layers.map((l) => [l.node, l.precision]),
    [
      ['/fc/MatMul', 'INT8'],
      ['/fc/Add', 'FP16'],
      ['/act/Relu', 'FP16'],
      ['/pool/ReduceMean', 'FP16'],
      ['/head/Softmax', 'FP32'],
      ['/head/Mul', 'FP16'],
    ],
  );
  assert.equal(a.low_share, 5 / 6);
  assert.ok(a.scales_ok, JSON.stringify(a.scales));
  // The input Q runs on the FP32 graph input; its DQ and the weight's DQ feed FP16 ops.
  assert.deepEqual(
    a.scales.map((s) => [s.node, s.scale_type]),
    [
      ['/in/Q', 'FP32'],
      ['/in/DQ', 'FP16'],
      ['/fc/DQ', 'FP16'],
    ],
  );
  assert.equal(a.dq_fed_weighted_ops, a.weighted_ops);
  assert.equal(m.graph.input[0].type?.tensor_type?.elem_type, DataType.FLOAT);
  assert.equal(m.graph.output[0].type?.tensor_type?.elem_type, DataType.FLOAT);
  // ReduceMean's axes moved from attribute to input (opset 18).
  const rm = m.graph.node.find((n) => n.op_type === 'ReduceMean')!;
  assert.equal(rm.input.length, 2);
  assert.ok(!rm.attribute.some((x) => x.name === 'axes'));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-strong-'));
  try {
    writeModel(fp32, path.join(dir, 'fp32.onnx'));
    writeModel(m, path.join(dir, 'typed.onnx'));
    if (hasOnnx) {
      const c = onnxCheck(path.join(dir, 'typed.onnx'));
      assert.ok(c.ok, c.message);
    }
    const batches = [0, 1, 2].map((i) => ({
      inputs: [{ name: 'x', dtype: 'float32' as const, shape: [4, 16], data: randn(64, 20 + i) }],
    }));
    const v = await verifyModels(path.join(dir, 'fp32.onnx'), path.join(dir, 'typed.onnx'), batches, {
      latencyRuns: 1,
      warmup: 0,
    });
    assert.ok(v.cosine_min > 0.999, `cosine ${v.cosine_min}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a calibrated range over 65504 and the user marker keep their ops FP32, with the reason', () => {
  const m = smallModel();
  const r = strongTyping(m, {
    precision: 'fp16',
    ranges: new Map([['act', 1.2e5]]),
    fp32Markers: [{ module: 'head', site: 'Net.head' }],
  });
  const byNode = new Map(r.fp32.map((f) => [f.node, f]));
  assert.equal(byNode.get('/act/Relu')?.kind, 'overflow');
  assert.match(byNode.get('/act/Relu')!.reason!, /120000 exceeds the FP16 maximum 65504/);
  assert.equal(byNode.get('/head/Mul')?.kind, 'marker');
  assert.equal(byNode.get('/head/Mul')?.site, 'Net.head');
  const a = auditPrecision(m);
  assert.ok(
    a.fp32_ops.some((f) => f.node === '/head/Mul' && /keep_float\(\.\.\., "fp32"\) at Net\.head/.test(f.reason)),
  );
  assert.ok(a.scales_ok);
});

test('fp32 leaves the graph as exported; bf16 types it for opset 22 and passes the checker', () => {
  const m = smallModel();
  const before = encodeModel(m);
  strongTyping(m, { precision: 'fp32' });
  assert.deepEqual(Buffer.from(encodeModel(m)), Buffer.from(before));
  const b = smallModel();
  strongTyping(b, { precision: 'bf16' });
  assert.equal(opsetVersion(b), 22);
  const a = auditPrecision(b);
  assert.ok(a.layers.some((l) => l.precision === 'BF16'));
  assert.ok(a.scales_ok);
  if (!hasOnnx) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-strong-bf16-'));
  try {
    writeModel(b, path.join(dir, 'bf16.onnx'));
    const c = onnxCheck(path.join(dir, 'bf16.onnx'));
    assert.ok(c.ok, c.message);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an activation scale below the FP16 normal range keeps its INT8 layer FP32 around it, DQ feeding it directly', () => {
  const m = smallModel();
  m.graph.initializer = m.graph.initializer.map((t) => (t.name === 'x_scale' ? floatTensor('x_scale', [], [1e-6]) : t));
  const r = strongTyping(m, { precision: 'fp16' });
  const mm = r.fp32.find((f) => f.node === '/fc/MatMul');
  assert.equal(mm?.kind, 'underflow');
  assert.match(mm!.reason!, /\/in\/DQ is below the FP16 normal range/);
  // No Cast between either DequantizeLinear and the MatMul: both feed it directly, in FP32.
  const matmul = m.graph.node.find((n) => n.name === '/fc/MatMul')!;
  const producers = matmul.input.map((v) => m.graph.node.find((n) => n.output.includes(v))?.op_type);
  assert.deepEqual(producers, ['DequantizeLinear', 'DequantizeLinear']);
  const a = auditPrecision(m);
  assert.ok(a.scales_ok, JSON.stringify(a.scales));
  assert.equal(a.layers.find((l) => l.node === '/fc/MatMul')?.precision, 'INT8');
  // The op after it is FP16 again, through one Cast.
  assert.equal(a.layers.find((l) => l.node === '/fc/Add')?.precision, 'FP16');
});
