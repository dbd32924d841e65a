// The installed timm's classifier heads: resnet and efficientnet build them with
// `self.global_pool, self.fc = create_classifier(...)`, a factory returning (pool, fc) from timm.layers; the
// quantize pass wraps those calls, so the classifier Linear is quantized with the rest of the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import { runQdq } from '../e2e/helpers';

const PYTHON = 'python3';
const hasTimm = spawnSync(PYTHON, ['-c', 'import timm.layers'], { stdio: 'ignore', timeout: 120_000 }).status === 0;
const skip = hasTimm ? false : 'needs PyPI timm for python3 (Debian /usr/bin/python3 has none)';

for (const mod of ['timm.models.resnet', 'timm.models.efficientnet']) {
  test(
    `qdq quantize --module ${mod} wraps every create_classifier(...) call that unpacks its tuple`,
    { skip },
    async () => {
      const run = await runQdq(['quantize', '--module', mod, '--python', PYTHON]);
      assert.equal(run.code, 0, run.stderr);
      const calls = [...run.stdout.matchAll(/^.*(?<![\w.])create_classifier\(.*$/gm)].map((m) => m[0]);
      assert.ok(calls.length > 0, `${mod} calls create_classifier`);
      for (const line of calls) assert.match(line, /^\s*self\.\w+, self\.\w+ = qdq_quant\.quant\(create_classifier\(/);
    },
  );
}
