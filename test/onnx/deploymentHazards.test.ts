// TRT062-TRT065 on the exported graph (server/src/onnx/deploymentHazards.ts), on hand-built Q/DQ graphs shaped like
// torch's exports: a 3-channel stem conv, a channels-last MLP (rank-4 MatMul), a tiny head, a decomposed LayerNorm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Model,
  Node,
  Tensor,
  DataType,
  makeNode,
  makeTensor,
  floatTensor,
  int8Tensor,
  int64Tensor,
  intAttr,
} from '../../server/src/onnx/model';
import { graphHazards, hazardNotes } from '../../server/src/onnx/deploymentHazards';

function valueInfo(name: string, shape: number[]) {
  return {
    name,
    type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: shape.map((d) => ({ dim_value: d })) } } },
  };
}

/** x -> Q -> DQ (activation), w (INT8) -> DQ [-> Transpose] (weight). */
function qdq(
  prefix: string,
  x: string,
  w: string,
  wShape: number[],
  transpose: boolean,
  inits: Tensor[],
  nodes: Node[],
) {
  inits.push(
    floatTensor(`${prefix}_s`, [], [0.02]),
    int8Tensor(`${prefix}_zp`, [], [0]),
    makeTensor(w, DataType.INT8, wShape, new Int8Array(wShape.reduce((a, b) => a * b, 1)).fill(3)),
    floatTensor(`${w}_s`, [], [0.01]),
    int8Tensor(`${w}_zp`, [], [0]),
  );
  nodes.push(
    makeNode(
      'QuantizeLinear',
      [x, `${prefix}_s`, `${prefix}_zp`],
      [`${prefix}_q`],
      `${prefix}/input_quantizer/QuantizeLinear`,
    ),
    makeNode(
      'DequantizeLinear',
      [`${prefix}_q`, `${prefix}_s`, `${prefix}_zp`],
      [`${prefix}_dq`],
      `${prefix}/input_quantizer/DequantizeLinear`,
    ),
    makeNode('DequantizeLinear', [w, `${w}_s`, `${w}_zp`], [`${w}_dq`], `${prefix}/weight_quantizer/DequantizeLinear`),
  );
  if (transpose)
    nodes.push(
      makeNode('Transpose', [`${w}_dq`], [`${w}_t`], `${prefix}/Transpose`, [{ name: 'perm', type: 7, ints: [1, 0] }]),
    );
  return { a: `${prefix}_dq`, b: transpose ? `${w}_t` : `${w}_dq` };
}

function model(): Model {
  const inits: Tensor[] = [];
  const nodes: Node[] = [];
  // stem: Conv on 3 channels, INT8
  const stem = qdq('/stem', 'image', 'stem.weight', [16, 3, 3, 3], false, inits, nodes);
  nodes.push(
    makeNode('Conv', [stem.a, stem.b], ['feat'], '/stem/Conv', [{ name: 'pads', type: 7, ints: [1, 1, 1, 1] }]),
  );
  // channels-last MLP: Transpose to (1, 8, 8, 16), MatMul with W (32, 16) exported transposed
  nodes.push(
    makeNode('Transpose', ['feat'], ['nhwc'], '/block/Transpose', [{ name: 'perm', type: 7, ints: [0, 2, 3, 1] }]),
  );
  const fc1 = qdq('/block/fc1', 'nhwc', 'block.fc1.weight', [32, 16], true, inits, nodes);
  nodes.push(makeNode('MatMul', [fc1.a, fc1.b], ['hidden'], '/block/fc1/MatMul'));
  // attention-like: two rank-4 activations (no weight), which INT8 attention quantizes on purpose
  nodes.push(
    makeNode('Transpose', [fc1.a], ['nhwc_t'], '/attn/Transpose', [{ name: 'perm', type: 7, ints: [0, 1, 3, 2] }]),
    makeNode('MatMul', [fc1.a, 'nhwc_t'], ['scores'], '/attn/MatMul'),
  );
  // pooled head with 3 classes
  inits.push(int64Tensor('flat_shape', [2], [1, 2048]));
  nodes.push(makeNode('Reshape', ['hidden', 'flat_shape'], ['flat'], '/Reshape'));
  const head = qdq('/head', 'flat', 'head.weight', [3, 2048], false, inits, nodes);
  nodes.push(makeNode('Gemm', [head.a, head.b], ['logits'], '/head/Gemm', [intAttr('transB', 1)]));
  return {
    ir_version: 8,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'g',
      node: nodes,
      initializer: inits,
      input: [valueInfo('image', [1, 3, 8, 8])],
      output: [valueInfo('logits', [1, 3])],
      value_info: [],
    },
  };
}

test('a 3-channel INT8 stem, an INT8 MatMul on a rank-4 tensor and a 3-class INT8 Gemm are found, with their sites', () => {
  const hazards = graphHazards(model(), [
    { name: 'block.fc1.input_quantizer', site: { file: '/p/model.py', cls: 'Block', attr: 'fc1' } },
  ]);
  assert.deepEqual(
    hazards.map((h) => [h.code, h.node, h.module]),
    [
      ['TRT062', '/stem/Conv', 'stem'],
      ['TRT063', '/block/fc1/MatMul', 'block.fc1'],
      ['TRT065', '/head/Gemm', 'head'],
    ],
  );
  assert.deepEqual(hazards[1].site, { file: '/p/model.py', cls: 'Block', attr: 'fc1' });
  assert.match(hazards[2].message, /K=2048, N=3/);
  const notes = hazardNotes(hazards);
  assert.equal(notes.length, 3);
  assert.match(
    notes[1],
    /^TRT063 on the exported graph: \/block\/fc1\/MatMul \(model\.py Block\.fc1\): INT8 MatMul on a rank-4/,
  );
});

test('the same ops in float (no DequantizeLinear in front) are no hazard', () => {
  const m = model();
  for (const n of m.graph.node) if (n.op_type === 'QuantizeLinear') n.op_type = 'Identity';
  m.graph.node = m.graph.node.filter((n) => !(n.op_type === 'DequantizeLinear' && n.name!.includes('input_quantizer')));
  for (const n of m.graph.node)
    if (['Conv', 'MatMul', 'Gemm'].includes(n.op_type)) n.input[0] = n.input[0].replace(/_dq$/, '_q');
  assert.deepEqual(graphHazards(m), []);
});
