// The editor settings of qdq (section "qdq"), described once: the schema gives the TypeScript type, the
// validation of what workspace/configuration returns, and the `contributes.configuration` block of the
// VS Code extension (settingsContribution(), written into package.json by client/src/syncManifest.ts).
// The calibration and export knobs take their values, ranges and defaults from common/knobs.ts, the home
// [tool.qdq] and the CLI flags read them from too.
import {
  BATCHES,
  DEFAULT_TRT_VERSION,
  METHOD,
  OPSET,
  OUT_DIR,
  PERCENTILE,
  TARGET,
  describeRange,
  inRange,
} from './common/knobs';

type StringField = { type: 'string'; default: string; description: string };
type EnumField<E extends string> = { type: 'enum'; values: readonly E[]; default: E; description: string };
type NumberField = {
  type: 'number';
  default: number;
  min: number;
  /** The range is open at min (percentile: (0, 100]). */
  minExclusive?: boolean;
  max: number;
  integer?: boolean;
  description: string;
};
type Field = StringField | EnumField<string> | NumberField;

export const SETTINGS_SCHEMA = {
  // Defaults match [tool.qdq]'s; a value changed from its default overrides the project's pyproject.toml.
  pythonInterpreter: {
    type: 'string',
    default: '',
    description:
      "Python interpreter that has PyTorch, used for calibration and export. Empty: the Python extension's " +
      'selected interpreter, else the first that can import torch of $VIRTUAL_ENV, $CONDA_PREFIX, python3/python on PATH, /usr/bin/python3.',
  },
  calibrationMethod: {
    type: 'enum',
    values: METHOD.values,
    default: METHOD.default,
    description: 'How activation ranges (amax) are chosen from the calibration data.',
  },
  percentile: {
    type: 'number',
    default: PERCENTILE.default,
    min: PERCENTILE.min,
    minExclusive: PERCENTILE.minExclusive,
    max: PERCENTILE.max,
    description: 'Percentile of |x| used as amax when calibrationMethod is "percentile".',
  },
  calibrationBatches: {
    type: 'number',
    integer: true,
    default: BATCHES.default,
    min: BATCHES.min,
    max: BATCHES.max,
    description: 'Number of calibration batches to run through the model.',
  },
  opset: {
    type: 'number',
    integer: true,
    default: OPSET.default,
    min: OPSET.min,
    max: OPSET.max,
    description: 'ONNX opset of the exported model (per-channel QDQ needs at least 13).',
  },
  target: {
    type: 'enum',
    values: TARGET.values,
    default: TARGET.default,
    description:
      "Runtime the exported QDQ placement is for (the CLI's --target). Left at its default, [tool.qdq] target applies; " +
      'with neither, run/export also write the ort-cpu form.',
  },
  outDir: {
    type: 'string',
    default: OUT_DIR.default,
    description: 'Output folder for calibration results, ONNX files and the report, relative to the project.',
  },
  trtVersion: {
    type: 'string',
    default: DEFAULT_TRT_VERSION,
    description: 'TensorRT version the diagnostics check against (for example 8.6, 10.15, 11.5).',
  },
} as const satisfies Record<string, Field>;

type Schema = typeof SETTINGS_SCHEMA;
type ValueOf<F> = F extends { type: 'enum'; values: readonly (infer E)[] }
  ? E
  : F extends { type: 'number' }
    ? number
    : string;

/** The settings, typed from the schema. */
export type QdqSettings = { -readonly [K in keyof Schema]: ValueOf<Schema[K]> };

export function defaultSettings(): QdqSettings {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(SETTINGS_SCHEMA)) out[key] = field.default;
  return out as QdqSettings;
}

export interface SettingsResult {
  settings: QdqSettings;
  /** One line per rejected value: which setting, what was wrong, what is used instead. */
  problems: string[];
}

/**
 * Validates whatever the client sent (any JSON, possibly null or partial). Invalid or missing values fall back
 * to the default, and each rejected value gets a problem line the server logs and shows once.
 */
export function validateSettings(raw: unknown): SettingsResult {
  const settings = defaultSettings() as Record<string, unknown>;
  const problems: string[] = [];
  if (raw === null || raw === undefined) return { settings: settings as QdqSettings, problems };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`settings "qdq" should be an object, got ${describe(raw)}; using the defaults`);
    return { settings: settings as QdqSettings, problems };
  }
  const given = raw as Record<string, unknown>;
  for (const [key, field] of Object.entries(SETTINGS_SCHEMA) as [string, Field][]) {
    const value = given[key];
    if (value === undefined || value === null) continue;
    const problem = checkValue(field, value);
    if (problem) problems.push(`setting qdq.${key}: ${problem}; using ${JSON.stringify(field.default)}`);
    else settings[key] = field.type === 'string' ? (value as string).trim() : value;
  }
  return { settings: settings as QdqSettings, problems };
}

function checkValue(field: Field, value: unknown): string | undefined {
  switch (field.type) {
    case 'string':
      return typeof value === 'string' ? undefined : `expected a string, got ${describe(value)}`;
    case 'enum':
      return typeof value === 'string' && (field.values as readonly string[]).includes(value)
        ? undefined
        : `expected one of ${field.values.join(', ')}, got ${describe(value)}`;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return `expected a number, got ${describe(value)}`;
      if (field.integer && !Number.isInteger(value)) return `expected a whole number, got ${value}`;
      if (!inRange(value, field)) return `expected a value in ${describeRange(field)}, got ${value}`;
      return undefined;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

/** The `contributes.configuration.properties` block for package.json, generated from the same schema. */
export function settingsContribution(): Record<string, Record<string, unknown>> {
  const properties: Record<string, Record<string, unknown>> = {};
  for (const [key, field] of Object.entries(SETTINGS_SCHEMA) as [string, Field][]) {
    const entry: Record<string, unknown> = { description: field.description, default: field.default };
    if (field.type === 'enum') Object.assign(entry, { type: 'string', enum: [...field.values] });
    else if (field.type === 'number')
      Object.assign(entry, {
        type: field.integer ? 'integer' : 'number',
        ...(field.minExclusive ? { exclusiveMinimum: field.min } : { minimum: field.min }),
        maximum: field.max,
      });
    else entry.type = 'string';
    if (key === 'pythonInterpreter') entry.scope = 'machine-overridable';
    properties[`qdq.${key}`] = entry;
  }
  return properties;
}
