// TRT060: TensorRT 10 weak-typing API in a Python build script (BuilderFlag.INT8/FP16/BF16, set_flag with them,
// int8_calibrator, IInt8*Calibrator, platform_has_fast_*), which TensorRT 11 removed.
import type { QdqDiagnostic, Rule, SyntaxNode } from './types';
import type { RuleContext } from './context';
import { codeMatches, migrationSeverity, removedText, wholeLineDeletion } from './trtMigration';

const STRONG =
  "TensorRT 11 builds strongly typed networks only: INT8 comes from the Q/DQ nodes in the ONNX file (qdq export) and FP16/BF16 from the types the file carries (qdq's tensorrt target)";

/** The outermost attribute chain around a match (`trt.BuilderFlag.INT8`). */
function attributeAt(ctx: RuleContext, start: number, end: number): SyntaxNode | null {
  let n: SyntaxNode | null = ctx.root.descendantForIndex(start, end);
  while (n && n.parent?.type === 'attribute' && n.parent.endIndex <= end + 1) n = n.parent;
  return n && (n.type === 'attribute' || n.type === 'identifier') ? n : null;
}

/** `config.set_flag(<flag>)` / `clear_flag` as a statement of its own: the statement, else null. */
function flagStatement(ctx: RuleContext, flag: SyntaxNode): SyntaxNode | null {
  const args = flag.parent;
  if (args?.type !== 'argument_list' || args.namedChildren.length !== 1) return null;
  const call = args.parent;
  const fn = call?.childForFieldName('function');
  if (call?.type !== 'call' || fn?.type !== 'attribute') return null;
  // ctx.src, not node.text: an incrementally edited tree's node.text can be stale.
  const attr = fn.childForFieldName('attribute');
  const method = attr ? ctx.src(attr) : undefined;
  if (method !== 'set_flag' && method !== 'clear_flag') return null;
  return call.parent?.type === 'expression_statement' ? call.parent : null;
}

function builderFlags(ctx: RuleContext, out: QdqDiagnostic[]): void {
  const re = /\bBuilderFlag\.(INT8|FP16|BF16|FP8|INT4|FP4|OBEY_PRECISION_CONSTRAINTS|PREFER_PRECISION_CONSTRAINTS)\b/;
  for (const m of codeMatches(ctx, re)) {
    const flag = attributeAt(ctx, m.index, m.index + m[0].length);
    if (!flag) continue;
    const stmt = flagStatement(ctx, flag);
    const what = stmt ? ctx.src(stmt) : ctx.src(flag);
    const range = stmt && ctx.trtAtLeast(11) ? wholeLineDeletion(ctx, stmt) : null;
    out.push(
      ctx.diag(
        'TRT060',
        migrationSeverity(ctx),
        stmt ?? flag,
        `\`${what}\`: BuilderFlag.${m[1]} is ${removedText(ctx)}. ${STRONG}.`,
        range
          ? {
              title: `Remove \`${what}\` (TensorRT 11 takes precision from the network)`,
              safety: 'safe',
              edits: [{ range, newText: '' }],
            }
          : undefined,
      ),
    );
  }
}

function calibrators(ctx: RuleContext, out: QdqDiagnostic[]): void {
  for (const m of codeMatches(ctx, /\.int8_calibrator\b/)) {
    const attr = attributeAt(ctx, m.index + 1, m.index + m[0].length);
    if (!attr) continue;
    const assign =
      attr.parent?.type === 'assignment' && attr.parent.childForFieldName('left') === attr ? attr.parent : null;
    const stmt = assign?.parent?.type === 'expression_statement' ? assign.parent : null;
    const range = stmt && ctx.trtAtLeast(11) ? wholeLineDeletion(ctx, stmt) : null;
    out.push(
      ctx.diag(
        'TRT060',
        migrationSeverity(ctx),
        stmt ?? attr,
        `\`int8_calibrator\` is ${removedText(ctx)}: implicit INT8 calibration is gone. Calibrate in PyTorch (qdq calibrate) and export Q/DQ.`,
        range
          ? { title: 'Remove the int8_calibrator assignment', safety: 'safe', edits: [{ range, newText: '' }] }
          : undefined,
      ),
    );
  }
  for (const m of codeMatches(ctx, /\bIInt8(?:Entropy|MinMax|Legacy)?Calibrator\d*\b/)) {
    const node = ctx.root.descendantForIndex(m.index, m.index + m[0].length);
    out.push(
      ctx.diag(
        'TRT060',
        migrationSeverity(ctx),
        node,
        `\`${m[0]}\` is ${removedText(ctx)}: TensorRT 11 has no calibrator interface. Calibrate in PyTorch (qdq calibrate) and build from the Q/DQ ONNX file.`,
      ),
    );
  }
}

function platformQueries(ctx: RuleContext, out: QdqDiagnostic[]): void {
  for (const m of codeMatches(ctx, /\bplatform_has_fast_(?:int8|fp16|bf16|tf32)\b/)) {
    const node = ctx.root.descendantForIndex(m.index, m.index + m[0].length);
    out.push(
      ctx.diag(
        'TRT060',
        migrationSeverity(ctx),
        node,
        `\`${m[0]}\` is ${removedText(ctx)}: with strong typing the ONNX file decides each layer's precision, so there is nothing to switch on. Drop the check.`,
      ),
    );
  }
}

export const trt060WeakTypingApi: Rule = {
  code: 'TRT060',
  title: 'TensorRT 11 migration: weak-typing build API',
  defaultSeverity: 'error',
  // Text scans over the whole file (cheap regexes): no per-statement caching.
  scope: 'file',
  docs: "**TRT060 TensorRT 11 migration (Python API).** TensorRT 11 builds strongly typed networks only and removed `BuilderFlag.INT8/FP16/BF16/FP8/INT4/FP4`, the precision-constraint flags, `IBuilderConfig.int8_calibrator`, the `IInt8*Calibrator` classes and `platform_has_fast_*`. INT8 comes from explicit Q/DQ nodes (what qdq exports) and FP16/BF16 from the ONNX types (qdq's `tensorrt` target writes them). The quick fix deletes a `set_flag`/`clear_flag` statement or an `int8_calibrator` assignment that stands on its own line; other uses are reported without a fix. Before 11.0 these are deprecation warnings.",
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    builderFlags(ctx, out);
    calibrators(ctx, out);
    platformQueries(ctx, out);
    return out;
  },
};
