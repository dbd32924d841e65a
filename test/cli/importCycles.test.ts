// Issue 13: no import cycle between the folders of server/src (cli -> pipeline -> library -> common, never back).
// Walks the compiled JavaScript (static require() and the require() that `await import()` compiles to).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.join(process.cwd(), 'out', 'server', 'src');
const SOURCE = path.join(process.cwd(), 'server', 'src');

/** The unit of layering: the first folder under server/src, or the file itself for files at its top. */
function unitOf(file: string): string | null {
  const rel = path.relative(ROOT, file);
  if (rel.startsWith('..')) return null;
  const parts = rel.split(path.sep);
  if (parts.length > 1) return parts[0];
  const bare = parts[0].replace(/\.js$/, '');
  // `../fixes` is the folder's index.js.
  return fs.existsSync(path.join(ROOT, bare)) && fs.statSync(path.join(ROOT, bare)).isDirectory() ? bare : `${bare}.ts`;
}

function jsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return jsFiles(p);
    // Only files whose source still exists: tsc leaves the output of a moved or deleted file behind.
    const source = path.join(SOURCE, path.relative(ROOT, p)).replace(/\.js$/, '.ts');
    return p.endsWith('.js') && fs.existsSync(source) ? [p] : [];
  });
}

/** unit -> unit -> one example `file -> specifier` that makes the edge. */
function folderGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of jsFiles(ROOT)) {
    const from = unitOf(file)!;
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/require\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g)) {
      const to = unitOf(path.resolve(path.dirname(file), m[1]));
      if (!to || to === from) continue;
      if (!graph.has(from)) graph.set(from, new Map());
      if (!graph.get(from)!.has(to)) graph.get(from)!.set(to, `${path.relative(ROOT, file)} -> ${m[1]}`);
    }
  }
  return graph;
}

/** Strongly connected components with more than one unit (Tarjan). */
function cycles(graph: Map<string, Map<string, string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

test('the compiled server has no import cycle between its folders', () => {
  const graph = folderGraph();
  assert.ok(graph.get('cli')?.has('pipeline'), 'the walk sees the imports (cli uses pipeline)');
  const found = cycles(graph).map((scc) => {
    const edges = scc.flatMap((a) => scc.filter((b) => graph.get(a)?.has(b)).map((b) => graph.get(a)!.get(b)!));
    return `${scc.join(' <-> ')}: ${edges.join('; ')}`;
  });
  assert.deepEqual(found, []);
});

test('the shared layer imports nothing above it', () => {
  const graph = folderGraph();
  assert.deepEqual([...(graph.get('common')?.keys() ?? [])], []);
});
