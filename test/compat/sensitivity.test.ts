// Library models through `qdq sensitivity` and `qdq tune`: a project whose model.py only calls a timm factory (no
// patch-modules) is loaded with the library modules patched in memory (server/src/pipeline/libraryLoad.ts), as
// `qdq run` loads it; its groups are measured in the tensorrt graph form; and tune says its plan cannot be written.
// A 32x32, one-block ViT keeps both commands well under a minute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runQdq } from '../e2e/helpers';

const hasTimm = spawnSync('python3', ['-c', 'import torch, timm'], { stdio: 'ignore', timeout: 120_000 }).status === 0;
const skip = hasTimm ? false : 'needs PyPI torch and timm for python3 (Debian /usr/bin/python3 has no timm)';

const MODEL = `import timm
import torch


def build_model():
    torch.manual_seed(0)
    return timm.create_model(
        "deit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=1, num_classes=10
    ).eval()


def _batch(seed):
    return (torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed)),)


def example_inputs():
    return _batch(0)


def calibration_data():
    for seed in range(1, 5):
        yield _batch(seed)
`;

const PYPROJECT = `[tool.qdq]
model = "model.py:build_model"
example-inputs = "model.py:example_inputs"
calibration-data = "model.py:calibration_data"
target = "tensorrt"
method = "max"
batches = 2
opset = 17
out-dir = "qdq-out"
`;

function project(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-libsens-'));
  fs.writeFileSync(path.join(dir, 'model.py'), MODEL);
  fs.writeFileSync(path.join(dir, 'pyproject.toml'), PYPROJECT);
  return dir;
}

const PATCHED = 'timm.models.vision_transformer';

test(
  'qdq sensitivity on a bare timm factory patches the library modules and measures the tensorrt form',
  { skip },
  async () => {
    const dir = project();
    try {
      const r = await runQdq(['sensitivity', dir], { timeoutMs: 240_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /note: patched in memory/);
      const out = JSON.parse(fs.readFileSync(path.join(dir, 'qdq-out', 'sensitivity.json'), 'utf8'));
      assert.equal(out.target, 'tensorrt');
      assert.ok(out.patched_modules.includes(PATCHED), JSON.stringify(out.patched_modules));
      assert.ok(
        out.notes.some((n: string) => n.includes(PATCHED)),
        JSON.stringify(out.notes),
      );
      const quantizers: string[] = out.groups.flatMap((g: { quantizers: string[] }) => g.quantizers);
      assert.ok(
        quantizers.some((q) => q.includes('attn.qkv')),
        'the attention Linear is a measured site',
      );
      // the ViT's residual adds follow no convolution: the tensorrt export leaves their quantizers off, and so
      // does the measurement (residual_fusion.left_off)
      assert.deepEqual(
        quantizers.filter((q) => /add\d+_(residual|local)_quantizer$/.test(q)),
        [],
      );
      const sites: string[] = out.groups.flatMap((g: { sites: string[] }) => g.sites);
      assert.ok(
        sites.every((s) => !s.startsWith(path.join(dir, 'model.py'))),
        'no site is in the user file',
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'qdq tune on a bare timm factory: no keep_float can be written, the mixed latency is left empty',
  { skip },
  async () => {
    const dir = project();
    try {
      // a 5 dB budget on SQNR (FP32 100 dB): all INT8 misses it, so the plan keeps library groups in float
      const r = await runQdq(['tune', dir, '--max-drop', '5'], { timeoutMs: 240_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /sites are in library modules patched in memory .*no keep_float can be written/);
      const out = JSON.parse(fs.readFileSync(path.join(dir, 'qdq-out', 'tune.json'), 'utf8'));
      assert.ok(out.mixed.float_groups.length > 0, JSON.stringify(out.mixed));
      assert.equal(out.mixed.latency_ms, null);
      assert.match(out.mixed.latency_note, /not measured/);
      assert.equal(out.onnxruntime_top1.mixed, null);
      assert.equal(out.model_file, null);
      assert.equal(fs.existsSync(path.join(dir, 'qdq-out', 'tuned')), false, 'nothing exported for the mixed plan');
      assert.equal(fs.readFileSync(path.join(dir, 'model.py'), 'utf8'), MODEL, 'the user file is unchanged');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
