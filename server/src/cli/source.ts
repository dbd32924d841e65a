// Reading a model source for the CLI: a FILE argument today; `--module M` (a library model resolved through an
// interpreter) plugs in here through registerSourceResolver, so commands never care where the text came from.
import * as fs from 'fs';
import * as path from 'path';
import { MAX_SOURCE_BYTES, readRegularBytesSync, RegularFileError } from '../common/files';

export interface ModelSource {
  /** Absolute path of the file (what --write replaces and where qdq_quant.py goes). */
  path: string;
  text: string;
  /** How messages name it: the argument as given, or the module name. */
  display: string;
  /** False when the bytes were not valid UTF-8 and were decoded with replacement characters. */
  validUtf8: boolean;
}

/** Bad input: the message names the problem and the fix (exit code 2, no stack trace). */
export class InputError extends Error {}

export interface SourceSpec {
  /** A path as typed by the user. */
  file?: string;
  /** A Python module name (`torchvision.models.resnet`), for resolvers that support it. */
  module?: string;
}

export type SourceResolver = (spec: SourceSpec) => Promise<ModelSource | undefined>;

const resolvers: SourceResolver[] = [];

/** Adds a way to find sources (checked before the plain file reader). Returns a function that removes it. */
export function registerSourceResolver(resolver: SourceResolver): () => void {
  resolvers.unshift(resolver);
  return () => {
    const i = resolvers.indexOf(resolver);
    if (i >= 0) resolvers.splice(i, 1);
  };
}

export async function resolveSource(spec: SourceSpec, cwd = process.cwd()): Promise<ModelSource> {
  for (const r of resolvers) {
    const found = await r(spec);
    if (found) return found;
  }
  if (spec.file !== undefined) return readModelFile(spec.file, cwd);
  throw new InputError(`cannot find the model module "${spec.module}": no module resolver is installed`);
}

const PYTHON_EXTENSIONS = new Set(['.py', '.pyi', '.pyw']);

export function readModelFile(arg: string, cwd = process.cwd()): ModelSource {
  const file = path.resolve(cwd, arg);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new InputError(`${arg}: no such file (looked for ${file})`);
  }
  if (stat.isDirectory())
    throw new InputError(
      `${arg} is a folder; pass the model's .py file (qdq calibrate/export/run take a project folder)`,
    );
  if (!stat.isFile()) throw new InputError(`${arg} is not a regular file`);
  if (!PYTHON_EXTENSIONS.has(path.extname(file).toLowerCase()))
    throw new InputError(`${arg} is not a Python file: qdq reads PyTorch model sources ending in .py`);
  let bytes: Buffer | undefined;
  try {
    // Checked again on the opened file: a FIFO or device swapped in after the stat is refused, not read.
    bytes = readRegularBytesSync(file, MAX_SOURCE_BYTES);
  } catch (err) {
    if (err instanceof RegularFileError) throw new InputError(`${arg}: ${err.message.replace(file + ' ', '')}`);
    throw err;
  }
  if (!bytes) throw new InputError(`${arg}: no such file (looked for ${file})`);
  if (bytes.includes(0)) throw new InputError(`${arg} is not a Python file: it contains NUL bytes (binary data)`);
  let text: string;
  let validUtf8 = true;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    validUtf8 = false;
    text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  }
  // ignoreBOM keeps a byte order mark in the text, so writing the text back keeps the file's bytes.
  return { path: file, text, display: arg, validUtf8 };
}
