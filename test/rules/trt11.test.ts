// TensorRT 11.x as the default target: the 11.x operator matrix (carried-over rows say so), version selection with
// --trt-version 10.x, and the migration rules' severity and fixes by target version.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { trtOperatorSupport, trtMatrixFor, describeForHover } from '../../server/src/knowledge';
import { DEFAULT_TRT_VERSION } from '../../server/src/rules/version';
import { parsePython } from '../../server/src/analysis/parser';
import { buildModelIndex } from '../../server/src/analysis/model';
import { runRules } from '../../server/src/rules';
import { applyTrtFixes } from '../../server/src/fixes/trtFixes';

const BUILD = [
  'import tensorrt as trt',
  'def build(builder, network, calib):',
  '    config = builder.create_builder_config()',
  '    config.set_flag(trt.BuilderFlag.INT8)',
  '    config.int8_calibrator = calib',
  '    return builder.build_serialized_network(network, config)',
  '',
].join('\n');

function diagnose(text: string, trtVersion?: string) {
  const tree = parsePython(text);
  return runRules(buildModelIndex(tree, text), tree, text, { trtVersion, only: ['TRT060', 'TRT061'] });
}

describe('TensorRT 11.x knowledge', () => {
  it('defaults to 11.x, with opsets 9-25 and Swish; 10.x selects the 10.15 matrix', () => {
    assert.match(DEFAULT_TRT_VERSION, /^11\./);
    assert.deepEqual(trtMatrixFor().opset, { min: 9, max: 25 });
    assert.equal(trtOperatorSupport('Swish')?.supported, true);
    assert.equal(trtOperatorSupport('Swish')?.matrixVersion, trtMatrixFor().trtVersion);
    assert.equal(trtOperatorSupport('Swish', '10.15'), undefined);
    assert.equal(trtOperatorSupport('Conv', '10.x')?.matrixVersion, '10.15');
    assert.match(trtOperatorSupport('Unique')!.note, /not supported by TensorRT 11\./);
  });
  it('marks every 11.x row that is not confirmed from a source as carried over', () => {
    const rows = Object.entries(trtMatrixFor('11.5').ops);
    assert.ok(rows.every(([, r]) => typeof r.provenance === 'string' && r.provenance.length > 0));
    assert.ok(rows.filter(([, r]) => r.provenance!.startsWith('carried over from 10.15')).length >= 190);
    assert.match(
      describeForHover('torch.matmul') ?? '',
      /TensorRT 11\.\d+.*[\s\S]*† carried over from TensorRT 10\.15/,
    );
  });
});

describe('TensorRT 11 migration rules', () => {
  it('are errors with fixes on 11.x and warnings without fixes on 10.x', () => {
    const on11 = diagnose(BUILD);
    assert.deepEqual(
      on11.map((d) => [d.code, d.severity, d.range.start.line, !!d.fix]),
      [
        ['TRT060', 'error', 3, true],
        ['TRT060', 'error', 4, true],
      ],
    );
    const on10 = diagnose(BUILD, '10.15');
    assert.ok(
      on10.every((d) => d.severity === 'warning' && !d.fix && /deprecated, and removed in TensorRT 11/.test(d.message)),
    );
    assert.equal(on10.length, 2);
  });
  it('the fix removes exactly the two lines, and re-applying changes nothing', () => {
    const fixed = applyTrtFixes(BUILD).text;
    assert.equal(
      fixed,
      BUILD.replace('    config.set_flag(trt.BuilderFlag.INT8)\n', '').replace(
        '    config.int8_calibrator = calib\n',
        '',
      ),
    );
    assert.equal(applyTrtFixes(fixed).text, fixed);
    assert.equal(applyTrtFixes(BUILD, { trtVersion: '10.15' }).text, BUILD);
  });
  it('leaves a set_flag that is the only statement of its block (deleting it would empty the block)', () => {
    const text =
      'import tensorrt as trt\ndef f(builder, config):\n    if builder.platform_has_fast_fp16:\n        config.set_flag(trt.BuilderFlag.FP16)\n';
    const ds = diagnose(text);
    assert.equal(ds.length, 2);
    assert.ok(ds.every((d) => !d.fix));
  });
  it('ignores the flags in comments and unrelated strings', () => {
    const text = '# config.set_flag(trt.BuilderFlag.INT8)\nHELP = "use --int8 with some other tool"\n';
    assert.deepEqual(diagnose(text), []);
  });
});
