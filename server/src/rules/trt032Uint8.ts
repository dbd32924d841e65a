// TRT032: .byte() / torch.uint8 intermediates: Cast(to=UINT8).
import { dtypeFromExpr } from './dtype';
import { trtScope } from './common';
import type { RuleContext } from './context';
import type { QdqDiagnostic, Rule, SyntaxNode } from './types';

const why = (ctx: RuleContext) =>
  `TensorRT allows UINT8 only as a network input/output type ("Unsupported ONNX data type: UINT8"), ${trtScope(ctx)}`;

export const trt032Uint8: Rule = {
  code: 'TRT032',
  title: 'uint8 intermediate tensors',
  defaultSeverity: 'error',
  traced: true,
  docs: '**TRT032 uint8.** `.byte()`, `.to(torch.uint8)` and `dtype=torch.uint8` create UINT8 intermediates (ONNX Cast to UINT8), which TensorRT only accepts at network inputs/outputs. Use `torch.bool` for masks (what HF did for DeBERTa, transformers#23683) or `torch.int8`.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const seen = new Set<number>();
    for (const site of ctx.calls('byte')) {
      if (!site.receiver || site.args.length || ctx.src(site.receiver) === 'self') continue;
      const method = site.node.childForFieldName('function')!.childForFieldName('attribute')!;
      seen.add(site.node.id);
      out.push(
        ctx.diag(
          'TRT032',
          'error',
          site.node,
          `\`.byte()\` makes a uint8 tensor: ${why(ctx)}. Use .bool() for masks (values must be 0/1) or .to(torch.int8).`,
          {
            title: 'Use .bool() instead of .byte() (for 0/1 masks)',
            safety: 'unsafe',
            edits: [ctx.replace(method, 'bool')],
          },
        ),
      );
    }
    const words = ctx.scan.uint8Words; // [offset, length] pairs of `uint8` / `ByteTensor`
    for (let k = 0; k < words.length; k += 2) {
      if (!ctx.wantsSite(words[k])) continue;
      let node: SyntaxNode | null = ctx.root.descendantForIndex(words[k], words[k] + words[k + 1]);
      if (node.type !== 'identifier') continue;
      if (node.parent?.type === 'attribute') node = node.parent;
      if (dtypeFromExpr(ctx, node) !== 'uint8') continue;
      // Used as a dtype: dtype=..., .to(...), .type(...), or a ByteTensor constructor.
      let call: SyntaxNode | null = node.parent;
      if (call?.type === 'keyword_argument') call = call.parent;
      if (call?.type === 'argument_list') call = call.parent;
      else if (call?.type !== 'call') call = null;
      if (!call || call.type !== 'call' || seen.has(call.id)) continue;
      seen.add(call.id);
      const ident = node.type === 'attribute' ? node.childForFieldName('attribute')! : node;
      const fix =
        ctx.src(ident) === 'uint8'
          ? {
              title: 'Use torch.bool instead of torch.uint8 (for 0/1 masks)',
              safety: 'unsafe' as const,
              edits: [ctx.replace(ident, 'bool')],
            }
          : undefined;
      out.push(
        ctx.diag(
          'TRT032',
          'error',
          call,
          `uint8 tensor created here: ${why(ctx)}. Use torch.bool for masks or torch.int8.`,
          fix,
        ),
      );
    }
    return out;
  },
};
