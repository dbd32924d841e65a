// The TensorRT 10.15 operator matrix and the PyTorch -> ONNX map used by hovers and the ONNX verifier.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import {
  allTrtOperators,
  describeForHover,
  trtOperatorSupport,
  TORCH_LAYER_TO_ONNX,
  TORCH_OP_TO_ONNX,
  TRT_OPSET_RANGE,
} from '../../server/src/knowledge';
import { allRules } from '../../server/src/rules';

describe('trtOperatorSupport', () => {
  it('holds the whole 10.15 matrix: 200 operators, 42 unsupported, opsets 9-24', () => {
    const ops = allTrtOperators();
    assert.equal(ops.length, 200);
    assert.equal(ops.filter((o) => !trtOperatorSupport(o)!.supported).length, 42);
    assert.deepEqual(TRT_OPSET_RANGE, { min: 9, max: 24 });
  });
  it('answers ops PyTorch exports, with types and restrictions', () => {
    const cumsum = trtOperatorSupport('CumSum')!;
    assert.equal(cumsum.supported, true);
    assert.deepEqual(cumsum.types, ['FP32', 'FP16', 'BF16']);
    assert.match(cumsum.restrictions, /axis/);
    const topk = trtOperatorSupport('TopK')!;
    assert.match(topk.note, /3840/);
    for (const op of [
      'Unique',
      'DFT',
      'BitwiseAnd',
      'MatMulInteger',
      'QLinearConv',
      'DynamicQuantizeLinear',
      'Bernoulli',
    ]) {
      assert.equal(trtOperatorSupport(op)?.supported, false, op);
    }
    for (const op of [
      'Conv',
      'Gemm',
      'MatMul',
      'QuantizeLinear',
      'DequantizeLinear',
      'Add',
      'Relu',
      'Softmax',
      'LayerNormalization',
    ]) {
      assert.equal(trtOperatorSupport(op)?.supported, true, op);
    }
    assert.equal(trtOperatorSupport('NotAnOnnxOp'), undefined);
  });
  it(
    'the committed JSON matches the reference table when the reference is present',
    {
      skip: fs.existsSync('/work/shared/reference/onnx-tensorrt-operators-10.15.md')
        ? false
        : 'reference table not on this machine',
    },
    () => {
      const md = fs.readFileSync('/work/shared/reference/onnx-tensorrt-operators-10.15.md', 'utf8');
      let rows = 0;
      for (const line of md.split('\n')) {
        const m = /^\|\s*([A-Za-z0-9]+)\s*\|\s*([YN])\s*\|/.exec(line);
        if (!m) continue;
        rows++;
        assert.equal(trtOperatorSupport(m[1])?.supported, m[2] === 'Y', m[1]);
      }
      assert.equal(rows, 200);
    },
  );
});

describe('PyTorch -> ONNX map', () => {
  it('every ONNX op it names is in the TensorRT matrix', () => {
    for (const [name, m] of [...Object.entries(TORCH_LAYER_TO_ONNX), ...Object.entries(TORCH_OP_TO_ONNX)]) {
      for (const op of m.onnx) assert.ok(trtOperatorSupport(op), `${name} -> ${op}`);
      for (const code of m.rules ?? [])
        assert.ok(
          allRules.some((r) => r.code === code),
          `${name} -> ${code}`,
        );
    }
  });
  it('maps the layers and calls of the brief', () => {
    assert.deepEqual(describeForHover('layer', 'nn.Conv2d')?.onnxOps, ['Conv']);
    assert.deepEqual(describeForHover('layer', 'torch.nn.Linear')?.onnxOps, ['Gemm']);
    assert.deepEqual(describeForHover('layer', 'quant_nn.QuantConv2d')?.onnxOps, ['Conv']);
    assert.deepEqual(describeForHover('op', 'torch.matmul')?.onnxOps, ['MatMul']);
    assert.deepEqual(describeForHover('op', '@')?.onnxOps, ['MatMul']);
    assert.deepEqual(describeForHover('op', 'x.cumsum')?.onnxOps, ['CumSum']);
    assert.deepEqual(describeForHover('op', 'torch.nn.functional.linear')?.onnxOps, ['Gemm']);
    assert.equal(describeForHover('op', 'my_helper'), undefined);
  });
  it('hover markdown says what TensorRT supports and which rule applies', () => {
    const md = describeForHover('op', 'torch.cumsum')!.trtSupport;
    assert.match(md, /TensorRT 10\.15/);
    assert.match(md, /CumSum/);
    assert.match(md, /FP32\/FP16\/BF16/);
    assert.match(md, /TRT001/);
    assert.match(describeForHover('op', 'torch.unique')!.trtSupport, /not supported/);
    assert.match(describeForHover('op', 'torch.bincount')!.trtSupport, /not exportable/);
  });
  it('one-argument form returns markdown for a layer or an op name', () => {
    assert.match(describeForHover('nn.Conv2d') ?? '', /`Conv`: supported/);
    assert.match(describeForHover('torch.matmul') ?? '', /MatMul/);
    assert.equal(describeForHover('nothing_known_here'), undefined);
  });
});

describe('generator script', () => {
  it('is committed next to the data it produced', () => {
    assert.ok(fs.existsSync(path.join(process.cwd(), 'server', 'src', 'knowledge', 'generate-operators.js')));
    assert.ok(fs.existsSync(path.join(process.cwd(), 'server', 'src', 'knowledge', 'trtOperators.json')));
  });
});
