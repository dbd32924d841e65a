// Issue 15 item 6: findings in code that never reaches the export (training-only branches, drop-path guards,
// auxiliary losses, __init__ and its static build helpers, module level) are hints that say why; the same ops in the
// exported forward keep their severity. Fixtures follow the shapes of timm and transformers code (written here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { diagnoseAll } from './helpers';
import type { QdqDiagnostic } from '../../server/src/rules/types';

const dir = path.join(__dirname, '../../../test/fixtures/export-time');
const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');

function at(text: string, found: QdqDiagnostic[], code: string, lineText: string): QdqDiagnostic {
  const line = text.split('\n').findIndex((l) => l.includes(lineText));
  assert.ok(line >= 0, `fixture has no line with ${lineText}`);
  const d = found.find((x) => x.code === code && x.range.start.line === line);
  assert.ok(d, `${code} on "${lineText}": found ${found.map((x) => `${x.code}@${x.range.start.line}`).join(' ')}`);
  return d;
}

test('timm-like: drop path, dropout guard, build-time helpers, aux loss and module level are hints', () => {
  const text = read('timm_like.py');
  const found = diagnoseAll(text);
  const hint = (code: string, lineText: string, why: RegExp) => {
    const d = at(text, found, code, lineText);
    assert.equal(d.severity, 'hint', `${code} on "${lineText}": ${d.message}`);
    assert.match(d.message, why);
  };
  hint('TRT013', 'bernoulli_(keep_prob)', /runs only while training \(after a `not training` early return\)/);
  hint('TRT013', 'F.dropout(x, self.drop_rate, training=True)', /runs only while training/);
  hint('TRT001', 'torch.cumsum(rel.long(), dim=0)', /build time \(a helper only __init__ calls\)/);
  hint('TRT066', 'order = torch.argsort(torch.arange', /build time \(__init__\)/);
  hint('TRT008', 'torch.bincount(choice.flatten())', /the loss `balance_loss`/);
  hint('TRT066', 'PERMUTATION = torch.argsort', /module level/);
  // A helper only a guarded forward calls inherits the guard.
  hint('TRT013', 'torch.empty_like(x).bernoulli_(gamma)', /runs only while training .*\(through its callers\)/);
  // The forward's own argsort is exported: it keeps its severity.
  const kept = at(text, found, 'TRT066', 'keep = torch.argsort(scores');
  assert.equal(kept.severity, 'information');
  assert.doesNotMatch(kept.message, /Only a hint/);
});

test('transformers-like: the router loss under `if self.training` is a hint, the exported position ids are not', () => {
  const text = read('transformers_like.py');
  const found = diagnoseAll(text);
  const masked = at(text, found, 'TRT005', 'kept = logits[mask.bool()]');
  assert.equal(masked.severity, 'hint', masked.message);
  assert.match(masked.message, /the loss `router_z_loss`/);
  // A module-level loss function called under a flag (not every run) is training code too.
  const histc = at(text, found, 'TRT009', 'torch.histc(selected.float()');
  assert.equal(histc.severity, 'hint', histc.message);
  assert.match(histc.message, /the loss `load_balancing_loss_func`/);
  const positions = at(text, found, 'TRT001', 'positions = attention_mask.long().cumsum(-1)');
  assert.equal(positions.severity, 'warning');
  assert.ok(positions.fix, 'the exported cumsum keeps its fix');
});

test('an aux-named function the forward calls outside training is exported, so it is not downgraded', () => {
  const text = [
    'import torch',
    'import torch.nn as nn',
    'class M(nn.Module):',
    '    def forward(self, x):',
    '        return self.aux_head(x)',
    '    def aux_head(self, x):',
    '        return torch.bincount(x)',
    '',
  ].join('\n');
  const d = diagnoseAll(text).find((x) => x.code === 'TRT008');
  assert.ok(d);
  assert.equal(d.severity, 'error');
});
