// Section c: calibration cost, measured in Python by bench/py/calibration_cost.py with the backend's own
// calibrators (spawned without a shell), checked against the targets here.
import * as path from 'path';
import { spawn } from 'child_process';
import { spawnSync } from 'child_process';
import { progress, Skip, TargetCheck } from './stats';

const repo = path.resolve(__dirname, '..', '..');

export interface CalibrationModel {
  model: string;
  rounds: number;
  batches: number;
  batch_shape: number[];
  activation_quantizers: number;
  fp32_forward_ms: number;
  max_ms: number;
  histogram_ms: number;
  max_ratio: number;
  histogram_ratio: number;
  amax_from_histogram_ms: Record<string, { median: number; max: number }>;
  histogram_bins_max: number;
}
export interface CalibrationResult {
  torch: string;
  threads: number;
  python: string;
  models: CalibrationModel[];
}

function pythonWithCalibrators(): string {
  const reasons: string[] = [];
  for (const py of [process.env.QDQ_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean) as string[]) {
    const r = spawnSync(py, ['-c', 'import torch, sklearn; import qdq_backend.calib'], {
      encoding: 'utf8',
      env: { ...process.env, PYTHONPATH: path.join(repo, 'backend') },
    });
    if (r.status === 0) return py;
    reasons.push(`${py}: ${(r.stderr || String(r.error)).trim().split('\n').pop()}`);
  }
  throw new Skip(`no python3 that imports torch, scikit-learn and backend/qdq_backend/calib (${reasons.join('; ')})`);
}

export async function benchCalibration(checks: TargetCheck[]): Promise<CalibrationResult> {
  const python = pythonWithCalibrators();
  const script = path.join(repo, 'bench', 'py', 'calibration_cost.py');
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve) => {
      const child = spawn(python, [script], { cwd: repo, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        err += d;
        for (const line of String(d).split('\n'))
          if (line.startsWith('[calibration] ')) progress(`calibration cost: ${line.slice(14)}`);
      });
      child.on('close', (c) => resolve({ code: c, stdout: out, stderr: err }));
    },
  );
  if (code !== 0)
    throw new Error(`${path.relative(repo, script)} exited with ${code}:\n${stderr.split('\n').slice(-10).join('\n')}`);
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as CalibrationResult;
  r.python = python;
  for (const m of r.models) {
    checks.push({
      section: 'calibration',
      target: `${m.model}: max calibration <= 1.3x FP32 forward`,
      value: `${m.max_ratio.toFixed(2)}x`,
      met: m.max_ratio <= 1.3,
    });
    checks.push({
      section: 'calibration',
      target: `${m.model}: histogram calibration <= 2x FP32 forward`,
      value: `${m.histogram_ratio.toFixed(2)}x`,
      met: m.histogram_ratio <= 2,
    });
    const worst = Math.max(...Object.values(m.amax_from_histogram_ms).map((x) => x.max));
    checks.push({
      section: 'calibration',
      target: `${m.model}: amax from histogram < 50 ms per quantizer (slowest)`,
      value: `${worst.toFixed(1)} ms`,
      met: worst < 50,
    });
  }
  return r;
}
