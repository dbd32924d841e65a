// TRT022: topk with k >= 3840 or sorted=False.
import { trtScope } from './common';
import type { QdqDiagnostic, Rule } from './types';

export const MAX_K = 3840;

export const trt022TopK: Rule = {
  code: 'TRT022',
  title: 'TopK limits',
  defaultSeverity: 'error',
  traced: true,
  docs: `**TRT022 TopK.** TensorRT's TopK requires \`K < ${MAX_K}\` and \`sorted=1\` (every version through 11.x); a K computed at run time is only accepted from 8.6. Keep k small and \`sorted=True\`; for a larger k, split the input and merge.`,
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    for (const site of ctx.calls('topk')) {
      if (site.receiver ? ctx.src(site.receiver) === 'self' : !ctx.isTorch(site)) continue;
      const kNode = site.receiver ? (site.kwargs.get('k') ?? site.args[0]) : (site.kwargs.get('k') ?? site.args[1]);
      if (kNode && kNode.type === 'integer') {
        const k = Number(ctx.src(kNode).replace(/_/g, ''));
        if (k >= MAX_K)
          out.push(
            ctx.diag(
              'TRT022',
              'error',
              kNode,
              `topk with k=${k}: TensorRT TopK requires K < ${MAX_K} (${trtScope(ctx)}). Split the input and merge partial top-k results.`,
            ),
          );
      } else if (kNode && !ctx.trtAtLeast(8, 6) && kNode.type !== 'identifier') {
        out.push(
          ctx.diag(
            'TRT022',
            'warning',
            kNode,
            `topk with a computed k: TensorRT ${ctx.trt.text} needs K as a build-time constant (dynamic K from 8.6).`,
          ),
        );
      }
      const sortedIdx = site.receiver ? 3 : 4;
      const sorted = site.kwargs.get('sorted') ?? site.args[sortedIdx];
      if (sorted && ctx.src(sorted) === 'False') {
        out.push(
          ctx.diag(
            'TRT022',
            'error',
            sorted,
            `topk(sorted=False): TensorRT TopK only supports sorted=1 (${trtScope(ctx)}). Use sorted=True; the same k elements come back, in descending order.`,
            { title: 'Use sorted=True', safety: 'safe', edits: [ctx.replace(sorted, 'True')] },
          ),
        );
      }
    }
    return out;
  },
};
