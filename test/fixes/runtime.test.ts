// The generated code runs: quantized golden outputs are imported by real PyTorch next to the real
// qdq_quant.py (backend/qdq_backend/qdq_quant.py), instantiated and run forward, with the float model's
// result unchanged while no quantizer is calibrated and isinstance(m, nn.Conv2d) still true.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { helperFileText, quantizeFile } from '../../server/src/fixes';

const GOLDEN = path.join(process.cwd(), 'test/golden/quantize');

// case -> Python that builds the model `m` (module `mod` = the quantized file, `ref` = the original) and inputs.
const CASES: Record<string, string> = {
  simple_cnn: 'm = mod.SimpleCNN(); r = ref.SimpleCNN(); args = (torch.randn(2, 3, 16, 16),)',
  resnet_basic_block: 'm = mod.BasicBlock(8, 8); r = ref.BasicBlock(8, 8); args = (torch.randn(2, 8, 8, 8),)',
  sequential_modulelist: 'm = mod.MLPStack(8, 2); r = ref.MLPStack(8, 2); args = (torch.randn(3, 8),)',
  attention_ops: 'm = mod.Attention(8, 2); r = ref.Attention(8, 2); args = (torch.randn(2, 5, 8),)',
  bert_self_output:
    'cfg = types.SimpleNamespace(hidden_size=8, layer_norm_eps=1e-12, hidden_dropout_prob=0.0); m = mod.BertSelfOutput(cfg); r = ref.BertSelfOutput(cfg); args = (torch.randn(2, 4, 8), torch.randn(2, 4, 8))',
  module_function_attention: 'm = mod.SelfAttention(8, 2); r = ref.SelfAttention(8, 2); args = (torch.randn(2, 5, 8),)',
  class_without_init: 'm = mod.Child(); r = ref.Child(); args = (torch.randn(2, 4, 4), torch.randn(2, 4, 4))',
};

const SCRIPT = `
import importlib, json, sys, types
import torch, torch.nn as nn
sys.path.insert(0, sys.argv[1])
import qdq_quant
cases = json.loads(sys.argv[2])
out = {}
for name, build in cases.items():
    try:
        mod = importlib.import_module(name + "_q")
        ref = importlib.import_module(name + "_f")
        torch.manual_seed(0)
        env = {"mod": mod, "ref": ref, "torch": torch, "types": types}
        exec(build, env)
        m, r, args = env["m"], env["r"], env["args"]
        r.load_state_dict(m.state_dict(), strict=False)
        m.eval(); r.eval()
        with torch.no_grad():
            same = torch.allclose(m(*args), r(*args), atol=1e-6)
        quantizers = sum(isinstance(x, qdq_quant.TensorQuantizer) for x in m.children())
        convs_still_conv = all(isinstance(x, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) for x in m.modules() if type(x).__name__.startswith("Quant"))
        quant_layers = sum(type(x).__name__.startswith("Quant") for x in m.modules())
        out[name] = {"same": bool(same), "quantizers": quantizers, "quant_layers": quant_layers, "isinstance": convs_still_conv}
    except Exception as e:
        out[name] = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps(out))
`;

// PyTorch 2.x (pyenv python3) and 1.13 (Debian's /usr/bin/python3): the generated code must run on both.
for (const python of ['python3', '/usr/bin/python3'])
  test(`quantized golden models run under PyTorch (${python}) with the real qdq_quant.py`, (t) => {
    const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (probe.status !== 0) return t.skip(`${python} cannot import torch`);
    let helper: string;
    try {
      helper = helperFileText();
    } catch (e) {
      return t.skip(String(e));
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-runtime-'));
    try {
      fs.writeFileSync(path.join(dir, 'qdq_quant.py'), helper);
      for (const name of Object.keys(CASES)) {
        const input = fs.readFileSync(path.join(GOLDEN, name, 'input.py'), 'utf8');
        fs.writeFileSync(path.join(dir, `${name}_f.py`), input);
        fs.writeFileSync(path.join(dir, `${name}_q.py`), quantizeFile(input).text);
      }
      const r = spawnSync(python, ['-c', SCRIPT, dir, JSON.stringify(CASES)], { encoding: 'utf8', cwd: dir });
      assert.equal(r.status, 0, r.stderr);
      const results = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<
        string,
        { error?: string; same?: boolean; quantizers?: number; quant_layers?: number; isinstance?: boolean }
      >;
      for (const [name, res] of Object.entries(results)) {
        assert.equal(res.error, undefined, `${name}: ${res.error}`);
        assert.equal(res.same, true, `${name}: uncalibrated quantized model differs from the float model`);
        assert.equal(res.isinstance, true, `${name}: quantized layers are no longer nn layers`);
      }
      assert.ok(results.simple_cnn.quant_layers! >= 3);
      assert.equal(results.attention_ops.quantizers, 8);
      assert.equal(results.bert_self_output.quantizers, 2);
      assert.equal(results.resnet_basic_block.quantizers, 1);
      assert.equal(results.module_function_attention.quantizers, 4);
      assert.equal(results.class_without_init.quantizers, 4);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
