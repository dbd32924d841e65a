// The long fuzz run (test/fuzz/harness.ts): 30,000 seeded edits over real model sources, or 10 minutes, against
// the real server; edits per second and the server's peak RSS. A finding is reported with its seed and edit.
import { progress, TargetCheck } from './stats';
import { runFuzz, type FuzzResult } from '../test/fuzz/harness';

export const FUZZ_SEED = 20260;

export async function benchFuzz(checks: TargetCheck[]): Promise<FuzzResult> {
  const r = await runFuzz({ seed: FUZZ_SEED, edits: 30000, budgetMs: 10 * 60 * 1000, log: progress });
  checks.push({
    section: 'fuzz',
    target: `${r.edits} seeded edits (seed ${r.seed}): server live, its edits parse, incremental == fresh`,
    value: r.failure ? `FAILED at edit ${r.failure.edit}: ${r.failure.message.slice(0, 80)}` : 'no finding',
    met: !r.failure,
  });
  return r;
}
