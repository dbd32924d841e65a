// The language server through a real JSON-RPC connection to the spawned process: initialize, open, edit
// (incremental), diagnostics, hover, code actions, resolve, apply, commands.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { CodeAction, Hover, InitializeResult, WorkspaceEdit, Diagnostic } from 'vscode-languageserver-protocol';
import {
  TestClient,
  fileUri,
  applyWorkspaceEdit,
  applyTextEdits,
  applyContentChanges,
  codes,
  REPO,
  FULL_CAPABILITIES,
} from './lspClient';

const FIXTURE = path.join(REPO, 'test', 'fixtures', 'protocol', 'model.py');
const MODEL = fs.readFileSync(FIXTURE, 'utf8');
const HELPER = fs.readFileSync(path.join(REPO, 'backend', 'qdq_backend', 'qdq_quant.py'), 'utf8');

let tmp: string;
let client: TestClient;
let n = 0;

/** A fresh document URI in a temp folder without qdq_quant.py (the text is only sent, never written). */
function newUri(name = 'model.py'): string {
  return fileUri(path.join(tmp, `doc${n++}`, name));
}

function lineOf(text: string, needle: string): number {
  const i = text.indexOf(needle);
  assert.ok(i >= 0, `fixture has ${needle}`);
  return text.slice(0, i).split('\n').length - 1;
}

function posOf(text: string, needle: string, delta = 0): { line: number; character: number } {
  const i = text.indexOf(needle) + delta;
  const before = text.slice(0, i).split('\n');
  return { line: before.length - 1, character: before[before.length - 1].length };
}

async function actionsAt(
  uri: string,
  line: number,
  diagnostics: Diagnostic[] = [],
  only?: string[],
): Promise<CodeAction[]> {
  return client.request<CodeAction[]>('textDocument/codeAction', {
    textDocument: { uri },
    range: { start: { line, character: 0 }, end: { line, character: 0 } },
    context: { diagnostics, ...(only ? { only } : {}) },
  });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-protocol-'));
  client = await TestClient.start();
});

after(async () => {
  await client.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('initialize advertises incremental sync, hover, resolvable code actions and the qdq commands', async () => {
  const other = await TestClient.start();
  try {
    const result = await other.request<InitializeResult>('initialize', {
      processId: null,
      rootUri: null,
      capabilities: FULL_CAPABILITIES,
    });
    const caps = result.capabilities;
    assert.equal((caps.textDocumentSync as { change: number }).change, 2);
    assert.equal(caps.hoverProvider, true);
    assert.equal((caps.codeActionProvider as { resolveProvider: boolean }).resolveProvider, true);
    for (const c of [
      'qdq.calibrate',
      'qdq.export',
      'qdq.calibrateAndExport',
      'qdq.quantizeFile',
      'qdq.removeAllQuantizers',
      'qdq.exportDynamic',
      'qdq.showReport',
      'qdq.selectInterpreter',
    ])
      assert.ok(caps.executeCommandProvider!.commands.includes(c), c);
  } finally {
    await other.stop();
  }
});

test('didOpen publishes the TensorRT diagnostic with code, source, documentation link and the fix in data', async () => {
  const uri = newUri();
  await client.open(uri, MODEL);
  const published = await client.waitForDiagnostics(uri);
  assert.equal(published.version, 1);
  const cumsum = published.diagnostics.find((d) => d.code === 'TRT001');
  assert.ok(cumsum, `TRT001 among ${codes(published.diagnostics)}`);
  assert.equal(cumsum.source, 'qdq');
  assert.equal(cumsum.range.start.line, lineOf(MODEL, 'torch.cumsum'));
  assert.match(cumsum.codeDescription!.href, /rules\.md#trt001$/);
  const data = cumsum.data as { fix: { title: string; safety: string; edits: unknown[] }; version: number };
  assert.equal(data.fix.safety, 'safe');
  assert.ok(data.fix.edits.length > 0);
});

test('the quick fix from Diagnostic.data applies and clears the diagnostic', async () => {
  const uri = newUri();
  await client.open(uri, MODEL);
  const published = await client.waitForDiagnostics(uri);
  const cumsum = published.diagnostics.find((d) => d.code === 'TRT001')!;
  const actions = await actionsAt(uri, cumsum.range.start.line, [cumsum], ['quickfix']);
  const fix = actions.find((a) => a.kind === 'quickfix');
  assert.ok(fix, `quickfix among ${actions.map((a) => a.title)}`);
  assert.deepEqual(fix.diagnostics, [cumsum]);
  assert.ok(
    actions.every((a) => a.kind === 'quickfix'),
    'only quick fixes when only=[quickfix]',
  );
  const files = new Map([[uri, MODEL]]);
  applyWorkspaceEdit(files, fix.edit!);
  const fixed = files.get(uri)!;
  assert.notEqual(fixed, MODEL);
  assert.match(fixed, /cumsum/);
  await client.change(uri, 2, [{ text: fixed }]);
  const after = await client.waitForVersion(uri, 2);
  assert.ok(!codes(after.diagnostics).includes('TRT001'), `TRT001 gone, got ${codes(after.diagnostics)}`);
});

test('incremental edits keep the tree in step: diagnostics equal those of the same text opened fresh', async () => {
  const uri = newUri();
  await client.open(uri, MODEL);
  await client.waitForVersion(uri, 1);
  let text = MODEL;
  const edits = [
    // insert a line above the cumsum
    {
      range: { start: posOf(text, '        positions ='), end: posOf(text, '        positions =') },
      text: '        # a comment with ünïcødé 😀\n',
    },
  ];
  text = applyContentChanges(text, edits);
  await client.change(uri, 2, edits);
  const v2 = await client.waitForVersion(uri, 2);
  assert.equal(v2.diagnostics.find((d) => d.code === 'TRT001')?.range.start.line, lineOf(text, 'torch.cumsum'));

  // several changes in one notification, each relative to the text after the previous one
  const addLine = posOf(text, 'class Net');
  const step1 = {
    range: { start: addLine, end: addLine },
    text: 'def helper(x):\n    return torch.cumsum(x.long(), 0)\n\n\n',
  };
  text = applyContentChanges(text, [step1]);
  const cumsumStart = posOf(text, 'torch.cumsum(mask');
  const step2 = {
    range: {
      start: cumsumStart,
      end: { line: cumsumStart.line, character: cumsumStart.character + 'torch.cumsum'.length },
    },
    text: 'torch.cumsum',
  };
  text = applyContentChanges(text, [step2]);
  const typo = posOf(text, 'self.padding_idx).int()', 'self.padding_idx)'.length);
  const step3 = {
    range: { start: typo, end: { line: typo.line, character: typo.character + '.int()'.length } },
    text: '.long()',
  };
  text = applyContentChanges(text, [step3]);
  await client.change(uri, 3, [step1, step2, step3]);
  const v3 = await client.waitForVersion(uri, 3);

  const fresh = newUri();
  await client.open(fresh, text);
  const reference = await client.waitForVersion(fresh, 1);
  const strip = (ds: Diagnostic[]) => ds.map((d) => ({ code: d.code, range: d.range, message: d.message }));
  assert.deepEqual(strip(v3.diagnostics), strip(reference.diagnostics));
  assert.ok(
    codes(v3.diagnostics).filter((c) => c === 'TRT001').length >= 2,
    `two cumsum findings: ${codes(v3.diagnostics)}`,
  );
});

test('hover on a layer names the layer, its ONNX op and that it is not quantized', async () => {
  const uri = newUri();
  await client.open(uri, MODEL);
  await client.waitForVersion(uri, 1);
  const h = await client.request<Hover | null>('textDocument/hover', {
    textDocument: { uri },
    position: posOf(MODEL, 'nn.Conv2d(3', 4),
  });
  assert.ok(h, 'hover result');
  const md = (h.contents as { value: string }).value;
  assert.match(md, /nn\.Conv2d/);
  assert.match(md, /Net\.conv1/);
  assert.match(md, /ONNX: Conv/);
  assert.match(md, /Not quantized/);
  const op = await client.request<Hover | null>('textDocument/hover', {
    textDocument: { uri },
    position: posOf(MODEL, 'torch.matmul', 7),
  });
  assert.ok(op);
  assert.match((op.contents as { value: string }).value, /MatMul/);
  const nothing = await client.request<Hover | null>('textDocument/hover', {
    textDocument: { uri },
    position: { line: 0, character: 0 },
  });
  assert.equal(nothing, null);
});

test('"Quantize this layer" is listed without an edit, resolves to an edit that also creates qdq_quant.py, and removal restores the text', async () => {
  const uri = newUri();
  await client.open(uri, MODEL);
  await client.waitForVersion(uri, 1);
  const line = lineOf(MODEL, 'self.conv1 =');
  const actions = await actionsAt(uri, line);
  const titles = actions.map((a) => a.title);
  const quantize = actions.find((a) => a.title === 'Quantize this layer: conv1 (nn.Conv2d)');
  assert.ok(quantize, `titles: ${titles}`);
  assert.ok(titles.includes('Keep conv1 (nn.Conv2d) in float'), `titles: ${titles}`);
  assert.ok(titles.includes('Quantize class Net'), `titles: ${titles}`);
  assert.ok(titles.includes('Quantize file'), `titles: ${titles}`);
  assert.ok(
    actions.every((a) => a.edit === undefined),
    'listing carries no edits',
  );
  const dynamic = actions.find((a) => a.title === 'Quantize Net dynamically for CPU (dynamic INT8 ONNX export)');
  assert.ok(dynamic, `titles: ${titles}`);
  assert.equal(dynamic.command?.command, 'qdq.exportDynamic');
  assert.deepEqual(dynamic.command?.arguments, [{ uri }]);

  const resolved = await client.request<CodeAction>('codeAction/resolve', quantize);
  assert.ok(resolved.edit?.documentChanges, 'resolved edit');
  const helperUri = uri.replace(/model\.py$/, 'qdq_quant.py');
  const ops = resolved.edit.documentChanges as (
    { kind: string; uri: string } | { textDocument: { uri: string; version: number | null } }
  )[];
  assert.deepEqual(ops[0], { kind: 'create', uri: helperUri, options: { ignoreIfExists: true } });
  const files = new Map([[uri, MODEL]]);
  applyWorkspaceEdit(files, resolved.edit);
  assert.equal(files.get(helperUri), HELPER);
  const quantized = files.get(uri)!;
  assert.match(quantized, /self\.conv1 = qdq_quant\.quant\(nn\.Conv2d\(3, 8, 3, padding=1\)\)\n/);
  assert.match(quantized, /^import qdq_quant {2}# qdq$/m);
  assert.match(quantized, /self\.proj = nn\.Linear\(dim, dim\)/, 'other layers untouched');

  await client.change(uri, 2, [{ text: quantized }]);
  await client.waitForVersion(uri, 2);
  const h = await client.request<Hover>('textDocument/hover', {
    textDocument: { uri },
    position: posOf(quantized, 'nn.Conv2d(3', 4),
  });
  assert.match((h.contents as { value: string }).value, /\*\*Quantized\*\*.*per-channel on axis 0/s);

  const after = await actionsAt(uri, lineOf(quantized, 'self.conv1 ='));
  const remove = after.find((a) => a.title === 'Remove quantizers from file');
  assert.ok(remove, `titles: ${after.map((a) => a.title)}`);
  const removed = await client.request<CodeAction>('codeAction/resolve', remove);
  const back = new Map([[uri, quantized]]);
  applyWorkspaceEdit(back, removed.edit!);
  assert.equal(back.get(uri), MODEL, 'byte-for-byte original');
});

test('"Quantize file" as source.fixAll.qdq quantizes every weighted layer and matmul operand', async () => {
  const uri = newUri();
  await client.open(uri, MODEL);
  await client.waitForVersion(uri, 1);
  const actions = await actionsAt(uri, 0, [], ['source.fixAll.qdq']);
  assert.equal(actions.length, 1, `actions: ${actions.map((a) => `${a.kind} ${a.title}`)}`);
  assert.equal(actions[0].kind, 'source.fixAll.qdq');
  const resolved = await client.request<CodeAction>('codeAction/resolve', actions[0]);
  const files = new Map([[uri, MODEL]]);
  applyWorkspaceEdit(files, resolved.edit!);
  const text = files.get(uri)!;
  for (const layer of ['nn.Linear(dim, dim)', 'nn.Conv2d(3, 8, 3, padding=1)', 'nn.Linear(8 * 4 * 4, 10)'])
    assert.ok(text.includes(`qdq_quant.quant(${layer})`), layer);
  assert.match(text, /torch\.matmul\(self\.matmul0_a_quantizer\(q\), self\.matmul0_b_quantizer\(/);
  assert.ok(!text.includes('qdq_quant.quant(nn.LayerNorm'), 'never LayerNorm');
  // A generic fix-all (what editors run on save) never quantizes a model.
  assert.deepEqual(await actionsAt(uri, 0, [], ['source.fixAll']), []);
  assert.deepEqual(
    (await actionsAt(uri, 0, [], ['source'])).map((a) => a.kind),
    ['source.fixAll.qdq'],
  );
});

test('a stale resolve (document edited after listing) is refused with ContentModified instead of editing the wrong place', async () => {
  const uri = newUri();
  await client.open(uri, MODEL);
  await client.waitForVersion(uri, 1);
  const actions = await actionsAt(uri, lineOf(MODEL, 'self.conv1 ='));
  const site = actions.find((a) => a.title.startsWith('Quantize this layer'))!;
  await client.change(uri, 2, [
    { range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: '# header\n' },
  ]);
  await assert.rejects(client.request('codeAction/resolve', site), (err: { code: number }) => err.code === -32801);
});

test('clients without resolve, documentChanges or file creation get inline edits and a command that writes qdq_quant.py', async () => {
  const basic = await TestClient.start({
    capabilities: {
      textDocument: {
        codeAction: { codeActionLiteralSupport: { codeActionKind: { valueSet: ['quickfix', 'refactor'] } } },
      },
    },
  });
  const dir = path.join(tmp, 'basic');
  fs.mkdirSync(dir);
  const file = path.join(dir, 'model.py');
  fs.writeFileSync(file, MODEL);
  const uri = fileUri(file);
  try {
    await basic.open(uri, MODEL);
    await basic.waitForVersion(uri, 1);
    const actions = await basic.request<CodeAction[]>('textDocument/codeAction', {
      textDocument: { uri },
      range: {
        start: { line: lineOf(MODEL, 'self.conv1'), character: 0 },
        end: { line: lineOf(MODEL, 'self.conv1'), character: 0 },
      },
      context: { diagnostics: [] },
    });
    const quantize = actions.find((a) => a.title.startsWith('Quantize this layer'))!;
    assert.ok(quantize.edit?.changes?.[uri], 'inline edit');
    assert.equal(quantize.command?.command, 'qdq.writeHelperFile');
    const edited = applyTextEdits(MODEL, quantize.edit!.changes![uri]);
    assert.match(edited, /qdq_quant\.quant\(nn\.Conv2d/);
    assert.ok(!fs.existsSync(path.join(dir, 'qdq_quant.py')), 'listing writes nothing');
    await basic.request('workspace/executeCommand', {
      command: quantize.command!.command,
      arguments: quantize.command!.arguments,
    });
    assert.equal(fs.readFileSync(path.join(dir, 'qdq_quant.py'), 'utf8'), HELPER);
  } finally {
    await basic.stop();
  }
});

test('qdq.quantizeFile sends workspace/applyEdit; qdq.removeAllQuantizers undoes it', async () => {
  const uri = newUri();
  await client.open(uri, MODEL);
  await client.waitForVersion(uri, 1);
  const before = client.appliedEdits.length;
  const result = await client.request<{ applied: boolean; changedLines: number }>('workspace/executeCommand', {
    command: 'qdq.quantizeFile',
    arguments: [{ uri }],
  });
  assert.equal(result.applied, true);
  assert.ok(result.changedLines > 5);
  const edit: WorkspaceEdit = client.appliedEdits[before];
  const files = new Map([[uri, MODEL]]);
  applyWorkspaceEdit(files, edit);
  const quantized = files.get(uri)!;
  assert.match(quantized, /qdq_quant\.quant\(nn\.Conv2d/);
  await client.change(uri, 2, [{ text: quantized }]);
  await client.waitForVersion(uri, 2);
  await client.request('workspace/executeCommand', { command: 'qdq.removeAllQuantizers', arguments: [{ uri }] });
  const undo = new Map([[uri, quantized]]);
  applyWorkspaceEdit(undo, client.appliedEdits[before + 1]);
  assert.equal(undo.get(uri), MODEL);
});

test('an untrusted workspace keeps analysis and edits but refuses the backend commands with an explanation', async () => {
  const untrusted = await TestClient.start({ initializationOptions: { workspaceTrusted: false } });
  try {
    const uri = newUri();
    await untrusted.open(uri, MODEL);
    const published = await untrusted.waitForVersion(uri, 1);
    assert.ok(codes(published.diagnostics).includes('TRT001'));
    const h = await untrusted.request<Hover | null>('textDocument/hover', {
      textDocument: { uri },
      position: posOf(MODEL, 'nn.Conv2d(3', 4),
    });
    assert.ok(h);
    for (const command of [
      'qdq.calibrate',
      'qdq.export',
      'qdq.calibrateAndExport',
      'qdq.exportDynamic',
      'qdq.selectInterpreter',
    ]) {
      await assert.rejects(
        untrusted.request('workspace/executeCommand', { command, arguments: [{ uri }] }),
        (err: Error) => /not trusted/.test(err.message),
        command,
      );
    }
    const r = await untrusted.request<{ applied: boolean }>('workspace/executeCommand', {
      command: 'qdq.quantizeFile',
      arguments: [{ uri }],
    });
    assert.equal(r.applied, true);
  } finally {
    await untrusted.stop();
  }
});

test('the trtVersion setting reaches the rules', async () => {
  const old = await TestClient.start({ settings: { trtVersion: '8.6' } });
  try {
    const uri = newUri();
    await old.open(uri, MODEL);
    const published = await old.waitForVersion(uri, 1);
    const d = published.diagnostics.find((x) => x.code === 'TRT001');
    assert.ok(d);
    assert.match(String(d.message), /8\.6/);
  } finally {
    await old.stop();
  }
});

test('saved calibration results give amax/scale hovers and range diagnostics (amax 0, never reached, outliers)', async () => {
  const project = path.join(tmp, 'calibrated');
  fs.mkdirSync(path.join(project, 'qdq-out'), { recursive: true });
  fs.writeFileSync(path.join(project, 'pyproject.toml'), '[tool.qdq]\nmodel = "model.py:Net"\nout-dir = "qdq-out"\n');
  const file = path.join(project, 'model.py');
  fs.writeFileSync(file, MODEL);
  const site = (cls: string, attr: string) => ({ file, cls, attr });
  const outlierBins = Array.from({ length: 64 }, (_, i) => (i < 2 ? 100000 : i === 63 ? 1 : 0));
  fs.writeFileSync(
    path.join(project, 'qdq-out', 'calibration.json'),
    JSON.stringify({
      version: 1,
      quantizers: [
        {
          name: 'conv1.input_quantizer',
          site: site('Net', 'conv1.input_quantizer'),
          axis: null,
          amax: 2.54,
          method: 'max',
          num_bits: 8,
          hist: { bins: outlierBins, edges_max: 2.54 },
        },
        {
          name: 'conv1.weight_quantizer',
          site: site('Net', 'conv1.weight_quantizer'),
          axis: 0,
          amax: [0.5, 0, 0.25, 0.1, 0.1, 0.1, 0.1, 0.1],
          method: 'max',
          num_bits: 8,
        },
        {
          name: 'head.1.input_quantizer',
          site: site('Net', 'head.1.input_quantizer'),
          axis: null,
          amax: 0,
          method: 'max',
          num_bits: 8,
        },
        {
          name: 'attn.query.input_quantizer',
          site: site('Attention', 'query.input_quantizer'),
          axis: null,
          amax: 0,
          method: 'max',
          num_bits: 8,
        },
        {
          name: 'attn.key.input_quantizer',
          site: site('Attention', 'key.input_quantizer'),
          axis: null,
          amax: null,
          method: null,
          num_bits: 8,
        },
      ],
    }),
  );
  const calibrated = await TestClient.start();
  try {
    const uri = fileUri(file);
    await calibrated.open(uri, MODEL);
    const published = await calibrated.waitForVersion(uri, 1);
    const byLine = (needle: string) =>
      published.diagnostics.filter((d) => d.range.start.line === lineOf(MODEL, needle)).map((d) => String(d.code));
    assert.ok(byLine('self.query =').includes('QDQ-CAL001'), `amax 0 on query: ${codes(published.diagnostics)}`);
    assert.equal(
      published.diagnostics.find(
        (d) => d.code === 'QDQ-CAL001' && d.range.start.line === lineOf(MODEL, 'self.query ='),
      )!.severity,
      1,
    );
    assert.ok(byLine('self.key =').includes('QDQ-CAL002'), 'never reached on key');
    assert.ok(byLine('self.conv1 =').includes('QDQ-CAL003'), 'outliers on conv1 input');
    assert.ok(byLine('self.conv1 =').includes('QDQ-CAL001'), 'one dead weight channel on conv1');
    // nn.Sequential children are numbered like PyTorch names them: head.1 is the Linear after Flatten.
    const head = published.diagnostics.find((d) => d.range.start.line === lineOf(MODEL, 'self.head ='))!;
    assert.equal(head.code, 'QDQ-CAL001');
    assert.equal(head.range.start.character, MODEL.split('\n')[lineOf(MODEL, 'self.head =')].indexOf('nn.Linear'));
    const h = await calibrated.request<Hover>('textDocument/hover', {
      textDocument: { uri },
      position: posOf(MODEL, 'nn.Conv2d(3', 4),
    });
    const md = (h.contents as { value: string }).value;
    assert.match(md, /conv1\.input_quantizer`: amax 2\.54, scale 0\.02 \(max\)/);
    assert.match(md, /per-channel \(axis 0, 8 channels\)/);

    // A new run from the command line rewrites calibration.json: the next hover shows the new figures.
    const calib = path.join(project, 'qdq-out', 'calibration.json');
    const doc = JSON.parse(fs.readFileSync(calib, 'utf8'));
    doc.quantizers[0].amax = 1.27;
    fs.writeFileSync(calib + '.tmp', JSON.stringify(doc));
    fs.renameSync(calib + '.tmp', calib);
    const h2 = await calibrated.request<Hover>('textDocument/hover', {
      textDocument: { uri },
      position: posOf(MODEL, 'nn.Conv2d(3', 4),
    });
    assert.match((h2.contents as { value: string }).value, /conv1\.input_quantizer`: amax 1\.27, scale 0\.01 \(max\)/);
    fs.rmSync(calib);
    const h3 = await calibrated.request<Hover>('textDocument/hover', {
      textDocument: { uri },
      position: posOf(MODEL, 'nn.Conv2d(3', 4),
    });
    assert.doesNotMatch((h3.contents as { value: string }).value, /Calibration/);
  } finally {
    await calibrated.stop();
  }
});

test('unknown commands and missing arguments are JSON-RPC errors, not crashes', async () => {
  await assert.rejects(
    client.request('workspace/executeCommand', { command: 'qdq.nope', arguments: [] }),
    /Unknown qdq command/,
  );
  await assert.rejects(
    client.request('workspace/executeCommand', { command: 'qdq.quantizeFile', arguments: [] }),
    /Pass the document/,
  );
  await assert.rejects(
    client.request('workspace/executeCommand', { command: 'qdq.showReport', arguments: [] }),
    /needs the model file/,
  );
  const report = await client.request('workspace/executeCommand', {
    command: 'qdq.showReport',
    arguments: [{ uri: newUri() }],
  });
  assert.equal(report, null);
  assert.equal(client.exited, undefined);
});

test('pyproject.toml gets [tool.qdq] diagnostics on the offending key; other files are not analysed as Python', async () => {
  const dir = path.join(tmp, 'config');
  const uri = fileUri(path.join(dir, 'pyproject.toml'));
  const text =
    '[project]\nname = "x"\n\n[tool.qdq]\nmodel = "model.py:build"\nexample-inputs = "data.py:inputs"\nmethod = "maximum"\nbatchez = 3\n';
  await client.conn.sendNotification('textDocument/didOpen', {
    textDocument: { uri, languageId: 'toml', version: 1, text },
  });
  const published = await client.waitForVersion(uri, 1);
  const byCode = new Map(published.diagnostics.map((d) => [String(d.code), d]));
  assert.equal(byCode.get('tool.qdq.method')?.severity, 1);
  assert.equal(byCode.get('tool.qdq.method')?.range.start.line, 6);
  assert.match(String(byCode.get('tool.qdq.batchez')?.message), /did you mean "batches"/);
  const other = fileUri(path.join(dir, 'pyproject.toml').replace('config', 'plain'));
  await client.conn.sendNotification('textDocument/didOpen', {
    textDocument: { uri: other, languageId: 'toml', version: 1, text: '[project]\nname = "y"\n' },
  });
  assert.deepEqual(
    (await client.waitForVersion(other, 1)).diagnostics,
    [],
    'a pyproject.toml without [tool.qdq] is left alone',
  );

  const notes = fileUri(path.join(dir, 'notes.md'));
  await client.conn.sendNotification('textDocument/didOpen', {
    textDocument: { uri: notes, languageId: 'markdown', version: 1, text: MODEL },
  });
  assert.equal(
    await client.request('textDocument/hover', {
      textDocument: { uri: notes },
      position: posOf(MODEL, 'nn.Conv2d(3', 4),
    }),
    null,
  );
  assert.deepEqual(await actionsAt(notes, lineOf(MODEL, 'self.conv1')), []);
});

test('a quantized file without qdq_quant.py next to it gets an error on the import, and a quick fix that adds the file', async () => {
  const dir = path.join(tmp, 'copied');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'model.py');
  const quantized = MODEL.replace('import torch\n', 'import torch\nimport qdq_quant  # qdq\n').replace(
    'nn.Conv2d(3, 8, 3, padding=1)',
    'qdq_quant.quant(nn.Conv2d(3, 8, 3, padding=1))',
  );
  fs.writeFileSync(file, quantized);
  const uri = fileUri(file);
  await client.open(uri, quantized);
  const published = await client.waitForVersion(uri, 1);
  const missing = published.diagnostics.find((d) => d.code === 'QDQ-HELPER');
  assert.ok(missing, `diagnostics: ${codes(published.diagnostics)}`);
  assert.equal(missing.range.start.line, 1);
  assert.equal(missing.severity, 1);
  const actions = await actionsAt(uri, 1, [missing], ['quickfix']);
  const add = actions.find((a) => a.title === 'Add qdq_quant.py next to this file');
  assert.ok(add?.edit, `actions: ${actions.map((a) => a.title)}`);
  const helperUri = fileUri(path.join(dir, 'qdq_quant.py'));
  const files = new Map([[uri, quantized]]);
  applyWorkspaceEdit(files, add.edit);
  assert.equal(files.get(helperUri), HELPER);
  assert.equal(files.get(uri), quantized, 'the model file is not touched');
  fs.writeFileSync(path.join(dir, 'qdq_quant.py'), HELPER);
  await client.change(uri, 2, [
    { range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: '' },
  ]);
  assert.ok(
    !codes((await client.waitForVersion(uri, 2)).diagnostics).includes('QDQ-HELPER'),
    'gone once the file exists',
  );
});
