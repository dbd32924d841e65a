// Which library modules `qdq run` patches: the automatic list from the model, patch-modules as an override.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { patchModules, patchNote, planPatches } from '../../server/src/library/auto';
import { QdqError } from '../../server/src/common/errors';

const FOUND = ['timm.models.vision_transformer', 'timm.layers.attention', 'timm.layers.mlp', 'timm.layers.norm'];

test('unset patch-modules takes every module the model was built from', () => {
  assert.deepEqual(planPatches(undefined, FOUND), { modules: FOUND, automatic: true, excluded: [] });
});

test('"!module" excludes a module (and its submodules) from the automatic list', () => {
  const plan = planPatches(['!timm.layers.mlp', '!timm.models'], FOUND);
  assert.deepEqual(plan.modules, ['timm.layers.attention', 'timm.layers.norm']);
  assert.equal(plan.automatic, true);
});

test('plain names make the list exact; [] patches nothing', () => {
  assert.deepEqual(planPatches(['timm.layers.mlp'], FOUND), {
    modules: ['timm.layers.mlp'],
    automatic: false,
    excluded: [],
  });
  assert.deepEqual(planPatches([], FOUND).modules, []);
});

const LAYER =
  'import torch\nfrom torch import nn\n\nclass Mlp(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 4)\n\n    def forward(self, x):\n        return self.fc(x)\n';
const NORM = 'import torch\n\ndef helper(x):\n    return x\n';

test('automatic mode skips modules with nothing to quantize; a listed one is an error', async () => {
  const sources: Record<string, string> = { 'lib.mlp': LAYER, 'lib.norm': NORM };
  const source = async (m: string) => sources[m];
  const auto = await patchModules(planPatches(undefined, ['lib.mlp', 'lib.norm']), source);
  assert.deepEqual(
    auto.patches.map((p) => p.module),
    ['lib.mlp'],
  );
  assert.deepEqual(auto.skipped, ['lib.norm']);
  assert.match(auto.patches[0].text, /qdq_quant\.quant\(nn\.Linear/);
  const note = patchNote(planPatches(undefined, []), auto);
  assert.match(note, /found from the model's classes/);
  assert.match(note, /nothing to quantize in lib\.norm/);
  await assert.rejects(
    patchModules(planPatches(['lib.norm'], []), source),
    (e: unknown) => e instanceof QdqError && e.kind === 'config' && /nothing to quantize/.test(e.message),
  );
});
