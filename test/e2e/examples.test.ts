// `qdq run` end to end through the real backend and onnxruntime-node on the bundled examples and on
// torchvision's resnet18 / mobilenet_v2 quantized from their own source. Small batch counts: the CI
// machine has two shared cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { copyProject, runQdq, pythonWith, readReport, repoRoot } from './helpers';

const torchPy = pythonWith(['torch', 'sklearn']);
const tvPy = pythonWith(['torch', 'torchvision'], ['/usr/bin/python3', 'python3']);

function checkStatic(r: any, name: string, minCosine = 0.99): void {
  assert.deepEqual(r.unquantized_weighted_ops, [], `${name}: every Conv/Gemm/MatMul is DQ-fed`);
  assert.ok(r.qdq_pairs > 0, `${name}: QDQ pairs`);
  assert.ok(r.cosine_min >= minCosine, `${name}: cosine ${r.cosine_min}`);
  assert.ok(r.latency_ms.fp32 > 0 && r.latency_ms.int8 > 0);
  assert.ok(r.size_bytes.int8 < r.size_bytes.fp32, `${name}: folded INT8 file is smaller`);
  assert.ok(Array.isArray(r.tensorrt_unsupported_ops));
  assert.ok(r.dynamic && r.dynamic.cosine_min >= minCosine, `${name}: dynamic cosine ${r.dynamic?.cosine_min}`);
  // The default target is tensorrt; when ONNX Runtime (which does not fuse that form) times it slower than FP32,
  // the report says why and what to use for CPU instead, and says nothing of the kind otherwise.
  const slowerNote = (r.notes as string[]).some((n) =>
    /ran slower than FP32 .*(--target ort-cpu|The ort-cpu form, written beside it)/.test(n),
  );
  assert.equal(
    slowerNote,
    r.target !== 'ort-cpu' && r.latency_ms.int8 > r.latency_ms.fp32,
    `${name}: INT8 ${r.latency_ms.int8} ms vs FP32 ${r.latency_ms.fp32} ms, notes ${JSON.stringify(r.notes)}`,
  );
}

/** No target chosen: both INT8 forms exported and timed beside FP32 and dynamic, from one calibration. */
function checkForms(r: any, name: string): void {
  const c = r.compare;
  assert.deepEqual(
    c.forms.map((f: any) => f.name),
    ['tensorrt', 'ort-cpu', 'dynamic'],
    `${name}: every form side by side`,
  );
  assert.ok(fs.existsSync(r.files.int8_ort_cpu_onnx), 'the ort-cpu form is written beside model.int8.onnx');
  assert.equal(c.measured_on.source, 'eval-data');
  assert.ok(c.measured_on.labelled_samples > 0 && c.measured_on.samples >= c.measured_on.labelled_samples);
  for (const f of c.forms) {
    assert.ok(f.cosine.worst_sample <= f.cosine.worst_batch + 1e-9, `${f.name}: a sample is no better than its batch`);
    assert.ok(f.cosine.worst_batch <= f.cosine.pooled + 1e-6 || c.measured_on.batches === 1, f.name);
    assert.ok(f.latency_ms > 0 && f.size_bytes > 0 && f.accuracy !== null);
    assert.ok(Math.abs(f.delta.latency_ratio - f.latency_ms / c.fp32.latency_ms) < 1e-9);
  }
  const fastest = c.forms.reduce((a: any, b: any) => (b.latency_ms < a.latency_ms ? b : a));
  assert.equal(c.headline.fastest, fastest.name);
  assert.equal(c.headline.for_tensorrt, 'tensorrt');
  assert.match(c.headline.text, new RegExp(`${fastest.name}.*for TensorRT deploy tensorrt`));
  // the flat fields stay those of the target's form
  assert.equal(r.latency_ms.int8, c.forms[0].latency_ms);
  assert.equal(r.dynamic.latency_ms.int8, c.forms[2].latency_ms);
}

for (const [example, method] of [
  ['digits-cnn', 'entropy'],
  ['digits-transformer', 'percentile'],
] as const) {
  test(
    `qdq run on examples/${example} (${method}): DQ-fed, ORT runs, cosine >= 0.99, INT8 within 1% of FP32`,
    { skip: torchPy ? false : 'needs a Python with torch and scikit-learn (python3 or /usr/bin/python3)' },
    async () => {
      const dir = copyProject(path.join(repoRoot, 'examples', example));
      const run = await runQdq(['run', dir, '--batches', '4', '--method', method, '--python', torchPy!]);
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.match(run.stdout, /latency \(median ms\)/);
      const r = readReport(dir);
      checkStatic(r, example);
      assert.ok(r.accuracy, 'eval-data has labels');
      assert.ok(r.accuracy.fp32 - r.accuracy.int8 <= 0.01, `FP32 ${r.accuracy.fp32} vs INT8 ${r.accuracy.int8}`);
      assert.equal(r.method, method);
      checkForms(r, example);
      // The user's model file is untouched without --write.
      assert.equal(
        fs.readFileSync(path.join(dir, 'model.py'), 'utf8'),
        fs.readFileSync(path.join(repoRoot, 'examples', example, 'model.py'), 'utf8'),
      );
      assert.ok(fs.existsSync(path.join(dir, 'qdq-out', 'quantized', 'model.py')));
      assert.ok(fs.existsSync(path.join(dir, 'qdq-out', 'calibration.json')));
    },
  );
}

// mobilenet_v2 builds its convolutions in torchvision.ops.misc (Conv2dNormActivation), so that module is
// patched too: list every module that constructs the layers, as a user would. The last entry: the
// quantizer on the network input, whose entropy amax must fall back (see below).
const TORCHVISION_CASES = [
  ['resnet18', ['torchvision.models.resnet'], 'conv1.input_quantizer'],
  ['mobilenet_v2', ['torchvision.models.mobilenetv2', 'torchvision.ops.misc'], 'features.0.0.input_quantizer'],
] as const;
for (const [arch, modules, inputQuantizer] of TORCHVISION_CASES)
  for (const method of ['max', 'entropy', 'percentile', 'mse']) {
    test(
      `qdq run on torchvision ${arch} from its own source (${method})`,
      {
        skip: tvPy ? false : 'needs a Python with torch and torchvision (Debian: apt-get install python3-torchvision)',
      },
      async () => {
        const dir = copyProject(path.join(repoRoot, 'test/fixtures/e2e/torchvision'));
        fs.writeFileSync(
          path.join(dir, 'pyproject.toml'),
          fs
            .readFileSync(path.join(dir, 'pyproject.toml'), 'utf8')
            .replace('ARCH', arch)
            .replace('"MODULE"', modules.map((m) => `"${m}"`).join(', '))
            .replace('METHOD', method),
        );
        const run = await runQdq(['run', dir, '--python', tvPy!]);
        assert.equal(run.code, 0, run.stderr + run.stdout);
        const r = readReport(dir);
        checkStatic(r, arch);
        for (const m of modules)
          assert.ok(
            r.notes.some((n: string) => n.includes(m)),
            `${m} is named in the notes`,
          );
        // Entropy (TensorRT's KL search, exactly as pytorch-quantization computes it) settles on the background
        // spike of the digits input (|x| = 0.86; the ink reaches 2.0) and clips every ink pixel, a quarter of the
        // values (cosine 0.87 for resnet18, 0.68 for mobilenet_v2). The backend falls back to the percentile amax
        // for a quantizer whose entropy amax clips more than 1% of its values, and says so per quantizer: that
        // must happen here, openly, on the input quantizer, and on few others (no other quantizer clips more
        // than 0.1% with entropy on these models).
        const fellBack = r.quantizers.filter((q: any) => q.fallback);
        if (method === 'entropy') {
          const input = r.quantizers.find((q: any) => q.name === inputQuantizer);
          assert.ok(input?.fallback, `${inputQuantizer}: entropy fell back, and the report says so`);
          assert.equal(input.method, 'percentile');
          assert.ok(
            input.fallback.clipped > 0.1 && input.fallback.amax < 1 && input.amax > 1.9,
            JSON.stringify(input.fallback),
          );
          assert.ok(fellBack.length <= 2, `fell back: ${fellBack.map((q: any) => q.name).join(', ')}`);
          assert.ok(
            r.notes.some((n: string) => n.includes('fell back') && n.includes(inputQuantizer)),
            'the CLI notes it too',
          );
          for (const q of r.quantizers.filter((q: any) => q.role !== 'weight' && !q.fallback && q.amax !== null)) {
            assert.equal(q.method, 'entropy', q.name);
          }
        } else {
          assert.deepEqual(fellBack, [], 'only entropy falls back');
        }
      },
    );
  }

test(
  'qdq run --write quantizes the model file in place with qdq_quant.py beside it; a second run changes nothing',
  { skip: torchPy ? false : 'needs a Python with torch and scikit-learn' },
  async () => {
    const dir = copyProject(path.join(repoRoot, 'examples', 'digits-cnn'));
    const original = fs.readFileSync(path.join(dir, 'model.py'), 'utf8');
    const first = await runQdq(['calibrate', dir, '--write', '--batches', '2', '--python', torchPy!]);
    assert.equal(first.code, 0, first.stderr);
    const written = fs.readFileSync(path.join(dir, 'model.py'), 'utf8');
    assert.notEqual(written, original);
    assert.match(written, /^import qdq_quant {2}# qdq$/m);
    assert.match(written, /qdq_quant\.quant\(nn\.Conv2d\(/);
    assert.ok(fs.existsSync(path.join(dir, 'qdq_quant.py')));
    const second = await runQdq(['calibrate', dir, '--write', '--batches', '2', '--python', torchPy!]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(fs.readFileSync(path.join(dir, 'model.py'), 'utf8'), written);
    const r = readReport(dir);
    assert.ok(r.quantizers.length > 0);
    assert.equal(r.qdq_pairs, null, 'calibrate alone exports nothing');
  },
);

test(
  'qdq export --dynamic: MatMul/Gemm weights in INT8 without calibration, the static results kept',
  { skip: torchPy ? false : 'needs a Python with torch and scikit-learn' },
  async () => {
    const dir = copyProject(path.join(repoRoot, 'examples', 'digits-transformer'));
    const run = await runQdq(['export', dir, '--dynamic', '--python', torchPy!]);
    assert.equal(run.code, 0, run.stderr);
    const r = readReport(dir);
    assert.ok(r.dynamic.quantized_ops >= 4, `${r.dynamic.quantized_ops} ops`);
    assert.ok(r.dynamic.cosine_min >= 0.999, `cosine ${r.dynamic.cosine_min}`);
    assert.ok(r.dynamic.size_bytes.int8 < 0.6 * r.dynamic.size_bytes.fp32);
    assert.ok(
      !fs.existsSync(path.join(dir, 'qdq-out', 'model.int8.onnx')),
      'no static INT8 model from a dynamic-only export',
    );
    assert.ok(!fs.existsSync(path.join(dir, 'qdq-out', '.dynamic-work')));
  },
);

test(
  'qdq run --target ort-cpu: integer linears, every other weighted op DQ-fed or left float by the cost model, outputs close',
  { skip: torchPy ? false : 'needs a Python with torch and scikit-learn' },
  async () => {
    const dir = copyProject(path.join(repoRoot, 'examples', 'digits-transformer'));
    const run = await runQdq(['run', dir, '--target', 'ort-cpu', '--batches', '2', '--python', torchPy!]);
    assert.equal(run.code, 0, run.stderr);
    const r = readReport(dir);
    assert.equal(r.target, 'ort-cpu');
    assert.deepEqual(
      r.compare.forms.map((f: any) => f.name),
      ['ort-cpu', 'dynamic'],
      'a chosen target is the one static form',
    );
    assert.ok(r.ort_cpu_rewrite.linears.integer.length > 0, JSON.stringify(r.ort_cpu_rewrite));
    const m = r.ort_cpu_measured;
    assert.ok(m && m.trials.length > 0, 'the ort-cpu file was timed against FP32 before it was kept');
    if (m.fp32_fallback) {
      // ONNX Runtime timed INT8 slower here (a loaded machine): the FP32 graph is written, and the report says so.
      assert.equal(r.qdq_pairs, 0, 'the file written is the FP32 graph');
      assert.ok(
        r.notes.some((n: string) => /so the ort-cpu file is the FP32 graph/.test(n)),
        JSON.stringify(r.notes),
      );
    } else checkStatic(r, 'digits-transformer ort-cpu');
  },
);

test(
  'qdq run without eval-data: figures on calibration-data batches held out from calibration, and the report says so',
  { skip: torchPy ? false : 'needs a Python with torch and scikit-learn' },
  async () => {
    const dir = copyProject(path.join(repoRoot, 'examples', 'digits-cnn'));
    const toml = path.join(dir, 'pyproject.toml');
    fs.writeFileSync(toml, fs.readFileSync(toml, 'utf8').replace(/^eval-data\s*=.*$/m, ''));
    const run = await runQdq(['run', dir, '--batches', '3', '--python', torchPy!]);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const r = readReport(dir);
    const m = r.compare.measured_on;
    assert.equal(m.source, 'calibration-data');
    assert.equal(m.held_out, true);
    assert.equal(m.calibration_batches_used, 3);
    assert.equal(m.labelled_samples, 0);
    assert.ok(r.compare.forms.every((f: any) => f.accuracy === null && f.top1_agreement !== null));
    assert.match(m.text, /held out from calibration \(the 3 batches before them calibrated\)/);
    assert.ok(
      r.notes.some((n: string) => n.includes(m.text)),
      'the note says where the figures come from',
    );
    assert.match(run.stdout, /held out from calibration/);
  },
);
