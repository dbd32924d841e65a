// The language server in a real third-party client: headless Neovim (Debian's 0.7) runs init.lua, which attaches
// `node bin/qdq-language-server.js --stdio`, applies the TensorRT quick fix and "Quantize this layer", and saves.
// This test checks the files on disk afterwards.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const REPO = process.cwd();
const NVIM = findOnPath('nvim');

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

test(
  'Neovim: TensorRT diagnostic, hover, quick fix and quantize action end up in the files on disk',
  { skip: NVIM ? false : 'nvim is not installed (apt-get install neovim); the Neovim client test needs it' },
  () => {
    const version = spawnSync(NVIM!, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-nvim-'));
    try {
      const original = fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'protocol', 'model.py'), 'utf8');
      const model = path.join(tmp, 'model.py');
      fs.writeFileSync(model, original);
      const r = spawnSync(
        NVIM!,
        ['--headless', '-n', '-i', 'NONE', '-u', path.join(REPO, 'test', 'editors', 'nvim', 'init.lua'), 'model.py'],
        {
          cwd: tmp,
          env: {
            ...process.env,
            QDQ_NODE: process.execPath,
            QDQ_SERVER: path.join(REPO, 'bin', 'qdq-language-server.js'),
            XDG_CONFIG_HOME: tmp,
            XDG_DATA_HOME: tmp,
            XDG_STATE_HOME: tmp,
          },
          encoding: 'utf8',
          timeout: 90000,
        },
      );
      const out = `${r.stdout}\n${r.stderr}`;
      assert.equal(r.status, 0, `${version} exited ${r.status}:\n${out}`);
      assert.match(out, /STEP diagnostic qdq TRT001 14 /);
      assert.match(out, /STEP hover \*\*nn\.Conv2d\*\*/);
      assert.match(out, /STEP action Quantize this layer: conv1 \(nn\.Conv2d\)/);
      assert.match(out, /STEP done/);

      const saved = fs.readFileSync(model, 'utf8');
      assert.match(saved, /^import qdq_quant {2}# qdq$/m);
      assert.match(saved, /self\.conv1 = qdq_quant\.quant\(nn\.Conv2d\(3, 8, 3, padding=1\)\)/);
      assert.match(saved, /torch\.cumsum\(mask\.float\(\), dim=1\)/, 'the TRT001 quick fix');
      assert.match(saved, /self\.proj = nn\.Linear\(dim, dim\)/, 'nothing else quantized');
      const helper = path.join(tmp, 'qdq_quant.py');
      assert.ok(fs.existsSync(helper), 'qdq_quant.py created through the WorkspaceEdit');
      assert.equal(
        fs.readFileSync(helper, 'utf8'),
        fs.readFileSync(path.join(REPO, 'backend', 'qdq_backend', 'qdq_quant.py'), 'utf8'),
      );
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  },
);
