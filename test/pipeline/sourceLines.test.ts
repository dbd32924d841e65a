// Report links of functional-op quantizers (issue 19 item 5): their attribute exists only in the quantized copy,
// so the line is that of the operation they quantize, in the user's unquantized file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { quantizeFile } from '../../server/src/fixes';
import { addQuantizerLines, lineMap } from '../../server/src/pipeline/sourceLines';

const file = path.join(process.cwd(), 'examples/digits-transformer/model.py');
const original = fs.readFileSync(file, 'utf8');
const lineOf = (re: RegExp) => original.split('\n').findIndex((l) => re.test(l)) + 1;

test('functional-op quantizers link to the line of their operation, layers to their declaration', () => {
  const quantized = quantizeFile(original, { scope: { kind: 'file' } }).text;
  assert.notEqual(quantized, original);
  const site = (cls: string, attr: string) => ({ site: { file, cls, attr } as { line?: number } });
  const qs = [
    site('SelfAttention', 'matmul0_a_quantizer'),
    site('SelfAttention', 'matmul0_b_quantizer'),
    site('EncoderLayer', 'add0_residual_quantizer'),
    site('SelfAttention', 'q_proj.input_quantizer'),
    site('DigitsTransformer', 'no_such_quantizer'),
  ];
  const names = quantized.match(/self\.(\w+_quantizer) = qdq_quant\.TensorQuantizer/g) ?? [];
  assert.ok(
    names.some((n) => n.includes('matmul0_a_quantizer')),
    'the copy declares the matmul quantizers',
  );
  addQuantizerLines(qs, file, original, quantized);
  const matmul = lineOf(/scores = torch\.matmul\(q, k/);
  assert.ok(matmul > 1);
  assert.equal(qs[0].site.line, matmul);
  assert.equal(qs[1].site.line, matmul);
  const residualLines = [lineOf(/x = self\.norm1\(x \+ self\.attn/), lineOf(/x = self\.norm2\(x \+ ffn/)];
  assert.ok(residualLines.includes(qs[2].site.line!), `residual add on line ${qs[2].site.line}`);
  assert.equal(qs[3].site.line, lineOf(/self\.q_proj\s*=/));
  assert.equal(qs[4].site.line, undefined, 'not found: no line rather than a wrong one');
});

test('lineMap: inserted # qdq lines map to the next original line, the rest keep their order', () => {
  const map = lineMap('a\nb\nc', 'import q  # qdq\na\nx = 1  # qdq\nb\nc');
  assert.deepEqual(map, [0, 0, 1, 1, 2]);
  assert.deepEqual(lineMap('a  # qdq\nb', 'a  # qdq\nb'), [0, 1], 'a line the user already had is not inserted');
});
