// The language server in Emacs 28 + eglot 1.9 (Debian packages emacs-nox elpa-eglot), run in batch mode by
// test.el: TensorRT quick fix and "Quantize this layer" with a client that neither resolves code actions nor
// creates files, so the server's fallbacks (inline edits, qdq.writeHelperFile) are what is exercised.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const REPO = process.cwd();

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

function skipReason(): string | false {
  const emacs = findOnPath('emacs');
  if (!emacs) return 'emacs is not installed (apt-get install emacs-nox elpa-eglot)';
  const probe = spawnSync(
    emacs,
    [
      '--batch',
      '--eval',
      '(progn (require \'package) (package-initialize) (princ (if (require \'eglot nil t) "yes" "no")))',
    ],
    { encoding: 'utf8', timeout: 30000 },
  );
  if (!probe.stdout.includes('yes')) return 'eglot is not available to emacs (apt-get install elpa-eglot)';
  return false;
}

test(
  'Emacs + eglot: TensorRT quick fix and quantize action end up in the files on disk',
  { skip: skipReason() },
  () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-emacs-'));
    try {
      const model = path.join(tmp, 'model.py');
      fs.copyFileSync(path.join(REPO, 'test', 'fixtures', 'protocol', 'model.py'), model);
      const r = spawnSync('emacs', ['--batch', '-l', path.join(REPO, 'test', 'editors', 'emacs', 'test.el')], {
        cwd: tmp,
        // HOME points at the temp folder so nothing is read from or written to the user's ~/.emacs.d.
        env: {
          ...process.env,
          HOME: tmp,
          QDQ_NODE: process.execPath,
          QDQ_SERVER: path.join(REPO, 'bin', 'qdq-language-server.js'),
        },
        encoding: 'utf8',
        timeout: 120000,
      });
      const out = `${r.stdout}\n${r.stderr}`;
      assert.equal(r.status, 0, out);
      assert.match(out, /STEP diagnostic TRT001 /);
      assert.match(out, /STEP quickfix Run the cumsum in float/);
      assert.match(out, /STEP action Quantize this layer: conv1 \(nn\.Conv2d\)/);
      assert.match(out, /STEP done/);
      const saved = fs.readFileSync(model, 'utf8');
      assert.match(saved, /^import qdq_quant {2}# qdq$/m);
      assert.match(saved, /self\.conv1 = qdq_quant\.quant\(nn\.Conv2d\(3, 8, 3, padding=1\)\)/);
      assert.match(saved, /torch\.cumsum\(mask\.float\(\), dim=1\)/);
      assert.equal(
        fs.readFileSync(path.join(tmp, 'qdq_quant.py'), 'utf8'),
        fs.readFileSync(path.join(REPO, 'backend', 'qdq_backend', 'qdq_quant.py'), 'utf8'),
        'qdq_quant.py written by the qdq.writeHelperFile command',
      );
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  },
);
