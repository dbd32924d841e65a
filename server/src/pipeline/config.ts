// `[tool.qdq]` in pyproject.toml: one schema gives the validation, the messages and the types.
// validateConfigText is pure (text in, diagnostics with ranges out) so the language server can show the
// same messages inside pyproject.toml that the CLI prints.
import * as path from 'path';
import { readRegularFile, readRegularFileSync } from '../common/files';

const MAX_PYPROJECT_BYTES = 1024 * 1024;
import { parse as parseToml, TomlError } from 'smol-toml';

import {
  BATCHES,
  CALIBRATION_METHODS,
  describeRange,
  inRange,
  METHOD,
  Method,
  OPSET,
  OUT_DIR,
  PERCENTILE,
  Target,
  TARGET,
  TARGETS,
} from '../common/knobs';

export type { Method, Target };
export type FloatPrecision = 'fp16' | 'bf16' | 'fp32';

export interface QdqConfig {
  model: string;
  exampleInputs?: string;
  inputShapes?: number[][];
  calibrationData?: string;
  evalData?: string;
  method: Method;
  percentile: number;
  batches: number;
  opset: number;
  outDir: string;
  target: Target;
  /** Whether target was set (in [tool.qdq] or by an override); when not, `qdq run` exports and times both forms. */
  targetGiven?: boolean;
  floatPrecision: FloatPrecision;
  dynamicBatch: boolean;
  /**
   * Installed library modules to quantize in memory. Unset: every installed module that defines a class of the
   * model (found at load). Names prefixed with `!` are excluded from that automatic list; any plain name makes
   * the list exact; `[]` patches nothing.
   */
  patchModules?: string[];
  /** QAT (`qdq qat`, docs/qat.md). */
  trainData?: string;
  trainStep?: string;
  epochs?: number;
  lr?: number;
  learnAmax?: boolean;
  /** `qdq tune`'s budget: absolute points (0.5) or relative to FP32 ("1%"). */
  maxAccuracyDrop?: number | string;
  /** `qdq sensitivity`/`tune`: "file.py:fn", fn(model) -> a number, higher is better; default top-1 or SQNR. */
  metric?: string;
}

/** 0-based line/character (UTF-16), like LSP positions. */
export interface Range {
  start: { line: number; character: number };
  end: { line: number; character: number };
}
export interface ConfigDiagnostic {
  key: string;
  message: string;
  severity: 'error' | 'warning';
  range: Range;
}

type Check = (v: unknown) => string | null;
interface KeySpec {
  key: string;
  field: keyof QdqConfig;
  doc: string;
  check: Check;
  default?: unknown;
}

const SPEC_RE = /^[^:]+\.py:[A-Za-z_][A-Za-z0-9_]*$/;
const spec =
  (example: string): Check =>
  (v) =>
    typeof v === 'string' && SPEC_RE.test(v) ? null : `must be "file.py:function", e.g. "${example}"`;
const oneOf =
  (vals: string[]): Check =>
  (v) =>
    typeof v === 'string' && vals.includes(v) ? null : `must be one of ${vals.map((x) => `"${x}"`).join(', ')}`;
const intIn =
  (lo: number, hi: number): Check =>
  (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi
      ? null
      : `must be an integer from ${lo} to ${hi}`;

export const CONFIG_KEYS: KeySpec[] = [
  {
    key: 'model',
    field: 'model',
    doc: 'file.py:factory, a callable returning the nn.Module',
    check: spec('model.py:build_model'),
  },
  {
    key: 'example-inputs',
    field: 'exampleInputs',
    doc: 'file.py:fn returning example inputs',
    check: spec('data.py:example_inputs'),
  },
  {
    key: 'input-shapes',
    field: 'inputShapes',
    doc: 'shapes of the model inputs, e.g. [[1, 3, 224, 224]]',
    check: (v) =>
      Array.isArray(v) &&
      v.length > 0 &&
      v.every(
        (s) =>
          Array.isArray(s) && s.length > 0 && s.every((d) => typeof d === 'number' && Number.isInteger(d) && d > 0),
      )
        ? null
        : 'must be a list of shapes, each a list of positive integers, e.g. [[1, 3, 224, 224]]',
  },
  {
    key: 'calibration-data',
    field: 'calibrationData',
    doc: 'file.py:fn yielding calibration batches',
    check: spec('data.py:calibration_data'),
  },
  {
    key: 'eval-data',
    field: 'evalData',
    doc: 'file.py:fn yielding (inputs, labels) batches',
    check: spec('data.py:eval_data'),
  },
  {
    key: 'method',
    field: 'method',
    doc: 'calibration method',
    check: oneOf([...CALIBRATION_METHODS]),
    default: METHOD.default,
  },
  {
    key: 'percentile',
    field: 'percentile',
    doc: 'percentile for method = "percentile"',
    default: PERCENTILE.default,
    check: (v) =>
      typeof v === 'number' && inRange(v, PERCENTILE)
        ? null
        : `must be a number in ${describeRange(PERCENTILE)}, e.g. ${PERCENTILE.default}`,
  },
  {
    key: 'batches',
    field: 'batches',
    doc: 'calibration batches',
    check: intIn(BATCHES.min, BATCHES.max),
    default: BATCHES.default,
  },
  {
    key: 'opset',
    field: 'opset',
    doc: 'ONNX opset (QuantizeLinear needs 13 or higher)',
    check: intIn(OPSET.min, OPSET.max),
    default: OPSET.default,
  },
  {
    key: 'metric',
    field: 'metric',
    doc: 'qdq sensitivity/tune: file.py:fn, fn(model) -> a number, higher is better (default: top-1 on eval-data)',
    check: spec('metric.py:score'),
  },
  {
    key: 'max-accuracy-drop',
    field: 'maxAccuracyDrop',
    doc: 'qdq tune: the largest metric drop allowed, in points (0.5) or relative to FP32 ("1%")',
    check: (v) =>
      (typeof v === 'number' && v >= 0) || (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*%\s*$/.test(v))
        ? null
        : 'must be points (0.5) or a percentage of FP32 ("1%")',
  },
  {
    key: 'out-dir',
    field: 'outDir',
    doc: 'output folder, relative to the project',
    default: OUT_DIR.default,
    check: (v) => (typeof v === 'string' && v.trim() !== '' ? null : 'must be a folder name, e.g. "qdq-out"'),
  },
  {
    key: 'target',
    field: 'target',
    doc: 'runtime the QDQ placement is for',
    check: oneOf([...TARGETS]),
    default: TARGET.default,
  },
  {
    key: 'float-precision',
    field: 'floatPrecision',
    doc: 'target tensorrt: precision of the ops not quantized (fp32 islands stay where fp16 is unsafe)',
    check: oneOf(['fp16', 'bf16', 'fp32']),
    default: 'fp16',
  },
  {
    key: 'dynamic-batch',
    field: 'dynamicBatch',
    doc: 'export with a dynamic batch axis',
    default: true,
    check: (v) => (typeof v === 'boolean' ? null : 'must be true or false'),
  },
  {
    key: 'patch-modules',
    field: 'patchModules',
    doc: 'installed library modules to quantize in memory (default: those defining the model\'s classes; "!name" excludes one)',
    check: (v) =>
      Array.isArray(v) && v.every((m) => typeof m === 'string' && /^!?[A-Za-z_][\w.]*$/.test(m))
        ? null
        : 'must be a list of module names, e.g. ["torchvision.models.resnet"] (or ["!timm.layers.mlp"] to exclude one)',
  },
  {
    key: 'train-data',
    field: 'trainData',
    doc: 'qdq qat: file.py:fn yielding (inputs, labels) training batches',
    check: spec('data.py:train_data'),
  },
  {
    key: 'train-step',
    field: 'trainStep',
    doc: 'qdq qat: file.py:fn(model, batch) returning the loss (default: cross-entropy)',
    check: spec('train.py:train_step'),
  },
  { key: 'epochs', field: 'epochs', doc: 'qdq qat: epochs (about 10% of the training)', check: intIn(1, 10000) },
  {
    key: 'lr',
    field: 'lr',
    doc: 'qdq qat: starting learning rate (about 1% of the training one)',
    check: (v) => (typeof v === 'number' && v > 0 && v <= 10 ? null : 'must be a number in (0, 10], e.g. 1e-4'),
  },
  {
    key: 'learn-amax',
    field: 'learnAmax',
    doc: 'qdq qat: learn the quantization ranges (LSQ)',
    check: (v) => (typeof v === 'boolean' ? null : 'must be true or false'),
  },
];

const KEY_BY_NAME = new Map(CONFIG_KEYS.map((k) => [k.key, k]));

/** Where each key of [tool.qdq] sits in the text (line scan: smol-toml gives values, not positions). */
function locateKeys(text: string): { table: Range | null; keys: Map<string, Range> } {
  const lines = text.split(/\r?\n/);
  const keys = new Map<string, Range>();
  let table: Range | null = null;
  let inTable = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const header = /^\s*\[([^\]]+)\]\s*(#.*)?$/.exec(line);
    if (header) {
      inTable = header[1].replace(/\s|"/g, '') === 'tool.qdq';
      if (inTable) table = lineRange(i, line);
      continue;
    }
    if (!inTable) continue;
    const kv = /^(\s*)("?)([A-Za-z0-9_-]+)\2\s*=/.exec(line);
    if (kv) {
      const start = kv[1].length;
      keys.set(kv[3], {
        start: { line: i, character: start },
        end: { line: i, character: line.replace(/\s*(#.*)?$/, '').length },
      });
    }
  }
  return { table, keys };
}

function lineRange(i: number, line: string): Range {
  return { start: { line: i, character: 0 }, end: { line: i, character: line.length } };
}

const WHOLE_FILE: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };

export interface ConfigResult {
  config: QdqConfig | null;
  diagnostics: ConfigDiagnostic[];
  found: boolean;
}

/** Pure: pyproject.toml text in, the config (when valid) and every problem with its range out. */
export function validateConfigText(text: string): ConfigResult {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    const err = e as TomlError;
    const line = Math.max(0, (err.line ?? 1) - 1),
      col = Math.max(0, (err.column ?? 1) - 1);
    const msg = String(err.message || e).split('\n')[0];
    return {
      config: null,
      found: false,
      diagnostics: [
        {
          key: '',
          severity: 'error',
          message: `pyproject.toml is not valid TOML: ${msg}`,
          range: { start: { line, character: col }, end: { line, character: col + 1 } },
        },
      ],
    };
  }
  const tool = doc.tool as Record<string, unknown> | undefined;
  const raw = tool && typeof tool === 'object' ? (tool.qdq as Record<string, unknown> | undefined) : undefined;
  const where = locateKeys(text);
  if (!raw || typeof raw !== 'object') {
    return {
      config: null,
      found: false,
      diagnostics: [
        {
          key: '',
          severity: 'error',
          range: WHOLE_FILE,
          message:
            'pyproject.toml has no [tool.qdq] table; add one with at least model = "model.py:build_model" and example-inputs or input-shapes',
        },
      ],
    };
  }
  const diags: ConfigDiagnostic[] = [];
  const rangeOf = (key: string) => where.keys.get(key) ?? where.table ?? WHOLE_FILE;
  const out: Record<string, unknown> = {};
  for (const k of CONFIG_KEYS) if (k.default !== undefined) out[k.field] = k.default;
  for (const [key, value] of Object.entries(raw)) {
    const ks = KEY_BY_NAME.get(key) ?? KEY_BY_NAME.get(key.replace(/_/g, '-'));
    if (!ks) {
      // An error, not a warning: a misspelt knob ("mehtod") would otherwise run with the default silently.
      diags.push({ key, severity: 'error', range: rangeOf(key), message: unknownKeyMessage(key) });
      continue;
    }
    const problem = ks.check(value);
    if (problem) {
      diags.push({
        key: ks.key,
        severity: 'error',
        range: rangeOf(key),
        message: `[tool.qdq] ${ks.key} ${problem} (got ${JSON.stringify(value)})`,
      });
      continue;
    }
    out[ks.field] = value;
  }
  const has = (k: string) => raw[k] !== undefined || raw[k.replace(/-/g, '_')] !== undefined;
  if (!has('model')) {
    diags.push({
      key: 'model',
      severity: 'error',
      range: where.table ?? WHOLE_FILE,
      message: '[tool.qdq] model is missing: add model = "model.py:build_model" (a function returning the nn.Module)',
    });
  }
  if (!has('example-inputs') && !has('input-shapes') && !has('calibration-data')) {
    diags.push({
      key: 'example-inputs',
      severity: 'error',
      range: where.table ?? WHOLE_FILE,
      message:
        '[tool.qdq] needs the model\'s inputs: add example-inputs = "data.py:example_inputs" or input-shapes = [[1, 3, 224, 224]]',
    });
  }
  if (raw.percentile !== undefined && raw.method !== undefined && raw.method !== 'percentile') {
    diags.push({
      key: 'percentile',
      severity: 'warning',
      range: rangeOf('percentile'),
      message: `[tool.qdq] percentile is only used with method = "percentile" (method is "${String(raw.method)}")`,
    });
  }
  out.targetGiven = has('target');
  const ok = !diags.some((d) => d.severity === 'error');
  return { config: ok ? (out as unknown as QdqConfig) : null, diagnostics: diags, found: true };
}

/** Keys people expect that qdq deliberately does not read from the project file, with where they go instead. */
const NOT_PROJECT_KEYS: Record<string, string> = {
  python:
    'the interpreter is not read from pyproject.toml (a project file must not choose the program qdq runs); ' +
    'pass --python /path/to/python, or set qdq.pythonInterpreter in the editor',
};

function unknownKeyMessage(key: string): string {
  const normal = key.replace(/_/g, '-').toLowerCase();
  if (NOT_PROJECT_KEYS[normal]) return `[tool.qdq] ${key}: ${NOT_PROJECT_KEYS[normal]}`;
  const near = CONFIG_KEYS.find((k) => editDistance(k.key, normal) <= 2);
  const known = CONFIG_KEYS.map((k) => k.key).join(', ');
  return `[tool.qdq] ${key}: unknown key${near ? `; did you mean "${near.key}"?` : `; known keys: ${known}`}`;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      // transposed neighbours ("mehtod") count as one edit
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly hint: string,
    readonly diagnostics: ConfigDiagnostic[] = [],
  ) {
    super(message);
  }
}

/** Overrides from the command line, already in config form. */
export type ConfigOverrides = Partial<QdqConfig>;

export function loadConfig(projectDir: string, overrides: ConfigOverrides = {}): QdqConfig {
  const file = path.join(projectDir, 'pyproject.toml');
  let text: string | undefined;
  try {
    // Regular files only, size-capped (a FIFO or /dev/zero named pyproject.toml must not hang the server).
    text = readRegularFileSync(file, MAX_PYPROJECT_BYTES);
  } catch (err) {
    throw new ConfigError((err as Error).message, 'make pyproject.toml a regular file');
  }
  return configFromText(projectDir, file, text, overrides);
}

/** loadConfig for the pipeline inside the language server: the file is read without blocking the event loop. */
export async function loadConfigAsync(projectDir: string, overrides: ConfigOverrides = {}): Promise<QdqConfig> {
  const file = path.join(projectDir, 'pyproject.toml');
  let text: string | undefined;
  try {
    text = await readRegularFile(file, MAX_PYPROJECT_BYTES);
  } catch (err) {
    throw new ConfigError((err as Error).message, 'make pyproject.toml a regular file');
  }
  return configFromText(projectDir, file, text, overrides);
}

/** The [tool.qdq] config of pyproject.toml's text (undefined: there is none), with the overrides applied. */
function configFromText(
  projectDir: string,
  file: string,
  text: string | undefined,
  overrides: ConfigOverrides,
): QdqConfig {
  if (text === undefined) {
    throw new ConfigError(
      `no pyproject.toml in ${projectDir}`,
      'run qdq in a project folder, or create pyproject.toml with a [tool.qdq] table: at least ' +
        'model = "model.py:build_model" and input-shapes = [[1, 3, 224, 224]] (or example-inputs)',
    );
  }
  const r = validateConfigText(text);
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (!r.config || errors.length) {
    const lines = errors.map((d) => `  ${file}:${d.range.start.line + 1}: ${d.message}`);
    throw new ConfigError(
      `${file} has ${errors.length} problem${errors.length === 1 ? '' : 's'}:\n${lines.join('\n')}`,
      'fix the [tool.qdq] entries named above',
      r.diagnostics,
    );
  }
  const merged = { ...r.config };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  if (overrides.target !== undefined) merged.targetGiven = true;
  return merged;
}
