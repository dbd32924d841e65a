// Names a model file imports that build weighted layers elsewhere: `from timm.layers import Linear` (a
// subclass of nn.Linear), `from .create_conv2d import create_conv2d` (a factory returning a Conv2d). The
// imported module is found next to the file (relative imports) or under the folder that holds the file's
// top-level package (absolute ones), read and analysed like the file itself; nothing is imported or run.
// What cannot be found this way is left to the run-time report of weighted layers left in float.
import * as fs from 'fs';
import * as path from 'path';
import { parsePython } from '../analysis';
import { scanImports } from '../analysis/canonical';
import { exportedWeightedNames, fromImports, type WeightedNames } from '../analysis/weightedCalls';

// Import chains are followed to the end (a cycle sees the module being worked out as exporting nothing);
// the cap only bounds the stack.
const MAX_DEPTH = 40;
const cache = new Map<string, { mtimeMs: number; names: WeightedNames }>();

/** The folder sys.path would hold for `file`: the parent of its outermost package (folders with __init__.py). */
function importRoot(file: string): string {
  let dir = path.dirname(file);
  while (fs.existsSync(path.join(dir, '__init__.py'))) {
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return dir;
}

/** The source file of module `mod` as imported from `file`, or undefined. */
export function resolveModuleFile(file: string, mod: string): string | undefined {
  const dots = /^\.*/.exec(mod)![0].length;
  const rest = mod.slice(dots).split('.').filter(Boolean);
  if (!dots && (rest[0] === 'torch' || rest[0] === 'typing' || rest[0] === 'functools')) return undefined;
  let base: string;
  if (dots) {
    base = path.dirname(file);
    for (let i = 1; i < dots; i++) base = path.dirname(base);
  } else base = importRoot(file);
  const stem = path.join(base, ...rest);
  for (const candidate of [stem + '.py', path.join(stem, '__init__.py')])
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  return undefined;
}

function moduleExports(file: string, depth: number): WeightedNames {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return {};
  }
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === stat.mtimeMs) return hit.names;
  // Guard against import cycles while this module is being worked out.
  cache.set(file, { mtimeMs: stat.mtimeMs, names: {} });
  const text = fs.readFileSync(file, 'utf8');
  const names = exportsOf(file, text, depth);
  cache.set(file, { mtimeMs: stat.mtimeMs, names });
  return names;
}

function exportsOf(file: string, text: string, depth: number): WeightedNames {
  const tree = parsePython(text);
  const imports = scanImports(tree.rootNode);
  const external = depth < MAX_DEPTH ? importedWeightedLayers(file, text, depth + 1) : {};
  return exportedWeightedNames(tree, imports, external);
}

/** Local name -> canonical weighted layer, for names `file` imports from modules that define such layers. */
export function importedWeightedLayers(file: string, text: string, depth = 0): WeightedNames {
  const out: WeightedNames = {};
  let imports;
  try {
    imports = fromImports(parsePython(text));
  } catch {
    return out;
  }
  for (const imp of imports) {
    const target = resolveModuleFile(file, imp.module);
    if (!target || path.resolve(target) === path.resolve(file)) continue;
    const names = moduleExports(target, depth);
    if (names[imp.name]) out[imp.local] = names[imp.name];
  }
  return out;
}
