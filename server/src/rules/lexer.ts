// Where strings and comments are, from a light scan of Python source: text scans for triggers skip hits in
// docstrings and comments without asking the tree (each native node access costs microseconds).

/** Sorted, non-overlapping [start, end) offsets of string literals and comments. */
export function nonCodeRanges(text: string): number[] {
  return nonCodeRangesIn(text, 0, text.length);
}

/**
 * The ranges that start in text[from, to), lexing from `from` as code (the last range may end past `to`, as
 * an open triple quote does). Pieces cut where the lexer is in code give the whole text's ranges.
 */
export function nonCodeRangesIn(text: string, from: number, to: number): number[] {
  const out: number[] = [];
  const re = /[#'"]/g;
  re.lastIndex = from;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) && m.index < to) {
    const i = m.index;
    const c = text[i];
    if (c === '#') {
      const nl = text.indexOf('\n', i);
      const end = nl < 0 ? text.length : nl;
      out.push(i, end);
      re.lastIndex = end;
      continue;
    }
    const triple = text.startsWith(c + c + c, i);
    let end = text.length;
    if (triple) {
      const q = c + c + c;
      for (let k = text.indexOf(q, i + 3); k >= 0; k = text.indexOf(q, k + 1)) {
        let bs = 0;
        while (text.charCodeAt(k - 1 - bs) === 92) bs++;
        if (bs % 2 === 0) {
          end = k + 3;
          break;
        }
      }
    } else {
      let j = i + 1;
      while (j < text.length) {
        const ch = text.charCodeAt(j);
        if (ch === 92 /* \ */) {
          j += 2;
          continue;
        }
        if (ch === 10 || ch === 13) {
          end = j;
          break;
        }
        if (text[j] === c) {
          end = j + 1;
          break;
        }
        j++;
      }
      if (j >= text.length) end = text.length;
    }
    out.push(i, end);
    re.lastIndex = end;
  }
  return out;
}

/** True when `offset` lies inside one of the ranges (binary search over the flat start/end array). */
export function inRanges(ranges: number[], offset: number): boolean {
  let lo = 0;
  let hi = ranges.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = ranges[2 * mid];
    const e = ranges[2 * mid + 1];
    if (offset < s) hi = mid - 1;
    else if (offset >= e) lo = mid + 1;
    else return true;
  }
  return false;
}
