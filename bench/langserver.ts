// Section a: the language server's analysis cost against the bare tree-sitter parse of the same large files
// (torchvision's and torch.nn's own sources), one-keystroke re-analysis, and ruff as the reference linter.
import * as fs from 'fs';
import * as path from 'path';
import { median, nowMs, interleaved, progress, Skip, TargetCheck } from './stats';
import { benchPathological, type PathologicalResult } from './pathological';

interface Engine {
  parsePython(text: string, previous?: { tree: any; edit?: any }): any;
  buildModelIndex(tree: any, text: string, previous?: any): any;
  editFor(oldText: string, range: any, newText: string, lines?: any): any;
  LineIndex: new (text: string) => { positionAt(offset: number): { line: number; character: number } };
  runRules(index: any, tree: any, text: string, opts: { trtVersion?: string }): unknown[];
  /** Why the rules could not be loaded; the figures then cover parse + model index only. */
  rulesMissing?: string;
}

// Loaded at run time so the bench still builds and reports the other sections while a part is missing.
function loadEngine(): Engine {
  const root = path.join(__dirname, '..', 'server', 'src');
  let analysis: any;
  let rules: any;
  try {
    analysis = require(path.join(root, 'analysis', 'index.js'));
  } catch (e) {
    throw new Skip(`server/src/analysis is not built or fails to load (${(e as Error).message.split('\n')[0]})`);
  }
  let rulesMissing: string | undefined;
  try {
    rules = require(path.join(root, 'rules', 'index.js'));
    if (typeof rules.runRules !== 'function') rulesMissing = 'server/src/rules exports no runRules';
  } catch (e) {
    rulesMissing = `server/src/rules is not built or fails to load (${(e as Error).message.split('\n')[0]})`;
  }
  for (const name of ['parsePython', 'buildModelIndex', 'editFor', 'LineIndex']) {
    if (typeof analysis[name] !== 'function')
      throw new Skip(`the analysis API has no ${name} (docs/DESIGN.md "Engine APIs")`);
  }
  const runRules = rulesMissing ? () => [] : rules.runRules;
  return { ...analysis, runRules, rulesMissing };
}

const TORCH_DIRS = ['/usr/lib/python3/dist-packages'];

/** torchvision/models/*.py then torch/nn/modules/*.py, from the Debian install (the sources the issue names). */
export function corpusFiles(): string[] {
  for (const base of TORCH_DIRS) {
    const dirs = [path.join(base, 'torchvision', 'models'), path.join(base, 'torch', 'nn', 'modules')];
    if (!dirs.every((d) => fs.existsSync(d))) continue;
    return dirs.flatMap((d) =>
      fs
        .readdirSync(d)
        .filter((f) => f.endsWith('.py'))
        .sort()
        .map((f) => path.join(d, f)),
    );
  }
  throw new Skip(
    `torchvision and torch sources not found under ${TORCH_DIRS.join(', ')} (apt install python3-torchvision)`,
  );
}

/** Whole files concatenated until at least `lines` lines: one large, valid Python file. */
export function concatenated(files: string[], lines: number): string {
  const parts: string[] = [];
  let count = 0;
  for (const f of files) {
    if (count >= lines) break;
    const text = fs.readFileSync(f, 'utf8');
    parts.push(text.endsWith('\n') ? text : text + '\n');
    count += text.split('\n').length;
  }
  return parts.join('');
}

export interface LangServerResult {
  big_file: {
    lines: number;
    chars: number;
    parse_ms: number;
    full_analysis_ms: number;
    index_ms: number;
    rules_ms: number;
    ratio_full_to_parse: number;
    diagnostics: number;
    ruff_ms: number | null;
    ruff_diagnostics: number | null;
  };
  keystroke: {
    lines: number;
    median_ms: number;
    p90_ms: number;
    samples: number;
    parse_ms: number;
    analysis_ms: number;
  };
  typing: LangServerResult['keystroke'];
  all_files: {
    files: number;
    lines: number;
    parse_ms: number;
    full_analysis_ms: number;
    ratio_full_to_parse: number;
    ruff_ms: number | null;
  };
  ruff: { version: string } | { skipped: string };
  rules_missing?: string;
  pathological: PathologicalResult;
}

function loadRuff(): { check(text: string): unknown[]; version: string } | string {
  try {
    const ruff = require('@astral-sh/ruff-wasm-nodejs');
    const ws = new ruff.Workspace(ruff.Workspace.defaultSettings(), ruff.PositionEncoding.Utf16);
    return { check: (t: string) => ws.check(t), version: ruff.Workspace.version() };
  } catch (e) {
    return `@astral-sh/ruff-wasm-nodejs failed to load: ${(e as Error).message.split('\n')[0]}`;
  }
}

export async function benchLanguageServer(checks: TargetCheck[]): Promise<LangServerResult> {
  const engine = loadEngine();
  const files = corpusFiles();
  const big = concatenated(files, 5000);
  const bigLines = big.split('\n').length;
  const ruff = loadRuff();
  if (engine.rulesMissing)
    progress(`language server: WARNING ${engine.rulesMissing}; measuring parse + model index only`);
  progress(`language server: ${bigLines}-line file from ${files.length} torchvision/torch.nn sources`);

  const parse = (t: string) => engine.parsePython(t);
  const full = (t: string) => {
    const tree = engine.parsePython(t);
    const index = engine.buildModelIndex(tree, t);
    return engine.runRules(index, tree, t, {});
  };
  const diagnostics = full(big).length;
  const variants: Record<string, () => unknown> = { parse: () => parse(big), full: () => full(big) };
  if (typeof ruff !== 'string') variants.ruff = () => ruff.check(big);
  // 20 short rounds in turn: the shared machine's bursts hit parse and full analysis alike, and 60 samples of
  // each keep one lucky run of fast parses from moving the median of the parse alone.
  const s = await interleaved(variants, { rounds: 20, perRound: 3, warmup: 2 });

  // Where the time goes: index and rules separately on one already parsed tree.
  const tree = engine.parsePython(big);
  const split = await interleaved(
    {
      index: () => engine.buildModelIndex(tree, big),
      rules: (() => {
        const idx = engine.buildModelIndex(tree, big);
        return () => engine.runRules(idx, tree, big, {});
      })(),
    },
    { rounds: 3, perRound: 4, warmup: 1 },
  );

  const bigResult = {
    lines: bigLines,
    chars: big.length,
    parse_ms: median(s.parse),
    full_analysis_ms: median(s.full),
    index_ms: median(split.index),
    rules_ms: median(split.rules),
    ratio_full_to_parse: median(s.full) / median(s.parse),
    diagnostics,
    ruff_ms: s.ruff ? median(s.ruff) : null,
    ruff_diagnostics: typeof ruff !== 'string' ? ruff.check(big).length : null,
  };

  progress('language server: one-keystroke re-analysis');
  const typing = measureTyping(engine, big);
  const keystroke = measureKeystrokes(engine, big);

  progress(`language server: all ${files.length} files one by one`);
  const texts = files.map((f) => fs.readFileSync(f, 'utf8'));
  const allVariants: Record<string, () => unknown> = {
    parse: () => texts.forEach(parse),
    full: () => texts.forEach(full),
  };
  if (typeof ruff !== 'string') allVariants.ruff = () => texts.forEach((t) => ruff.check(t));
  // 9 rounds: one round is ~0.6 s, long enough for a burst on the shared machine to hit one variant only.
  const a = await interleaved(allVariants, { rounds: 9, perRound: 1, warmup: 1 });
  const allResult = {
    files: files.length,
    lines: texts.reduce((n, t) => n + t.split('\n').length, 0),
    parse_ms: median(a.parse),
    full_analysis_ms: median(a.full),
    ratio_full_to_parse: median(a.full) / median(a.parse),
    ruff_ms: a.ruff ? median(a.ruff) : null,
  };

  // Without the rules the figures are not the full analysis: reported, but no verdict.
  const verdict = (ok: boolean) => (engine.rulesMissing ? null : ok);
  const note = engine.rulesMissing ? `rules missing, parse + index only: ${engine.rulesMissing}` : undefined;
  checks.push({
    section: 'language server',
    target: `full analysis <= 3x bare parse (${bigLines}-line file)`,
    value: `${bigResult.ratio_full_to_parse.toFixed(2)}x`,
    met: verdict(bigResult.ratio_full_to_parse <= 3),
    note,
  });
  checks.push({
    section: 'language server',
    target: `full analysis <= 3x bare parse (all ${files.length} files)`,
    value: `${allResult.ratio_full_to_parse.toFixed(2)}x`,
    met: verdict(allResult.ratio_full_to_parse <= 3),
    note,
  });
  checks.push({
    section: 'language server',
    target: `one-keystroke diagnostics < 5 ms median (${typing.lines} lines, typing a new statement)`,
    value: `${typing.median_ms.toFixed(2)} ms`,
    met: verdict(typing.median_ms < 5),
    note,
  });
  checks.push({
    section: 'language server',
    target: `one-keystroke diagnostics < 5 ms median (${keystroke.lines} lines, worst case: start of a block's first statement)`,
    value: `${keystroke.median_ms.toFixed(2)} ms`,
    met: verdict(keystroke.median_ms < 5),
    note,
  });
  const pathological = await benchPathological({ parsePython: parse, analyse: full }, checks);
  return {
    big_file: bigResult,
    typing,
    keystroke,
    all_files: allResult,
    pathological,
    ruff: typeof ruff === 'string' ? { skipped: ruff } : { version: ruff.version },
    rules_missing: engine.rulesMissing,
  };
}

type KeystrokeResult = LangServerResult['keystroke'];

/** Rounds of the keystroke script, from the original text each time: the samples of all rounds make the median. */
const KEYSTROKE_ROUNDS = 3;

/** One keystroke at a time: `edits` yields [offset, deleted length, inserted text] against the current text. */
function timeKeystrokes(
  engine: Engine,
  text: string,
  edits: (current: string) => [number, number, string][],
): KeystrokeResult {
  const parseTimes: number[] = [];
  const totals: number[] = [];
  for (let round = 0; round < KEYSTROKE_ROUNDS; round++) timeKeystrokeRound(engine, text, edits, parseTimes, totals);
  const sorted = [...totals].sort((a, b) => a - b);
  return {
    lines: text.split('\n').length,
    median_ms: median(totals),
    p90_ms: sorted[Math.floor(sorted.length * 0.9)],
    samples: totals.length,
    parse_ms: median(parseTimes),
    analysis_ms: median(totals) - median(parseTimes),
  };
}

function timeKeystrokeRound(
  engine: Engine,
  text: string,
  edits: (current: string) => [number, number, string][],
  parseTimes: number[],
  totals: number[],
): void {
  let current = text;
  let tree = engine.parsePython(current);
  // The server keeps the previous index and hands it to buildModelIndex, which reuses unchanged statements.
  let index = engine.buildModelIndex(tree, current);
  engine.runRules(index, tree, current, {});
  const script = edits(current);
  for (let k = 0; k < script.length; k++) {
    const [offset, deleted, newText] = script[k];
    const lines = new engine.LineIndex(current);
    const range = { start: lines.positionAt(offset), end: lines.positionAt(offset + deleted) };
    const edit = engine.editFor(current, range, newText, lines);
    const next = current.slice(0, offset) + newText + current.slice(offset + deleted);
    const t0 = nowMs();
    tree = engine.parsePython(next, { tree, edit });
    const t1 = nowMs();
    index = engine.buildModelIndex(tree, next, index);
    engine.runRules(index, tree, next, {});
    const t2 = nowMs();
    current = next;
    if (k >= 10) {
      // the first keystrokes warm the JIT up
      parseTimes.push(t1 - t0);
      totals.push(t2 - t0);
    }
  }
}

function middleForwardBody(text: string): { statementStart: number; lineEnd: number; indent: string } {
  const forwards = [...text.matchAll(/\n( +)def forward\(self[^\n]*\n(\1 +)/g)];
  if (!forwards.length) throw new Skip('no forward() method in the corpus to type into');
  const m = forwards[Math.floor(forwards.length / 2)];
  const statementStart = m.index! + m[0].length;
  return { statementStart, lineEnd: text.indexOf('\n', statementStart), indent: m[2] };
}

/**
 * Typing as people type in VS Code: a new statement written character by character at the end of a line in the
 * middle of a `forward` body, with the editor's default auto-closing brackets (typing `(` inserts `()`, typing
 * the `)` then only moves the cursor over it). Each keystroke is an incremental re-parse + model index (reusing
 * the previous one) + rules, what the server does on didChange.
 */
function measureTyping(engine: Engine, text: string): KeystrokeResult {
  const { lineEnd, indent } = middleForwardBody(text);
  const typed = '\n' + indent + 'probe = self.qdq_probe(x) @ x.transpose(-2, -1) + self.bias[0]';
  const closers: Record<string, string> = { '(': ')', '[': ']' };
  return timeKeystrokes(engine, text, () => {
    const script: [number, number, string][] = [];
    let cursor = lineEnd;
    for (const ch of typed) {
      if (ch === ')' || ch === ']') {
        cursor++; // over the auto-inserted closer: no edit
        continue;
      }
      script.push([cursor, 0, closers[ch] ? ch + closers[ch] : ch]);
      cursor++;
    }
    return script;
  });
}

/**
 * The worst place found for tree-sitter: a character typed at the start of the first statement of a block
 * and deleted again. tree-sitter-python's indentation scanner then re-lexes from there to the end of the file.
 */
function measureKeystrokes(engine: Engine, text: string): KeystrokeResult {
  const { statementStart } = middleForwardBody(text);
  return timeKeystrokes(engine, text, () => {
    const script: [number, number, string][] = [];
    for (let k = 0; k < 70; k++) script.push(k % 2 === 0 ? [statementStart, 0, 'x'] : [statementStart, 1, '']);
    return script;
  });
}
