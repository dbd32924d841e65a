// Shared by the incremental-analysis property tests (test/analysis, test/rules): real model sources, seeded
// random edits, and one edit applied the way the server applies didChange (incremental re-parse).
import * as fs from 'fs';
import * as path from 'path';
import Parser = require('tree-sitter');
import { editFor, LineIndex, parsePython } from '../../server/src/analysis';

const TORCHVISION = '/usr/lib/python3/dist-packages/torchvision/models';

/** The golden quantize inputs, torchvision's model files (Debian's python3-torchvision) and `extra` files that exist. */
export function modelSources(extra: string[] = []): { name: string; text: string }[] {
  const out: { name: string; text: string }[] = [];
  const golden = path.join(process.cwd(), 'test/golden/quantize');
  if (fs.existsSync(golden)) {
    for (const c of fs.readdirSync(golden)) {
      const f = path.join(golden, c, 'input.py');
      if (fs.existsSync(f)) out.push({ name: c, text: fs.readFileSync(f, 'utf8') });
    }
  }
  const files = fs.existsSync(TORCHVISION)
    ? fs
        .readdirSync(TORCHVISION)
        .filter((f) => f.endsWith('.py'))
        .sort()
        .map((f) => path.join(TORCHVISION, f))
    : [];
  for (const f of [...files, ...extra]) {
    if (fs.existsSync(f)) out.push({ name: f, text: fs.readFileSync(f, 'utf8') });
  }
  return out;
}

export interface TextEdit {
  start: number;
  end: number;
  insert: string;
}

/**
 * Deterministic pseudo-random edits: at a random place, delete up to `maxDelete` characters one time in four, and
 * insert one of `inserts` (nothing, one time in `emptyOneIn`).
 */
export function* randomEdits(
  text: string,
  seed: number,
  count: number,
  inserts: string[],
  opts: { maxDelete: number; emptyOneIn: number },
): Generator<TextEdit> {
  let x = seed;
  const rnd = (n: number) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % Math.max(1, n);
  };
  for (let i = 0; i < count; i++) {
    const start = rnd(text.length + 1);
    const del = rnd(4) === 0 ? rnd(opts.maxDelete) : 0;
    yield {
      start,
      end: Math.min(text.length, start + del),
      insert: rnd(opts.emptyOneIn) === 0 ? '' : inserts[rnd(inserts.length)],
    };
  }
}

/**
 * Edits that keep the text's length: one to three characters at a random place replaced by as many of `chars`
 * (overtyping, a quote turned into another). Nothing moves, so reuse by position must still notice the change.
 */
export function* sameLengthEdits(text: string, seed: number, count: number, chars: string): Generator<TextEdit> {
  let x = seed;
  const rnd = (n: number) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % Math.max(1, n);
  };
  for (let i = 0; i < count; i++) {
    const len = 1 + rnd(3);
    const start = rnd(Math.max(1, text.length - len));
    let insert = '';
    for (let k = 0; k < len; k++) insert += chars[rnd(chars.length)];
    yield { start, end: Math.min(text.length, start + len), insert };
  }
}

/** Applies `e` (clamped to the text) to text and tree: the new text and the incrementally re-parsed tree. */
export function applyEdit(
  text: string,
  tree: Parser.Tree,
  e: TextEdit,
): { text: string; tree: Parser.Tree; start: number } {
  const start = Math.min(e.start, text.length);
  const end = Math.min(e.end, text.length);
  const lines = new LineIndex(text);
  const edit = editFor(text, { start: lines.positionAt(start), end: lines.positionAt(end) }, e.insert, lines);
  const next = text.slice(0, start) + e.insert + text.slice(end);
  return { text: next, tree: parsePython(next, { tree, edit }), start };
}
