// The qdq extension in a real VS Code extension host: diagnostics, a quantize code action, the
// Calibrate and Export pipeline on the bundled digits-cnn example, the report view.
// Runs under mocha's TDD UI (see index.ts). `node --test out/test/` also loads every file under out/test,
// so nothing here touches the vscode module unless mocha's `suite` global exists.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as vscodeApi from 'vscode';

const EXTENSION_ID = 'qdq.qdq';

async function poll<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

if (typeof (globalThis as { suite?: unknown }).suite === 'function') {
  const vscode = require('vscode') as typeof vscodeApi;

  suite('qdq extension in VS Code', () => {
    let projectDir: string;
    let modelPath: string;
    let modelUri: vscodeApi.Uri;

    suiteSetup(async () => {
      const folder = vscode.workspace.workspaceFolders?.[0];
      assert.ok(folder, 'the test run must open a workspace folder (a copy of examples/digits-cnn)');
      projectDir = folder.uri.fsPath;
      modelPath = path.join(projectDir, process.env.QDQ_TEST_MODEL || 'model.py');
      assert.ok(fs.existsSync(modelPath), `model file ${modelPath} missing from the test workspace`);
      modelUri = vscode.Uri.file(modelPath);
    });

    test('activates on a Python file and starts the language server', async () => {
      const doc = await vscode.workspace.openTextDocument(modelUri);
      await vscode.window.showTextDocument(doc);
      const ext = await poll('the qdq extension', 30_000, () => vscode.extensions.getExtension(EXTENSION_ID));
      await poll('activation', 60_000, () => (ext.isActive ? true : undefined));
      const api = ext.exports as { ready: Promise<void>; client(): { isRunning(): boolean } | undefined };
      await api.ready;
      assert.equal(api.client()?.isRunning(), true);
      const commands = await vscode.commands.getCommands(true);
      for (const id of [
        'qdq.calibrate',
        'qdq.export',
        'qdq.calibrateAndExport',
        'qdq.quantizeFile',
        'qdq.showReport',
      ]) {
        assert.ok(commands.includes(id), `command ${id} is registered`);
      }
    });

    test('publishes the TensorRT diagnostic for torch.nonzero (TRT004)', async () => {
      const issueUri = vscode.Uri.file(path.join(projectDir, 'trt_issue.py'));
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(issueUri));
      const codeOf = (d: vscodeApi.Diagnostic) => (typeof d.code === 'object' ? d.code.value : d.code);
      const diagnostic = await poll('a qdq TRT004 diagnostic', 60_000, () =>
        vscode.languages.getDiagnostics(issueUri).find((d) => d.source === 'qdq' && codeOf(d) === 'TRT004'),
      );
      const text = (await vscode.workspace.openTextDocument(issueUri)).getText();
      assert.equal(
        diagnostic.range.start.line,
        text.split('\n').findIndex((l) => l.includes('keep = torch.nonzero')),
      );
      assert.match(diagnostic.message, /NonZero/);
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(modelUri));
    });

    test('applies "Quantize this layer" through vscode.executeCodeActionProvider', async () => {
      const doc = await vscode.workspace.openTextDocument(modelUri);
      const text = doc.getText();
      const offset = text.indexOf('nn.Conv2d(');
      assert.ok(offset >= 0, 'the model constructs an nn.Conv2d');
      const pos = doc.positionAt(offset + 3);
      const actions = await poll('quantize code actions', 30_000, async () => {
        const all = await vscode.commands.executeCommand<(vscodeApi.CodeAction | vscodeApi.Command)[]>(
          'vscode.executeCodeActionProvider',
          modelUri,
          new vscode.Range(pos, pos),
          undefined,
          50,
        );
        const quantize = (all ?? []).filter(
          (a): a is vscodeApi.CodeAction => 'title' in a && /quantiz/i.test(a.title) && !/remove/i.test(a.title),
        );
        return quantize.length ? quantize : undefined;
      });
      const action = actions.find((a) => /^Quantize this layer/.test(a.title)) ?? actions[0];
      assert.match(action.title, /^Quantize this layer: /);
      assert.ok(action.edit, 'the action was resolved with its edit');
      if (action.edit) assert.ok(await vscode.workspace.applyEdit(action.edit), `edit of "${action.title}" applied`);
      if (action.command)
        await vscode.commands.executeCommand(action.command.command, ...(action.command.arguments ?? []));
      const edited = await vscode.workspace.openTextDocument(modelUri);
      assert.ok((await edited.save()) || !edited.isDirty, 'model saved');
      const onDisk = fs.readFileSync(modelPath, 'utf8');
      assert.match(onDisk, /qdq_quant\.quant\(nn\.Conv2d\(/);
      assert.match(onDisk, /^import qdq_quant {2}# qdq$/m);
      await poll('qdq_quant.py next to the model', 15_000, () =>
        fs.existsSync(path.join(projectDir, 'qdq_quant.py')) ? true : undefined,
      );
    });

    test('QDQ: Quantize File wraps every weighted layer', async () => {
      await vscode.commands.executeCommand('qdq.quantizeFile', { uri: modelUri.toString() });
      const doc = await vscode.workspace.openTextDocument(modelUri);
      if (doc.isDirty) await doc.save();
      const onDisk = fs.readFileSync(modelPath, 'utf8');
      const bare = onDisk
        .split('\n')
        .filter((l) => /nn\.(Conv2d|Linear)\(/.test(l) && !/qdq_quant\.(quant|keep_float)\(/.test(l));
      assert.deepEqual(bare, [], 'no weighted layer left unwrapped');
    });

    test('QDQ: Calibrate and Export writes both ONNX files and report.json', async () => {
      const result = await vscode.commands.executeCommand('qdq.calibrateAndExport', { uri: modelUri.toString() });
      assert.ok(result, 'the command returned a result (it was not refused or cancelled)');
      const outDir = path.join(projectDir, 'qdq-out');
      const reportPath = path.join(outDir, 'report.json');
      assert.ok(fs.existsSync(reportPath), `${reportPath} written`);
      const onnx = fs.readdirSync(outDir).filter((f) => f.endsWith('.onnx'));
      assert.ok(onnx.length >= 2, `FP32 and INT8 ONNX files in ${outDir}: ${onnx.join(', ')}`);
      const report = JSON.parse(fs.readFileSync(reportPath, 'utf8'));
      assert.ok(report.qdq_pairs > 0, 'the INT8 model has Q/DQ pairs');
      assert.ok(report.cosine_min >= 0.99, `INT8 output close to FP32 (cosine_min ${report.cosine_min})`);
      assert.ok(Array.isArray(report.unquantized_weighted_ops));
      assert.deepEqual(report.unquantized_weighted_ops, [], 'every weighted op is fed by DequantizeLinear');
      assert.ok(report.latency_ms && report.latency_ms.fp32 > 0 && report.latency_ms.int8 > 0);
      // With the Python extension (or the test's stand-in for it) installed, its selected interpreter ran the model.
      if (process.env.QDQ_FAKE_PYTHON)
        assert.equal(
          report.python?.path,
          process.env.QDQ_FAKE_PYTHON,
          `report.python: ${JSON.stringify(report.python)}`,
        );
    });

    test('QDQ: Show Report opens the report view', async () => {
      await vscode.commands.executeCommand('qdq.showReport', { uri: modelUri.toString() });
      await poll('the QDQ Report tab', 15_000, () =>
        vscode.window.tabGroups.all.some((g) => g.tabs.some((t) => t.label === 'QDQ Report')) ? true : undefined,
      );
    });

    test('sensitivity: code lenses on the measured layers, the view, and Apply Precision Plan', async () => {
      // Results as `qdq sensitivity` and `qdq tune` write them (figures made up; measuring is tested elsewhere).
      const outDir = path.join(projectDir, 'qdq-out');
      fs.mkdirSync(outDir, { recursive: true });
      const site = (s: string) => `${modelPath}::${s}`;
      const group = (label: string, sites: string[], onlyInt8: number, onlyFloat: number) => ({
        label,
        sites: sites.map(site),
        quantizers: sites,
        only_int8: onlyInt8,
        only_float: onlyFloat,
      });
      fs.writeFileSync(
        path.join(outDir, 'sensitivity.json'),
        JSON.stringify({
          metric: 'top1',
          samples: 360,
          fp32: 98.6,
          all_int8: 97.5,
          groups: [
            group(
              'DigitsCNN.conv3',
              ['DigitsCNN.conv3.input_quantizer', 'DigitsCNN.conv3.weight_quantizer'],
              97.6,
              98.4,
            ),
            group('DigitsCNN.fc', ['DigitsCNN.fc.input_quantizer', 'DigitsCNN.fc.weight_quantizer'], 98.5, 97.6),
          ],
        }),
      );
      fs.writeFileSync(
        path.join(outDir, 'tune.json'),
        JSON.stringify({
          mixed: { accuracy: 98.4, float_sites: [site('DigitsCNN.conv3.weight_quantizer')] },
          within_budget: true,
        }),
      );
      const lenses = await poll('the sensitivity code lenses', 30_000, async () => {
        const all = await vscode.commands.executeCommand<vscodeApi.CodeLens[]>(
          'vscode.executeCodeLensProvider',
          modelUri,
        );
        const titles = (all ?? []).map((l) => l.command?.title ?? '');
        return titles.some((t) => t.startsWith('INT8: -1.00 pt')) ? titles : undefined;
      });
      assert.ok(lenses.includes('INT8: -0.10 pt'), lenses.join(', '));
      await vscode.commands.executeCommand('qdq.showSensitivity', { uri: modelUri.toString() });
      await poll('the QDQ Sensitivity tab', 15_000, () =>
        vscode.window.tabGroups.all.some((g) => g.tabs.some((t) => t.label === 'QDQ Sensitivity')) ? true : undefined,
      );
      await vscode.commands.executeCommand('qdq.applyPrecisionPlan', { uri: modelUri.toString() });
      const doc = await vscode.workspace.openTextDocument(modelUri);
      await poll('keep_float on conv3', 15_000, () =>
        /self\.conv3 = qdq_quant\.keep_float\(nn\.Conv2d\(/.test(doc.getText()) ? true : undefined,
      );
      await doc.save();
    });

    test('the language server comes back after it is killed', async function () {
      if (process.platform !== 'linux') return this.skip(); // finds the server through /proc
      const serverPids = () =>
        fs
          .readdirSync('/proc')
          .filter((d) => /^\d+$/.test(d))
          .filter((pid) => {
            try {
              const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
              return cmd.includes('qdq-language-server.js') && cmd.includes(`--clientProcessId=${process.pid}`);
            } catch {
              return false;
            }
          });
      const before = serverPids();
      assert.equal(before.length, 1, `one server process for this extension host: ${before.join(', ')}`);
      process.kill(Number(before[0]), 'SIGKILL');
      const after = await poll('a new server process', 30_000, () => {
        const now = serverPids().filter((p) => !before.includes(p));
        return now.length ? now : undefined;
      });
      assert.equal(after.length, 1);
      const api = vscode.extensions.getExtension(EXTENSION_ID)!.exports as {
        client(): { isRunning(): boolean } | undefined;
      };
      await poll('the client running again', 30_000, () => (api.client()?.isRunning() ? true : undefined));
      // The restarted server answers: code actions on the (quantized) model.
      const doc = await vscode.workspace.openTextDocument(modelUri);
      const pos = doc.positionAt(doc.getText().indexOf('nn.Conv2d(') + 3);
      await poll('code actions from the restarted server', 30_000, async () => {
        const all = await vscode.commands.executeCommand<vscodeApi.CodeAction[]>(
          'vscode.executeCodeActionProvider',
          modelUri,
          new vscode.Range(pos, pos),
        );
        return all && all.some((a) => /quantizers|float/i.test(a.title)) ? true : undefined;
      });
    });
  });
}
