// `qdq` command line: the same engine as the language server, headless.
//   qdq check FILE... [--format json] [--trt-version V]   exit 1 when an error-severity diagnostic is found
//   qdq quantize|unquantize|fix FILE [--write]              new source on stdout, or written atomically
//   qdq calibrate|export|run [DIR] [...]                    the pipeline (server/src/pipeline/cli.ts)
import * as fs from 'fs';
import * as path from 'path';
import { parsePython, buildModelIndex } from '../analysis';
import { DEFAULT_TRT_VERSION, runRules } from '../rules';
import { quantizeFile, unquantizeFile, applyTrtFixes } from '../fixes';
import { floatWeightedLayers } from '../fixes/floatLayers';
import { importedWeightedLayers } from '../fixes/importedLayers';
import {
  CLI_COMMANDS,
  PIPELINE_COMMANDS,
  PipelineCommand,
  SourceCommand,
  UsageError,
  parseCommandLine,
  usage,
} from './flags';
import { InputError, ModelSource, resolveSource } from './source';
import { FileWriteError, writeInPlace, writeNewFile } from '../common/files';
import { HELPER_FILE, helperTemplatePath } from '../common/paths';

export { HELPER_FILE, helperTemplatePath };
import { quantizeLibraryModule, registerLibraryModules } from './libraryModules';

// `--module M`: installed library modules resolve through the interpreter (server/src/library).
registerLibraryModules();

/** Where the CLI writes; tests and embedders can capture it. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  cwd: string;
}

const processIO: CliIO = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  cwd: process.cwd(),
};

export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      io.out(usage(rest[0]) + '\n');
      return command === undefined ? 2 : 0;
    }
    if (command === '--version' || command === 'version') {
      io.out(`qdq ${packageVersion()}\n`);
      return 0;
    }
    if (command === 'qat') return await (await import('../pipeline/qat')).runQatCommand(rest); // docs/qat.md
    if (command === 'sensitivity' || command === 'tune')
      return await (await import('../pipeline/sensitivityCli')).runSensitivityCommand(command, rest);
    if (!(command in CLI_COMMANDS)) throw new UsageError(`unknown command "${command}"`);
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(usage(command) + '\n');
      return 0;
    }
    if ((PIPELINE_COMMANDS as readonly string[]).includes(command))
      return await runPipeline(command as PipelineCommand, rest);
    switch (command as SourceCommand) {
      case 'check':
        return await check(rest, io);
      case 'quantize':
      case 'unquantize':
      case 'fix':
        return await rewrite(command as 'quantize' | 'unquantize' | 'fix', rest, io);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`qdq: ${err.message}\n\n${usage(err.command)}\n`);
      return 2;
    }
    if (err instanceof InputError || err instanceof FileWriteError) {
      io.err(`qdq: ${err.message}\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException;
    if (e && typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) {
      // File system failures (permissions, full disk, ...): say which file and why, no stack trace.
      io.err(`qdq: ${e.message}\n`);
      return 2;
    }
    io.err(
      `qdq: internal error: ${e && e.message ? e.message : String(err)}\n(please report it with the file that caused it)\n`,
    );
    return 3;
  }
  return 2;
}

function packageVersion(): string {
  try {
    return JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', '..', '..', 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

async function runPipeline(command: PipelineCommand, argv: string[]): Promise<number> {
  // Loaded on demand: `qdq check` must not pay for the pipeline's imports (onnxruntime, protobuf).
  const pipelineCli = (await import('../pipeline/cli')) as {
    runPipelineCommand(cmd: string, argv: string[]): Promise<number>;
  };
  return pipelineCli.runPipelineCommand(command, argv);
}

interface CheckedDiagnostic {
  code: string;
  severity: string;
  message: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  fix?: { title: string; safety: string };
}

async function check(argv: string[], io: CliIO): Promise<number> {
  const { files, flags } = parseCommandLine('check', argv);
  const trtVersion = flags['trt-version'] ?? DEFAULT_TRT_VERSION;
  // Read every file first, so a typo in the last argument fails before any output.
  const sources: ModelSource[] = [];
  for (const f of files) sources.push(await resolveSource({ file: f }, io.cwd));
  if (flags.module !== undefined)
    sources.push(await resolveSource({ module: flags.module, python: flags.python } as { module: string }, io.cwd));
  const report: { file: string; diagnostics: CheckedDiagnostic[] }[] = [];
  let errors = 0;
  let total = 0;
  for (const src of sources) {
    if (!src.validUtf8)
      io.err(`qdq: warning: ${src.display} is not valid UTF-8; undecodable bytes were read as U+FFFD\n`);
    const tree = parsePython(src.text);
    const index = buildModelIndex(tree, src.text);
    const found = runRules(index, tree, src.text, { trtVersion });
    const diagnostics = found
      .map((d) => ({
        code: d.code,
        severity: String(d.severity),
        message: d.message,
        line: d.range.start.line + 1,
        column: d.range.start.character + 1,
        endLine: d.range.end.line + 1,
        endColumn: d.range.end.character + 1,
        ...(d.fix ? { fix: { title: d.fix.title, safety: d.fix.safety } } : {}),
      }))
      .sort((a, b) => a.line - b.line || a.column - b.column);
    errors += diagnostics.filter((d) => d.severity === 'error').length;
    total += diagnostics.length;
    report.push({ file: src.display, diagnostics });
  }
  if (flags.format === 'json') {
    io.out(JSON.stringify({ trtVersion, files: report, errors }, null, 2) + '\n');
  } else {
    for (const r of report)
      for (const d of r.diagnostics)
        io.out(
          `${r.file}:${d.line}:${d.column}: ${d.severity} ${d.code} ${d.message}${d.fix ? ` [fix: ${d.fix.title}]` : ''}\n`,
        );
    io.err(
      `qdq: ${total} problem${total === 1 ? '' : 's'} (${errors} error${errors === 1 ? '' : 's'}) in ${report.length} file${report.length === 1 ? '' : 's'}, checked against TensorRT ${trtVersion}\n`,
    );
  }
  return errors > 0 ? 1 : 0;
}

async function rewrite(command: 'quantize' | 'unquantize' | 'fix', argv: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandLine(command, argv);
  const moduleFlags = parsed.flags as { module?: string; python?: string; write: boolean };
  if (command === 'quantize' && moduleFlags.module !== undefined) {
    // A library module: print exactly what [tool.qdq] patch-modules runs; never written (server/src/library).
    const r = await quantizeLibraryModule(
      { module: moduleFlags.module, python: moduleFlags.python, write: moduleFlags.write },
      io.cwd,
    );
    io.out(r.text);
    io.err(`qdq quantize: ${r.summary}\n${r.details.map((d) => `  ${d}\n`).join('')}`);
    return 0;
  }
  const src = await resolveSource({ file: parsed.files[0] }, io.cwd);
  const write = parsed.flags.write;
  if (!src.validUtf8) {
    // Printed or written, the undecodable bytes would come out as U+FFFD: refuse rather than change them.
    throw new InputError(
      `${src.display} is not valid UTF-8, so ${write ? 'writing it back' : 'printing it'} would change bytes qdq cannot read; convert it to UTF-8 first (nothing was written)`,
    );
  }
  refuseSyntaxErrors(src, command);
  let newText: string;
  let helperNeeded = false;
  let summary: string;
  let details: string[] = [];
  if (command === 'quantize') {
    // Layer classes and factories the file imports from modules on disk (timm's Linear, create_conv2d).
    const externalLayers = await importedWeightedLayers(src.path, src.text);
    const r = quantizeFile(src.text, { scope: { kind: 'file' }, externalLayers });
    newText = r.text;
    helperNeeded = r.helperNeeded;
    summary = r.edits.length ? `${r.edits.length} edit${r.edits.length === 1 ? '' : 's'}` : 'nothing left to quantize';
    details = floatWeightedLayers(newText, externalLayers).map(
      (f) => `left in float: line ${f.line} ${f.cls ? f.cls + '.' : ''}${f.attr ?? ''} = ${f.callee}(...): ${f.reason}`,
    );
  } else if (command === 'unquantize') {
    const r = unquantizeFile(src.text);
    newText = r.text;
    summary = r.edits.length ? `${r.edits.length} edit${r.edits.length === 1 ? '' : 's'}` : 'no quantizers to remove';
  } else {
    const r = applyTrtFixes(src.text, { trtVersion: (parsed.flags as { 'trt-version'?: string })['trt-version'] });
    newText = r.text;
    summary = r.applied.length
      ? `applied ${r.applied.length} fix${r.applied.length === 1 ? '' : 'es'}`
      : 'no safe TensorRT fix applies';
    details = r.applied;
  }
  if (!write) {
    io.out(newText);
    io.err(
      `qdq ${command}: ${summary} (not written; add --write to change ${src.display})\n${details.map((d) => `  ${d}\n`).join('')}`,
    );
    return 0;
  }
  if (newText !== src.text) writeInPlace(src.path, newText, src.display);
  let helperNote = '';
  if (helperNeeded) {
    const helper = path.join(path.dirname(src.path), HELPER_FILE);
    if (!fs.existsSync(helper)) {
      writeNewFile(helper, fs.readFileSync(helperTemplatePath(), 'utf8'));
      helperNote = `; added ${path.relative(io.cwd, helper) || helper}`;
    }
  }
  io.err(
    `qdq ${command}: ${summary}${newText !== src.text ? `; wrote ${src.display}` : ''}${helperNote}\n${details.map((d) => `  ${d}\n`).join('')}`,
  );
  return 0;
}

/** A file that does not parse is never rewritten: say where it breaks instead of "nothing left to quantize". */
function refuseSyntaxErrors(src: ModelSource, command: string): void {
  const root = parsePython(src.text).rootNode;
  if (!root.hasError) return;
  // The innermost ERROR (or missing) node on the path of the first error: tree-sitter's recovery makes the
  // outer ones span from the top of the file, the inner one brackets where the parse broke.
  let node = root;
  let broken = root;
  for (;;) {
    const next = node.children.find((c) => c.hasError || c.isMissing || c.type === 'ERROR');
    if (!next) break;
    node = next;
    if (node.type === 'ERROR' || node.isMissing) broken = node;
  }
  const from = broken.startPosition.row + 1;
  const to = broken.endPosition.row + 1;
  const at = from === to ? `${from}:${broken.startPosition.column + 1}` : `${to}`;
  const span = from === to ? '' : ` (the code from line ${from} to ${to} does not parse)`;
  throw new InputError(
    `${src.display}:${at}: syntax error${span}, so qdq did not ${command} it; fix the Python syntax first (nothing was changed)`,
  );
}
