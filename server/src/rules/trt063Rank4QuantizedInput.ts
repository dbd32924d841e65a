// TRT063: a quantized nn.Linear, or a quantizer in front of nn.LayerNorm, on a rank-4 activation (channels-last
// after a permute, a 4-D view, a Conv2d's NCHW output), found where the source shows the rank.
import { unparen, type RuleContext } from './context';
import { quantizedLayers } from './quantizedLayers';
import type { QdqDiagnostic, Rule, Severity, SyntaxNode } from './types';

const SHAPERS = new Set(['permute', 'view', 'reshape']);

/** Layers whose output has the rank of their input (a rank-4 tensor stays rank 4 through them). */
const SAME_RANK =
  /^nn\.(?:LayerNorm|GroupNorm|BatchNorm[123]d|Dropout\w*|Identity|GELU|ReLU6?|SiLU|Sigmoid|Tanh|Hardswish|Hardsigmoid|LeakyReLU|Mish|Linear)$/;

interface ClassLayers {
  conv: Set<string>;
  sameRank: Set<string>;
}

/** Why `node` is a rank-4 tensor, or null when the source does not show it. */
function rank4(ctx: RuleContext, node: SyntaxNode, layers: ClassLayers, depth = 0): string | null {
  if (depth > 8) return null;
  const n = unparen(node);
  if (n.type === 'identifier') {
    const a = ctx.assignmentBefore(ctx.scope(n), ctx.src(n), n.startIndex);
    return a?.value ? rank4(ctx, a.value, layers, depth + 1) : null;
  }
  if (n.type !== 'call') return null;
  const site = ctx.callSite(n);
  if (!site) return null;
  const receiverIsSelf = site.receiver !== null && ctx.src(site.receiver) === 'self';
  if (receiverIsSelf && layers.conv.has(site.name)) return `the NCHW output of the Conv2d \`self.${site.name}\``;
  if (receiverIsSelf && (site.name.endsWith('quantizer') || layers.sameRank.has(site.name)) && site.args[0])
    return rank4(ctx, site.args[0], layers, depth + 1);
  if (site.receiver && !receiverIsSelf && site.name === 'contiguous')
    return rank4(ctx, site.receiver, layers, depth + 1);
  const torchFn = site.qualified === `torch.${site.name}`;
  if (!SHAPERS.has(site.name) || (!site.receiver && !torchFn)) return null;
  let dims = site.receiver ? site.args : site.args.slice(1);
  if (dims.length === 1 && (dims[0].type === 'tuple' || dims[0].type === 'list')) dims = dims[0].namedChildren;
  if (dims.length !== 4 || dims.some((d) => d.type === 'list_splat' || d.type === 'parenthesized_list_splat'))
    return null;
  return `\`.${site.name}(${dims.map((d) => ctx.src(d)).join(', ')})\` makes it rank 4`;
}

function methodCalls(ctx: RuleContext, classNode: SyntaxNode, attr: string): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  const re = new RegExp(`\\bself\\s*\\.\\s*${attr}\\s*\\(`, 'g');
  const body = ctx.text.slice(classNode.startIndex, classNode.endIndex);
  for (let m = re.exec(body); m; m = re.exec(body)) {
    const at = classNode.startIndex + m.index;
    if (!ctx.isCode(at)) continue;
    const selfNode = ctx.root.descendantForIndex(at, at + 4);
    const call = selfNode.parent?.parent;
    if (selfNode.parent?.type === 'attribute' && call?.type === 'call') out.push(call);
  }
  return out;
}

function layersOf(ctx: RuleContext, classNode: SyntaxNode): ClassLayers {
  const klass = ctx.index?.classes.find((c) => c.span.start === classNode.startIndex);
  const attrs = (re: RegExp) =>
    new Set((klass?.layers ?? []).filter((l) => l.attr && re.test(l.ctor)).map((l) => l.attr!));
  return { conv: attrs(/^nn\.Conv2d$/), sameRank: attrs(SAME_RANK) };
}

export const trt063Rank4QuantizedInput: Rule = {
  code: 'TRT063',
  title: 'Quantized Linear/LayerNorm input of rank 4',
  defaultSeverity: 'warning',
  scope: 'file',
  docs: '**TRT063 rank-4 quantized input.** A quantized `nn.Linear` applied to a rank-4 activation (ConvNeXt/Swin-style channels-last blocks after `permute(0, 2, 3, 1)`) reaches TensorRT as a MatMul over the last axis of a 4-D tensor, which TensorRT turns into a 1x1 convolution with transposes around it; with Q/DQ such layers have failed to build ("No valid tactics", NVIDIA/TensorRT#4180 on ConvNeXt\'s MLP) or run slower than FP16. Flatten to (B, H*W, C) around the Linear, or keep it in float. A quantizer in front of `nn.LayerNorm` on a rank-4 tensor quantizes a normalization TensorRT runs in float anyway (NVIDIA/TensorRT#4084); it only pays when TensorRT fuses the Q into the producing convolution. Where the source does not show the rank, the exported graph is checked (qdq run\'s report notes).',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    const layers = quantizedLayers(ctx);
    const seen = new Set<number>();
    const report = (call: SyntaxNode, sev: Severity, msg: string) => {
      if (seen.has(call.id)) return;
      seen.add(call.id);
      out.push(ctx.diag('TRT063', sev, call, msg));
    };
    for (const l of layers) {
      if (l.kind !== 'linear' || !l.attr || !l.classNode) continue;
      const convs = layersOf(ctx, l.classNode);
      for (const call of methodCalls(ctx, l.classNode, l.attr)) {
        const arg = ctx.callSite(call)?.args[0];
        const why = arg ? rank4(ctx, arg, convs) : null;
        if (why)
          report(
            call,
            'warning',
            `The quantized Linear \`self.${l.attr}\` gets a rank-4 input (${why}): TensorRT runs it as a 1x1 convolution between transposes, and with Q/DQ such layers have failed to build ("No valid tactics", NVIDIA/TensorRT#4180) or run slower than FP16. Flatten to (B, H*W, C) around it, or keep it in float.`,
          );
      }
    }
    for (const klass of ctx.index?.classes ?? []) {
      const norms = klass.layers.filter((l) => l.ctor === 'nn.LayerNorm' && l.attr);
      if (!norms.length) continue;
      const classNode = ctx.root.descendantForIndex(klass.span.start, klass.span.start + 5);
      const cls = classNode.type === 'class_definition' ? classNode : ctx.enclosing(classNode, 'class_definition');
      if (!cls) continue;
      const convs = layersOf(ctx, cls);
      for (const norm of norms) {
        for (const call of methodCalls(ctx, cls, norm.attr!)) {
          const arg = ctx.callSite(call)?.args[0];
          const q = arg && unparen(arg).type === 'call' ? ctx.callSite(unparen(arg)) : null;
          if (!q || !q.receiver || ctx.src(q.receiver) !== 'self' || !q.name.endsWith('quantizer') || !q.args[0])
            continue;
          const why = rank4(ctx, q.args[0], convs);
          if (why)
            report(
              call,
              'information',
              `\`self.${q.name}\` quantizes the rank-4 input of the LayerNorm \`self.${norm.attr}\` (${why}): TensorRT runs normalizations in float (NVIDIA/TensorRT#4084), so this Q/DQ pair only adds quantization error unless TensorRT fuses it into the producing convolution.`,
            );
        }
      }
    }
    return out;
  },
};
