// Names a model file imports that build weighted layers elsewhere: `from timm.layers import Linear` (a
// subclass of nn.Linear), `from .create_conv2d import create_conv2d` (a factory returning a Conv2d). The
// imported module is found next to the file (relative imports) or under the folder that holds the file's
// top-level package (absolute ones), read and analysed like the file itself; nothing is imported or run.
// What cannot be found this way is left to the run-time report of weighted layers left in float. Files are
// read asynchronously: this runs in the language server (pipeline runs, the quantized library source).
import * as fs from 'fs';
import * as path from 'path';
import { parsePython } from '../analysis';
import { MAX_SOURCE_BYTES, readRegularFile } from '../common/files';
import { scanImports } from '../analysis/canonical';
import { exportedWeightedNames, fromImports, type FromImport, type WeightedNames } from '../analysis/weightedCalls';

// Import chains are followed to the end (a cycle sees the module being worked out as exporting nothing);
// the cap only bounds the stack.
const MAX_DEPTH = 40;
const cache = new Map<string, ModuleFacts>();

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.promises.stat(p)).isFile();
  } catch {
    return false;
  }
}

/** The folder sys.path would hold for `file`: the parent of its outermost package (folders with __init__.py). */
async function importRoot(file: string): Promise<string> {
  let dir = path.dirname(file);
  while (await isFile(path.join(dir, '__init__.py'))) {
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return dir;
}

/** The source file of module `mod` as imported from `file`, or undefined. */
async function resolveModuleFile(file: string, mod: string): Promise<string | undefined> {
  const dots = /^\.*/.exec(mod)![0].length;
  const rest = mod.slice(dots).split('.').filter(Boolean);
  if (!dots && (rest[0] === 'torch' || rest[0] === 'typing' || rest[0] === 'functools')) return undefined;
  let base: string;
  if (dots) {
    base = path.dirname(file);
    for (let i = 1; i < dots; i++) base = path.dirname(base);
  } else base = await importRoot(file);
  const stem = path.join(base, ...rest);
  for (const candidate of [stem + '.py', path.join(stem, '__init__.py')]) if (await isFile(candidate)) return candidate;
  return undefined;
}

interface ModuleFacts {
  mtimeMs: number;
  text: string;
  imports: FromImport[];
  /** Everything the module defines or re-exports that builds weighted layers; worked out on first need. */
  exports?: WeightedNames;
}

async function facts(file: string): Promise<ModuleFacts | undefined> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch {
    return undefined;
  }
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === stat.mtimeMs) return hit;
  // A module of the workspace may be a FIFO, a link to a device or huge: not read (the layer stays unknown).
  let text: string | undefined;
  try {
    text = await readRegularFile(file, MAX_SOURCE_BYTES);
  } catch {
    return undefined;
  }
  if (text === undefined) return undefined;
  const f: ModuleFacts = { mtimeMs: stat.mtimeMs, text, imports: fromImports(parsePython(text)) };
  cache.set(file, f);
  return f;
}

/** Can `name` build something in `text`: called, or named as a base class or a value (`x = name`)? */
function usedAsCtor(text: string, name: string): boolean {
  return new RegExp(`(?<![\\w.])${name.replace(/[.$]/g, '\\$&')}\\s*[(),=\\n]`).test(text);
}

/** The weighted layer `name` stands for in module `file` (defined there or re-exported), or undefined. */
async function exported(
  file: string,
  name: string,
  depth: number,
  computing: Set<string>,
): Promise<string | undefined> {
  const f = await facts(file);
  if (!f || depth > MAX_DEPTH) return undefined;
  const imp = f.imports.find((i) => i.local === name);
  if (imp) {
    // A re-export (`from .linear import Linear` in a package __init__): follow only this name.
    const target = await resolveModuleFile(file, imp.module);
    return target && path.resolve(target) !== path.resolve(file)
      ? exported(target, imp.name, depth + 1, computing)
      : undefined;
  }
  if (!f.exports) {
    // An import cycle back to a module being worked out sees nothing rather than recursing. The set belongs to
    // this lookup: another one running meanwhile (the reads are async) works the module out for itself.
    if (computing.has(file)) return undefined;
    computing.add(file);
    const tree = parsePython(f.text);
    const external = await importedNames(file, f.text, f.imports, depth + 1, computing, buildsThrough);
    f.exports = exportedWeightedNames(tree, scanImports(tree.rootNode), external);
    computing.delete(file);
  }
  return f.exports[name];
}

/** A `return` up to an element of the value it returns: `return `, `return (`, `return pool, `. */
const RETURNED = String.raw`return\s+\(?\s*(?:[\w.]+\s*,\s*)*`;

/**
 * Can what module `text` exports be built through `name`: a base class (`class Linear(nn.Linear)`), a returned
 * call (`return create_conv2d_pad(...)`, `m = CondConv2d(...)` ... `return m`, also as a returned tuple's element:
 * `fc = _create_fc(...)` ... `return global_pool, fc`), an alias (`X = name`, `partial(name, ...)`)? Only such
 * imports are followed when working out a module's exports, so that a lookup reads the modules on the way to
 * the layer, not every module the library imports.
 */
function buildsThrough(text: string, name: string): boolean {
  const n = name.replace(/[.$]/g, '\\$&');
  if (new RegExp(`^[ \\t]*class\\s+\\w+\\s*\\([^)]*(?<![\\w.])${n}\\b`, 'm').test(text)) return true;
  if (new RegExp(`${RETURNED}${n}\\s*\\(|partial\\(\\s*${n}\\b|=\\s*${n}\\s*$`, 'm').test(text)) return true;
  for (const m of text.matchAll(new RegExp(`^[ \\t]*(\\w+)\\s*=\\s*${n}\\s*\\(`, 'gm')))
    if (new RegExp(`${RETURNED}${m[1]}\\s*(?:[,)]|$)`, 'm').test(text)) return true;
  return false;
}

async function importedNames(
  file: string,
  text: string,
  imports: FromImport[],
  depth: number,
  computing: Set<string>,
  wanted: (text: string, name: string) => boolean = usedAsCtor,
): Promise<WeightedNames> {
  const out: WeightedNames = {};
  for (const imp of imports) {
    if (!wanted(text, imp.local)) continue;
    const target = await resolveModuleFile(file, imp.module);
    if (!target || path.resolve(target) === path.resolve(file)) continue;
    const ctor = await exported(target, imp.name, depth, computing);
    if (ctor) out[imp.local] = ctor;
  }
  return out;
}

/** Local name -> canonical weighted layer, for names `file` imports from modules that define such layers. */
export async function importedWeightedLayers(file: string, text: string): Promise<WeightedNames> {
  try {
    return await importedNames(file, text, fromImports(parsePython(text)), 0, new Set());
  } catch {
    return {};
  }
}
