// The packaged qdq.vsix is self-contained: unpacked on its own (no repository node_modules), its language
// server starts and publishes the TensorRT diagnostic for a model, so every run-time module and native
// add-on made it into the package. Needs `npm run package` first; skips otherwise.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';

const repoRoot = process.cwd();
const vsix = path.join(repoRoot, 'qdq.vsix');
const unzip = spawnSync('unzip', ['-v'], { encoding: 'utf8' }).status === 0;
const skip = !fs.existsSync(vsix)
  ? 'qdq.vsix not built: run npm run package'
  : !unzip
    ? 'unzip is not installed'
    : undefined;

/** LSP base-protocol framing over the server's stdio. */
function frame(message: object): string {
  const body = JSON.stringify({ jsonrpc: '2.0', ...message });
  return `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

test('qdq.vsix unpacked alone: the server starts and reports TRT004', { skip, timeout: 120_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-vsix-'));
  try {
    assert.equal(spawnSync('unzip', ['-q', vsix, '-d', dir]).status, 0, 'the .vsix unzips');
    const ext = path.join(dir, 'extension');
    const manifest = JSON.parse(fs.readFileSync(path.join(ext, 'package.json'), 'utf8'));
    assert.ok(fs.existsSync(path.join(ext, manifest.main)), `main ${manifest.main} is packaged`);
    for (const p of ['out/test', 'test', 'examples', 'client/src'])
      assert.ok(!fs.existsSync(path.join(ext, p)), `${p} is left out`);

    const model = path.join(dir, 'trt_issue.py');
    fs.copyFileSync(path.join(repoRoot, 'test', 'fixtures', 'editors', 'trt_issue.py'), model);
    // Run from the unpacked folder with NODE_PATH cleared, so nothing resolves from the repository.
    const server = spawn(process.execPath, [path.join(ext, 'bin', 'qdq-language-server.js'), '--stdio'], {
      cwd: dir,
      env: { ...process.env, NODE_PATH: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    server.stderr.on('data', (d) => (stderr += d));
    let buffer = Buffer.alloc(0);
    const messages: { id?: number; method?: string; params?: { uri?: string; diagnostics?: { code?: string }[] } }[] =
      [];
    server.stdout.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const headerEnd = buffer.indexOf('\r\n\r\n');
        if (headerEnd < 0) return;
        const length = Number(/Content-Length: (\d+)/i.exec(buffer.subarray(0, headerEnd).toString())?.[1]);
        if (buffer.length < headerEnd + 4 + length) return;
        messages.push(JSON.parse(buffer.subarray(headerEnd + 4, headerEnd + 4 + length).toString()));
        buffer = buffer.subarray(headerEnd + 4 + length);
      }
    });
    const uri = pathToFileURL(model).toString();
    server.stdin.write(
      frame({
        id: 1,
        method: 'initialize',
        params: { processId: process.pid, rootUri: pathToFileURL(dir).toString(), capabilities: {} },
      }),
    );
    server.stdin.write(frame({ method: 'initialized', params: {} }));
    server.stdin.write(
      frame({
        method: 'textDocument/didOpen',
        params: { textDocument: { uri, languageId: 'python', version: 1, text: fs.readFileSync(model, 'utf8') } },
      }),
    );
    const deadline = Date.now() + 60_000;
    let codes: (string | undefined)[] | undefined;
    while (!codes && Date.now() < deadline && server.exitCode === null) {
      const published = messages.find(
        (m) =>
          m.method === 'textDocument/publishDiagnostics' &&
          m.params?.uri === uri &&
          (m.params.diagnostics?.length ?? 0) > 0,
      );
      codes = published?.params?.diagnostics?.map((d) => d.code);
      await new Promise((r) => setTimeout(r, 100));
    }
    server.kill();
    assert.ok(
      codes,
      `no diagnostics from the packaged server (exit ${server.exitCode}); stderr:\n${stderr.slice(-2000)}`,
    );
    assert.ok(codes.includes('TRT004'), `codes: ${codes.join(', ')}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
