// `npm run bench` section "mixed precision": `qdq tune --max-drop 0.5` on examples/digits-mobilenet as a ratio to a
// plain `qdq run` of the same project, both as whole CLI processes, alternated in the same bench run.
// Target (issue 17): tune under 3x a plain run. Both export and verify the all-INT8 model (tune measures its
// latency for tune.json), so the ratio is what the search and, when it keeps groups in float, the mixed model's
// export and verification add.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { progress, Skip, TargetCheck } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const PROJECT = path.join(ROOT, 'examples', 'digits-mobilenet');
const RUNS = 2;

export interface TuneBenchResult {
  project: string;
  runs: number;
  run_s: number;
  tune_s: number;
  ratio: number;
}

function timeCli(args: string[]): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'qdq.js'), ...args], { encoding: 'utf8' });
  if (r.status !== 0)
    throw new Skip(`qdq ${args[0]} failed: ${(r.stderr || '').trim().split('\n').slice(-2).join(' ')}`);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchTune(checks: TargetCheck[]): Promise<TuneBenchResult> {
  const run: number[] = [];
  const tune: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    progress(`mixed precision: qdq run ${i + 1}/${RUNS}`);
    run.push(timeCli(['run', PROJECT]));
    progress(`mixed precision: qdq tune ${i + 1}/${RUNS}`);
    tune.push(timeCli(['tune', PROJECT, '--max-drop', '0.5']));
  }
  const result = {
    project: 'examples/digits-mobilenet',
    runs: RUNS,
    run_s: median(run),
    tune_s: median(tune),
    ratio: 0,
  };
  result.ratio = result.tune_s / result.run_s;
  checks.push({
    section: 'mixed precision',
    target: 'qdq tune --max-drop 0.5 < 3x qdq run (digits-mobilenet)',
    value: `${result.ratio.toFixed(2)}x`,
    met: result.ratio < 3,
  });
  return result;
}
