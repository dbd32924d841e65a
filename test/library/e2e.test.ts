// Library models end to end: tiny BERT / RoBERTa / DistilBERT / ViT built from configs with random weights
// (nothing downloaded), their installed transformers modules patched in memory through [tool.qdq]
// patch-modules, calibrated, exported and verified by the real `qdq run`. Needs PyPI transformers for
// `python3` (Debian's /usr/bin/python3 has none); skipped with that reason otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { copyProject, readReport, repoRoot, runQdq } from '../e2e/helpers';
import { Graph, Node, readModel, attrInt } from '../../server/src/onnx/model';
import { qdqStats } from '../../server/src/onnx/qdqStats';
import { patchLibrarySource } from '../../server/src/library/patch';

const PYTHON = 'python3';
const hasTransformers =
  spawnSync(PYTHON, ['-c', 'import torch, transformers'], { stdio: 'ignore', timeout: 120_000 }).status === 0;
const skip = hasTransformers
  ? false
  : 'needs PyPI transformers + torch for python3 (Debian /usr/bin/python3 has no transformers)';

const CASES = [
  { name: 'bert', module: 'transformers.models.bert.modeling_bert', layers: 2 },
  { name: 'roberta', module: 'transformers.models.roberta.modeling_roberta', layers: 2 },
  { name: 'distilbert', module: 'transformers.models.distilbert.modeling_distilbert', layers: 2 },
  { name: 'vit', module: 'transformers.models.vit.modeling_vit', layers: 2 },
];

const fixtureDir = (name: string) => path.join(repoRoot, 'test/fixtures/library', name);

// Ops that only move data around; a DQ before them still feeds the op after them.
const LAYOUT = new Set(['Transpose', 'Reshape', 'Unsqueeze', 'Squeeze', 'Flatten']);

interface Origin {
  constant: boolean;
  dqFed: boolean;
}

/** Where an input of a node comes from: through layout ops, is it DequantizeLinear, and is it a constant? */
function origin(g: Graph, producer: Map<string, Node>, initializers: Set<string>, value: string): Origin {
  let v = value;
  let dqFed = false;
  for (let depth = 0; depth < 12; depth++) {
    if (initializers.has(v)) return { constant: true, dqFed };
    const p = producer.get(v);
    if (!p) return { constant: false, dqFed }; // a graph input
    if (p.op_type === 'Constant') return { constant: true, dqFed };
    if (p.op_type === 'DequantizeLinear' || p.op_type === 'QuantizeLinear') {
      if (p.op_type === 'DequantizeLinear' && depth === 0) dqFed = true;
      v = p.input[0];
      continue;
    }
    if (LAYOUT.has(p.op_type)) {
      if (depth === 0) {
        // DQ -> Transpose -> MatMul (the exported Linear weight) counts as DQ-fed.
        const inner = origin(g, producer, initializers, p.input[0]);
        return {
          constant: inner.constant,
          dqFed: inner.dqFed || producer.get(p.input[0])?.op_type === 'DequantizeLinear',
        };
      }
      v = p.input[0];
      continue;
    }
    return { constant: false, dqFed };
  }
  return { constant: false, dqFed };
}

function graphFacts(file: string) {
  const model = readModel(file);
  const g = model.graph;
  const producer = new Map<string, Node>();
  for (const n of g.node) for (const o of n.output) producer.set(o, n);
  const initializers = new Set(g.initializer.map((t) => t.name as string));
  const weighted: { node: string; dqFed: boolean }[] = [];
  const attention: { node: string; dqFed: boolean[] }[] = [];
  for (const n of g.node) {
    if (n.op_type !== 'MatMul' && n.op_type !== 'Gemm') continue;
    const ins = n.input.slice(0, 2).map((i) => origin(g, producer, initializers, i));
    if (ins.some((o) => o.constant)) weighted.push({ node: n.name ?? '', dqFed: ins.every((o) => o.dqFed) });
    else attention.push({ node: n.name ?? '', dqFed: ins.map((o) => o.dqFed) });
  }
  // CumSum whose data input is not a Cast to float (TensorProto FLOAT = 1) would be the integer cumsum.
  const cumsums = g.node
    .filter((n) => n.op_type === 'CumSum')
    .map((n) => {
      const p = producer.get(n.input[0]);
      return { node: n.name ?? '', floatInput: !!p && p.op_type === 'Cast' && attrInt(p, 'to', 0) === 1 };
    });
  return { model, weighted, attention, cumsums };
}

for (const c of CASES) {
  test(`${c.name}: ${c.module} patched in memory, calibrated, exported and verified by qdq run`, { skip }, async () => {
    const dir = copyProject(fixtureDir(c.name));
    try {
      const run = await runQdq(['run', dir, '--python', PYTHON]);
      assert.equal(run.code, 0, `qdq run failed:\n${run.stderr.slice(-3000)}`);
      const report = readReport(dir);
      assert.ok(
        report.notes.some((n: string) => n.includes(`patched in memory (patch-modules): ${c.module}`)),
        report.notes.join('\n'),
      );
      assert.ok(report.cosine_min >= 0.99, `cosine with FP32 ${report.cosine_min} < 0.99`);

      const int8 = graphFacts(report.files.int8_onnx);
      // q/k/v, attention output, intermediate, output dense: 6 weighted Linear layers per encoder layer.
      assert.ok(int8.weighted.length >= 6 * c.layers, `found ${int8.weighted.length} weighted MatMul/Gemm`);
      assert.deepEqual(
        int8.weighted.filter((w) => !w.dqFed).map((w) => w.node),
        [],
        'every MatMul/Gemm with a constant weight is DQ-fed',
      );
      // Score (Q @ K^T) and context (P @ V) matmul in each layer, both operands quantized.
      assert.equal(int8.attention.length, 2 * c.layers, int8.attention.map((a) => a.node).join(', '));
      for (const a of int8.attention) assert.deepEqual(a.dqFed, [true, true], `${a.node}: both operands DQ-fed`);
      const stats = qdqStats(int8.model, report.quantizers);
      assert.deepEqual(stats.unquantized_weighted_ops, [], 'qdqStats finds no weighted op without DQ inputs');
      assert.ok(stats.qdq_pairs > 0);

      for (const file of [report.files.fp32_onnx, report.files.int8_onnx]) {
        const bad = graphFacts(file).cumsums.filter((s) => !s.floatInput);
        assert.deepEqual(bad, [], `${path.basename(file)}: no integer CumSum left (TRT001)`);
      }
      if (c.name === 'roberta') {
        // The position ids still come from a cumsum, now over a float mask (transformer-deploy's patch).
        assert.ok(graphFacts(report.files.fp32_onnx).cumsums.length >= 1, 'RoBERTa position ids use a (float) CumSum');
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test(
  'restore gives back the library classes and FP32 outputs identical to an unpatched run; sdpa is switched to eager',
  { skip },
  () => {
    const cases = CASES.map((c) => {
      const file = spawnSync(
        PYTHON,
        ['-c', `import importlib.util,sys; print(importlib.util.find_spec(sys.argv[1]).origin)`, c.module],
        { encoding: 'utf8' },
      ).stdout.trim();
      return {
        name: c.name,
        dir: fixtureDir(c.name),
        module: c.module,
        source: patchLibrarySource(c.module, fs.readFileSync(file, 'utf8')).text,
      };
    });
    const backend = path.join(repoRoot, 'backend');
    const r = spawnSync(PYTHON, [path.join(repoRoot, 'test/fixtures/library/restore_check.py')], {
      input: JSON.stringify({ cases }),
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, PYTHONPATH: process.env.PYTHONPATH ? `${backend}:${process.env.PYTHONPATH}` : backend },
    });
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    const facts = JSON.parse(r.stdout.trim().split('\n').pop() as string);
    for (const c of CASES) {
      const f = facts[c.name];
      assert.ok(f.quantizers_while_patched > 0, `${c.name}: the patched classes carry quantizers`);
      assert.ok(
        f.classes_swapped_while_patched.length > 0,
        `${c.name}: models built while patched use the patched classes`,
      );
      assert.equal(f.eager_check_passed, true, `${c.name}: eager attention passes the check`);
      assert.deepEqual(f.restored, [c.module]);
      assert.deepEqual(f.installed_after_restore, []);
      assert.equal(f.classes_identical_after_restore, true, `${c.name}: the library's own classes are back`);
      assert.equal(f.quantizers_after_restore, 0, `${c.name}: no quantizer is left in models built after restore`);
      assert.equal(f.module_namespace_restored, true, `${c.name}: the module namespace holds the original classes`);
      assert.equal(f.fp32_identical_after_restore, true, `${c.name}: FP32 outputs identical to the unpatched run`);
    }
    const sdpa = facts.bert.sdpa_switch;
    assert.equal(sdpa.now, 'eager', 'a patched model with sdpa attention runs the eager (quantized) attention');
    assert.equal(sdpa.notes.length, 1);
    assert.match(sdpa.notes[0], /attn_implementation 'sdpa' switched to 'eager'/);
  },
);

test(
  'a patched model built with sdpa attention is switched to eager with a note, and its attention matmuls are DQ-fed',
  { skip },
  async () => {
    const dir = copyProject(fixtureDir('bert'));
    try {
      const model = path.join(dir, 'model.py');
      fs.writeFileSync(
        model,
        fs.readFileSync(model, 'utf8').replace('attn_implementation="eager"', 'attn_implementation="sdpa"'),
      );
      const run = await runQdq(['run', dir, '--python', PYTHON]);
      assert.equal(run.code, 0, run.stderr.slice(-3000));
      const report = readReport(dir);
      assert.ok(
        report.notes.some((n: string) =>
          /BertModel \(in Encoder\): attn_implementation 'sdpa' switched to 'eager'/.test(n),
        ),
        report.notes.join('\n'),
      );
      const int8 = graphFacts(report.files.int8_onnx);
      assert.ok(int8.attention.length >= 2 * 2, 'score and context matmuls of both layers are in the graph');
      assert.ok(
        int8.attention.every((a) => a.dqFed.every(Boolean)),
        'attention matmul operands are DQ-fed',
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('a module with nothing to quantize in patch-modules is a config error naming it', { skip }, async () => {
  const dir = copyProject(fixtureDir('bert'));
  try {
    const toml = path.join(dir, 'pyproject.toml');
    fs.writeFileSync(toml, fs.readFileSync(toml, 'utf8').replace('modeling_bert"', 'configuration_bert"'));
    const run = await runQdq(['run', dir, '--python', PYTHON]);
    assert.notEqual(run.code, 0);
    assert.match(
      run.stderr,
      /transformers\.models\.bert\.configuration_bert: the quantize pass found nothing to quantize/,
    );
    assert.match(run.stderr, /patch the module that does/);
    assert.doesNotMatch(run.stderr, /internal error|\n\s+at /);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
