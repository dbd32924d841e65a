// Shared by the onnx/ tests: export the small fixture models with a Python that has torch, once per process.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export const repoRoot = process.cwd();

/** The first of python3, /usr/bin/python3 that imports torch, or null. */
export function torchPython(): string | null {
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) return py;
  }
  return null;
}

let cached: { dir: string } | { skip: string } | undefined;

export function fixtureModels(): { dir: string } | { skip: string } {
  if (cached) return cached;
  const py = torchPython();
  if (!py)
    return (cached = {
      skip: 'no Python with torch here (python3, /usr/bin/python3): cannot export the fixture models',
    });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-onnx-test-'));
  const r = spawnSync(py, [path.join(repoRoot, 'test/fixtures/onnx/make_models.py'), dir], {
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (r.status !== 0) throw new Error(`exporting fixture models failed:\n${r.stderr}`);
  return (cached = { dir });
}

export function randn(n: number, seed = 1): Float32Array {
  // Deterministic normal samples (Box-Muller on a small LCG) so failures reproduce.
  let s = seed >>> 0;
  const u = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 1) / 4294967297;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}
