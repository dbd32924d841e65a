// Pathological inputs for the analysis (issue 14 D2): shapes whose syntax trees are as deep as the file is long
// (operator chains, nested calls) or whose single line is the whole file. `npm run bench` times the analysis of
// each against the bare parse of the same text; test/analysis/deepTrees.test.ts checks that the cost grows
// linearly with the size.
import { median, interleaved, progress, TargetCheck } from './stats';

export interface Shape {
  name: string;
  /** The file with `n` terms (operands, nesting levels, list items). */
  make(n: number): string;
}

const CLASS_HEAD = 'import torch\nimport torch.nn as nn\n\n\nclass M(nn.Module):\n    def forward(self, a0, a1):\n';

/** Operand names that vary (a plain `x + x + ...` would look like nothing to the residual-add logic). */
const term = (i: number) => (i % 3 === 0 ? 'a0' : i % 3 === 1 ? 'self.proj(a1)' : `a${i % 2}`);

export const SHAPES: Shape[] = [
  {
    name: '`+` chain in forward()',
    make: (n) =>
      CLASS_HEAD + '        x = ' + Array.from({ length: n }, (_, i) => term(i)).join(' + ') + '\n        return x\n',
  },
  {
    name: '`@` chain over lines',
    make: (n) =>
      CLASS_HEAD +
      '        x = (\n' +
      Array.from({ length: n }, (_, i) => `            ${i ? '@ ' : ''}${term(i)}\n`).join('') +
      '        )\n        return x\n',
  },
  {
    name: 'nested calls (torch.cumsum)',
    make: (n) => 'import torch\n\nx = ' + 'torch.cumsum('.repeat(n) + 'y' + ', 1)'.repeat(n) + '\n',
  },
  {
    name: 'nested calls (f)',
    make: (n) => 'x = ' + 'f('.repeat(n) + 'y' + ')'.repeat(n) + '\n',
  },
  {
    name: 'one long line',
    make: (n) =>
      'import torch\nx = [' +
      Array.from(
        { length: n },
        (_, i) => `torch.ones(${i}) @ w | (m < ${i}) if k.cumsum(0)[${i}] else F.relu(v + ${i})`,
      ).join(', ') +
      ']\n',
  },
];

/** How many terms make `chars` characters of a shape (its text grows linearly with the terms). */
export function termsFor(shape: Shape, chars: number): number {
  const per = (shape.make(200).length - shape.make(100).length) / 100;
  return Math.max(1, Math.round(chars / per));
}

interface Engine {
  parsePython(text: string): unknown;
  analyse(text: string): unknown;
}

export interface PathologicalResult {
  rows: { shape: string; chars: number; terms: number; parse_ms: number; analysis_ms: number; ratio: number }[];
  /**
   * Per shape: analysis time of the 1 MB file over that of the 64 KB file (16 for a linear cost), and its ratio to
   * the parse at 1 MB over that at 64 KB (1 for a cost as linear as the parse's). The second is the one checked:
   * each ratio is measured side by side, where the two sizes are timed minutes apart on a shared machine.
   */
  growth: { shape: string; ratio_1mb_to_64kb: number; parse_ratio_growth: number }[];
}

/**
 * Each shape at 64 KB and at 1 MB: bare parse vs parse + model index + rules, interleaved, medians.
 * Target: the analysis stays within 10x the parse for every shape, and grows at most 2x faster than the text.
 */
export async function benchPathological(engine: Engine, checks: TargetCheck[]): Promise<PathologicalResult> {
  const rows: PathologicalResult['rows'] = [];
  const growth: PathologicalResult['growth'] = [];
  for (const shape of SHAPES) {
    const at: Record<number, number> = {};
    const ratioAt: Record<number, number> = {};
    for (const chars of [64 * 1024, 1024 * 1024]) {
      const terms = termsFor(shape, chars);
      const text = shape.make(terms);
      progress(`language server: pathological ${shape.name}, ${(text.length / 1024).toFixed(0)} KiB`);
      const big = chars > 100000;
      const s = await interleaved(
        { parse: () => engine.parsePython(text), full: () => engine.analyse(text) },
        { rounds: big ? 3 : 5, perRound: 1, warmup: 1 },
      );
      const row = {
        shape: shape.name,
        chars: text.length,
        terms,
        parse_ms: median(s.parse),
        analysis_ms: median(s.full),
        ratio: median(s.full) / median(s.parse),
      };
      rows.push(row);
      at[chars] = row.analysis_ms;
      ratioAt[chars] = row.ratio;
    }
    growth.push({
      shape: shape.name,
      ratio_1mb_to_64kb: at[1024 * 1024] / at[64 * 1024],
      parse_ratio_growth: ratioAt[1024 * 1024] / ratioAt[64 * 1024],
    });
  }
  const worst = rows.reduce((a, b) => (b.ratio > a.ratio ? b : a));
  checks.push({
    section: 'language server',
    target: 'pathological files (chains, nesting, a 1 MB line): analysis <= 10x bare parse',
    value: `${worst.ratio.toFixed(2)}x (${worst.shape}, ${(worst.chars / 1024).toFixed(0)} KiB)`,
    met: worst.ratio <= 10,
  });
  const steepest = growth.reduce((a, b) => (b.parse_ratio_growth > a.parse_ratio_growth ? b : a));
  checks.push({
    section: 'language server',
    target: 'pathological files: the ratio to the parse at 1 MB <= 2x that at 64 KB (1x is as linear as the parse)',
    value: `${steepest.parse_ratio_growth.toFixed(2)}x (${steepest.shape}; analysis 1 MB / 64 KB ${steepest.ratio_1mb_to_64kb.toFixed(1)}x)`,
    met: steepest.parse_ratio_growth <= 2,
  });
  return { rows, growth };
}

/** `node out/bench/pathological.js`: this section alone, as a table (the engine loaded as the bench loads it). */
async function main(): Promise<void> {
  const root = require('path').join(__dirname, '..', 'server', 'src');
  const { parsePython, buildModelIndex } = require(root + '/analysis/index.js');
  const { runRules } = require(root + '/rules/index.js');
  const analyse = (text: string) => {
    const tree = parsePython(text);
    return runRules(buildModelIndex(tree, text), tree, text, {});
  };
  const checks: TargetCheck[] = [];
  const r = await benchPathological({ parsePython, analyse }, checks);
  for (const row of r.rows)
    console.log(
      `${row.shape.padEnd(30)} ${String(Math.round(row.chars / 1024)).padStart(5)} KiB  parse ${row.parse_ms.toFixed(1).padStart(7)} ms  analysis ${row.analysis_ms.toFixed(1).padStart(8)} ms  ${row.ratio.toFixed(2).padStart(6)}x`,
    );
  for (const g of r.growth)
    console.log(
      `${g.shape.padEnd(30)} 1 MB / 64 KB: analysis ${g.ratio_1mb_to_64kb.toFixed(1)}x, ratio to the parse ${g.parse_ratio_growth.toFixed(2)}x`,
    );
  for (const c of checks) console.log(`${c.met ? 'yes' : 'NO '}  ${c.target}: ${c.value}`);
}

if (require.main === module) void main();
