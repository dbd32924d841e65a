// A slice of the real-model corpus check (scripts/corpus-check.sh runs all of it): real transformers and timm
// sources from the interpreter's site-packages are quantized, must parse and unquantize byte for byte, and
// small random-weight models built from the quantized sources must run, calibrated, with every weighted layer
// quantized and no quantizer handed anything but a float tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { corpusFiles, moduleNameOf, quantizeCorpusFile } from '../../bench/corpusQuantize';

const PY = 'python3';
const probe = spawnSync(
  PY,
  ['-c', 'import os, timm, transformers; print(os.path.dirname(os.path.dirname(timm.__file__)))'],
  {
    encoding: 'utf8',
  },
);
const site = probe.status === 0 ? probe.stdout.trim() : '';
const skip = site
  ? false
  : `${PY} has no timm + transformers (scripts/setup.sh installs them): ${probe.stderr.trim().split('\n').pop()}`;

const SLICE = [
  'transformers.models.gpt2.modeling_gpt2',
  'transformers.models.t5.modeling_t5',
  'transformers.models.bert.modeling_bert',
  'timm.layers.mlp',
  'timm.layers.attention',
  'timm.layers.patch_embed',
  'timm.models.vision_transformer',
];
const MODELS = ['hf/gpt2', 'hf/t5', 'timm/vit'];

test('corpus slice: quantized transformers/timm sources round-trip and the models run', { skip }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-corpus-'));
  try {
    const files = corpusFiles(site).filter((f) => SLICE.includes(moduleNameOf(f, site)));
    assert.equal(files.length, SLICE.length, 'every module of the slice is installed');
    const results = await Promise.all(files.map((f) => quantizeCorpusFile(f, site, out)));
    for (const r of results) {
      assert.ok(r.parses, `${r.module}: quantized source parses`);
      assert.ok(r.roundTrips, `${r.module}: unquantize gives the original back`);
    }
    const text = (m: string): string => fs.readFileSync(path.join(out, m + '.py'), 'utf8');
    assert.match(text('transformers.models.gpt2.modeling_gpt2'), /qdq_quant\.quant\(Conv1D\(/);
    assert.match(text('timm.layers.mlp'), /self\.fc1 = qdq_quant\.quant\(linear_layer\(/);
    assert.doesNotMatch(text('transformers.models.t5.modeling_t5'), /_quantizer\(past_seen_tokens\)/);
    assert.doesNotMatch(text('transformers.models.bert.modeling_bert'), /_quantizer\(attention_mask/);

    const run = spawnSync(PY, ['test/corpus/run_models.py', out, ...MODELS], { encoding: 'utf8', timeout: 180_000 });
    const rows = run.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(rows.length, MODELS.length, `one result per model:\n${run.stdout}\n${run.stderr.slice(-2000)}`);
    for (const r of rows) {
      assert.equal(r.ok, true, `${r.model} runs from the quantized source: ${r.error}\n${r.trace ?? ''}`);
      assert.equal(r.quantized, r.weighted, `${r.model}: every weighted layer quantized (left float: ${r.float})`);
      assert.ok((r.weighted as number) > 0, `${r.model} has weighted layers`);
      assert.deepEqual(r.non_tensor_inputs, {}, `${r.model}: quantizers only see float tensors`);
      assert.ok((r.cosine as number) > 0.95, `${r.model}: fake-quantized output close to float (${r.cosine})`);
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
