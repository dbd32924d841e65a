// The CI slice of the fuzz harness (harness.ts): one seeded run of a few thousand edits against the real server.
// The long run is in `npm run bench` (bench/fuzz.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz, HEAP_CAP_MB } from './harness';

const SEED = 1414;

test('fuzz slice: 2,500 seeded edits with requests in between keep the server live, its edits parsing, incremental == fresh, memory bounded', async () => {
  const r = await runFuzz({ seed: SEED, edits: 2500, budgetMs: 80000, log: (l) => console.log(l) });
  for (const m of r.missing) console.log(`fuzz: not available here, so not edited: ${m}`);
  assert.equal(
    r.failure,
    undefined,
    r.failure &&
      `${r.failure.message} (seed ${r.failure.seed}, after edit ${r.failure.edit} of ${r.failure.source}; replay: node out/bench/fuzzReplay.js --seed ${r.failure.seed} --until ${r.failure.edit})`,
  );
  assert.ok(r.edits >= 1000, `only ${r.edits} edits in the time budget`);
  assert.ok(r.requests > 100, `only ${r.requests} requests`);
  assert.ok(r.editsChecked > 10, `only ${r.editsChecked} edits from the server applied and parsed`);
  assert.ok(r.comparisons >= 3, `only ${r.comparisons} incremental/fresh comparisons`);
  // The heap is capped at HEAP_CAP_MB (a leak ends the server, reported above); RSS stays near it.
  assert.ok(r.peakRssMb < HEAP_CAP_MB + 300, `server RSS peaked at ${r.peakRssMb.toFixed(0)} MB`);
  console.log(
    `fuzz: ${r.edits} edits (${r.editsPerSecond.toFixed(0)}/s), ${r.requests} requests, ${r.editsChecked} edits checked, ${r.comparisons} comparisons, peak RSS ${r.peakRssMb.toFixed(0)} MB`,
  );
});
