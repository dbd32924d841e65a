// Real third-party model sources through the server: torchvision's resnet.py and torch.nn's transformer.py
// (Debian's python3-torchvision / python3-torch install them). "Quantize file" through codeAction/resolve must give
// Python that parses (checked with Python's own ast.parse), and "Remove quantizers from file" the original bytes.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { CodeAction, Hover } from 'vscode-languageserver-protocol';
import { TestClient, fileUri, applyWorkspaceEdit } from './lspClient';

const SOURCES = [
  '/usr/lib/python3/dist-packages/torchvision/models/resnet.py',
  '/usr/lib/python3/dist-packages/torch/nn/modules/transformer.py',
];

let client: TestClient;
let tmp: string;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-real-'));
  client = await TestClient.start();
});
after(async () => {
  await client.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function pythonParses(source: string): string | undefined {
  const r = spawnSync('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], {
    input: source,
    encoding: 'utf8',
  });
  if (r.error) return undefined; // no python3: nothing to check with
  return r.status === 0 ? undefined : r.stderr;
}

for (const source of SOURCES) {
  test(
    `${path.basename(source)}: hovers on layers, quantize file parses, remove restores the bytes`,
    {
      skip: fs.existsSync(source)
        ? false
        : `${source} is not installed (apt-get install python3-torch python3-torchvision)`,
    },
    async () => {
      const original = fs.readFileSync(source, 'utf8');
      const uri = fileUri(path.join(tmp, path.basename(source)));
      await client.open(uri, original);
      await client.waitForVersion(uri, 1);

      const lines = original.split('\n');
      let hovers = 0;
      for (let line = 0; line < lines.length; line++) {
        const col = lines[line].search(/\b(nn\.)?(Conv2d|Linear)\(/);
        if (col < 0) continue;
        const h = await client.request<Hover | null>('textDocument/hover', {
          textDocument: { uri },
          position: { line, character: col + 1 },
        });
        if (h) hovers++;
      }
      assert.ok(hovers > 0, 'hovers on nn.Conv2d / nn.Linear');

      const actions = await client.request<CodeAction[]>('textDocument/codeAction', {
        textDocument: { uri },
        range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
        context: { diagnostics: [] },
      });
      const quantizeFile = actions.find((a) => a.title === 'Quantize file');
      assert.ok(quantizeFile, `actions: ${actions.map((a) => a.title)}`);
      const resolved = await client.request<CodeAction>('codeAction/resolve', quantizeFile);
      const files = new Map([[uri, original]]);
      applyWorkspaceEdit(files, resolved.edit!);
      const quantized = files.get(uri)!;
      assert.ok(quantized.includes('qdq_quant.quant('));
      assert.equal(pythonParses(quantized), undefined);

      await client.change(uri, 2, [{ text: quantized }]);
      await client.waitForVersion(uri, 2);
      const after = await client.request<CodeAction[]>('textDocument/codeAction', {
        textDocument: { uri },
        range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
        context: { diagnostics: [] },
      });
      const remove = after.find((a) => a.title === 'Remove quantizers from file')!;
      const removed = await client.request<CodeAction>('codeAction/resolve', remove);
      const back = new Map([[uri, quantized]]);
      applyWorkspaceEdit(back, removed.edit!);
      assert.equal(back.get(uri), original);
    },
  );
}
