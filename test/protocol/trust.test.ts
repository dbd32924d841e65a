// Issue 14 D12: what an untrusted (or hostile) workspace can make the server do.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { TestClient, fileUri } from './lspClient';

const MODEL = 'import torch\nfrom torch import nn\n\nclass Net(nn.Module):\n    pass\n';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-trust-'));
}

test('workspaceTrusted must be the boolean true: the string "false" (or any non-boolean) is untrusted', async () => {
  for (const value of ['false', 0, 'true', null]) {
    const client = await TestClient.start({ initializationOptions: { workspaceTrusted: value } });
    try {
      const dir = tmp();
      const uri = fileUri(path.join(dir, 'model.py'));
      await client.open(uri, MODEL);
      await assert.rejects(
        client.request('workspace/executeCommand', { command: 'qdq.calibrate', arguments: [{ uri }] }),
        /not trusted/,
        `workspaceTrusted: ${JSON.stringify(value)}`,
      );
      fs.rmSync(dir, { recursive: true, force: true });
    } finally {
      await client.stop();
    }
  }
});

test('qdq/setWorkspaceTrust with a non-boolean `trusted` does not grant trust', async () => {
  const client = await TestClient.start({ initializationOptions: { workspaceTrusted: false } });
  try {
    await client.conn.sendNotification('qdq/setWorkspaceTrust', { trusted: 'yes' });
    const uri = fileUri(path.join(tmp(), 'model.py'));
    await client.open(uri, MODEL);
    await assert.rejects(
      client.request('workspace/executeCommand', { command: 'qdq.calibrate', arguments: [{ uri }] }),
      /not trusted/,
    );
  } finally {
    await client.stop();
  }
});

test('untrusted qdq.writeHelperFile writes only next to an open document, never into another directory', async () => {
  const client = await TestClient.start({ initializationOptions: { workspaceTrusted: false } });
  const project = tmp();
  const elsewhere = tmp();
  try {
    const uri = fileUri(path.join(project, 'model.py'));
    await client.open(uri, MODEL);
    await assert.rejects(
      client.request('workspace/executeCommand', { command: 'qdq.writeHelperFile', arguments: [{ dir: elsewhere }] }),
      /only next to an open document or inside a workspace folder/,
    );
    assert.ok(!fs.existsSync(path.join(elsewhere, 'qdq_quant.py')), 'nothing written outside');
    // A path that climbs out of the document's folder is just as far away.
    await assert.rejects(
      client.request('workspace/executeCommand', {
        command: 'qdq.writeHelperFile',
        arguments: [{ dir: path.join(project, '..', path.basename(elsewhere)) }],
      }),
      /neither/,
    );
    const r = await client.request<{ written: boolean }>('workspace/executeCommand', {
      command: 'qdq.writeHelperFile',
      arguments: [{ dir: project }],
    });
    assert.equal(r.written, true);
    assert.ok(fs.existsSync(path.join(project, 'qdq_quant.py')));
  } finally {
    await client.stop();
    fs.rmSync(project, { recursive: true, force: true });
    fs.rmSync(elsewhere, { recursive: true, force: true });
  }
});

const pythonOk = spawnSync('python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

test(
  'Show quantized source does not import modules from the workspace the server was started in',
  { skip: pythonOk ? false : 'needs python3 with torch', timeout: 120_000 },
  async () => {
    const workspace = tmp();
    const marker = path.join(workspace, 'IMPORTED');
    // `python -c` would import these from its current directory before the standard library's and qdq's own.
    // (Standard-library names are left out: the interpreter probe of server/src/pipeline imports torch, which
    // imports them; that probe is fixed and tested on its own.)
    const plant = `open(${JSON.stringify(marker)}, 'a').write(__name__ + '\\n')\n`;
    fs.mkdirSync(path.join(workspace, 'qdq_backend'));
    fs.writeFileSync(path.join(workspace, 'qdq_backend', '__init__.py'), plant);
    fs.mkdirSync(path.join(workspace, 'src'));
    const uri = fileUri(path.join(workspace, 'src', 'model.py'));
    const client = await TestClient.start({ cwd: workspace, settings: { pythonInterpreter: 'python3' } });
    try {
      await client.open(uri, 'from transformers.models.bert.modeling_bert import BertLayer\n');
      // The answer may be a result or "not installed"; either way no workspace module may have run.
      await client
        .request('qdq/quantizedModuleSource', { uri, module: 'transformers.models.bert.modeling_bert' })
        .catch(() => undefined);
      assert.ok(
        !fs.existsSync(marker),
        `workspace modules ran: ${fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : ''}`,
      );
    } finally {
      await client.stop();
      fs.rmSync(workspace, { recursive: true, force: true });
    }
  },
);
