#!/usr/bin/env node
// Regenerates trtOperators11.json, the TensorRT 11.x operator matrix, from the 10.15 one (trtOperators.json) and
// the 11.x facts qdq could confirm from a source. Usage: node server/src/knowledge/generate-operators-11.js
// No 11.x onnx-tensorrt docs/operators.md was reachable when this was written (the stored onnx-tensorrt snapshots
// end at 10.x), so every operator not named in CHANGES below is carried over from 10.15 and marked unverified.
// The JSON is committed; this script documents (and repeats) how it was made.
'use strict';
const fs = require('fs');
const path = require('path');

const base = JSON.parse(fs.readFileSync(path.join(__dirname, 'trtOperators.json'), 'utf8'));

const CARRIED = 'carried over from 10.15; not confirmed for 11.x';
// Operator facts of the 11.x line, each with where it comes from.
const CHANGES = {
  Swish: {
    supported: true,
    types: ['FP32', 'FP16', 'BF16'],
    restrictions: '',
    provenance: 'added in 11.0 (TensorRT 11.0 release notes: "Added support for Swish operator"); types assumed as for Sigmoid, unverified',
  },
  Squeeze: {
    provenance: '11.5 accepts Squeeze with the axes input omitted (onnx-tensorrt 11.5 GA release notes); types carried over from 10.15',
    restrictionsAppend: 'From 11.5 the axes input may be omitted.',
  },
};

const ops = {};
for (const [name, op] of Object.entries(base.ops)) ops[name] = { ...op, provenance: CARRIED };
for (const [name, change] of Object.entries(CHANGES)) {
  const { restrictionsAppend, ...rest } = change;
  const op = { ...(ops[name] ?? { supported: true, types: [], restrictions: '' }), ...rest };
  if (restrictionsAppend) op.restrictions = [op.restrictions, restrictionsAppend].filter(Boolean).join(' ');
  ops[name] = op;
}
const sorted = Object.fromEntries(Object.keys(ops).sort().map((k) => [k, ops[k]]));

const out = {
  trtVersion: '11.5',
  opset: { min: 9, max: 25 },
  source:
    'TensorRT 10.15 matrix (trtOperators.json) carried over, with the 11.x changes qdq could confirm: ' +
    'opset 9-25 (NVIDIA TensorRT ONNX Opset Guide, 11.x; onnx-tensorrt 11.5 GA added opset 25), Swish (11.0), ' +
    'Squeeze without axes (11.5). Strong typing (11.0): INT8/FP8/INT4 only through Q/DQ, no BuilderFlag precisions ' +
    '(docs.nvidia.com TensorRT 11.x migration guide).',
  unverified: CARRIED,
  flagLegend: base.flagLegend,
  ops: sorted,
};
fs.writeFileSync(path.join(__dirname, 'trtOperators11.json'), JSON.stringify(out, null, 1) + '\n');
process.stdout.write(`trtOperators11.json: ${Object.keys(sorted).length} operators\n`);
