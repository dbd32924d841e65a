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
  for (const figure of ['0.9861', '0.9833', '0.41', '0.37', '14', '0.9987', '0.0421', 'logits'])
    assert.ok(html.includes(figure), figure);
  assert.match(html, /Weighted ops left in float \(1\)/);
  assert.match(html, /TensorRT-unsupported ops \(1\)/);
  // Links: command URIs with the file and the line.
  const links = [...html.matchAll(/href="(command:qdq\.openSource\?[^"]+)"/g)].map((m) => m[1].replace(/&amp;/g, '&'));
  assert.ok(links.length >= 4);
  const args = links.map((l) => JSON.parse(decodeURIComponent(l.slice('command:qdq.openSource?'.length)))[0]);
  assert.ok(args.some((a) => a.file === '/abs/model.py' && a.line === 41));
  assert.ok(args.some((a) => a.file === 'model.py' && a.line === 55 && a.projectDir === '/proj'));
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
