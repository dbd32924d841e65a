// The real-model corpus pass: quantize every model file of an installed transformers / timm, check that the
// result parses and that unquantize gives the original back byte for byte, and write the quantized sources
// for test/corpus/run_models.py to build models from. Used by corpus.test.ts (a slice) and
// scripts/corpus-check.sh (everything).
import * as fs from 'fs';
import * as path from 'path';
import { parsePython } from '../server/src/analysis';
import { quantizeFile, unquantizeFile } from '../server/src/fixes';
import { importedWeightedLayers } from '../server/src/fixes/importedLayers';

export interface CorpusFileResult {
  module: string;
  file: string;
  /** qdq_quant.quant(...) wraps (weighted layers) in the quantized text. */
  layerWraps: number;
  /** Activation quantizer call sites by op (`add`, `matmul`, `bmm`, `einsum`, `linear`). */
  opWraps: Record<string, number>;
  parses: boolean;
  roundTrips: boolean;
  /** Where the quantized text was written (when an output folder was given and the file changed). */
  out?: string;
}

/** Dotted module name of a file under a site-packages folder. */
export function moduleNameOf(file: string, sitePackages: string): string {
  return path.relative(sitePackages, file).replace(/\.py$/, '').split(path.sep).join('.');
}

const QUANTIZER_CALL = /\b(?:self|module)\.([a-z]+)\d+_\w+?_quantizer\(/g;

export async function quantizeCorpusFile(
  file: string,
  sitePackages: string,
  outDir?: string,
): Promise<CorpusFileResult> {
  const text = fs.readFileSync(file, 'utf8');
  // Library modules: the backend serves qdq_quant as a top-level module (as library/patch.ts does).
  const q = quantizeFile(text, { relativeImport: false, externalLayers: await importedWeightedLayers(file, text) });
  const back = unquantizeFile(q.text).text;
  const module = moduleNameOf(file, sitePackages);
  const opWraps: Record<string, number> = {};
  for (const m of q.text.matchAll(QUANTIZER_CALL)) opWraps[m[1]] = (opWraps[m[1]] ?? 0) + 1;
  const r: CorpusFileResult = {
    module,
    file,
    layerWraps: (q.text.match(/\bqdq_quant\.quant\(/g) ?? []).length,
    opWraps,
    parses: !parsePython(q.text).rootNode.hasError,
    roundTrips: back === text,
  };
  if (outDir && q.text !== text) {
    r.out = path.join(outDir, module + '.py');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(r.out, q.text);
  }
  return r;
}

/** The model files of the corpus: transformers' models/*\/modeling_*.py and timm's models/*.py and layers/*.py. */
export function corpusFiles(sitePackages: string): string[] {
  const out: string[] = [];
  const tf = path.join(sitePackages, 'transformers', 'models');
  if (fs.existsSync(tf))
    for (const d of fs.readdirSync(tf).sort()) {
      const dir = path.join(tf, d);
      if (!fs.statSync(dir).isDirectory()) continue;
      for (const f of fs.readdirSync(dir).sort())
        if (/^modeling_\w+\.py$/.test(f) && !/^modeling_(tf|flax)_/.test(f)) out.push(path.join(dir, f));
    }
  for (const sub of ['layers', 'models']) {
    const dir = path.join(sitePackages, 'timm', sub);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir).sort())
      if (f.endsWith('.py') && f !== '__init__.py') out.push(path.join(dir, f));
  }
  return out;
}

async function main(argv: string[]): Promise<number> {
  const [sitePackages, outDir, ...only] = argv;
  if (!sitePackages) {
    process.stderr.write('usage: node out/bench/corpusQuantize.js SITE_PACKAGES [OUT_DIR [MODULE...]]\n');
    return 2;
  }
  let files = corpusFiles(sitePackages);
  // MODULE arguments: exact names, or patterns with `*` (`timm.layers.*`, `transformers.models.[a-l]*`).
  const patterns = only.map((o) => new RegExp('^' + o.replace(/\./g, '\\.').replace(/\*/g, '.*') + '$'));
  if (only.length) files = files.filter((f) => patterns.some((p) => p.test(moduleNameOf(f, sitePackages))));
  // Parse trees live in native memory that V8 does not count, so its collector rarely runs on its own
  // over hundreds of files: collect now and then when node runs with --expose-gc (scripts/corpus-check.sh).
  const gc = (globalThis as { gc?: () => void }).gc;
  const results: CorpusFileResult[] = [];
  for (const [i, f] of files.entries()) {
    if (gc && i % 10 === 9) gc();
    results.push(await quantizeCorpusFile(f, sitePackages, outDir || undefined));
  }
  const total = { files: results.length, layerWraps: 0, opWraps: {} as Record<string, number>, bad: [] as string[] };
  for (const r of results) {
    total.layerWraps += r.layerWraps;
    for (const [k, v] of Object.entries(r.opWraps)) total.opWraps[k] = (total.opWraps[k] ?? 0) + v;
    if (!r.parses || !r.roundTrips)
      total.bad.push(`${r.module}: ${r.parses ? '' : 'does not parse '}${r.roundTrips ? '' : 'no round trip'}`);
  }
  process.stdout.write(JSON.stringify({ total, results }, null, 1) + '\n');
  return total.bad.length ? 1 : 0;
}

if (require.main === module)
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
