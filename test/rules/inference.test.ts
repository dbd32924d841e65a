// Integer-ness inference and version-dependent behaviour, through the rules that use them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { diagnose, diagnoseAll, py } from './helpers';

describe('integer-ness inference', () => {
  const cumsumOf = (setup: string, arg = 'x') =>
    diagnose(
      'TRT001',
      `import torch\ndef f(a, b, n: int, input_ids):\n    ${setup}\n    return torch.cumsum(${arg}, 1)\n`,
    );

  it('knows .int() / .long() / dtype=torch.int64 / .ne() results / arange of ints', () => {
    for (const setup of [
      'x = a.int()',
      'x = a.long()',
      'x = torch.zeros(3, 4, dtype=torch.int64)',
      'x = torch.ones(2, dtype=torch.long)',
      'x = a.ne(0)',
      'x = torch.arange(n)',
      'x = (a > b)',
      'x = a.to(torch.int32)',
      'x = torch.randint(0, 5, (2, 3))',
    ]) {
      const ds = cumsumOf(setup);
      assert.equal(ds.length, 1, setup);
      assert.equal(ds[0].severity, 'warning', setup);
      assert.doesNotMatch(ds[0].message, /Could not determine|may be/, setup);
    }
  });

  it('knows floats and stays quiet', () => {
    for (const setup of [
      'x = a.float()',
      'x = torch.zeros(3, 4)',
      'x = torch.arange(0.0, n)',
      'x = a.int().float()',
      'x = a.long() / 2',
      'x = torch.ones(2, dtype=torch.float16)',
    ]) {
      assert.deepEqual(cumsumOf(setup), [], setup);
    }
  });

  it('reports input_ids-like names only as a lower-severity "may be integer" hint', () => {
    const ds = cumsumOf('pass', 'input_ids');
    assert.equal(ds.length, 1);
    assert.equal(ds[0].severity, 'information');
    assert.match(ds[0].message, /may be an integer/);
  });

  it('says it could not determine the type instead of guessing', () => {
    const ds = cumsumOf('x = a * 3');
    assert.equal(ds.length, 1);
    assert.equal(ds[0].severity, 'hint');
    assert.match(ds[0].message, /Could not determine/);
  });

  it('follows the latest assignment before the use', () => {
    assert.equal(cumsumOf('x = a.int(); x = x.float()').length, 0);
    const text =
      'import torch\ndef f(a):\n    x = a.float()\n    y = torch.cumsum(x, 1)\n    x = a.long()\n    return torch.cumsum(x, 1)\n';
    const ds = diagnose('TRT001', text);
    assert.equal(ds.length, 1);
    assert.equal(ds[0].range.start.line, 5);
  });

  it('uses torch.LongTensor / BoolTensor annotations', () => {
    const ds = diagnose(
      'TRT033',
      'import torch\ndef f(ids: torch.LongTensor, m: torch.BoolTensor):\n    return torch.sqrt(ids), torch.exp(m)\n',
    );
    assert.equal(ds.length, 2);
    assert.ok(ds.every((d) => d.severity === 'error'));
  });

  it('resolves import aliases (import torch as th, from torch import cumsum)', () => {
    assert.equal(
      diagnose('TRT001', 'import torch as th\ndef f(a):\n    m = a.long()\n    return th.cumsum(m, 0)\n').length,
      1,
    );
    assert.equal(
      diagnose('TRT001', 'from torch import cumsum\ndef f(a):\n    m = a.long()\n    return cumsum(m, 0)\n').length,
      1,
    );
    assert.equal(
      diagnose('TRT001', 'import numpy as np\ndef f(a):\n    m = a.astype(int)\n    return np.cumsum(m, 0)\n').length,
      0,
    );
  });

  it('ignores calls inside strings and comments', () => {
    const text = py`
      import torch
      def f(a):
          """Example: torch.unique(a) and torch.nonzero(a)."""
          # torch.unique(a)
          return a
    `;
    assert.deepEqual(diagnoseAll(text), []);
  });
});

describe('trtVersion option', () => {
  const cumsum = 'import torch\ndef f(a):\n    m = a.int()\n    return torch.cumsum(m, 0)\n';
  it('TRT001 is a warning for TensorRT >= 10 and an error before', () => {
    assert.equal(diagnose('TRT001', cumsum)[0].severity, 'warning');
    assert.equal(diagnose('TRT001', cumsum, { trtVersion: '10.15' })[0].severity, 'warning');
    const old = diagnose('TRT001', cumsum, { trtVersion: '8.6' })[0];
    assert.equal(old.severity, 'error');
    assert.match(old.message, /8\.6/);
  });
  it('TRT004 is an error before TensorRT 8.5 (no NonZero importer)', () => {
    const text = 'import torch\ndef f(x):\n    return x.nonzero()\n';
    assert.equal(diagnose('TRT004', text, { trtVersion: '8.4' })[0].severity, 'error');
    assert.equal(diagnose('TRT004', text, { trtVersion: '8.5' })[0].severity, 'warning');
  });
  it('TRT025 is an error before TensorRT 10.0 (no ScatterElements reduction)', () => {
    const text = 'import torch\ndef f(o, i, s):\n    return o.scatter_add(0, i, s)\n';
    assert.equal(diagnose('TRT025', text, { trtVersion: '9.3' })[0].severity, 'error');
    assert.equal(diagnose('TRT025', text, { trtVersion: '10.0' })[0].severity, 'warning');
  });
  it('an unreadable version falls back to the default instead of disabling rules', () => {
    assert.equal(diagnose('TRT001', cumsum, { trtVersion: 'latest' })[0].severity, 'warning');
  });
});

describe('RoBERTa create_position_ids_from_input_ids', () => {
  const roberta = py`
    import torch
    def create_position_ids_from_input_ids(input_ids, padding_idx, past_key_values_length=0):
        mask = input_ids.ne(padding_idx).int()
        incremental_indices = (torch.cumsum(mask, dim=1).type_as(mask) + past_key_values_length) * mask
        return incremental_indices.long() + padding_idx
  `;
  it('flags the cumsum with a safe fix that turns .int() into .float()', () => {
    const [d] = diagnose('TRT001', roberta);
    assert.equal(d.code, 'TRT001');
    assert.match(d.message, /\.int\(\)/);
    assert.equal(d.fix?.safety, 'safe');
    assert.equal(d.fix?.edits.length, 1);
    assert.equal(d.fix?.edits[0].newText, 'float');
    assert.equal(d.fix?.edits[0].range.start.line, 2);
  });
});

describe('cross-run memo of name inference', () => {
  it('rebases line numbers in messages when lines are inserted above an unchanged function', () => {
    const body = 'def f(a):\n    m = a.int()\n    return torch.cumsum(m, 0)\n';
    const first = diagnose('TRT001', 'import torch\n' + body)[0];
    assert.match(first.message, /on line 3\b/);
    const shifted = diagnose('TRT001', 'import torch\n\n\n\n' + body)[0];
    assert.match(shifted.message, /on line 6\b/);
    assert.equal(shifted.range.start.line, 6);
  });
  it('does not reuse results across different imports', () => {
    const body = 'def f(a):\n    m = a.to(th.int64)\n    return torch.cumsum(m, 0)\n';
    assert.equal(diagnose('TRT001', 'import torch\nimport torch as th\n' + body)[0].severity, 'warning');
    const other = diagnose('TRT001', 'import torch\nimport numpy as th\n' + body)[0];
    assert.equal(other.severity, 'hint');
  });
});
