// The `qdq` command line, described once: each command's arguments and flags (source commands and pipeline
// commands alike), from which come the parser's validation, the typed result, and the help text.
import {
  BATCHES,
  CALIBRATION_METHODS,
  DEFAULT_TRT_VERSION,
  describeRange,
  inRange,
  METHOD,
  OUT_DIR,
  PERCENTILE,
  TARGET,
  TARGETS,
} from './knobs';

type FlagSpec =
  | { type: 'boolean'; description: string }
  | { type: 'string'; value: string; description: string }
  | { type: 'enum'; values: readonly string[]; default?: string; description: string }
  | { type: 'number'; value: string; integer: boolean; check: (n: number) => string | null; description: string };

export interface CommandSpec {
  summary: string;
  /** Name of the positional arguments in the help, with how many are allowed. */
  positional: { name: string; min: number; max: number; tooMany?: (got: string[]) => string };
  flags: Record<string, FlagSpec>;
}

const TRT_VERSION: FlagSpec = {
  type: 'string',
  value: 'V',
  description: `TensorRT version to check against (default ${DEFAULT_TRT_VERSION})`,
};
const WRITE: FlagSpec = {
  type: 'boolean',
  description: 'write the result to FILE (atomically) instead of printing it',
};
// Library models (server/src/library/cliResolver.ts): an installed module instead of FILE, read only.
const MODULE: FlagSpec = {
  type: 'string',
  value: 'M',
  description:
    'an installed Python module (e.g. transformers.models.bert.modeling_bert) instead of FILE; never written',
};
const PYTHON: FlagSpec = {
  type: 'string',
  value: 'P',
  description: 'interpreter that finds --module (default: the pipeline discovery)',
};

// The pipeline on a project folder (server/src/pipeline/cli.ts runs them).
const PYTHON_FOR_PIPELINE: FlagSpec = {
  type: 'string',
  value: 'P',
  description: 'the Python interpreter with torch (default: virtualenv, conda, python3 on PATH)',
};
const PIPELINE_COMMON = {
  python: PYTHON_FOR_PIPELINE,
  method: {
    type: 'enum',
    values: CALIBRATION_METHODS,
    description: `calibration method (default: [tool.qdq] method, else ${METHOD.default})`,
  },
  percentile: {
    type: 'number',
    value: 'P',
    integer: false,
    check: (n) => (inRange(n, PERCENTILE) ? null : `must be a number in ${describeRange(PERCENTILE)}`),
    description: 'percentile for --method percentile',
  },
  batches: {
    type: 'number',
    value: 'N',
    integer: true,
    check: (n) => (Number.isInteger(n) && n >= BATCHES.min && n <= BATCHES.max ? null : 'must be a positive integer'),
    description: `calibration batches (default: [tool.qdq] batches, else ${BATCHES.default})`,
  },
  write: { type: 'boolean', description: 'quantize the model file in place instead of a copy in the out-dir' },
  'out-dir': {
    type: 'string',
    value: 'D',
    description: `output folder (may be outside the project; default: [tool.qdq] out-dir, else ${OUT_DIR.default})`,
  },
  verbose: { type: 'boolean', description: "print the backend's log" },
  'reuse-histograms': {
    type: 'boolean',
    description:
      "amax from the last calibration's saved histograms (another --method without a new pass over the data)",
  },
} as const satisfies Record<string, FlagSpec>;
const EXPORT_FLAGS = {
  target: {
    type: 'enum',
    values: TARGETS,
    description: `runtime the QDQ placement is for (default: [tool.qdq] target, else ${TARGET.default})`,
  },
  dynamic: { type: 'boolean', description: 'also write the dynamic-quantization INT8 model' },
} as const satisfies Record<string, FlagSpec>;
const PROJECT_DIR = {
  name: '[DIR]',
  min: 0,
  max: 1,
  tooMany: (got: string[]) => `one project folder only (got "${got[0]}" and "${got[1]}")`,
};

export const CLI_COMMANDS = {
  check: {
    summary: 'report TensorRT and QDQ problems in model files; exit 1 when one is an error',
    positional: { name: 'FILE...', min: 1, max: Infinity },
    flags: {
      format: { type: 'enum', values: ['text', 'json'], default: 'text', description: 'output format' },
      'trt-version': TRT_VERSION,
      module: MODULE,
      python: PYTHON,
    },
  },
  quantize: {
    summary: 'insert QDQ quantizers into every weighted layer and activation matmul/residual add',
    positional: { name: 'FILE', min: 1, max: 1 },
    flags: { write: WRITE, module: MODULE, python: PYTHON },
  },
  unquantize: {
    summary: 'remove every quantizer qdq inserted (restores the file byte for byte)',
    positional: { name: 'FILE', min: 1, max: 1 },
    flags: { write: WRITE },
  },
  fix: {
    summary: 'apply the safe TensorRT source patches (integer cumsum, ...)',
    positional: { name: 'FILE', min: 1, max: 1 },
    flags: { write: WRITE, 'trt-version': TRT_VERSION },
  },
  calibrate: {
    summary: 'calibrate the project in DIR (a folder with pyproject.toml [tool.qdq]; default examples/digits-cnn)',
    positional: PROJECT_DIR,
    flags: PIPELINE_COMMON,
  },
  export: {
    summary: 'calibrate, then export FP32 and INT8 QDQ ONNX models',
    positional: PROJECT_DIR,
    flags: { ...PIPELINE_COMMON, ...EXPORT_FLAGS },
  },
  run: {
    summary: 'calibrate, export and verify with onnxruntime (FP32 vs INT8: accuracy, cosine, latency, size)',
    positional: PROJECT_DIR,
    flags: { ...PIPELINE_COMMON, ...EXPORT_FLAGS },
  },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof CLI_COMMANDS;
/** Commands handled by the pipeline (server/src/pipeline/cli.ts). */
export const PIPELINE_COMMANDS = ['calibrate', 'export', 'run'] as const;
export type PipelineCommand = (typeof PIPELINE_COMMANDS)[number];
/** Commands that read or rewrite model source files. */
export type SourceCommand = Exclude<CommandName, PipelineCommand>;

type FlagValue<F> = F extends { type: 'boolean' }
  ? boolean
  : F extends { type: 'enum'; values: readonly (infer E)[]; default: string }
    ? E
    : F extends { type: 'enum'; values: readonly (infer E)[] }
      ? E | undefined
      : F extends { type: 'number' }
        ? number | undefined
        : string | undefined;
export type ParsedFlags<C extends CommandName> = {
  -readonly [K in keyof (typeof CLI_COMMANDS)[C]['flags']]: FlagValue<(typeof CLI_COMMANDS)[C]['flags'][K]>;
};

export interface Parsed<C extends CommandName> {
  command: C;
  files: string[];
  flags: ParsedFlags<C>;
}

/** A mistake in the command line: the message names it; usage is printed after it; exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

export function parseCommandLine<C extends CommandName>(command: C, argv: string[]): Parsed<C> {
  const spec: CommandSpec = CLI_COMMANDS[command];
  const flags: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(spec.flags))
    flags[name] = f.type === 'boolean' ? false : f.type === 'enum' ? f.default : undefined;
  const files: string[] = [];
  let onlyPositional = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (onlyPositional || !arg.startsWith('--') || arg === '-') {
      if (!onlyPositional && arg.startsWith('-') && arg !== '-' && arg.length > 1)
        throw new UsageError(`unknown option "${arg}" for "qdq ${command}"`, command);
      files.push(arg);
      continue;
    }
    if (arg === '--') {
      onlyPositional = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const f = spec.flags[name];
    if (!f)
      throw new UsageError(
        `unknown option "--${name}" for "qdq ${command}" (options: ${Object.keys(spec.flags)
          .map((n) => '--' + n)
          .join(', ')})`,
        command,
      );
    if (f.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`, command);
      flags[name] = true;
      continue;
    }
    let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || (eq < 0 && value.startsWith('--')))
      throw new UsageError(`--${name} needs a value${f.type === 'enum' ? ` (${f.values.join(' or ')})` : ''}`, command);
    value = value.trim();
    if (f.type === 'enum' && !f.values.includes(value))
      throw new UsageError(`--${name} must be ${orList(f.values)} (got "${value}")`, command);
    if (name === 'trt-version' && !/^\d+(\.\d+){0,2}$/.test(value))
      throw new UsageError(`--trt-version must look like 8.6 or 10.15, not "${value}"`, command);
    if (f.type === 'number') {
      const n = value === '' ? NaN : Number(value);
      const problem = Number.isFinite(n) ? f.check(n) : f.integer ? 'must be a positive integer' : 'must be a number';
      if (problem) throw new UsageError(`--${name} ${problem} (got "${value}")`, command);
      flags[name] = n;
      continue;
    }
    flags[name] = value;
  }
  const { min, max } = spec.positional;
  if (flags.module !== undefined) {
    // --module M stands for the FILE argument (of quantize), or adds one more source (check).
    if (command !== 'check' && files.length)
      throw new UsageError(`"qdq ${command}" takes FILE or --module M, not both`, command);
    return { command, files, flags: flags as ParsedFlags<C> };
  }
  if (files.length < min) throw new UsageError(`"qdq ${command}" needs ${spec.positional.name}`, command);
  if (files.length > max)
    throw new UsageError(
      spec.positional.tooMany?.(files) ?? `"qdq ${command}" takes one file, got ${files.length}: ${files.join(' ')}`,
      command,
    );
  return { command, files, flags: flags as ParsedFlags<C> };
}

/** Commands with their own flag parsers (server/src/pipeline/sensitivityCli.ts); their usage lines live here. */
export const SENSITIVITY_USAGE = {
  sensitivity: {
    usage: 'qdq sensitivity [DIR] [--nproc N] [--python P] [--verbose]',
    summary:
      'per source layer group: the metric with only it INT8 and with only it in float (<out-dir>/sensitivity.json)',
  },
  tune: {
    usage: 'qdq tune [DIR] [--max-drop P | P%] [--write] [--nproc N] [--python P] [--verbose]',
    summary:
      'the fewest groups kept in float within the accuracy budget, as keep_float lines; all FP32 / mixed / all INT8 table (<out-dir>/tune.json)',
  },
} as const;

export function usage(command?: string): string {
  const lines: string[] = [];
  const cmds = Object.entries(CLI_COMMANDS) as [string, CommandSpec][];
  const describe = (name: string, spec: CommandSpec) => {
    const flagNames = Object.entries(spec.flags).map(([n, f]) =>
      f.type === 'boolean' ? `[--${n}]` : f.type === 'enum' ? `[--${n} ${f.values.join('|')}]` : `[--${n} ${f.value}]`,
    );
    lines.push(`  qdq ${name} ${spec.positional.name} ${flagNames.join(' ')}`.trimEnd());
    lines.push(`      ${spec.summary}`);
    for (const [n, f] of Object.entries(spec.flags))
      lines.push(`      --${n}${f.type === 'string' || f.type === 'number' ? ' ' + f.value : ''}: ${f.description}`);
  };
  const one = cmds.find(([n]) => n === command);
  if (one) {
    lines.push('Usage:');
    describe(one[0], one[1]);
    return lines.join('\n');
  }
  lines.push('qdq: source-level INT8 quantization for PyTorch models', '', 'Usage:');
  for (const [n, s] of cmds) describe(n, s);
  for (const u of Object.values(SENSITIVITY_USAGE)) lines.push(`  ${u.usage}`, `      ${u.summary}`);
  lines.push('  qdq help [COMMAND]', "      this text, or one command's (also: qdq COMMAND --help)");
  lines.push(
    '',
    'FILE is a Python model file. Without --write, quantize/unquantize/fix print the new source.',
    'DIR is a project folder with a pyproject.toml [tool.qdq] table.',
  );
  return lines.join('\n');
}

/** ['a', 'b', 'c'] -> "a, b or c" */
function orList(values: readonly string[]): string {
  return values.length < 2 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`;
}
