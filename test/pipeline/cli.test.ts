import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePipelineArgs, ProgressPrinter, formatReport } from '../../server/src/pipeline/cli';

test('pipeline flags: values, = form, and mistakes named', () => {
  const f = parsePipelineArgs('run', [
    'proj',
    '--method=mse',
    '--batches',
    '3',
    '--write',
    '--python',
    '/usr/bin/python3',
    '--target',
    'ort-cpu',
  ]);
  assert.deepEqual(
    [f.dir, f.method, f.batches, f.write, f.python, f.target],
    ['proj', 'mse', 3, true, '/usr/bin/python3', 'ort-cpu'],
  );
  assert.throws(() => parsePipelineArgs('calibrate', ['--dynamic']), /unknown option "--dynamic" for "qdq calibrate"/);
  assert.throws(() => parsePipelineArgs('run', ['--batches', '0']), /--batches must be a positive integer/);
  assert.throws(() => parsePipelineArgs('run', ['--python']), /--python needs a value/);
  assert.throws(() => parsePipelineArgs('run', ['a', 'b']), /one project folder only/);
  assert.throws(
    () => parsePipelineArgs('export', ['--target', 'tflite']),
    /--target must be tensorrt, tensorrt10 or ort-cpu/,
  );
  assert.equal(parsePipelineArgs('export', ['--dynamic']).dynamic, true);
});

function fakeStream(tty: boolean) {
  const chunks: string[] = [];
  return {
    chunks,
    stream: {
      isTTY: tty,
      columns: 100,
      write: (s: string) => {
        chunks.push(s);
        return true;
      },
    },
  };
}

test('progress: nothing for steps under a second; plain lines without a TTY', () => {
  let now = 0;
  const { chunks, stream } = fakeStream(false);
  const p = new ProgressPrinter(stream, () => now);
  p.update({ step: 'load', done: 0, total: null, message: 'loading' });
  now = 500;
  p.update({ step: 'calibrate', done: 0, total: 4, message: 'batch 0' });
  assert.deepEqual(chunks, [], 'load took 0.5 s: no output');
  now = 1700;
  p.update({ step: 'calibrate', done: 2, total: 4, message: 'batch 2' });
  now = 2500;
  p.update({ step: 'calibrate', done: 3, total: 4, message: 'batch 3' });
  now = 3800;
  p.update({ step: 'export', done: 0, total: 1, message: 'exporting' });
  p.finishStep();
  assert.deepEqual(chunks, ['calibrate: 2/4 batch 2 (1s)\n', 'calibrate done in 3.3s: batch 3\n']);
});

test('progress: a redrawn bar on a TTY', () => {
  let now = 0;
  const { chunks, stream } = fakeStream(true);
  const p = new ProgressPrinter(stream, () => now);
  p.update({ step: 'calibrate', done: 0, total: 10, message: 'start' });
  now = 1200;
  p.update({ step: 'calibrate', done: 5, total: 10, message: 'batch 5' });
  p.finishStep();
  // eslint-disable-next-line no-control-regex -- the progress line starts with the ANSI erase-line escape
  assert.match(chunks[0], /^\r\x1b\[2Kcalibrate \[#{10}\.{10}\] 5\/10 batch 5 \(1s\)$/);
  assert.match(chunks[1], /calibrate done in 1\.2s: batch 5\n$/);
});

test('the final table shows FP32, static and dynamic INT8 side by side', () => {
  const text = formatReport(
    {
      version: 1,
      project_dir: '/p',
      model: 'model.py:build',
      model_class: 'Net',
      python: { path: '/py', python_version: '3.11', torch_version: '2.5' },
      method: 'max',
      percentile: null,
      batches_seen: 4,
      calibration_data_kind: 'user',
      target: 'tensorrt',
      exporter: 'torchscript',
      opset: 13,
      files: {},
      quantizers: [
        { name: 'fc.input_quantizer', axis: null },
        { name: 'fc.weight_quantizer', axis: 0 },
      ],
      qdq_pairs: 2,
      weighted_ops: 1,
      unquantized_weighted_ops: [],
      tensorrt_unsupported_ops: [],
      tensorrt_checked: true,
      outputs: [],
      cosine_min: 0.9991,
      max_abs_diff: 0.02,
      top1_agreement: 1,
      accuracy: { fp32: 0.98, int8: 0.975 },
      latency_ms: { fp32: 2, int8: 1 },
      latency_input_shape: [8, 3],
      size_bytes: { fp32: 4e6, int8: 1e6 },
      eval_samples: 8,
      dynamic: {
        file: 'd',
        quantized_ops: 1,
        skipped_ops: [],
        cosine_min: 0.9999,
        max_abs_diff: 0.01,
        top1_agreement: 1,
        accuracy: { fp32: 0.98, int8: 0.98 },
        latency_ms: { fp32: 2, int8: 0.8 },
        size_bytes: { fp32: 4e6, int8: 1.1e6 },
      },
      notes: ['a note'],
    },
    'run',
  );
  assert.match(text, /2 quantizers \(1 activation, 1 weight\)/);
  assert.match(text, /top-1 accuracy\s+98\.00%\s+97\.50%\s+98\.00%/);
  assert.match(text, /latency \(median ms\)\s+2\s+1\s+0\.80/);
  assert.match(text, /note: a note/);
});
