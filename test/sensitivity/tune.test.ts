// qdq tune's source side: the budget syntax and keep_float edits placed from backend source sites
// (real tree-sitter quantize + keep-float fixes on the bundled digits-mobilenet model).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { applyKeepFloat, parseBudget, siteOffset } from '../../server/src/pipeline/tune';
import { quantizeFile } from '../../server/src/fixes';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const MODEL = path.join(ROOT, 'examples', 'digits-mobilenet', 'model.py');

function quantized(): string {
  return quantizeFile(fs.readFileSync(MODEL, 'utf8'), { scope: { kind: 'file' } }).text;
}

test('budget: points, a percentage of FP32, or nothing usable', () => {
  assert.deepEqual(parseBudget('0.5'), { maxDrop: 0.5, relative: false });
  assert.deepEqual(parseBudget(1), { maxDrop: 1, relative: false });
  assert.deepEqual(parseBudget('1%'), { maxDrop: 1, relative: true });
  assert.equal(parseBudget('half'), null);
  assert.equal(parseBudget(undefined), null);
});

test('a site path finds its layer, through nn.Sequential indices', () => {
  const text = quantized();
  const at = siteOffset(text, 'DigitsMobileNet', 'stem.0.input_quantizer');
  assert.ok(at > 0);
  assert.ok(text.slice(at).startsWith('qdq_quant.quant(nn.Conv2d(1, 16'), text.slice(at, at + 40));
  const dw = siteOffset(text, 'InvertedResidual', 'depthwise.weight_quantizer');
  assert.ok(text.slice(dw).startsWith('self.depthwise ='));
  assert.equal(siteOffset(text, 'NoSuchClass', 'x.input_quantizer'), -1);
});

test('keep_float lands on exactly the float groups and nothing else', () => {
  const text = quantized();
  const sites = [
    `${MODEL}::InvertedResidual.depthwise.input_quantizer`,
    `${MODEL}::InvertedResidual.depthwise.weight_quantizer`,
    `${MODEL}::DigitsMobileNet.stem.0.input_quantizer`,
  ];
  const r = applyKeepFloat(text, MODEL, sites);
  assert.deepEqual(r.missing, []);
  const kept = r.text.split('\n').filter((l) => l.includes('keep_float('));
  assert.equal(kept.length, 2, kept.join('\n'));
  assert.ok(kept.some((l) => l.includes('self.depthwise = qdq_quant.keep_float(')));
  assert.ok(kept.some((l) => l.includes('qdq_quant.keep_float(nn.Conv2d(1, 16')));
  // every other layer is still quantized
  assert.equal(
    (r.text.match(/qdq_quant\.quant\(/g) ?? []).length,
    (text.match(/qdq_quant\.quant\(/g) ?? []).length - 2,
  );
});

test('an op site (residual add) loses its quantizer; sites in other files are reported, not edited', () => {
  const text = quantized();
  assert.ok(text.includes('self.add0_residual_quantizer('));
  const r = applyKeepFloat(text, MODEL, [
    `${MODEL}::InvertedResidual.add0_residual_quantizer`,
    '/elsewhere/other.py::Other.fc.input_quantizer',
  ]);
  assert.deepEqual(r.missing, ['/elsewhere/other.py::Other.fc.input_quantizer']);
  assert.ok(!r.text.includes('self.add0_residual_quantizer('));
});

test('both operands of one residual add are one edit: nothing reported missing (digits-transformer)', () => {
  const file = path.join(ROOT, 'examples', 'digits-transformer', 'model.py');
  const text = quantizeFile(fs.readFileSync(file, 'utf8'), { scope: { kind: 'file' } }).text;
  assert.ok(text.includes('self.add0_residual_quantizer(') && text.includes('self.add0_local_quantizer('));
  const r = applyKeepFloat(text, file, [
    `${file}::EncoderLayer.add0_local_quantizer`,
    `${file}::EncoderLayer.add0_residual_quantizer`,
  ]);
  assert.deepEqual(r.missing, []);
  assert.ok(!r.text.includes('self.add0_residual_quantizer(') && !r.text.includes('self.add0_local_quantizer('));
  assert.ok(r.text.includes('self.add1_residual_quantizer('), 'the other add keeps its quantizers');
});
