// Parts of the VS Code extension that run without VS Code: the report page, the manifest's agreement
// with the server (commands, settings), and the Python snippets, executed with real PyTorch.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { openSourceUri, renderReportHtml, sourceRefOf } from '../../../client/src/reportHtml';
import { describeStatus } from '../../../client/src/statusText';
import { Commands } from '../../../server/src/protocol/lsp_ext';
import { settingsContribution } from '../../../server/src/settings';

const repoRoot = process.cwd();
const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));

const sampleReport = {
  qdq_pairs: 14,
  quantizers: [
    {
      name: 'stem.0.input_quantizer',
      site: { file: 'model.py', cls: 'DigitsCNN', attr: 'stem', line: 30 },
      axis: null,
      amax: 16.0,
      method: 'max',
    },
    {
      name: 'stem.0.weight_quantizer',
      site: { file: 'model.py', cls: 'DigitsCNN', attr: 'stem', line: 30 },
      axis: 0,
      amax: [0.5, 0.75],
      method: 'max',
    },
    { name: 'fc.<input>_quantizer', site: { file: '/abs/model.py', line: 41 }, axis: null, amax: 0, method: 'max' },
    { name: 'never.calibrated', axis: null, amax: null },
  ],
  unquantized_weighted_ops: [{ node: '/fc/Gemm', op_type: 'Gemm', site: { file: '/abs/model.py', line: 41 } }],
  tensorrt_unsupported_ops: [
    { op_type: 'NonZero', node: '/NonZero', reason: 'not in TensorRT 10.15', site: 'model.py:55' },
  ],
  cosine_min: 0.99871,
  max_abs_diff: 0.0421,
  accuracy: { fp32: 0.9861, int8: 0.9833 },
  latency_ms: { fp32: 0.41, int8: 0.37 },
  outputs: [{ name: 'logits', cosine: 0.99871, max_abs_diff: 0.0421, top1_agreement: 0.997 }],
};

test('report page: strict CSP, no script, chart and links back to the source', () => {
  const html = renderReportHtml(sampleReport, { cspSource: 'vscode-webview://x', nonce: 'N0NCE', projectDir: '/proj' });
  const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)?.[1];
  assert.ok(csp, 'the page declares a CSP');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'none'/);
  assert.match(csp, /style-src 'nonce-N0NCE'/);
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'nothing is loaded from the network');
  // One bar per quantizer that has an amax (the uncalibrated one has none); amax 0 is flagged.
  assert.equal((html.match(/<rect /g) ?? []).length, 3);
  assert.match(html, /class="bar zero"/);
  assert.match(html, /class="bar weight"/);
  // FP32 vs INT8 figures and counts.
  for (const figure of ['98.61%', '98.33%', '0.41 ms', '0.37 ms', '14', '0.99871', '0.0421', 'logits'])
    assert.ok(html.includes(figure), figure);
  assert.doesNotMatch(html, /log scale/, 'the range chart is linear');
  assert.ok((html.match(/class="grid"/g) ?? []).length >= 4, 'with enough ticks to read it');
  assert.match(html, /Weighted ops left in float \(1\)/);
  assert.match(html, /TensorRT-unsupported ops \(1\)/);
  // Links: command URIs with the file and the line.
  const links = [...html.matchAll(/href="(command:qdq\.openSource\?[^"]+)"/g)].map((m) => m[1].replace(/&amp;/g, '&'));
  assert.ok(links.length >= 4);
  const args = links.map((l) => JSON.parse(decodeURIComponent(l.slice('command:qdq.openSource?'.length)))[0]);
  assert.ok(args.some((a) => a.file === '/abs/model.py' && a.line === 41));
  assert.ok(args.some((a) => a.file === 'model.py' && a.line === 55 && a.projectDir === '/proj'));
});

const formsReport = {
  method: 'entropy',
  target: 'tensorrt',
  compare: {
    measured_on: {
      source: 'calibration-data',
      held_out: true,
      batches: 4,
      samples: 128,
      labelled_samples: 0,
      calibration_batches_used: 8,
      text: 'measured on 4 batches (128 samples) of calibration-data held out from calibration',
    },
    fp32: { file: '/o/model.fp32.onnx', accuracy: 0.9556, latency_ms: 0.44, size_bytes: 118_700 },
    forms: [
      ['tensorrt', 0.9528, 4.66, 45_300],
      ['ort-cpu', 0.9561, 0.31, 44_100],
      ['dynamic', 0.9556, 0.47, 118_200],
    ].map(([name, accuracy, latency, bytes]) => ({
      name,
      file: `/o/${name}.onnx`,
      runtime: `runtime of ${name}`,
      accuracy,
      top1_agreement: 0.875,
      cosine: { pooled: 0.9991, worst_batch: 0.9987, worst_sample: 0.9712 },
      max_abs_diff: 0.2,
      latency_ms: latency,
      size_bytes: bytes,
      delta: {
        accuracy: (accuracy as number) - 0.9556,
        latency_ratio: (latency as number) / 0.44,
        size_ratio: (bytes as number) / 118_700,
      },
    })),
    latency: { batch_shape: [32, 1, 8, 8], runs: 20 },
    headline: {
      fastest: 'ort-cpu',
      fastest_speedup: 1.42,
      for_tensorrt: 'tensorrt',
      text: 'Fastest here: INT8 ort-cpu; for TensorRT deploy tensorrt',
    },
  },
  quantizers: [
    {
      name: 'head.input_quantizer',
      role: 'input',
      site: { file: '/p/model.py', cls: 'Net', attr: 'head.input_quantizer', line: 12 },
      axis: null,
      amax: 4,
      method: 'entropy',
      sqnr_db: 31.5,
      hist: { bins: [10, 5, 2, 1], edges_max: 5 },
      methods: [
        { method: 'max', amax: 5, sqnr_db: 30.1, clipped: 0 },
        { method: 'entropy', amax: 4, sqnr_db: 31.5, clipped: 0.0001 },
        { method: 'percentile', amax: 3.9, sqnr_db: 31.4, clipped: 0.0002 },
        { method: 'mse', amax: 3.5, sqnr_db: 33.0, clipped: 0.001 },
      ],
    },
    {
      name: 'matmul0_a_quantizer',
      role: 'activation',
      site: { file: '/p/model.py', cls: 'Attn', attr: 'matmul0_a_quantizer', line: 31 },
      axis: null,
      amax: 2,
      method: 'entropy',
      sqnr_db: 12.25,
    },
    {
      name: 'head.weight_quantizer',
      role: 'weight',
      site: { file: '/p/model.py', line: 12 },
      axis: 0,
      amax: [1],
      sqnr_db: 300,
    },
  ],
};

test('report page: every form side by side with deltas, the headline and where it was measured', () => {
  const html = renderReportHtml(formsReport, { cspSource: 'c', nonce: 'n' });
  assert.match(html, /Fastest here: INT8 ort-cpu; for TensorRT deploy tensorrt/);
  assert.match(html, /measured on 4 batches \(128 samples\) of calibration-data held out from calibration/);
  for (const col of ['INT8 tensorrt', 'INT8 ort-cpu', 'INT8 dynamic']) assert.ok(html.includes(`<th>${col}</th>`), col);
  // percentages, points, kB, ms and ratios; no raw fractions or bytes
  for (const figure of [
    '95.56%',
    '95.28%',
    '−0.28 pts',
    '+0.05 pts',
    '87.50%',
    '118.7 kB',
    '45.3 kB',
    '4.66 ms',
    '10.59× FP32',
    '0.70× FP32',
  ])
    assert.ok(html.includes(figure), figure);
  assert.ok(!html.includes('118700') && !html.includes('0.9556<'), 'no raw bytes or fractions');
  for (const c of ['0.99910', '0.99870', '0.97120']) assert.ok(html.includes(c), `cosine ${c}`);
  assert.match(html, /0\.31 ms <span class="delta better">0\.70× FP32<\/span> <b class="tag">fastest<\/b>/);
  assert.ok((html.match(/class="bar (fp32|act|best)"/g) ?? []).length >= 4, 'a latency bar per model');
});

test('report page: per-layer error worst first, each bar linked to its source line; the calibration explorer', () => {
  const html = renderReportHtml(formsReport, { cspSource: 'c', nonce: 'n', projectDir: '/p' });
  const error = html.slice(html.indexOf('<h2>Per-layer error'), html.indexOf('<h2>Calibration explorer'));
  const order = ['matmul0_a_quantizer', 'head.input_quantizer', 'head.weight_quantizer'].map((n) =>
    error.indexOf(`>${n}</a>`),
  );
  assert.ok(order.every((i) => i > 0) && order[0] < order[1] && order[1] < order[2], `worst first: ${order}`);
  assert.match(error, /12\.3 dB/);
  assert.match(error, /class="bar zero"/, 'under 20 dB in red');
  assert.match(error, />exact</);
  const links = [...error.matchAll(/href="command:qdq\.openSource\?([^"]+)"/g)].map(
    (m) => JSON.parse(decodeURIComponent(m[1].replace(/&amp;/g, '&')))[0],
  );
  assert.ok(
    links.some((a) => a.attr === 'matmul0_a_quantizer' && a.line === 31),
    'the matmul quantizer opens its line',
  );
  const explorer = html.slice(html.indexOf('<h2>Calibration explorer'), html.indexOf('<h2>Per-output'));
  assert.equal((explorer.match(/<details>/g) ?? []).length, 1, 'one quantizer has a histogram');
  assert.equal((explorer.match(/class="bar hist"/g) ?? []).length, 4, 'its 4 buckets');
  assert.equal((explorer.match(/class="amax m-/g) ?? []).length, 4, "every method's amax");
  assert.match(explorer, /mse <b class="tag">least error<\/b>/);
  assert.match(explorer, /entropy <b class="tag">used<\/b>/);
  assert.match(explorer, /mse would add less error/);
  assert.doesNotMatch(explorer, /qdq\.useCalibrationMethod/, 'no switch links without saved histograms');
  const saved = renderReportHtml(
    { ...formsReport, project_dir: '/p q', files: { histograms: '/p q/qdq-out/histograms.json' } },
    { cspSource: 'c', nonce: 'n' },
  );
  const switches = [...saved.matchAll(/href="command:qdq\.useCalibrationMethod\?([^"]+)"/g)].map(
    (m) => JSON.parse(decodeURIComponent(m[1].replace(/&amp;/g, '&')))[0],
  );
  assert.deepEqual(
    switches.map((a) => a.method),
    ['max', 'percentile', 'mse'],
    'every method but the one used',
  );
  assert.equal(switches[0].uri, 'file:///p%20q/pyproject.toml');
});

test('report page: qat.json and tune.json side by side when present', () => {
  const html = renderReportHtml(formsReport, {
    cspSource: 'c',
    nonce: 'n',
    qat: { fp32: 0.98, ptq: 0.9, qat: 0.97, eval_samples: 397, epochs: 2, lr: 0.0001, processes: 1 },
    tune: {
      metric: 'top1',
      samples: 300,
      fp32: { accuracy: 0.95 },
      all_int8: { accuracy: 0.9 },
      mixed: { accuracy: 0.948, float_groups: ['attn.matmul'] },
      within_budget: true,
    },
  });
  assert.match(html, /<h3>Quantization-aware training \(qat\.json\)<\/h3>/);
  for (const f of ['98.00%', '90.00%', '−8.00 pts', '97.00%', '−1.00 pts', '94.80%', '−0.20 pts', 'attn.matmul'])
    assert.ok(html.includes(f), f);
  assert.doesNotMatch(renderReportHtml(formsReport, { cspSource: 'c', nonce: 'n' }), /Training and tuning/);
});

test('report page escapes names from the model', () => {
  const html = renderReportHtml(
    { quantizers: [{ name: '<img src=x onerror=alert(1)>', axis: null, amax: 1 }] },
    { cspSource: 'c', nonce: 'n' },
  );
  assert.doesNotMatch(html, /<img/);
  assert.match(html, /&lt;img src=x/);
});

test('report page for an empty or partial report says what is missing instead of failing', () => {
  const html = renderReportHtml({}, { cspSource: 'c', nonce: 'n' });
  assert.match(html, /no labelled eval data/);
  assert.match(html, /No calibrated ranges/);
});

test('source references in the shapes the pipeline writes', () => {
  assert.deepEqual(sourceRefOf('net.py:12'), { file: 'net.py', line: 12 });
  assert.deepEqual(sourceRefOf({ site: { file: '/a.py', cls: 'A', attr: 'fc' } }), {
    file: '/a.py',
    line: undefined,
    cls: 'A',
    attr: 'fc',
  });
  assert.equal(sourceRefOf({ op_type: 'Gemm' }), undefined);
  assert.match(
    openSourceUri({ file: '/a b.py', line: 3 }),
    /^command:qdq\.openSource\?%5B%7B%22file%22%3A%22%2Fa%20b\.py%22/,
  );
});

test('manifest: the palette commands are the server commands, the settings are the server schema', () => {
  const contributed = new Set<string>(pkg.contributes.commands.map((c: { command: string }) => c.command));
  for (const id of Object.values(Commands)) {
    if (id === Commands.writeHelperFile) continue; // internal, run by code actions only
    assert.ok(contributed.has(id), `${id} is in contributes.commands`);
  }
  for (const c of pkg.contributes.commands) assert.equal(c.category, 'QDQ');
  assert.deepEqual(pkg.contributes.configuration.properties, settingsContribution());
  assert.ok(pkg.activationEvents.includes('onLanguage:python'));
  assert.equal(pkg.capabilities.untrustedWorkspaces.supported, 'limited');
  assert.deepEqual(pkg.capabilities.untrustedWorkspaces.restrictedConfigurations, ['qdq.pythonInterpreter']);
  assert.ok(!('extensionDependencies' in pkg), 'the Python extension is optional, never a hard dependency');
  assert.ok(fs.existsSync(path.join(repoRoot, pkg.main.replace(/^\.\//, ''))), `${pkg.main} is built`);
  const snippet = pkg.contributes.snippets.find((s: { language: string }) => s.language === 'python');
  assert.ok(fs.existsSync(path.join(repoRoot, snippet.path)));
});

/** A snippet's body with every placeholder replaced by its default text (what Tab-Tab-Tab inserts). */
function expand(body: string[]): string {
  let text = body.join('\n');
  for (let i = 0; i < 5 && /\$\{\d+:/.test(text); i++) text = text.replace(/\$\{\d+:([^{}]*)\}/g, '$1');
  return text.replace(/\$\d+/g, '');
}

function pythonWithTorch(): string | undefined {
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return undefined;
}

const python = pythonWithTorch();
test(
  'snippets run as inserted: calibration sets amax, QAT follows the schedule, export writes Q/DQ',
  { skip: python ? undefined : 'no interpreter with torch (python3, /usr/bin/python3)', timeout: 240_000 },
  () => {
    const snippets = JSON.parse(fs.readFileSync(path.join(repoRoot, 'snippets', 'python.json'), 'utf8')) as Record<
      string,
      { body: string[]; prefix: string[] }
    >;
    const get = (name: string) => expand(snippets[name].body);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-snippets-'));
    fs.copyFileSync(path.join(repoRoot, 'backend', 'qdq_backend', 'qdq_quant.py'), path.join(dir, 'qdq_quant.py'));
    const script = [
      'import torch, qdq_quant',
      'from torch import nn',
      'torch.manual_seed(0)',
      'model = nn.Sequential(qdq_quant.quant(nn.Conv2d(3, 4, 3)), nn.ReLU(), nn.Flatten(), qdq_quant.quant(nn.Linear(4 * 222 * 222, 10)))',
      'data_loader = [(torch.randn(2, 3, 224, 224), torch.randint(0, 10, (2,))) for _ in range(3)]',
      get('QDQ calibration loop (max)'),
      'calibrate(model, data_loader)',
      'qs = [m for m in model.modules() if isinstance(m, qdq_quant.TensorQuantizer)]',
      'assert all(q.amax is not None for q in qs), [q.amax for q in qs]',
      'assert model[0].weight_quantizer.amax.shape == (4,), model[0].weight_quantizer.amax.shape',
      'assert abs(float(model[0].input_quantizer.amax) - max(float(b[0].abs().max()) for b in data_loader)) < 1e-6',
      'original_epochs, initial_lr, train_loader = 20, 0.1, data_loader',
      get('QDQ QAT fine-tuning schedule'),
      'assert qat_epochs == 2 and abs(qat_lr - 0.001) < 1e-12',
      'assert abs(scheduler.get_last_lr()[0] - 0.001 * 0.01) < 1e-9, scheduler.get_last_lr()',
      get('QDQ ONNX export'),
      'print("OK")',
    ].join('\n');
    fs.writeFileSync(path.join(dir, 'run.py'), script);
    const r = spawnSync(python!, ['run.py'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, `snippet script failed:\n${r.stderr.slice(-3000)}`);
    assert.match(r.stdout, /OK/);
    const onnx = fs.readFileSync(path.join(dir, 'model_int8_qdq.onnx'));
    assert.ok(
      onnx.includes(Buffer.from('QuantizeLinear')) && onnx.includes(Buffer.from('DequantizeLinear')),
      'the export has Q/DQ nodes',
    );
    fs.rmSync(dir, { recursive: true, force: true });
  },
);

test('status bar wording for each backend state', () => {
  assert.equal(
    describeStatus({ state: 'ready', python: '/usr/bin/python3', torchVersion: '1.13.1' }).text,
    '$(check) QDQ: torch 1.13.1',
  );
  assert.match(
    describeStatus({ state: 'ready', python: '/usr/bin/python3', torchVersion: '1.13.1' }).tooltip,
    /Python: \/usr\/bin\/python3/,
  );
  assert.equal(describeStatus({ state: 'busy', message: 'QDQ: Calibrating' }).text, '$(sync~spin) QDQ: Calibrating');
  const error = describeStatus({ state: 'error', message: 'no interpreter imports torch' });
  assert.equal(error.warning, true);
  assert.match(error.tooltip, /no interpreter imports torch/);
  assert.match(describeStatus({ state: 'untrusted' }).tooltip, /not trusted/);
});
