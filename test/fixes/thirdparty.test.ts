// Round-trip properties over real third-party model sources: torchvision, torch.nn's transformer.py and
// HF transformers (BERT, RoBERTa, DistilBERT, ViT). Every output must pass tree-sitter and Python's ast.parse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { parsePython } from '../../server/src/analysis';
import { quantizeFile, unquantizeFile } from '../../server/src/fixes';
import { pythonParseErrors } from './pyast';

const TORCHVISION = '/usr/lib/python3/dist-packages/torchvision/models';
const TRANSFORMER = '/usr/lib/python3/dist-packages/torch/nn/modules/transformer.py';

let cachedDir: string | undefined | null = null;
function transformersDir(): string | undefined {
  if (cachedDir !== null) return cachedDir;
  cachedDir = findTransformers();
  return cachedDir;
}
function findTransformers(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import transformers, os; print(os.path.dirname(transformers.__file__))'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) return undefined;
  const dir = r.stdout.trim().split('\n').pop()!;
  return fs.existsSync(dir) ? dir : undefined;
}

function checkRoundTrip(files: string[]): void {
  const outputs: string[] = [];
  const names: string[] = [];
  let quantizedSomething = 0;
  for (const file of files) {
    const input = fs.readFileSync(file, 'utf8');
    const q = quantizeFile(input);
    if (q.text !== input) quantizedSomething++;
    assert.equal(parsePython(q.text).rootNode.hasError, false, `${file}: output has error nodes`);
    assert.equal(quantizeFile(q.text).text, q.text, `${file}: second quantize changed the text`);
    assert.equal(unquantizeFile(q.text).text, unquantizeFile(input).text, `${file}: removal did not restore the input`);
    if (!/qdq_quant/.test(input)) assert.equal(unquantizeFile(q.text).text, input, `${file}: not byte-exact`);
    outputs.push(q.text);
    names.push(file);
  }
  assert.ok(quantizedSomething > 0, 'no file was quantized at all');
  const errors = pythonParseErrors(outputs);
  assert.ok(errors, 'python3 could not run ast.parse');
  errors!.forEach((e, i) => assert.equal(e, null, `${names[i]}: ast.parse: ${e}`));
}

test('torchvision models round-trip', (t) => {
  if (!fs.existsSync(TORCHVISION)) return t.skip(`${TORCHVISION} is absent (Debian python3-torchvision not installed)`);
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory() && e.name !== '__pycache__') walk(path.join(d, e.name));
      else if (e.isFile() && e.name.endsWith('.py')) files.push(path.join(d, e.name));
    }
  };
  walk(TORCHVISION);
  checkRoundTrip(files);
});

test('torch.nn transformer.py round-trip', (t) => {
  if (!fs.existsSync(TRANSFORMER)) return t.skip(`${TRANSFORMER} is absent (Debian python3-torch not installed)`);
  checkRoundTrip([TRANSFORMER]);
  const q = quantizeFile(fs.readFileSync(TRANSFORMER, 'utf8')).text;
  // post-norm residual adds feeding norms get both inputs quantized; x is the skip, the block the branch
  assert.match(
    q,
    /self\.norm1\(self\.add\d+_residual_quantizer\(x\) \+ self\.add\d+_local_quantizer\(self\._sa_block\(/,
  );
  // pre-norm: the skip input of `x = x + block(norm(x))`
  assert.match(q, /x = self\.add\d+_residual_quantizer\(x\) \+ self\._sa_block\(self\.norm1\(x\)/);
  assert.match(q, /qdq_quant\.quant\(Linear\(d_model, dim_feedforward/);
});

const HF = [
  'bert/modeling_bert.py',
  'roberta/modeling_roberta.py',
  'distilbert/modeling_distilbert.py',
  'vit/modeling_vit.py',
];

test('HF transformers models round-trip', (t) => {
  const dir = transformersDir();
  if (!dir) return t.skip('transformers is not importable by python3');
  const files = HF.map((f) => path.join(dir, 'models', f)).filter((f) => fs.existsSync(f));
  if (!files.length) return t.skip('no BERT/RoBERTa/DistilBERT/ViT modeling files in this transformers version');
  checkRoundTrip(files);
});

test('modeling_bert placement matches QDQBERT', (t) => {
  const dir = transformersDir();
  const file = dir && path.join(dir, 'models/bert/modeling_bert.py');
  if (!file || !fs.existsSync(file)) return t.skip('transformers modeling_bert.py is not available');
  const q = quantizeFile(fs.readFileSync(file, 'utf8')).text;
  for (const attr of ['query', 'key', 'value', 'dense']) {
    assert.match(q, new RegExp(`self\\.${attr} = qdq_quant\\.quant\\(nn\\.Linear\\(`), `${attr} Linear not wrapped`);
  }
  // residual inputs before LayerNorm, both sides (QDQBertSelfOutput / QDQBertOutput)
  const ln =
    q.match(
      /self\.LayerNorm\(self\.add0_local_quantizer\(hidden_states\) \+ self\.add0_residual_quantizer\(input_tensor\)\)/g,
    ) ?? [];
  assert.equal(ln.length, 2);
  // attention score and context matmuls: both operands, wherever the attention math lives
  if (/def eager_attention_forward\(\s*module/.test(q)) {
    assert.match(
      q,
      /torch\.matmul\(module\.matmul\d+_a_quantizer\(query\), module\.matmul\d+_b_quantizer\(key\.transpose\(2, 3\)\)\)/,
    );
    assert.match(
      q,
      /torch\.matmul\(module\.matmul\d+_a_quantizer\(attn_weights\), module\.matmul\d+_b_quantizer\(value\)\)/,
    );
    // declared on every module that hands itself to the function
    for (const cls of ['BertSelfAttention', 'BertCrossAttention']) {
      const body = q.slice(q.indexOf(`class ${cls}(`), q.indexOf('\nclass ', q.indexOf(`class ${cls}(`) + 1));
      if (body.length < 20) continue;
      assert.match(body, /self\.matmul0_a_quantizer = qdq_quant\.TensorQuantizer\(\) {2}# qdq/, cls);
      assert.match(body, /self\.matmul1_b_quantizer = qdq_quant\.TensorQuantizer\(\) {2}# qdq/, cls);
    }
  } else {
    assert.match(
      q,
      /torch\.matmul\(self\.matmul\d+_a_quantizer\(query_layer\), self\.matmul\d+_b_quantizer\(key_layer\.transpose\(-1, -2\)\)\)/,
    );
  }
  // never LayerNorm / Softmax / GELU
  assert.doesNotMatch(q, /quant\(nn\.(LayerNorm|Softmax|GELU)/);
});
