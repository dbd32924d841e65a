// `qdq sensitivity [DIR]` and `qdq tune [DIR] --max-drop P [--write]` on the terminal: flags, progress, tables.
import * as fs from 'fs';
import * as path from 'path';
import { asQdqError, CancelToken, QdqError } from './errors';
import { ProgressPrinter } from './cli';
import { PipelineProgress } from './run';

type PipelineProgressLike = { step: string; done: number; total: number | null; message: string };
import { runSensitivity, formatSensitivity } from './sensitivity';
import { runTune, formatTune } from './tune';
import { SENSITIVITY_USAGE } from '../common/commandLine';

interface Flags {
  dir?: string;
  python?: string;
  maxDrop?: string;
  write: boolean;
  verbose: boolean;
  nproc?: number;
}

function parse(cmd: 'sensitivity' | 'tune', argv: string[]): Flags | string {
  const flags: Flags = { write: false, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : undefined);
    if (a === '--python') flags.python = value();
    else if (a === '--max-drop' && cmd === 'tune') flags.maxDrop = value();
    else if (a === '--write' && cmd === 'tune') flags.write = true;
    else if (a === '--nproc') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) return '--nproc needs a whole number of processes (1 or more)';
      flags.nproc = n;
    } else if (a === '--verbose' || a === '-v') flags.verbose = true;
    else if (a.startsWith('-')) return `unknown flag ${a}`;
    else if (flags.dir === undefined) flags.dir = a;
    else return `unexpected argument ${a}`;
    if ((a === '--python' || a === '--max-drop' || a === '--nproc') && argv[i] === a) return `${a} needs a value`;
  }
  return flags;
}

export async function runSensitivityCommand(
  cmd: 'sensitivity' | 'tune',
  argv: string[],
  io: { out: (s: string) => void; err: { write(s: string): boolean; isTTY?: boolean } } = {
    out: (s) => process.stdout.write(s),
    err: process.stderr,
  },
): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(`usage: ${SENSITIVITY_USAGE[cmd].usage}\n`);
    return 0;
  }
  const flags = parse(cmd, argv);
  if (typeof flags === 'string') {
    io.err.write(`qdq ${cmd}: ${flags}\nusage: ${SENSITIVITY_USAGE[cmd].usage}\n`);
    return 2;
  }
  const projectDir = path.resolve(flags.dir ?? '.');
  if (!fs.existsSync(path.join(projectDir, 'pyproject.toml'))) {
    io.err.write(
      `qdq ${cmd}: ${projectDir} has no pyproject.toml\n  hint: pass a project folder with a [tool.qdq] table, e.g. examples/digits-mobilenet\n`,
    );
    return 1;
  }
  const cancel = new CancelToken();
  const onSigint = () => {
    io.err.write('\ncancelling...\n');
    cancel.cancel();
  };
  process.on('SIGINT', onSigint);
  const progress = new ProgressPrinter(io.err as NodeJS.WriteStream);
  const onProgress = (p: PipelineProgressLike) => progress.update(p as PipelineProgress);
  const opts = {
    projectDir,
    python: flags.python,
    nproc: flags.nproc,
    onLog: flags.verbose ? (l: string) => io.err.write(`[backend] ${l}\n`) : undefined,
  };
  try {
    if (cmd === 'sensitivity') {
      const { result, path: out, notes } = await runSensitivity(opts, onProgress, cancel);
      progress.finishStep();
      io.out(`${formatSensitivity(result)}\n`);
      for (const n of notes) io.out(`note: ${n}\n`);
      io.out(`\nsensitivity: ${out}\n`);
    } else {
      const r = await runTune({ ...opts, maxDrop: flags.maxDrop, write: flags.write }, onProgress, cancel);
      progress.finishStep();
      io.out(`${formatTune(r.report)}\n`);
      for (const n of r.notes) io.out(`note: ${n}\n`);
      io.out(`\ntune: ${r.path}\n`);
    }
    return 0;
  } catch (e) {
    progress.finishStep();
    const err: QdqError = asQdqError(e);
    if (err.kind === 'cancelled') {
      io.err.write(`qdq ${cmd}: cancelled\n`);
      return 1;
    }
    io.err.write(`qdq ${cmd}: ${err.message}\n`);
    if (err.detail && (flags.verbose || ['user_code', 'import', 'backend_died'].includes(err.kind)))
      io.err.write(
        err.detail
          .split('\n')
          .slice(-15)
          .map((l) => `  | ${l}`)
          .join('\n') + '\n',
      );
    if (err.hint) io.err.write(`  hint: ${err.hint}\n`);
    return err.kind === 'internal' ? 2 : 1;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
