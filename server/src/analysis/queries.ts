// Loads the tree-sitter queries in grammars/model-*.scm once, as one combined Query, so the model index
// is built from a single query pass over the tree.
import * as fs from 'fs';
import * as path from 'path';
import Parser = require('tree-sitter');
import { getPythonLanguage } from './parser';

let combined: Parser.Query | undefined;

/** The repository's grammars/ directory (compiled file lives in out/server/src/analysis). */
export function grammarsDir(): string {
  const candidates = [
    path.resolve(__dirname, '../../../../grammars'), // out/server/src/analysis -> repo/grammars
    path.resolve(__dirname, '../../../grammars'), // server/src/analysis (run from source)
  ];
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'model-calls.scm'))) return dir;
  }
  throw new Error(
    `qdq: cannot find the tree-sitter queries (grammars/model-*.scm) next to ${__dirname}; reinstall qdq or rebuild with "npx tsc -p ."`,
  );
}

export function modelQuerySource(): string {
  const dir = grammarsDir();
  return fs
    .readdirSync(dir)
    .filter((f) => /^model-.*\.scm$/.test(f))
    .sort()
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .join('\n');
}

export function modelQuery(): Parser.Query {
  if (!combined) combined = new Parser.Query(getPythonLanguage(), modelQuerySource());
  return combined;
}
