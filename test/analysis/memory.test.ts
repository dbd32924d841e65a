// D3 (issue 14): re-parsing an open document must not keep every earlier tree alive. Each incremental re-parse
// and re-analysis of one document is repeated N times; after forced GC, the heap in use must not grow with N.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v8 from 'v8';
import * as vm from 'vm';
import { buildModelIndex, parsePython, type ModelIndex } from '../../server/src/analysis';
import { runRules } from '../../server/src/rules';
import { applyEdit, modelSources } from './editing';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Heap in use once garbage is collected (native trees are released by finalizers that run on a later turn). */
async function settledHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc();
    await turn();
  }
  return process.memoryUsage().heapUsed;
}

/** Re-parses and re-analyses `text` `count` times (one character typed, then deleted), keeping the latest only. */
async function reparse(
  text: string,
  count: number,
): Promise<{ tree: ReturnType<typeof parsePython>; index: ModelIndex }> {
  let tree = parsePython(text);
  let index = buildModelIndex(tree, text);
  let cur = text;
  const at = text.lastIndexOf('\n', text.length - 2) + 1;
  for (let i = 0; i < count; i++) {
    const e = i % 2 === 0 ? { start: at, end: at, insert: 'x' } : { start: at, end: at + 1, insert: '' };
    ({ text: cur, tree } = applyEdit(cur, tree, e));
    index = buildModelIndex(tree, cur, index);
    runRules(index, tree, cur); // the rules keep their caches in the document's index
    if (i % 50 === 0) await turn(); // as a server does between messages
  }
  return { tree, index };
}

test('memory retained by one open document does not grow with the number of re-parses (D3)', async () => {
  const source = modelSources().sort((a, b) => b.text.length - a.text.length)[0];
  assert.ok(source, 'a model source to edit');
  // Warm up (parser, caches, JIT), then measure two run lengths: a leak grows with the count.
  await reparse(source.text, 200);
  const base = await settledHeap();
  const short = await reparse(source.text, 200);
  const afterShort = (await settledHeap()) - base;
  const long = await reparse(source.text, 1600);
  const afterLong = (await settledHeap()) - base;
  // Chained trees kept about 60 kB each for this file (1,400 more: some 90 MB); a few MB is noise.
  const allowed = 8e6;
  assert.ok(short.tree && long.tree && short.index && long.index);
  assert.ok(
    afterLong - afterShort < allowed,
    `${source.name}: retained memory grew by ${((afterLong - afterShort) / 1e6).toFixed(1)} MB from 200 to 1,600 ` +
      `re-parses (allowed ${(allowed / 1e6).toFixed(1)} MB)`,
  );
});
