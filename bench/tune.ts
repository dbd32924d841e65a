// `npm run bench` section "mixed precision": `qdq tune` as a ratio to a plain `qdq run` of the same project, both as
// whole CLI processes, alternated round after round in the same bench run. Target (issue 17): on
// examples/digits-mobilenet, `--max-drop 0.5` under 3x a plain run. Two more rows show where the cost goes: the
// transformer example, and `--max-drop 0` on it with method max (its configured entropy loses nothing in the tensorrt
// form), which keeps a group in float and so adds the mixed model's export and verification. Every process runs on a fresh temporary copy of the example: the repository's example
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
  /** Replaces [tool.qdq] method in the copy (for the tune and for the plain run it is compared with). */
  method?: string;
}
const CASES: Case[] = [
  { project: 'digits-mobilenet', maxDrop: '0.5' },
  { project: 'digits-transformer', maxDrop: '0.5' },
  { project: 'digits-transformer', maxDrop: '0', method: 'max' },
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

/** The label of a project run with `method` written into its copy's [tool.qdq]. */
const variantOf = (c: Case) => (c.method ? `${c.project} (method ${c.method})` : c.project);

function freshCopy(project: string, method?: string): string {
  const source = path.join(ROOT, 'examples', project);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `qdq-bench-${project}-`));
  for (const f of fs.readdirSync(source))
    if (/\.(py|toml|pt)$/.test(f) && fs.statSync(path.join(source, f)).isFile())
      fs.copyFileSync(path.join(source, f), path.join(dir, f));
  if (method) {
    const toml = path.join(dir, 'pyproject.toml');
    const text = fs.readFileSync(toml, 'utf8');
    if (!/^method = .*$/m.test(text)) throw new Skip(`examples/${project}/pyproject.toml sets no method to replace`);
    fs.writeFileSync(toml, text.replace(/^method = .*$/m, `method = "${method}"`));
  }
  return dir;
}

/** Seconds of one CLI process on a fresh copy of `project`, and the tune.json it wrote (tune only). */
function timeCli(command: 'run' | 'tune', c: Case, extra: string[]): { s: number; tune?: TuneJson } {
  const { project } = c;
  const dir = freshCopy(project, c.method);
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
  // One plain run per project and method, compared with every tune of that variant.
  const variants = [...new Map(CASES.map((c) => [variantOf(c), c])).values()];
  const runs = new Map<string, number[]>(variants.map((v) => [variantOf(v), []]));
  const tunes = CASES.map(() => [] as number[]);
  const last: (TuneJson | undefined)[] = CASES.map(() => undefined);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const variant of variants) {
      const label = variantOf(variant);
      progress(`mixed precision: qdq run ${label} ${round}/${ROUNDS}`);
      runs.get(label)!.push(timeCli('run', variant, []).s);
      CASES.forEach((c, i) => {
        if (variantOf(c) !== label) return;
        progress(`mixed precision: qdq tune ${label} --max-drop ${c.maxDrop} ${round}/${ROUNDS}`);
        const t = timeCli('tune', c, ['--max-drop', c.maxDrop]);
        tunes[i].push(t.s);
        last[i] = t.tune;
      });
    }
  }
  const rows = CASES.map((c, i): TuneBenchRow => {
    const run_s = median(runs.get(variantOf(c))!);
    const tune_s = median(tunes[i]);
    return {
      project: `examples/${variantOf(c)}`,
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
