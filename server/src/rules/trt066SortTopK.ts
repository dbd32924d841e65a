// TRT066: sort / argsort / msort: ONNX TopK over the whole axis (K = the axis length, read from the shape).
import { trtScope } from './common';
import { MAX_K } from './trt022TopK';
import type { QdqDiagnostic, Rule } from './types';

export const trt066SortTopK: Rule = {
  code: 'TRT066',
  title: 'sort/argsort as TopK over the whole axis',
  defaultSeverity: 'information',
  traced: true,
  docs: "**TRT066 sort and argsort.** ONNX has no Sort: `torch.sort`, `argsort` and `msort` export as `TopK` with K = the length of the sorted axis, taken from the tensor's shape at run time. TensorRT's TopK needs K below 3840 (every version through 11.x), so the engine builds only while that axis is shorter; a K read from the shape needs TensorRT 8.6 or later. When only the largest or smallest k entries are used, call `topk(k)` with a constant k; to sort a long axis, sort outside the engine.",
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    // TopK's K limit of the 11.x (and 10.x) matrix; test/rules/deploymentHazards.test.ts ties it to the matrix.
    const limit = MAX_K;
    for (const site of ctx.calls('sort', 'argsort', 'msort')) {
      if (site.receiver) {
        const r = ctx.src(site.receiver);
        // list.sort(), sorted helpers on plain Python objects and numpy are not traced tensors.
        if (r === 'self' || r === 'np' || r === 'numpy' || site.receiver.type === 'list') continue;
        if (site.name === 'sort' && !site.args.length && !site.kwargs.size) {
          const s = ctx.statementOf(site.node);
          // `names.sort()` as a statement is Python's in-place list sort (a tensor's sort returns a new tuple).
          if (s.type === 'expression_statement' && s.namedChildren[0]?.id === site.node.id) continue;
        }
      } else if (!ctx.isTorch(site)) continue;
      const dynamicK = !ctx.trtAtLeast(8, 6);
      const what = `\`${site.name}\` exports as TopK over the whole axis (K = the axis length, from the shape at run time)`;
      const msg = dynamicK
        ? `${what}: TensorRT ${ctx.trt.text} needs K as a build-time constant (a K from the shape needs 8.6+). Use topk with a constant k, or sort outside the engine.`
        : `${what}: TensorRT's TopK needs K < ${limit} (${trtScope(ctx)}), so the engine builds only while that axis is shorter than ${limit}. If only the first k entries are used, call topk(k) with a constant k.`;
      out.push(ctx.diag('TRT066', dynamicK ? 'error' : 'information', site.node, msg));
    }
    return out;
  },
};
