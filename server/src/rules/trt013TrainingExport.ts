// TRT013: training-mode export (torch.onnx.export(training=TRAINING), model never put in eval), bernoulli,
// dropout(training=True).
import type { CallSite, RuleContext } from './context';
import { trtScope } from './common';
import type { QdqDiagnostic, Rule, SyntaxNode } from './types';

const why = (ctx: RuleContext) =>
  `training-mode Dropout/BatchNormalization (training_mode=1) and Bernoulli are unsupported ${trtScope(ctx)}`;

export const trt013TrainingExport: Rule = {
  code: 'TRT013',
  title: 'Training-mode export',
  defaultSeverity: 'error',
  scope: 'file',
  // bernoulli and dropout(training=True) are graph ops; the export checks are about the export call itself.
  traced: (d) => /^`(?:bernoulli|dropout)/.test(d.message),
  docs: '**TRT013 training-mode export.** Exporting with `training=TrainingMode.TRAINING`, exporting a model that was never put in `eval()`, `torch.bernoulli` and `F.dropout(training=True)` produce Dropout(training_mode=1), BatchNormalization(training_mode=1) or Bernoulli nodes, which TensorRT rejects ("does not support training_mode == 1"). Export in `model.eval()`, with `training=TrainingMode.EVAL`.',
  check(ctx) {
    const out: QdqDiagnostic[] = [];
    // `export(` is only torch.onnx.export when written `<onnx>.export(` or imported bare from torch.onnx.
    const bareExport = ctx.aliases.get('export') === 'torch.onnx.export';
    const exportSites = ctx.callsFiltered(['export'], (at) => {
      if (ctx.text.charCodeAt(at - 1) !== 46 /* . */) return bareExport;
      const owner = /(\w+)\s*\.$/.exec(ctx.text.slice(Math.max(0, at - 40), at))?.[1] ?? '';
      return owner === 'onnx' || ctx.aliases.get(owner) === 'torch.onnx';
    });
    for (const site of exportSites) {
      if (!ctx.isTorch(site, 'torch.onnx')) continue;
      checkExport(ctx, site, out);
    }
    for (const site of ctx.calls('bernoulli', 'bernoulli_')) {
      if (site.receiver ? ctx.src(site.receiver) === 'self' : !ctx.isTorch(site)) continue;
      out.push(
        ctx.diag(
          'TRT013',
          'error',
          site.node,
          `\`${site.name}\` exports as ONNX Bernoulli: ${why(ctx)}. Keep stochastic ops out of the engine.`,
        ),
      );
    }
    // Only dropout calls that pass a literal True can be training-mode: look for it before any node lookup.
    const dropoutSites = ctx.callsFiltered(['dropout'], (at) => ctx.text.slice(at, at + 240).includes('True'));
    for (const site of dropoutSites) {
      if (!ctx.isTorch(site, 'torch.nn.functional', 'torch')) continue;
      const t = site.kwargs.get('training') ?? site.args[2];
      if (t && ctx.src(t) === 'True') {
        out.push(
          ctx.diag(
            'TRT013',
            'error',
            site.node,
            `\`dropout(..., training=True)\` exports a training-mode Dropout: ${why(ctx)}. Pass training=self.training so eval export drops it.`,
            { title: 'Use training=self.training', safety: 'unsafe', edits: [ctx.replace(t, 'self.training')] },
          ),
        );
      }
    }
    return out;
  },
};

function checkExport(ctx: RuleContext, site: CallSite, out: QdqDiagnostic[]): void {
  const training = site.kwargs.get('training');
  if (training) {
    const t = ctx.src(training).replace(/\s+/g, '');
    if (/(?:^|\.)TRAINING$/.test(t) || t === 'True') {
      const fixText = t === 'True' ? 'False' : ctx.src(training).replace(/TRAINING\s*$/, 'EVAL');
      out.push(
        ctx.diag(
          'TRT013',
          'error',
          training,
          `torch.onnx.export(training=${t}) exports Dropout/BatchNormalization in training mode: ${why(ctx)}. Export with TrainingMode.EVAL.`,
          { title: `Export with ${fixText}`, safety: 'safe', edits: [ctx.replace(training, fixText)] },
        ),
      );
      return;
    }
  }
  // The TorchScript exporter (dynamo=False) switches the model to eval itself unless training=PRESERVE; the dynamo
  // exporter (torch.onnx.export's default since torch 2.9) exports the module in its current mode.
  const dynamo = site.kwargs.get('dynamo');
  const preserve = training !== undefined && /PRESERVE$/.test(ctx.src(training));
  if (dynamo && ctx.src(dynamo) === 'False' && !preserve) return;
  const model = site.args[0] ?? site.kwargs.get('model');
  if (!model || (model.type !== 'identifier' && model.type !== 'attribute')) return;
  const modelText = ctx.src(model);
  if (/\.eval\(\)/.test(modelText)) return;
  const state = evalState(ctx, modelText, site.node.startIndex);
  if (state === 'eval') return;
  const stmt = ctx.statementOf(site.node);
  const indent = ctx.text.slice(ctx.text.lastIndexOf('\n', stmt.startIndex - 1) + 1, stmt.startIndex);
  const canInsert = /^[ \t]*$/.test(indent);
  if (state === 'train') {
    out.push(
      ctx.diag(
        'TRT013',
        'error',
        model,
        `\`${modelText}\` is in training mode (\`.train()\` is called before this export): ${why(ctx)}. Call \`${modelText}.eval()\` before exporting.`,
        canInsert
          ? {
              title: `Call ${modelText}.eval() before the export`,
              safety: 'safe',
              edits: [ctx.insertBefore(stmt, `${modelText}.eval()${ctx.eol}${indent}`)],
            }
          : undefined,
      ),
    );
    return;
  }
  const constructedHere = isConstructedHere(ctx, site.node, model);
  if (constructedHere) {
    out.push(
      ctx.diag(
        'TRT013',
        'warning',
        model,
        `\`${modelText}\` is exported without \`.eval()\`: a freshly built nn.Module is in training mode, and the dynamo exporter (torch.onnx.export's default since torch 2.9) exports it as it is, so Dropout/BatchNorm export in training mode: ${why(ctx)}.`,
        canInsert
          ? {
              title: `Call ${modelText}.eval() before the export`,
              safety: 'safe',
              edits: [ctx.insertBefore(stmt, `${modelText}.eval()${ctx.eol}${indent}`)],
            }
          : undefined,
      ),
    );
  } else {
    out.push(
      ctx.diag(
        'TRT013',
        'hint',
        model,
        `Could not determine whether \`${modelText}\` is in eval mode here. Exporting in training mode fails in TensorRT: ${why(ctx)}.`,
      ),
    );
  }
}

/** Last `<model>.eval()` / `.train(...)` before `offset` in the file; a heuristic over text, ignoring control flow. */
function evalState(ctx: RuleContext, modelText: string, offset: number): 'eval' | 'train' | 'none' {
  const esc = modelText.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(
    `(?:\\b|^)${esc}\\s*\\.\\s*(eval\\s*\\(\\s*\\)|train\\s*\\(\\s*(False)?\\s*\\)|train\\s*\\(\\s*(?:mode\\s*=\\s*)?False\\s*\\))|${esc}\\s*=\\s*[^\\n]*\\.eval\\(\\)`,
    'g',
  );
  let state: 'eval' | 'train' | 'none' = 'none';
  let m: RegExpExecArray | null;
  while ((m = re.exec(ctx.text)) && m.index < offset) {
    state = m[1] === undefined || /^eval/.test(m[1]) || /False/.test(m[1]) ? 'eval' : 'train';
  }
  return state;
}

function isConstructedHere(ctx: RuleContext, at: SyntaxNode, model: SyntaxNode): boolean {
  if (model.type !== 'identifier') return false;
  const scope = ctx.scope(at);
  const a = ctx.assignmentBefore(scope, ctx.src(model), at.startIndex);
  return !!a && !!a.value && a.value.type === 'call' && !/from_pretrained|\.eval\(\)|jit\.load/.test(ctx.src(a.value));
}
