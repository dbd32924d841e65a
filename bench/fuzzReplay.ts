// Replays a fuzz run (harness.ts) up to a given edit: `node out/bench/fuzzReplay.js --seed S --until N [--edits M]`.
// The run depends only on the seed and the sources, so the same failure shows at the same edit.
import { runFuzz } from '../test/fuzz/harness';

function arg(name: string, fallback?: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (v === undefined || !Number.isFinite(v)) {
    console.error(`usage: node out/bench/fuzzReplay.js --seed S --until N   (--${name} is missing or not a number)`);
    process.exit(2);
  }
  return v;
}

async function main(): Promise<number> {
  const seed = arg('seed');
  const until = arg('until', Number.MAX_SAFE_INTEGER);
  const r = await runFuzz({ seed, edits: arg('edits', until), until, log: (l) => console.log(l) });
  console.log(JSON.stringify({ ...r, missing: undefined }, null, 2));
  return r.failure ? 1 : 0;
}

main().then((code) => (process.exitCode = code));
