// TRT026: index_put(accumulate=True): ScatterND(reduction=add) under the dynamo exporter.
import { inferDtype } from './dtype';
import { trtScope } from './common';
import type { RuleContext } from './context';
import type { QdqDiagnostic, Rule } from './types';

const why = (ctx: RuleContext) =>
  `TensorRT ScatterND supports no reduction other than none ("Attribute reduction is not supported", ${trtScope(ctx)})`;

export const trt026IndexPutAccumulate: Rule = {
  code: 'TRT026',
  title: 'index_put with accumulate',
  defaultSeverity: 'error',
  traced: true,
  docs: '**TRT026 accumulating index_put.** `x.index_put_(idx, v, accumulate=True)` (and `x[idx] += v` with an index tensor under the dynamo exporter) exports as ScatterND(reduction="add"), which TensorRT rejects. Use a one-hot matmul, or scatter into zeros and add.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    for (const site of ctx.calls('index_put', 'index_put_')) {
      if (site.receiver ? ctx.src(site.receiver) === 'self' : !ctx.isTorch(site)) continue;
      const acc = site.kwargs.get('accumulate') ?? site.args[site.receiver ? 2 : 3];
      if (acc && ctx.src(acc) === 'True')
        out.push(
          ctx.diag(
            'TRT026',
            'error',
            site.node,
            `\`${site.name}(..., accumulate=True)\` exports as ScatterND(reduction="add"): ${why(ctx)}. Use a one-hot matmul or scatter into zeros and add.`,
          ),
        );
    }
    // x[idx] += v with a known integer index tensor: the same ScatterND(add) with the dynamo exporter.
    return out.concat(augmentedIndexAdds(ctx));
  },
};

function augmentedIndexAdds(ctx: import('./context').RuleContext): QdqDiagnostic[] {
  const out: QdqDiagnostic[] = [];
  const text = ctx.text;
  for (const p of ctx.scan.plusAssigns) {
    if (!ctx.wantsSite(p)) continue;
    let b = p;
    while (b > 0 && (text.charCodeAt(b - 1) === 32 || text.charCodeAt(b - 1) === 9)) b--;
    if (text.charCodeAt(b - 1) !== 93 /* ] */) continue;
    const node = ctx.root.descendantForIndex(b - 1, b);
    const sub = node.parent;
    if (!sub || sub.type !== 'subscript' || sub.parent?.type !== 'augmented_assignment') continue;
    const index = sub.childForFieldName('subscript');
    if (!index || sub.namedChildren.length !== 2) continue;
    const d = inferDtype(ctx, index);
    if (d.kind !== 'int' || d.tensor !== true || !d.certain) continue;
    out.push(
      ctx.diag(
        'TRT026',
        'warning',
        sub.parent,
        `\`x[idx] += v\` with an index tensor (${d.why}) exports as ScatterND(reduction="add") under the dynamo exporter (duplicates accumulate): ${why(ctx)}. Use a one-hot matmul, or the TorchScript exporter at opset 11.`,
      ),
    );
  }
  return out;
}
