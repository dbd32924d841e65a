// `npm run bench`: language server, model speed and calibration cost, each figure a median over repeated
// runs, ratios measured side by side in the same run. Prints a table per section and which targets are met,
// and writes bench-results.json (atomically) in the repository root.
import * as os from 'os';
import * as path from 'path';
import { progress, Skip, table, TargetCheck, writeJsonAtomic, fmt } from './stats';
import { benchLanguageServer, LangServerResult } from './langserver';
import { benchModels, ModelsResult } from './models';
import { benchCalibration, CalibrationResult } from './calibration';
import { benchTune, TuneBenchResult } from './tune';
import { benchFuzz } from './fuzz';
import type { FuzzResult } from '../test/fuzz/harness';

interface Section {
  name: string;
  run: (checks: TargetCheck[]) => Promise<unknown>;
  print: (r: any) => string;
}

const sections: Section[] = [
  {
    name: 'language server',
    run: benchLanguageServer,
    print: (r: LangServerResult) => {
      const b = r.big_file;
      const rows: (string | number)[][] = [
        [`bare tree-sitter parse, ${b.lines}-line file`, b.parse_ms, '1.00x'],
        ['full analysis (parse + model index + rules)', b.full_analysis_ms, `${b.ratio_full_to_parse.toFixed(2)}x`],
        ['  of which model index', b.index_ms, ''],
        ['  of which rules', b.rules_ms, ''],
        [
          'one keystroke, typing a new statement: incremental parse + index + rules',
          r.typing.median_ms,
          `p90 ${fmt(r.typing.p90_ms)} ms`,
        ],
        ['  of which incremental parse', r.typing.parse_ms, ''],
        [
          'one keystroke at the start of a block (worst case)',
          r.keystroke.median_ms,
          `p90 ${fmt(r.keystroke.p90_ms)} ms`,
        ],
        ['  of which incremental parse', r.keystroke.parse_ms, ''],
      ];
      if (b.ruff_ms !== null)
        rows.push([
          `ruff check (wasm), same file`,
          b.ruff_ms,
          `${(b.full_analysis_ms / b.ruff_ms).toFixed(2)}x vs qdq`,
        ]);
      const a = r.all_files;
      rows.push([`bare parse, all ${a.files} files (${a.lines} lines)`, a.parse_ms, '1.00x']);
      rows.push(['full analysis, all files', a.full_analysis_ms, `${a.ratio_full_to_parse.toFixed(2)}x`]);
      if (a.ruff_ms !== null) rows.push(['ruff check, all files', a.ruff_ms, '']);
      for (const p of r.pathological.rows) {
        rows.push([
          `bare parse, ${p.shape}, ${(p.chars / 1024).toFixed(0)} KiB (${p.terms} terms)`,
          p.parse_ms,
          '1.00x',
        ]);
        rows.push(['  full analysis, same file', p.analysis_ms, `${p.ratio.toFixed(2)}x`]);
      }
      return (
        table(['what', 'median ms', 'ratio'], rows) +
        `\n(${b.diagnostics} qdq diagnostics, ${b.ruff_diagnostics ?? '-'} ruff diagnostics on the ${b.lines}-line file; ` +
        `ruff ${'version' in r.ruff ? r.ruff.version : r.ruff.skipped})` +
        (r.rules_missing ? `\nWARNING: ${r.rules_missing}; "full analysis" is parse + model index only` : '')
      );
    },
  },
  {
    name: 'model speed',
    run: benchModels,
    print: (r: ModelsResult) => {
      const rows: (string | number)[][] = [];
      for (const m of r.models) {
        for (const [name, v] of Object.entries(m.variants)) {
          if (v.skipped) {
            rows.push([`${m.model}`, name, 'skipped', '', '', '', '', clip(v.skipped, 70)]);
            continue;
          }
          const by = v.latency_ms_by_threads;
          rows.push([
            m.model,
            name,
            v.latency_ms!,
            by ? `${fmt(by['1'])} / ${fmt(by['2'])}` : '',
            `${v.speedup!.toFixed(2)}x`,
            `${(v.size_bytes! / 1024).toFixed(0)} KiB`,
            v.cosine!.toFixed(6),
            v.accuracy != null ? `${(v.accuracy * 100).toFixed(1)}%` : '',
          ]);
        }
      }
      return (
        table(['model', 'variant', 'median ms', 'ms 1 / 2 threads', 'speed-up', 'size', 'cosine', 'top-1'], rows) +
        `\n(onnxruntime-node; median ms: each variant at its faster intra-op thread count, speed-up against FP32 at its faster count; latency input, timed runs per variant: ${r.models.map((m) => `${m.model.split(' ')[0]} [${m.latency_input_shape}] x${m.timed_runs_per_variant}`).join(', ')}; ` +
        `top-1 on the ${r.models.find((m) => m.eval_samples)?.eval_samples ?? 0} held-out digits; python ${r.python})`
      );
    },
  },
  {
    name: 'calibration',
    run: benchCalibration,
    print: (r: CalibrationResult) => {
      const rows = r.models.map((m) => {
        const a = m.amax_from_histogram_ms;
        return [
          `${m.model} (${m.batches} x [${m.batch_shape}], ${m.activation_quantizers} act. quantizers, ${m.rounds} rounds)`,
          m.fp32_forward_ms,
          m.max_ms,
          `${m.max_ratio.toFixed(2)}x`,
          m.histogram_ms,
          `${m.histogram_ratio.toFixed(2)}x`,
          `${fmt(a.entropy.median)} / ${fmt(a.percentile.median)} / ${fmt(a.mse.median)}`,
          fmt(Math.max(a.entropy.max, a.percentile.max, a.mse.max)),
        ];
      });
      return (
        table(
          ['model', 'fp32 ms', 'max ms', 'ratio', 'hist ms', 'ratio', 'amax ms/quantizer ent/pct/mse', 'slowest'],
          rows,
        ) +
        `\n(median over the rounds, the three passes in turn; torch ${r.torch}, ${r.threads} threads, ${r.python}; ` +
        'histogram pass = entropy, percentile and mse, which share it)'
      );
    },
  },
  {
    name: 'mixed precision',
    run: benchTune,
    print: (r: TuneBenchResult) =>
      table(
        ['project', 'max-drop', 'qdq run s', 'qdq tune s', 'ratio', 'evaluations', 'float groups'],
        r.rows.map((x) => [
          x.project,
          x.max_drop,
          x.run_s,
          x.tune_s,
          `${x.ratio.toFixed(2)}x`,
          String(x.evaluations),
          String(x.float_groups),
        ]),
      ) +
      `\n(whole CLI processes on fresh temporary copies of the examples, alternated, median of ${r.rounds} rounds each)`,
  },
  {
    name: 'fuzz',
    run: benchFuzz,
    print: (r: FuzzResult) =>
      table(
        ['edits', 'requests', 'documents', 'edits/s', 'server peak RSS MB', 'edits checked', 'finding'],
        [
          [
            r.edits,
            r.requests,
            r.documents,
            r.editsPerSecond.toFixed(0),
            r.peakRssMb.toFixed(0),
            r.editsChecked,
            r.failure ? `seed ${r.failure.seed}, edit ${r.failure.edit}: ${clip(r.failure.message, 60)}` : 'none',
          ],
        ],
      ) +
      `\n(seed ${r.seed}, ${r.seconds.toFixed(0)} s; server heap capped at the harness's limit; RSS after the first document ${r.rssAfterFirstMb.toFixed(0)} MB, at the end ${r.rssEndMb.toFixed(0)} MB` +
      (r.missing.length ? `; not available: ${r.missing.join('; ')}` : '') +
      ')',
  },
];

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 3)}...` : s;
}

async function main(): Promise<number> {
  const only = process.argv.slice(2);
  const repo = path.resolve(__dirname, '..', '..');
  const checks: TargetCheck[] = [];
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    command: 'npm run bench',
  };
  const started = Date.now();
  for (const s of sections) {
    const key = s.name.replace(/ /g, '_');
    if (only.length && !only.some((o) => key.startsWith(o) || s.name.startsWith(o))) continue;
    progress(`== ${s.name}`);
    console.log(`\n## ${s.name}\n`);
    try {
      const r = await s.run(checks);
      results[key] = r;
      console.log(s.print(r));
    } catch (e) {
      const why = e instanceof Skip ? e.message : `failed: ${(e as Error).stack ?? e}`;
      results[key] = { skipped: why };
      console.log(`SKIPPED: ${why}`);
      checks.push({ section: s.name, target: '(whole section)', value: '-', met: null, note: why.split('\n')[0] });
    }
  }
  results.targets = checks;
  results.seconds = (Date.now() - started) / 1000;
  console.log('\n## targets\n');
  console.log(
    table(
      ['section', 'target', 'measured', 'met'],
      checks.map((c) => [
        c.section,
        c.target,
        c.value,
        c.met === null ? clip(`no verdict: ${c.note ?? ''}`, 90) : c.met ? 'yes' : 'NO',
      ]),
    ),
  );
  const out = path.join(repo, 'bench-results.json');
  writeJsonAtomic(out, results);
  console.log(`\nwrote ${path.relative(process.cwd(), out) || out} in ${results.seconds} s`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
