// `npm run bench` section "mixed precision": `qdq tune` as a ratio to a plain `qdq run` of the same project, both as
// whole CLI processes, alternated round after round in the same bench run. Target (issue 17): on
// examples/digits-mobilenet, `--max-drop 0.5` under 3x a plain run. Two more rows show where the cost goes: the
// transformer example, and `--max-drop 0` on it, which keeps a group in float and so adds the mixed model's
// export and verification. Every process runs on a fresh temporary copy of the example: the repository's example
// and its qdq-out are never touched, and no run finds an earlier run's outputs.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { progress, Skip, TargetCheck } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const ROUNDS = 3;

interface Case {
  project: string;
  maxDrop: string;
}
const CASES: Case[] = [
  { project: 'digits-mobilenet', maxDrop: '0.5' },
  { project: 'digits-transformer', maxDrop: '0.5' },
  { project: 'digits-transformer', maxDrop: '0' },
];

export interface TuneBenchRow {
  project: string;
  max_drop: string;
  run_s: number;
  tune_s: number;
  ratio: number;
  evaluations: number;
  float_groups: number;
}

export interface TuneBenchResult {
  rounds: number;
  rows: TuneBenchRow[];
}

function freshCopy(project: string): string {
  const source = path.join(ROOT, 'examples', project);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `qdq-bench-${project}-`));
  for (const f of fs.readdirSync(source))
    if (/\.(py|toml|pt)$/.test(f) && fs.statSync(path.join(source, f)).isFile())
      fs.copyFileSync(path.join(source, f), path.join(dir, f));
  return dir;
}

/** Seconds of one CLI process on a fresh copy of `project`, and the tune.json it wrote (tune only). */
function timeCli(command: 'run' | 'tune', project: string, extra: string[]): { s: number; tune?: TuneJson } {
  const dir = freshCopy(project);
  try {
    const start = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'qdq.js'), command, dir, ...extra], {
      encoding: 'utf8',
    });
    const s = Number(process.hrtime.bigint() - start) / 1e9;
    if (r.status !== 0)
      throw new Skip(`qdq ${command} ${project} failed: ${(r.stderr || '').trim().split('\n').slice(-2).join(' ')}`);
    const tuneFile = path.join(dir, 'qdq-out', 'tune.json');
    return { s, tune: command === 'tune' ? (JSON.parse(fs.readFileSync(tuneFile, 'utf8')) as TuneJson) : undefined };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface TuneJson {
  evaluations: number;
  mixed: { float_groups: string[] };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchTune(checks: TargetCheck[]): Promise<TuneBenchResult> {
  const projects = [...new Set(CASES.map((c) => c.project))];
  const runs = new Map<string, number[]>(projects.map((p) => [p, []]));
  const tunes = CASES.map(() => [] as number[]);
  const last: (TuneJson | undefined)[] = CASES.map(() => undefined);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const project of projects) {
      progress(`mixed precision: qdq run ${project} ${round}/${ROUNDS}`);
      runs.get(project)!.push(timeCli('run', project, []).s);
      CASES.forEach((c, i) => {
        if (c.project !== project) return;
        progress(`mixed precision: qdq tune ${project} --max-drop ${c.maxDrop} ${round}/${ROUNDS}`);
        const t = timeCli('tune', project, ['--max-drop', c.maxDrop]);
        tunes[i].push(t.s);
        last[i] = t.tune;
      });
    }
  }
  const rows = CASES.map((c, i): TuneBenchRow => {
    const run_s = median(runs.get(c.project)!);
    const tune_s = median(tunes[i]);
    return {
      project: `examples/${c.project}`,
      max_drop: c.maxDrop,
      run_s,
      tune_s,
      ratio: tune_s / run_s,
      evaluations: last[i]?.evaluations ?? 0,
      float_groups: last[i]?.mixed.float_groups.length ?? 0,
    };
  });
  const target = rows[0];
  checks.push({
    section: 'mixed precision',
    target: 'qdq tune --max-drop 0.5 < 3x qdq run (digits-mobilenet)',
    value: `${target.ratio.toFixed(2)}x`,
    met: target.ratio < 3,
  });
  return { rounds: ROUNDS, rows };
}
