// Which code never reaches the exported graph: code that runs only while training (under `if self.training:`,
// after a `if not training: return x` guard, in auxiliary-loss methods only training calls) and code that runs at
// build time (`__init__`, the static/class-method helpers __init__ calls, module level). A traced-op rule's
// finding there is no engine failure, so runRules turns it into a hint that says why (Rule.traced).
import { unparen, type RuleContext } from './context';
import type { QdqDiagnostic, Rule, SyntaxNode } from './types';

const LOSS_NAME = /(?:^|_)loss(?:es)?(?:_func|_fn)?$|^aux_|_aux$|^(?:compute|get|calc)_\w*loss/;

function isTrainingFlag(ctx: RuleContext, node: SyntaxNode): boolean {
  const n = unparen(node);
  if (n.type === 'identifier') return ctx.src(n) === 'training';
  return n.type === 'attribute' && ctx.src(n.childForFieldName('attribute')!) === 'training';
}

function boolOp(ctx: RuleContext, n: SyntaxNode): 'and' | 'or' | null {
  if (n.type !== 'boolean_operator') return null;
  const op = ctx.src(n.childForFieldName('operator')!);
  return op === 'and' || op === 'or' ? op : null;
}

/** Truthy `cond` means training: `self.training`, `self.training and p > 0`. */
function trueMeansTraining(ctx: RuleContext, cond: SyntaxNode): boolean {
  const n = unparen(cond);
  if (isTrainingFlag(ctx, n)) return true;
  return (
    boolOp(ctx, n) === 'and' &&
    (trueMeansTraining(ctx, n.childForFieldName('left')!) || trueMeansTraining(ctx, n.childForFieldName('right')!))
  );
}

/** Falsy `cond` means training: `not self.training`, `drop_prob == 0. or not training`. */
function falseMeansTraining(ctx: RuleContext, cond: SyntaxNode): boolean {
  const n = unparen(cond);
  if (n.type === 'not_operator') return isTrainingFlag(ctx, n.childForFieldName('argument')!);
  return (
    boolOp(ctx, n) === 'or' &&
    (falseMeansTraining(ctx, n.childForFieldName('left')!) || falseMeansTraining(ctx, n.childForFieldName('right')!))
  );
}

/** `if not training ...: return x` before `stmt` in the same block: what follows runs only while training. */
function afterTrainingGuard(ctx: RuleContext, stmt: SyntaxNode): boolean {
  for (let s = stmt.previousNamedSibling; s; s = s.previousNamedSibling) {
    if (s.type !== 'if_statement' || s.childForFieldName('alternative')) continue;
    const cond = s.childForFieldName('condition');
    const body = s.childForFieldName('consequence');
    const last = body?.lastNamedChild;
    if (
      cond &&
      last &&
      (last.type === 'return_statement' || last.type === 'raise_statement') &&
      falseMeansTraining(ctx, cond)
    )
      return true;
  }
  return false;
}

function fnName(ctx: RuleContext, fn: SyntaxNode): string {
  return ctx.src(fn.childForFieldName('name')!);
}

function decorators(ctx: RuleContext, fn: SyntaxNode): string[] {
  const d = fn.parent?.type === 'decorated_definition' ? fn.parent : null;
  return d ? d.namedChildren.filter((c) => c.type === 'decorator').map((c) => ctx.src(c)) : [];
}

/** Calls of `name`: `self.<name>(` / `cls.<name>(` / `<Class>.<name>(`, and bare `<name>(` when `bare`. */
function callsOf(ctx: RuleContext, scope: SyntaxNode, name: string, bare = false): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  const re = new RegExp(bare ? `(?<![\\w.])${name}\\s*\\(|\\.\\s*${name}\\s*\\(` : `\\.\\s*${name}\\s*\\(`, 'g');
  const text = ctx.text.slice(scope.startIndex, scope.endIndex);
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const at = scope.startIndex + m.index + m[0].indexOf(name);
    if (!ctx.isCode(at)) continue;
    const id = ctx.root.descendantForIndex(at, at + name.length);
    if (id.type !== 'identifier') continue;
    const fn = id.parent?.type === 'attribute' ? id.parent : id;
    const call = fn.parent;
    if (call?.type === 'call' && call.childForFieldName('function')?.id === fn.id) out.push(call);
  }
  return out;
}

/** A call that runs whenever its function does: no `if`, conditional expression or loop between them. */
function unconditional(call: SyntaxNode): boolean {
  for (let n = call.parent; n && n.type !== 'function_definition'; n = n.parent)
    if (
      [
        'if_statement',
        'elif_clause',
        'else_clause',
        'conditional_expression',
        'for_statement',
        'while_statement',
        'try_statement',
      ].includes(n.type)
    )
      return false;
  return true;
}

function methodNamed(cls: SyntaxNode, ctx: RuleContext, name: string): SyntaxNode | null {
  for (const c of cls.childForFieldName('body')?.namedChildren ?? []) {
    const fn = c.type === 'decorated_definition' ? c.childForFieldName('definition') : c;
    if (fn?.type === 'function_definition' && fnName(ctx, fn) === name) return fn;
  }
  return null;
}

/** Why `node` never runs in the exported forward, or null when it may. */
export function notExported(ctx: RuleContext, node: SyntaxNode, depth = 0): string | null {
  let child = node;
  for (let n = node.parent; n; child = n, n = n.parent) {
    if (n.type === 'if_statement' || n.type === 'elif_clause') {
      const cond = n.childForFieldName('condition');
      if (cond && child.id === n.childForFieldName('consequence')?.id && trueMeansTraining(ctx, cond))
        return 'runs only while training';
      if (cond && child.type === 'else_clause' && falseMeansTraining(ctx, cond)) return 'runs only while training';
    } else if (n.type === 'conditional_expression') {
      const [a, cond, b] = n.namedChildren;
      if (child.id === a?.id && cond && trueMeansTraining(ctx, cond)) return 'runs only while training';
      if (child.id === b?.id && cond && falseMeansTraining(ctx, cond)) return 'runs only while training';
    } else if (n.type === 'block' && child.type !== 'block' && afterTrainingGuard(ctx, child)) {
      return 'runs only while training (after a `not training` early return)';
    } else if (n.type === 'function_definition') {
      const why = functionNotExported(ctx, n, depth);
      if (why) return why;
    } else if (
      n.type === 'module' &&
      child.type !== 'function_definition' &&
      child.type !== 'class_definition' &&
      child.type !== 'decorated_definition'
    ) {
      return 'runs at import time (module level), not in the traced forward';
    }
  }
  return null;
}

function functionNotExported(ctx: RuleContext, fn: SyntaxNode, depth: number): string | null {
  const name = fnName(ctx, fn);
  if (name === '__init__') return 'runs at build time (__init__)';
  const cls =
    fn.parent?.type === 'block' || fn.parent?.type === 'decorated_definition'
      ? ctx.enclosing(fn, 'class_definition')
      : null;
  if (cls && decorators(ctx, fn).some((d) => /^@(?:staticmethod|classmethod)\b/.test(d))) {
    const init = methodNamed(cls, ctx, '__init__');
    const calls = callsOf(ctx, cls, name);
    if (init && calls.length && calls.every((c) => c.startIndex >= init.startIndex && c.endIndex <= init.endIndex))
      return `runs at build time (a helper only __init__ calls)`;
  }
  const moduleLevel = fn.parent?.type === 'module' || fn.parent?.parent?.type === 'module';
  const calls =
    depth < 3 ? (moduleLevel ? callsOf(ctx, ctx.root, name, true) : cls ? callsOf(ctx, cls, name) : []) : [];
  if (LOSS_NAME.test(name)) {
    // An auxiliary loss: training code (losses are computed under a training, labels or flag condition), unless some
    // caller computes it on every run.
    if (!calls.some((c) => unconditional(c) && notExported(ctx, c, depth + 1) === null))
      return `runs only while training (the loss \`${name}\`)`;
    return null;
  }
  // A helper every caller of which never reaches the export (timm's drop_block_2d behind the forward's guard).
  if (calls.length && calls.every((c) => c.startIndex < fn.startIndex || c.endIndex > fn.endIndex)) {
    const whys = calls.map((c) => notExported(ctx, c, depth + 1));
    if (whys.every((w) => w !== null))
      return `${whys[0]!.replace(/ \(through its callers\)$/, '')} (through its callers)`;
  }
  return null;
}

/** Traced-op findings in code that never reaches the export become hints, with the reason in the message. */
export function downgradeUnexported(ctx: RuleContext, rules: readonly Rule[], found: QdqDiagnostic[]): QdqDiagnostic[] {
  const byCode = new Map(rules.map((r) => [r.code, r]));
  return found.map((d) => {
    const rule = byCode.get(d.code);
    const traced = typeof rule?.traced === 'function' ? rule.traced(d) : !!rule?.traced;
    if (!traced || d.severity === 'hint') return d;
    const at = ctx.root.descendantForPosition({ row: d.range.start.line, column: d.range.start.character });
    const why = notExported(ctx, at);
    if (!why) return d;
    const { fix, ...rest } = d;
    // The fix stays offered: the rewrite is as valid here, just not needed for the engine.
    return {
      ...rest,
      severity: 'hint',
      message: `${d.message} (Only a hint: this code ${why}, so TensorRT never sees it.)`,
      ...(fix ? { fix } : {}),
    };
  });
}
