// Golden tests for quantize / unquantize / keep-float: expected output, no error nodes, idempotence, exact removal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { parsePython } from '../../server/src/analysis';
import {
  keepFloat,
  quantizeFile,
  unquantizeFile,
  applyOffsetEdits,
  helperFileEdit,
  helperFileText,
} from '../../server/src/fixes';
import * as os from 'os';
import { pathToFileURL } from 'url';
import { LineIndex } from '../../server/src/analysis/parser';
import { pythonParseErrors } from './pyast';

const GOLDEN = path.join(process.cwd(), 'test/golden/quantize');
const cases = fs.readdirSync(GOLDEN).filter((d) => fs.existsSync(path.join(GOLDEN, d, 'input.py')));

function applyTextEdits(
  text: string,
  edits: {
    range: { start: { line: number; character: number }; end: { line: number; character: number } };
    newText: string;
  }[],
): string {
  const idx = new LineIndex(text);
  const offs = edits.map((e) => ({
    start: idx.offsetAt(e.range.start),
    end: idx.offsetAt(e.range.end),
    text: e.newText,
  }));
  return applyOffsetEdits(
    text,
    offs.sort((a, b) => a.start - b.start),
  );
}

test('golden cases exist', () => {
  assert.ok(cases.length >= 10, `only ${cases.length} golden cases`);
});

const outputs: string[] = [];
for (const name of cases) {
  test(`quantize golden: ${name}`, () => {
    const input = fs.readFileSync(path.join(GOLDEN, name, 'input.py'), 'utf8');
    const expected = fs.readFileSync(path.join(GOLDEN, name, 'expected.py'), 'utf8');
    const r = quantizeFile(input);
    assert.equal(r.text, expected);
    assert.equal(r.helperNeeded, true);
    // The LSP edits describe the same change as the returned text.
    assert.equal(applyTextEdits(input, r.edits), r.text);
    assert.equal(parsePython(r.text).rootNode.hasError, false, 'output has tree-sitter error nodes');
    // Inserting twice equals inserting once.
    const again = quantizeFile(r.text);
    assert.equal(again.text, r.text);
    assert.equal(again.edits.length, 0);
    // Remove after insert gives back the input (minus any qdq code the input already had).
    assert.equal(unquantizeFile(r.text).text, unquantizeFile(input).text);
    // ... also after unrelated edits elsewhere in between.
    const eol = input.includes('\r\n') ? '\r\n' : '\n';
    const edit = (t: string) => `# edited above${eol}` + t + `${eol}# edited below${eol}`;
    assert.equal(unquantizeFile(edit(r.text)).text, edit(unquantizeFile(input).text));
    if (eol === '\r\n') assert.ok(!/[^\r]\n/.test(r.text), 'CRLF file got a bare LF line');
    outputs.push(r.text);
  });
}

test('golden outputs pass Python ast.parse', (t) => {
  const sources = cases.map((c) => fs.readFileSync(path.join(GOLDEN, c, 'expected.py'), 'utf8'));
  const errors = pythonParseErrors(sources);
  if (!errors) return t.skip('python3 is not runnable here');
  errors.forEach((e, i) => assert.equal(e, null, `${cases[i]}: ${e}`));
});

test('inputs without qdq code are restored byte for byte', () => {
  for (const name of cases) {
    const input = fs.readFileSync(path.join(GOLDEN, name, 'input.py'), 'utf8');
    if (/qdq_quant/.test(input)) continue;
    assert.equal(unquantizeFile(quantizeFile(input).text).text, input, name);
  }
});

test('class scope quantizes only that class', () => {
  const input = fs.readFileSync(path.join(GOLDEN, 'class_without_init', 'input.py'), 'utf8');
  const r = quantizeFile(input, { scope: { kind: 'class', name: 'Child' } });
  assert.match(r.text, /bmm0_a_quantizer\(q\)/);
  assert.doesNotMatch(r.text, /matmul0_a_quantizer/);
  assert.equal(unquantizeFile(r.text, { kind: 'class', name: 'Child' }).text, input);
});

test('site scope quantizes the layer on the line only, and removal at the site undoes it', () => {
  const input = fs.readFileSync(path.join(GOLDEN, 'simple_cnn', 'input.py'), 'utf8');
  const offset = input.indexOf('nn.Conv2d(16');
  const r = quantizeFile(input, { scope: { kind: 'site', offset } });
  assert.match(r.text, /qdq_quant\.quant\(nn\.Conv2d\(16, 32, 3, padding=1\)\)/);
  assert.doesNotMatch(r.text, /quant\(nn\.Conv2d\(3,/);
  assert.match(r.text, /^import qdq_quant {2}# qdq$/m);
  const back = unquantizeFile(r.text, { kind: 'site', offset: r.text.indexOf('nn.Conv2d(16') });
  assert.equal(back.text, input);
});

test('keepFloat wraps an unquantized layer and turns quant into keep_float', () => {
  const input = fs.readFileSync(path.join(GOLDEN, 'simple_cnn', 'input.py'), 'utf8');
  const k = keepFloat(input, input.indexOf('nn.Linear'));
  assert.match(k.text, /self\.fc = qdq_quant\.keep_float\(nn\.Linear\(32, num_classes\)\)/);
  // quantizing the file afterwards honours it
  const q = quantizeFile(k.text);
  assert.match(q.text, /keep_float\(nn\.Linear/);
  assert.doesNotMatch(q.text, /quant\(nn\.Linear/);
  const q2 = quantizeFile(input);
  const k2 = keepFloat(q2.text, q2.text.indexOf('nn.Linear'));
  assert.match(k2.text, /self\.fc = qdq_quant\.keep_float\(nn\.Linear/);
  assert.equal(unquantizeFile(k2.text).text, input);
});

test('a file mid-edit is left alone', () => {
  const broken =
    'import torch.nn as nn\nclass A(nn.Module):\n    def __init__(self:\n        self.fc = nn.Linear(1, 1)\n';
  assert.equal(quantizeFile(broken).text, broken);
  assert.equal(unquantizeFile(broken).text, broken);
  assert.equal(keepFloat(broken, 60).text, broken);
});

test('ops in static methods and plain functions get no quantizers; helpers with a keep_float call site are quantized at the other call sites', () => {
  const input = [
    'import torch',
    'from torch import nn',
    '',
    '',
    'def conv3x3(i, o):',
    '    return nn.Conv2d(i, o, 3)',
    '',
    '',
    'def scores(q, k):',
    '    return q @ k',
    '',
    '',
    'class Net(nn.Module):',
    '    def __init__(self):',
    '        super().__init__()',
    '        self.a = qdq_quant.keep_float(conv3x3(3, 8))',
    '        self.b = conv3x3(8, 8)',
    '',
    '    @staticmethod',
    '    def attend(q, k):',
    '        return torch.matmul(q, k)',
    '',
  ].join('\n');
  const r = quantizeFile(input);
  assert.match(r.text, /self\.b = qdq_quant\.quant\(conv3x3\(8, 8\)\)/);
  assert.match(r.text, /return nn\.Conv2d\(i, o, 3\)/);
  assert.match(r.text, /return torch\.matmul\(q, k\)/);
  assert.match(r.text, /return q @ k/);
  assert.equal(quantizeFile(r.text).text, r.text);
  assert.equal(unquantizeFile(r.text).text, unquantizeFile(input).text);
});

test('helperFileText and helperFileEdit', () => {
  const src = helperFileText();
  assert.match(src, /class TensorQuantizer/);
  assert.match(src, /def keep_float/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-helper-'));
  try {
    const model = path.join(dir, 'model.py');
    fs.writeFileSync(model, 'x = 1\n');
    const edit = helperFileEdit(pathToFileURL(model).toString());
    assert.ok(edit);
    assert.equal(edit!.uri, pathToFileURL(path.join(dir, 'qdq_quant.py')).toString());
    assert.equal(edit!.edit.newText, src);
    fs.writeFileSync(path.join(dir, 'qdq_quant.py'), '# mine\n');
    assert.equal(helperFileEdit(pathToFileURL(model).toString()), null);
    assert.equal(helperFileEdit('untitled:Untitled-1'), null);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('site removal of one op and site re-insertion give back the file-scope result', () => {
  const input = fs.readFileSync(path.join(GOLDEN, 'attention_ops', 'input.py'), 'utf8');
  const full = quantizeFile(input).text;
  const at = full.indexOf('out = self.matmul1_a_quantizer(probs)');
  const removed = unquantizeFile(full, { kind: 'site', offset: at });
  assert.match(removed.text, /out = probs @ v/);
  assert.doesNotMatch(removed.text, /matmul1_a_quantizer/);
  assert.match(removed.text, /self\.bmm0_a_quantizer = qdq_quant\.TensorQuantizer\(\)/);
  assert.equal(parsePython(removed.text).rootNode.hasError, false);
  const back = quantizeFile(removed.text, { scope: { kind: 'site', offset: removed.text.indexOf('out = probs @ v') } });
  assert.match(back.text, /out = self\.matmul1_a_quantizer\(probs\) @ self\.matmul1_b_quantizer\(v\)/);
  assert.equal(unquantizeFile(back.text).text, input);
  // keepFloat on an op line removes that op's quantizers
  const kept = keepFloat(full, at);
  assert.equal(kept.text, removed.text);
});

test('keepFloat at a call site of a quantized helper moves quantization to the other call sites', () => {
  const input = fs.readFileSync(path.join(GOLDEN, 'resnet_basic_block', 'input.py'), 'utf8');
  const q = quantizeFile(input).text;
  const k = keepFloat(q, q.indexOf('self.conv1 = conv3x3'));
  assert.match(k.text, /self\.conv1 = qdq_quant\.keep_float\(conv3x3\(inplanes, planes, stride\)\)/);
  assert.match(k.text, /self\.conv2 = qdq_quant\.quant\(conv3x3\(planes, planes\)\)/);
  assert.match(k.text, /return nn\.Conv2d\(in_planes, out_planes, kernel_size=3/);
  assert.equal(parsePython(k.text).rootNode.hasError, false);
  assert.equal(quantizeFile(k.text).text, k.text, 'quantizing again keeps the keep_float decision');
  assert.equal(unquantizeFile(k.text).text, input);
});
