// The source line of each quantizer in the user's file, for the report's links. The backend knows a quantizer by
// class and attribute; the attribute of a functional-op quantizer (`matmul0_a_quantizer`) exists only in the
// quantized copy, so the line is found there (the call `self.matmul0_a_quantizer(q)`: the operation it quantizes)
// and mapped back to the user's file. Quantizing inserts whole lines ending in `# qdq` and wraps expressions in
// place, so every other line keeps its text or at least its place.

/** For each line of `quantized` (0-based), the 0-based line of `original` it stands for. */
export function lineMap(original: string, quantized: string): number[] {
  const a = original.split(/\r?\n/),
    b = quantized.split(/\r?\n/);
  const map: number[] = [];
  let i = 0;
  for (const line of b) {
    const inserted = /#\s*qdq\s*$/.test(line) && a[i] !== line;
    map.push(Math.min(i, Math.max(0, a.length - 1)));
    if (!inserted) i++;
  }
  return map;
}

/** 0-based line range of `class <cls>` in `lines` (to the next statement at its indentation or less). */
function classBody(lines: string[], cls: string): [number, number] | undefined {
  const start = lines.findIndex((l) => new RegExp(`^(\\s*)class\\s+${cls}\\b`).test(l));
  if (start < 0) return undefined;
  const indent = /^\s*/.exec(lines[start])![0].length;
  let end = start + 1;
  for (; end < lines.length; end++) {
    const l = lines[end];
    if (l.trim() === '' || l.trimStart().startsWith('#')) continue;
    if (/^\s*/.exec(l)![0].length <= indent) break;
  }
  return [start, end];
}

const IDENT = /^[A-Za-z_]\w*$/;

/** 1-based line in `original` of the quantizer `attr` of class `cls`, found in `quantized`; undefined if not found. */
export function quantizerLine(quantized: string, map: number[], cls: string, attr: string): number | undefined {
  const first = attr.split('.')[0];
  if (!IDENT.test(cls) || !IDENT.test(first)) return undefined;
  const lines = quantized.split(/\r?\n/);
  const body = classBody(lines, cls);
  if (!body) return undefined;
  const find = (re: RegExp) => {
    for (let k = body[0]; k < body[1]; k++) if (re.test(lines[k])) return k;
    return -1;
  };
  // A functional-op quantizer (declared by a `# qdq` line, called in forward): the call is the operation's line.
  let at = /_quantizer$/.test(first) && !attr.includes('.') ? find(new RegExp(`self\\.${first}\\((?!\\s*\\))`)) : -1;
  if (at < 0) at = find(new RegExp(`self\\.${first}\\s*(:[^=]*)?=(?!=)`));
  return at < 0 ? undefined : map[at] + 1;
}

interface SiteLike {
  site?: { file?: string; cls?: string; attr?: string; line?: number };
}

/** Adds `site.line` to the quantizers of the model file (the others keep the class/attribute lookup). */
export function addQuantizerLines(
  quantizers: SiteLike[],
  modelFile: string,
  original: string,
  quantized: string,
): void {
  const map = lineMap(original, quantized);
  for (const q of quantizers) {
    const s = q.site;
    if (!s || s.file !== modelFile || !s.cls || !s.attr || s.line !== undefined) continue;
    const line = quantizerLine(quantized, map, s.cls, s.attr);
    if (line !== undefined) s.line = line;
  }
}
