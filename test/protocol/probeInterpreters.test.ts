// qdq/probeInterpreters (issue 19 item 9): the interpreter picker shows each candidate's torch version or why
// it cannot serve; refused without trust (it runs the interpreters).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { ProbeInterpretersRequest } from '../../server/src/protocol/lsp_ext';
import { TestClient } from './lspClient';

const torch = spawnSync('python3', ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
const torchVersion = torch.status === 0 ? torch.stdout.trim() : undefined;

test(
  'each candidate is answered in order: versions for a torch interpreter, a problem for a missing one',
  { skip: torchVersion ? false : 'needs python3 with torch', timeout: 120_000 },
  async () => {
    const client = await TestClient.start();
    try {
      const infos = await client.request(ProbeInterpretersRequest, {
        candidates: ['python3', '/nonexistent/bin/python3'],
      });
      assert.equal(infos.length, 2);
      assert.equal(infos[0].torchVersion, torchVersion);
      assert.equal(infos[0].problem, undefined);
      assert.match(infos[0].python, /\//, `a path: ${infos[0].python}`);
      assert.ok(infos[1].problem, 'the missing interpreter says why');
    } finally {
      await client.stop();
    }
  },
);

test('untrusted: the probe is refused', async () => {
  const client = await TestClient.start({ initializationOptions: { workspaceTrusted: false } });
  try {
    await assert.rejects(client.request(ProbeInterpretersRequest, { candidates: ['python3'] }), /not trusted/);
  } finally {
    await client.stop();
  }
});
