// Library models: the installed transformers sources go through qdq's own passes. These tests read the real
// files of PyPI's transformers (skipped with a reason where it is not installed) and never write to them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { buildModelIndex, hasSyntaxErrors, parsePython } from '../../server/src/analysis';
import { runRules } from '../../server/src/rules';
import { unquantizeFile, quantizeFile } from '../../server/src/fixes';
import { applyTrtFixes } from '../../server/src/fixes/trtFixes';
import { LibraryPatchError, patchLibrarySource } from '../../server/src/library/patch';
import { resolveLibraryModule } from '../../server/src/library/resolve';

const MODULES = [
  'transformers.models.bert.modeling_bert',
  'transformers.models.roberta.modeling_roberta',
  'transformers.models.distilbert.modeling_distilbert',
  'transformers.models.vit.modeling_vit',
];

function transformersDir(): string | null {
  const r = spawnSync('python3', ['-c', 'import transformers, os; print(os.path.dirname(transformers.__file__))'], {
    encoding: 'utf8',
  });
  return r.status === 0 ? r.stdout.trim() : null;
}

const tfDir = transformersDir();
const skip = tfDir ? false : 'PyPI transformers is not installed for python3 (scripts/setup.sh installs it)';

function moduleFile(module: string): string {
  return path.join(tfDir as string, ...module.split('.').slice(1)) + '.py';
}

function pythonParses(text: string): string | null {
  const r = spawnSync('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], {
    input: text,
    encoding: 'utf8',
  });
  return r.status === 0 ? null : (r.stderr.trim().split('\n').pop() ?? 'ast.parse failed');
}

for (const module of MODULES) {
  test(`${module}: patched source parses and round-trips byte for byte`, { skip }, () => {
    const original = fs.readFileSync(moduleFile(module), 'utf8');
    const patch = patchLibrarySource(module, original);
    assert.notEqual(patch.text, original);
    assert.equal(hasSyntaxErrors(parsePython(patch.text)), false, 'tree-sitter finds no error nodes');
    assert.equal(pythonParses(patch.text), null, "Python's own ast.parse accepts the patched source");
    // Removing the quantizers gives back the TensorRT-fixed source exactly; with no fixes, the original.
    const fixed = applyTrtFixes(original).text;
    assert.equal(unquantizeFile(patch.text).text, fixed);
    if (patch.fixes.length === 0) assert.equal(fixed, original);
    // Quantizing again changes nothing.
    assert.equal(quantizeFile(patch.text, { scope: { kind: 'file' }, relativeImport: false }).text, patch.text);
  });
}

test(
  'BERT placement matches QDQBERT: q/k/v Linear, both operands of both attention matmuls, residual inputs before LayerNorm',
  { skip },
  () => {
    const module = MODULES[0];
    const text = patchLibrarySource(module, fs.readFileSync(moduleFile(module), 'utf8')).text;
    for (const layer of ['query', 'key', 'value']) {
      assert.match(
        text,
        new RegExp(`self\\.${layer} = qdq_quant\\.quant\\(nn\\.Linear\\(`),
        `${layer} Linear is quantized`,
      );
    }
    assert.match(
      text,
      /torch\.matmul\(module\.matmul\d+_a_quantizer\(query\), module\.matmul\d+_b_quantizer\(key\.transpose\(2, 3\)\)\)/,
    );
    assert.match(
      text,
      /torch\.matmul\(module\.matmul\d+_a_quantizer\(attn_weights\), module\.matmul\d+_b_quantizer\(value\)\)/,
    );
    assert.match(
      text,
      /self\.LayerNorm\(self\.add\d+_\w+_quantizer\(hidden_states\) \+ self\.add\d+_\w+_quantizer\(input_tensor\)\)/,
    );
    assert.doesNotMatch(text, /quant\(nn\.LayerNorm/, 'LayerNorm stays in float');
    assert.doesNotMatch(text, /_quantizer\(nn\.functional\.softmax/, 'softmax output is not quantized');
  },
);

test('RoBERTa: the integer cumsum of the position ids is patched (TRT001)', { skip }, () => {
  const module = MODULES[1];
  const original = fs.readFileSync(moduleFile(module), 'utf8');
  assert.match(original, /torch\.cumsum\(mask, dim=1\)/);
  const patch = patchLibrarySource(module, original);
  assert.ok(
    patch.fixes.some((f) => f.startsWith('TRT001')),
    patch.fixes.join('\n'),
  );
  // transformer-deploy's patch: the mask is float before the cumsum, so no integer CumSum reaches the graph.
  assert.match(patch.text, /mask = input_ids\.ne\(padding_idx\)\.float\(\)/);
  const tree = parsePython(patch.text);
  const left = runRules(buildModelIndex(tree, patch.text), tree, patch.text).filter((d) => d.code === 'TRT001');
  assert.deepEqual(left, [], 'no TRT001 diagnostic is left on the patched source');
});

test('a library version whose attention moved fails loudly, naming the module and what did not match', { skip }, () => {
  const module = MODULES[0];
  const original = fs.readFileSync(moduleFile(module), 'utf8');
  // Simulate a release that computes attention elsewhere: no matmul left in this module.
  const moved = original.replace(/torch\.matmul\(/g, 'some_kernel(');
  assert.throws(
    () => patchLibrarySource(module, moved),
    (err: unknown) => {
      assert.ok(err instanceof LibraryPatchError);
      assert.match(err.message, /transformers\.models\.bert\.modeling_bert/);
      assert.match(err.message, /matmulOperands: found 0, expected at least 4/);
      assert.match(err.hint, /qdq quantize --module/);
      return true;
    },
  );
});

test('an unknown module with nothing to quantize is refused with a reason', () => {
  assert.throws(() => patchLibrarySource('somelib.helpers', 'def f(x):\n    return x\n'), /found nothing to quantize/);
});

test('resolveLibraryModule finds the installed file through the interpreter and reads it', { skip }, async () => {
  const found = await resolveLibraryModule(MODULES[0]);
  assert.equal(found.file, moduleFile(MODULES[0]));
  assert.match(found.text, /class BertSelfAttention/);
});

test('resolveLibraryModule: a module that is not installed is a clear error', { skip }, async () => {
  await assert.rejects(resolveLibraryModule('transformers.models.no_such_model.modeling_x'), (err: Error) => {
    assert.match(err.message, /no_such_model/);
    return true;
  });
  await assert.rejects(resolveLibraryModule('not a module'), /is not a Python module name/);
});
