// Golden tests for the safe TensorRT fixes: input.py -> expected.py, the output re-parses without error nodes
// (tree-sitter) and with Python's own ast.parse, re-applying changes nothing, and where the case has an
// equivalence.py, the original and fixed functions give identical tensors under real PyTorch.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { applyTrtFixes } from '../../server/src/fixes/trtFixes';
import { parsePython } from '../../server/src/analysis/parser';
import { LineIndex } from '../../server/src/analysis/parser';

const GOLDEN = path.join(process.cwd(), 'test', 'golden', 'trt');
const RUNNER = path.join(process.cwd(), 'test', 'rules', 'equivalence_runner.py');

function pythonHas(module: string): boolean {
  const r = spawnSync('python3', ['-c', `import ${module}`], { encoding: 'utf8' });
  return r.status === 0;
}
const HAS_PYTHON = spawnSync('python3', ['-c', 'pass']).status === 0;
const HAS_TORCH = HAS_PYTHON && pythonHas('torch');

function astParses(text: string): { ok: boolean; err: string } {
  const r = spawnSync('python3', ['-c', 'import ast,sys; ast.parse(sys.stdin.read())'], {
    input: text,
    encoding: 'utf8',
  });
  return { ok: r.status === 0, err: r.stderr };
}

/** Applies LSP edits (non-overlapping) to a text. */
function applyEdits(
  text: string,
  edits: {
    range: { start: { line: number; character: number }; end: { line: number; character: number } };
    newText: string;
  }[],
): string {
  const idx = new LineIndex(text);
  const offs = edits
    .map((e) => ({ s: idx.offsetAt(e.range.start), e: idx.offsetAt(e.range.end), t: e.newText }))
    .sort((a, b) => b.s - a.s);
  let out = text;
  for (const o of offs) out = out.slice(0, o.s) + o.t + out.slice(o.e);
  return out;
}

describe('golden TensorRT fixes', () => {
  const cases = fs
    .readdirSync(GOLDEN)
    .filter((d) => fs.existsSync(path.join(GOLDEN, d, 'input.py')))
    .sort();
  it('has golden cases', () => assert.ok(cases.length >= 5));
  for (const name of cases) {
    const dir = path.join(GOLDEN, name);
    const input = fs.readFileSync(path.join(dir, 'input.py'), 'utf8');
    const expected = fs.readFileSync(path.join(dir, 'expected.py'), 'utf8');
    describe(name, () => {
      const result = applyTrtFixes(input);
      it('produces the expected output', () => assert.equal(result.text, expected));
      it('reports one applied entry per change, and edits that reproduce the output', () => {
        assert.equal(result.applied.length > 0, input !== expected);
        assert.equal(applyEdits(input, result.edits), expected);
      });
      it('re-parses without tree-sitter error nodes', () =>
        assert.equal(parsePython(result.text).rootNode.hasError, false));
      it('passes Python ast.parse', { skip: HAS_PYTHON ? false : 'python3 is not on PATH' }, () => {
        const r = astParses(result.text);
        assert.ok(r.ok, r.err);
      });
      it('is idempotent: re-applying changes nothing', () => {
        const again = applyTrtFixes(result.text);
        assert.equal(again.text, result.text);
        assert.deepEqual(again.applied, []);
        assert.deepEqual(again.edits, []);
      });
      if (fs.existsSync(path.join(dir, 'equivalence.py'))) {
        it(
          'computes the same tensors as the original under PyTorch',
          { skip: HAS_TORCH ? false : 'python3 cannot import torch' },
          () => {
            const r = spawnSync('python3', [RUNNER, dir], { encoding: 'utf8', timeout: 120_000 });
            assert.equal(r.status, 0, r.stderr + r.stdout);
            assert.match(r.stdout, /equivalent/);
          },
        );
      }
    });
  }
});
