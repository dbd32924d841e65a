#!/usr/bin/env node
// Regenerates trtOperators.json from the onnx-tensorrt operator table (TensorRT 10.15) and the version/flag
// notes of the compatibility report. Usage:
//   node server/src/knowledge/generate-operators.js <onnx-tensorrt-operators-10.15.md> <tensorrt-compatibility.md>
// The JSON is committed; this script only documents (and repeats) how it was made.
'use strict';
const fs = require('fs');
const path = require('path');

const [opsPath, compatPath] = process.argv.slice(2);
if (!opsPath || !compatPath) {
  process.stderr.write('usage: generate-operators.js <onnx-tensorrt-operators-10.15.md> <tensorrt-compatibility.md>\n');
  process.exit(2);
}

function cells(line) {
  return line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
}

const ops = {};
for (const line of fs.readFileSync(opsPath, 'utf8').split('\n')) {
  if (!line.startsWith('|')) continue;
  const [name, sup, types = '', restrictions = ''] = cells(line);
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name) || !/^[YN]$/.test(sup)) continue;
  ops[name] = {
    supported: sup === 'Y',
    types: types && !/^Not supported/.test(types) ? types.split(',').map((t) => t.trim()).filter(Boolean) : [],
    restrictions: /^Not supported/.test(types) ? types : restrictions,
  };
}

// Flags and version notes from the compatibility report's section 1 table: | op | Sup | Types | Restrictions | Flag |
for (const line of fs.readFileSync(compatPath, 'utf8').split('\n')) {
  if (!line.startsWith('| ')) continue;
  const c = cells(line);
  if (c.length !== 5 || !ops[c[0]]) continue;
  const flag = c[4].replace(/\*\*/g, '').trim();
  if (flag) ops[c[0]].flags = flag;
}

const out = {
  trtVersion: '10.15',
  opset: { min: 9, max: 24 },
  source: 'onnx/onnx-tensorrt docs/operators.md (TensorRT 10.15) with flags from the qdq TensorRT compatibility report',
  flagLegend: {
    U: 'unsupported', T: 'dtype restriction PyTorch users hit (int/bool input to an FP-only op)', C: 'input or attribute must be a build-time constant',
    S: 'shape or rank restriction', V: 'version-sensitive',
  },
  ops,
};
const target = path.join(__dirname, 'trtOperators.json');
fs.writeFileSync(target + '.tmp', JSON.stringify(out, null, 1) + '\n');
fs.renameSync(target + '.tmp', target);
process.stdout.write(`wrote ${Object.keys(ops).length} operators to ${target}\n`);
