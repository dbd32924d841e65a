// TRT061: trtexec's weak-typing flags (--int8 --fp16 --bf16 --fp8 --int4 --best --calib) in command lines a Python
// script runs (one string, or an argv list), which TensorRT 11's trtexec no longer accepts.
import type { QdqDiagnostic, Range, Rule, SyntaxNode } from './types';
import type { RuleContext } from './context';
import { migrationSeverity, removedText } from './trtMigration';

const FLAG = /--(?:int8|fp16|bf16|fp8|int4|best)\b|--calib(?:=[^\s"']*)?/g;
const WHY =
  "TensorRT 11's trtexec builds strongly typed only (--stronglyTyped is implicit): INT8 comes from the Q/DQ nodes and FP16 from the ONNX file's types (qdq's tensorrt target)";

function stringNodeAt(ctx: RuleContext, offset: number): SyntaxNode | null {
  let n: SyntaxNode | null = ctx.root.descendantForIndex(offset, offset + 1);
  while (n && n.type !== 'string') n = n.parent;
  return n;
}

function rangeOf(ctx: RuleContext, start: number, end: number): Range {
  return { start: position(ctx.text, start), end: position(ctx.text, end) };
}

function position(text: string, offset: number): { line: number; character: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length - 1;
  return { line, character: offset - (before.lastIndexOf('\n') + 1) };
}

/** Flags inside one command-line string: `"trtexec --onnx=m.onnx --int8"`. */
function inCommandString(ctx: RuleContext, s: SyntaxNode, out: QdqDiagnostic[]): void {
  const text = ctx.src(s);
  for (const m of text.matchAll(FLAG)) {
    const at = s.startIndex + m.index!;
    // Remove the flag with the blank before it, so the command keeps single spaces.
    const blank = /\s/.test(ctx.text[at - 1] ?? '') ? 1 : 0;
    const range = rangeOf(ctx, at - blank, at + m[0].length);
    out.push({
      code: 'TRT061',
      severity: migrationSeverity(ctx),
      range: rangeOf(ctx, at, at + m[0].length),
      message: `trtexec \`${m[0]}\` is ${removedText(ctx)}. ${WHY}.`,
      fix: ctx.trtAtLeast(11)
        ? { title: `Remove \`${m[0]}\` from the trtexec command`, safety: 'safe', edits: [{ range, newText: '' }] }
        : undefined,
    });
  }
}

/** A flag as its own argv element: `["trtexec", "--onnx=m.onnx", "--int8"]`. */
function inArgvList(ctx: RuleContext, list: SyntaxNode, out: QdqDiagnostic[]): void {
  const items = list.namedChildren;
  items.forEach((item, i) => {
    if (item.type !== 'string') return;
    const body = ctx.src(item).replace(/^[rbuf]*(['"])(.*)\1$/is, '$2');
    if (!new RegExp(`^(?:${FLAG.source})$`).test(body)) return;
    const next = items[i + 1];
    const prev = items[i - 1];
    const del = next ? [item.startIndex, next.startIndex] : prev ? [prev.endIndex, item.endIndex] : null;
    out.push({
      code: 'TRT061',
      severity: migrationSeverity(ctx),
      range: rangeOf(ctx, item.startIndex, item.endIndex),
      message: `trtexec \`${body}\` is ${removedText(ctx)}. ${WHY}.`,
      fix:
        del && ctx.trtAtLeast(11)
          ? {
              title: `Remove \`${body}\` from the trtexec arguments`,
              safety: 'safe',
              edits: [{ range: rangeOf(ctx, del[0], del[1]), newText: '' }],
            }
          : undefined,
    });
  });
}

export const trt061TrtexecFlags: Rule = {
  code: 'TRT061',
  title: 'TensorRT 11 migration: trtexec precision flags',
  defaultSeverity: 'error',
  // Text scans over the whole file (cheap regexes): no per-statement caching.
  scope: 'file',
  docs: "**TRT061 TensorRT 11 migration (trtexec).** TensorRT 11's trtexec removed `--int8`, `--fp16`, `--bf16`, `--fp8`, `--int4`, `--best` and `--calib`; `--stronglyTyped` is implicit. In a command string or an argv list that runs `trtexec`, the quick fix removes the flag: the engine's precisions then come from the ONNX file (Q/DQ for INT8, FP16 types from qdq's `tensorrt` target). Before 11.0 these are deprecation warnings.",
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const seenLists = new Set<number>();
    for (const m of ctx.text.matchAll(/\btrtexec\b/g)) {
      if (ctx.isCode(m.index!)) continue;
      const s = stringNodeAt(ctx, m.index!);
      if (!s) continue;
      if (
        s.parent?.type === 'list' &&
        ctx
          .src(s)
          .replace(/^[rbuf]*['"]|['"]$/gi, '')
          .trim()
          .endsWith('trtexec')
      ) {
        if (!seenLists.has(s.parent.startIndex)) {
          seenLists.add(s.parent.startIndex);
          inArgvList(ctx, s.parent, out);
        }
      } else inCommandString(ctx, s, out);
    }
    return out;
  },
};
