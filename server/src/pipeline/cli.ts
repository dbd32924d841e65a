// `qdq calibrate|export|run [DIR]`: the pipeline on the command line, with progress on stderr and a table
// on stdout. Exit codes: 0 done, 1 the run failed (message + hint printed), 2 a mistake in the command line.
import * as fs from 'fs';
import * as path from 'path';
import { runPipeline, PipelineProgress, PipelineStep, Report } from './run';
import { CancelToken, QdqError, asQdqError } from '../common/errors';
import { ConfigOverrides } from './config';
import { Method, Target } from '../common/knobs';
import { ParsedFlags, UsageError, parseCommandLine, usage } from '../common/commandLine';
import { repoRoot } from '../common/paths';

export type PipelineCommandName = 'calibrate' | 'export' | 'run';

interface Flags {
  dir?: string;
  write: boolean;
  python?: string;
  method?: Method;
  batches?: number;
  target?: Target;
  dynamic: boolean;
  percentile?: number;
  outDir?: string;
  verbose: boolean;
  reuseHistograms: boolean;
}

/** The command line of a pipeline command, parsed by the one command table (server/src/common/commandLine.ts). */
export function parsePipelineArgs(cmd: PipelineCommandName, argv: string[]): Flags {
  const { files, flags } = parseCommandLine(cmd, argv);
  const exportFlags = cmd === 'calibrate' ? undefined : (flags as ParsedFlags<'export'>);
  return {
    dir: files[0],
    write: flags.write,
    python: flags.python,
    method: flags.method,
    batches: flags.batches,
    percentile: flags.percentile,
    outDir: flags['out-dir'],
    verbose: flags.verbose,
    reuseHistograms: flags['reuse-histograms'],
    target: exportFlags?.target,
    dynamic: exportFlags?.dynamic ?? false,
  };
}

/** Progress on stderr: a redrawn bar on a TTY, plain lines otherwise; only for steps that last over a second. */
export class ProgressPrinter {
  private step: string | null = null;
  private stepStart = 0;
  private last: PipelineProgress | null = null;
  private lastPlain = -Infinity;
  private drawn = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly stream: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean; columns?: number },
    private readonly now: () => number = Date.now,
  ) {}

  private get tty(): boolean {
    return !!(this.stream as NodeJS.WriteStream).isTTY;
  }

  update(p: PipelineProgress): void {
    if (p.step !== this.step) {
      this.finishStep();
      this.step = p.step;
      this.stepStart = this.now();
      this.lastPlain = -Infinity;
      // A step with no further progress events still gets its bar once it passes a second.
      this.timer = setInterval(() => this.render(), 250);
      this.timer.unref?.();
    }
    this.last = p;
    this.render();
  }

  private render(): void {
    const p = this.last;
    if (!p || this.now() - this.stepStart < 1000) return;
    const elapsed = ((this.now() - this.stepStart) / 1000).toFixed(0);
    if (this.tty) {
      const width = Math.max(40, Math.min((this.stream as NodeJS.WriteStream).columns ?? 80, 120));
      let bar = '';
      if (p.total) {
        const frac = Math.max(0, Math.min(1, p.done / p.total));
        const n = 20;
        bar = `[${'#'.repeat(Math.round(frac * n))}${'.'.repeat(n - Math.round(frac * n))}] ${p.done}/${p.total} `;
      }
      const line = `${p.step.padEnd(9)} ${bar}${p.message} (${elapsed}s)`;
      this.stream.write(`\r\x1b[2K${line.slice(0, width - 1)}`);
      this.drawn = true;
    } else if (this.now() - this.lastPlain >= 2000) {
      this.lastPlain = this.now();
      const count = p.total ? ` ${p.done}/${p.total}` : '';
      this.stream.write(`${p.step}:${count} ${p.message} (${elapsed}s)\n`);
    }
  }

  finishStep(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.step && this.last && this.now() - this.stepStart >= 1000) {
      const secs = ((this.now() - this.stepStart) / 1000).toFixed(1);
      const line = `${this.step.padEnd(9)} done in ${secs}s: ${this.last.message}`;
      if (this.tty) this.stream.write(`\r\x1b[2K${line}\n`);
      else this.stream.write(`${line}\n`);
    } else if (this.drawn && this.tty) {
      this.stream.write('\r\x1b[2K');
    }
    this.drawn = false;
    this.step = null;
  }
}

const fmt = (v: number | null | undefined, digits = 4) =>
  v === null || v === undefined ? '-' : Number.isInteger(v) ? String(v) : v.toFixed(digits);
const pct = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${(100 * v).toFixed(2)}%`);
const mb = (b: number | undefined) =>
  b === undefined ? '-' : b > 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1e3).toFixed(1)} kB`;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r, i) => {
      const line = r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
      return i === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

/** FP32 and every INT8 form side by side (report.compare), with deltas, the headline and where it was measured. */
function compareTable(c: NonNullable<Report['compare']>): string {
  const rows = [['', 'FP32', ...c.forms.map((f) => `INT8 ${f.name}`)]];
  const add = (label: string, fp32: string, per: (f: (typeof c.forms)[number]) => string) =>
    rows.push([label, fp32, ...c.forms.map(per)]);
  const signed = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}`;
  if (c.fp32.accuracy !== null)
    add('top-1 accuracy', pct(c.fp32.accuracy), (f) =>
      f.accuracy === null ? '-' : `${pct(f.accuracy)} (${signed(f.delta.accuracy ?? 0)})`,
    );
  if (c.forms.some((f) => f.top1_agreement !== null)) add('top-1 agreement', '', (f) => pct(f.top1_agreement));
  add('cosine, pooled', '', (f) => fmt(f.cosine.pooled, 5));
  add('cosine, worst batch', '', (f) => fmt(f.cosine.worst_batch, 5));
  add('cosine, worst sample', '', (f) => fmt(f.cosine.worst_sample, 5));
  add('max |diff|', '', (f) => fmt(f.max_abs_diff));
  add(
    'latency (median ms)',
    fmt(c.fp32.latency_ms, 2),
    (f) => `${fmt(f.latency_ms, 2)} (${fmt(f.delta.latency_ratio, 2)}x)`,
  );
  add('file size', mb(c.fp32.size_bytes), (f) => `${mb(f.size_bytes)} (${fmt(f.delta.size_ratio, 2)}x)`);
  return `${c.headline.text}\n${c.measured_on.text}\n\n${table(rows)}`;
}

export function formatReport(r: Report, cmd: PipelineCommandName): string {
  const out: string[] = [];
  const acts = r.quantizers.filter((q) => q.axis === null || q.axis === undefined).length;
  out.push(`model ${r.model} (${r.model_class ?? '?'}), python ${r.python.path} (torch ${r.python.torch_version})`);
  if (r.quantizers.length)
    out.push(
      `calibration: ${r.method}${r.percentile ? ` ${r.percentile}` : ''}, ${r.batches_seen ?? '-'} batches of ${r.calibration_data_kind ?? '-'} data; ` +
        `${r.quantizers.length} quantizers (${acts} activation, ${r.quantizers.length - acts} weight)`,
    );
  if (cmd !== 'calibrate' && r.qdq_pairs !== null) {
    out.push(
      `export: target ${r.target}, opset ${r.opset}, ${r.exporter ?? '-'} exporter; ${r.qdq_pairs} QDQ pairs; ` +
        `${r.weighted_ops ?? '-'} weighted ops, ${r.unquantized_weighted_ops.length} not DQ-fed`,
    );
  }
  if (r.compare) {
    out.push('', compareTable(r.compare));
  } else if (r.latency_ms || r.dynamic?.latency_ms) {
    const dyn = r.dynamic?.latency_ms ? r.dynamic : undefined;
    const stat = !!r.latency_ms;
    const rows = [['', 'FP32', ...(stat ? [`INT8 (${r.target})`] : []), ...(dyn ? ['INT8 dynamic'] : [])]];
    const add = (label: string, a: string, b: string, c: string) =>
      rows.push([label, a, ...(stat ? [b] : []), ...(dyn ? [c] : [])]);
    if (r.accuracy || dyn?.accuracy)
      add(
        'top-1 accuracy',
        pct(r.accuracy?.fp32 ?? dyn?.accuracy?.fp32),
        pct(r.accuracy?.int8),
        pct(dyn?.accuracy?.int8),
      );
    if (r.top1_agreement !== null || (dyn?.top1_agreement ?? null) !== null)
      add('top-1 agreement', '', pct(r.top1_agreement), pct(dyn?.top1_agreement));
    add('cosine vs FP32 (min)', '', fmt(r.cosine_min, 5), fmt(dyn?.cosine_min, 5));
    add('max |diff|', '', fmt(r.max_abs_diff), fmt(dyn?.max_abs_diff));
    add(
      'latency (median ms)',
      fmt(r.latency_ms?.fp32 ?? dyn?.latency_ms?.fp32, 2),
      fmt(r.latency_ms?.int8, 2),
      fmt(dyn?.latency_ms?.int8, 2),
    );
    add(
      'file size',
      mb(r.size_bytes?.fp32 ?? dyn?.size_bytes?.fp32),
      mb(r.size_bytes?.int8),
      mb(dyn?.size_bytes?.int8),
    );
    out.push('', table(rows));
  }
  if (r.unquantized_weighted_ops.length) {
    out.push('', 'weighted ops not fed by DequantizeLinear:');
    for (const u of r.unquantized_weighted_ops.slice(0, 10)) {
      const site = u.site
        ? ` (${u.site.file ? path.basename(u.site.file) : ''} ${u.site.cls ?? ''}.${u.site.attr ?? ''})`
        : u.module
          ? ` (module ${u.module})`
          : '';
      out.push(`  ${u.op} ${u.node}${site}`);
    }
    if (r.unquantized_weighted_ops.length > 10)
      out.push(`  ... and ${r.unquantized_weighted_ops.length - 10} more (report.json)`);
  }
  if (r.tensorrt_unsupported_ops.length) {
    out.push(
      '',
      `ops TensorRT's ONNX parser does not support: ${r.tensorrt_unsupported_ops.map((o) => `${o.op} x${o.count}`).join(', ')}`,
    );
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

function defaultProjectDir(): string {
  return path.join(repoRoot(), 'examples', 'digits-cnn');
}

export async function runPipelineCommand(
  cmd: PipelineCommandName,
  argv: string[],
  io: { out: (s: string) => void; err: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean } } = {
    out: (s) => process.stdout.write(s),
    err: process.stderr,
  },
): Promise<number> {
  let flags: Flags;
  try {
    flags = parsePipelineArgs(cmd, argv);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err.write(`qdq ${cmd}: ${e.message}\nusage: ${usage(cmd).split('\n')[1].trim()}\n\n${usage(cmd)}\n`);
      return 2;
    }
    throw e;
  }
  const projectDir = path.resolve(flags.dir ?? defaultProjectDir());
  if (!fs.existsSync(path.join(projectDir, 'pyproject.toml'))) {
    io.err.write(
      `qdq ${cmd}: ${projectDir} has no pyproject.toml\n  hint: pass a project folder with a [tool.qdq] table, e.g. examples/digits-cnn\n`,
    );
    return 1;
  }
  const overrides: ConfigOverrides = {
    method: flags.method,
    batches: flags.batches,
    target: flags.target,
    percentile: flags.percentile,
    // Relative to where the command runs, like any path typed on a command line.
    outDir: flags.outDir === undefined ? undefined : path.resolve(flags.outDir),
  };
  const steps: PipelineStep[] =
    cmd === 'calibrate'
      ? ['calibrate']
      : cmd === 'export'
        ? ['calibrate', 'export']
        : ['calibrate', 'export', 'verify'];
  const cancel = new CancelToken();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      io.err.write('\ncancelling (Ctrl-C again to stop at once)...\n');
      cancel.cancel();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  const progress = new ProgressPrinter(io.err);
  try {
    const result = await runPipeline(
      {
        projectDir,
        steps,
        write: flags.write,
        python: flags.python,
        overrides,
        dynamic: cmd === 'run' ? true : flags.dynamic,
        dynamicOnly: cmd === 'export' && flags.dynamic,
        reuseHistograms: flags.reuseHistograms,
        onLog: flags.verbose ? (l) => io.err.write(`[backend] ${l}\n`) : undefined,
      },
      (p) => progress.update(p),
      cancel,
    );
    progress.finishStep();
    io.out(formatReport(result.report, cmd) + '\n');
    io.out(`\nreport: ${result.reportPath}\n`);
    return 0;
  } catch (e) {
    progress.finishStep();
    const err: QdqError = asQdqError(e);
    if (err.kind === 'cancelled') {
      io.err.write(`qdq ${cmd}: cancelled; files from earlier runs are unchanged\n`);
      return 1;
    }
    io.err.write(`qdq ${cmd}: ${err.message}\n`);
    if (err.detail && (flags.verbose || ['user_code', 'import', 'export', 'backend_died'].includes(err.kind))) {
      io.err.write(
        err.detail
          .split('\n')
          .slice(-15)
          .map((l) => `  | ${l}`)
          .join('\n') + '\n',
      );
    }
    if (err.hint) io.err.write(`  hint: ${err.hint}\n`);
    return err.kind === 'internal' ? 2 : 1;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
