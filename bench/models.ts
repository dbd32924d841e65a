// Section b: model speed. FP32 vs static INT8 (targets tensorrt and ort-cpu, through the real pipeline) vs
// dynamic INT8 (server/src/onnx), with onnxruntime-node on 2 threads: latency (median, all variants timed in
// turn in the same run), file size, output cosine to FP32 and, for the classifiers, top-1 accuracy.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { median, interleaved, progress, Skip, TargetCheck } from './stats';

const repo = path.resolve(__dirname, '..', '..');

export interface VariantResult {
  file?: string;
  size_bytes?: number;
  latency_ms?: number;
  speedup?: number;
  cosine?: number;
  /** Intra-op threads (1 or 2) this variant ran fastest with; latency_ms is at that count. */
  threads?: number;
  latency_ms_by_threads?: Record<string, number>;
  top1_agreement?: number | null;
  accuracy?: number | null;
  skipped?: string;
  /** Static variants: what the pipeline reported about the QDQ graph. */
  qdq_pairs?: number | null;
  unquantized_weighted_ops?: number;
  exporter?: string | null;
}
export interface ModelResult {
  model: string;
  latency_input_shape: number[];
  eval_samples: number | null;
  timed_runs_per_variant: number;
  variants: Record<string, VariantResult>;
}
export interface ModelsResult {
  python: string;
  models: ModelResult[];
}

const MODELS: { name: string; dir: string; isEncoder: boolean }[] = [
  { name: 'digits-cnn', dir: path.join(repo, 'examples', 'digits-cnn'), isEncoder: false },
  { name: 'digits-transformer', dir: path.join(repo, 'examples', 'digits-transformer'), isEncoder: false },
  { name: 'encoder (BERT-base size, 4 layers, seq 128)', dir: path.join(repo, 'bench', 'encoder'), isEncoder: true },
];

function load(rel: string): any {
  try {
    return require(path.join(repo, 'out', 'server', 'src', ...rel.split('/')));
  } catch (e) {
    throw new Skip(`server/src/${rel} is not built or fails to load (${(e as Error).message.split('\n')[0]})`);
  }
}

function pythonWithTorch(): string {
  for (const py of [process.env.QDQ_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean) as string[]) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  throw new Skip('no python3 with torch found (set QDQ_PYTHON or pip install torch)');
}

interface Inputs {
  latency: Float32Array;
  latencyShape: number[];
  evalX?: Float32Array;
  evalShape?: number[];
  labels?: BigInt64Array;
}

function readInputs(dir: string): Inputs {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'inputs.json'), 'utf8'));
  const buf = fs.readFileSync(path.join(dir, 'inputs.bin'));
  const f32 = (e: any) =>
    new Float32Array(buf.buffer.slice(buf.byteOffset + e.offset, buf.byteOffset + e.offset + e.length));
  const out: Inputs = { latency: f32(meta.latency), latencyShape: meta.latency.shape };
  if (meta.eval_inputs) {
    out.evalX = f32(meta.eval_inputs);
    out.evalShape = meta.eval_inputs.shape;
    const e = meta.eval_labels;
    out.labels = new BigInt64Array(buf.buffer.slice(buf.byteOffset + e.offset, buf.byteOffset + e.offset + e.length));
  }
  return out;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb);
}

function argmax(data: ArrayLike<number>, rows: number): number[] {
  const cols = data.length / rows;
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (data[r * cols + c] > data[r * cols + best]) best = c;
    out.push(best);
  }
  return out;
}

export async function benchModels(checks: TargetCheck[]): Promise<ModelsResult> {
  const verify = load('onnx/verify.js');
  const onnxModel = load('onnx/model.js');
  const dynamic = load('onnx/dynamic.js');
  await load('onnx/cpuInt8.js').probeU8S8Saturation(); // the weight range the product writes on this CPU
  const pipeline = load('pipeline/run.js');
  const ort = require('onnxruntime-node');
  const python = pythonWithTorch();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-bench-'));
  const result: ModelsResult = { python, models: [] };
  try {
    for (const m of MODELS) {
      const dir = path.join(work, m.name.split(' ')[0]);
      progress(`model speed: ${m.name}: FP32 export`);
      const exp = spawnSync(python, [path.join(repo, 'bench', 'py', 'export_fp32.py'), m.dir, dir], {
        encoding: 'utf8',
        env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
      });
      if (exp.status !== 0) {
        throw new Error(`FP32 export of ${m.name} failed:\n${exp.stderr.split('\n').slice(-8).join('\n')}`);
      }
      const fp32 = path.join(dir, 'fp32.onnx');
      const inputs = readInputs(dir);
      const files: Record<string, string | { skipped: string }> = { fp32 };
      const pipelineInfo: Record<string, Partial<VariantResult>> = {};

      progress(`model speed: ${m.name}: dynamic INT8 (server/src/onnx/dynamic)`);
      const model = onnxModel.readModel(fp32);
      const dyn = dynamic.quantizeDynamic(model);
      files.dynamic = path.join(dir, 'dynamic.onnx');
      onnxModel.writeModel(model, files.dynamic);
      if (!dyn.quantized.length) files.dynamic = { skipped: 'no MatMul/Gemm with a constant weight' };

      for (const target of ['tensorrt', 'ort-cpu']) {
        progress(
          `model speed: ${m.name}: static INT8, target ${target} (qdq pipeline: quantize, calibrate, export, fold)`,
        );
        try {
          const r = await pipeline.runPipeline({
            projectDir: m.dir,
            steps: ['export'],
            python,
            overrides: { target, outDir: path.join(dir, `static-${target}`), dynamicBatch: true },
            onLog: () => undefined,
          });
          files[`static ${target}`] = r.report.files.int8_onnx;
          pipelineInfo[`static ${target}`] = {
            qdq_pairs: r.report.qdq_pairs,
            exporter: r.report.exporter,
            unquantized_weighted_ops: (r.report.unquantized_weighted_ops ?? []).length,
          };
        } catch (e: any) {
          const why = `${e.kind ? `[${e.kind}] ` : ''}${String(e.message ?? e).split('\n')[0]}`;
          files[`static ${target}`] = { skipped: `pipeline failed: ${why}` };
          progress(`model speed: ${m.name}: static ${target} skipped: ${why}`);
        }
      }

      progress(`model speed: ${m.name}: accuracy, cosine and latency with onnxruntime-node (1 and 2 threads)`);
      // The digits models run in well under a millisecond, so a burst from another process on this
      // shared 2-core machine can swing a short timing window by 2x: many short rounds, taken in
      // turn, let every variant see the same bursts. The encoder's runs take tens of ms each; with 8
      // rounds of 3, two variants of the same speed (dynamic and static ort-cpu, both 14-15 ms alone)
      // once measured 15.7 and 22.8 ms in one run, so it gets 16 rounds of 2 (about 7 s more).
      const rounds = m.isEncoder ? 16 : 60;
      const perRound = m.isEncoder ? 2 : 10;
      const res: ModelResult = {
        model: m.name,
        latency_input_shape: inputs.latencyShape,
        eval_samples: inputs.labels ? inputs.labels.length : null,
        timed_runs_per_variant: rounds * perRound,
        variants: {},
      };
      const sessions: Record<string, any> = {};
      // Each variant also runs on 1 intra-op thread. A second thread only helps when the host leaves this VM's
      // second vCPU free, and helps the kernels unequally: FP32's NCHWc convolution splits the whole batch
      // (digits-cnn 0.40 -> 0.24 ms) where ORT's QLinearConv splits one 8x8 image at a time (0.23 -> 0.19 ms).
      // Every variant is reported at its faster count (a deployer would pick it), which the table says.
      const oneThread: Record<string, any> = {};
      for (const [name, f] of Object.entries(files)) {
        if (typeof f !== 'string') {
          res.variants[name] = { skipped: f.skipped };
          continue;
        }
        try {
          sessions[name] = await verify.createSession(f, 2);
          oneThread[name] = await verify.createSession(f, 1);
          res.variants[name] = { file: f, size_bytes: fs.statSync(f).size, ...pipelineInfo[name] };
        } catch (e) {
          res.variants[name] = { skipped: `onnxruntime could not load it: ${(e as Error).message.split('\n')[0]}` };
        }
      }
      if (!sessions.fp32) throw new Error(`onnxruntime could not load the FP32 model of ${m.name}`);
      const run = async (s: any, data: Float32Array, shape: number[]) => {
        const out = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', data, shape) });
        return out[s.outputNames[0]].data as Float32Array;
      };
      // Accuracy/cosine on the eval set (classifiers) or the latency batch (encoder).
      const x = inputs.evalX ?? inputs.latency;
      const shape = inputs.evalShape ?? inputs.latencyShape;
      const reference = await run(sessions.fp32, x, shape);
      const refTop1 = argmax(reference, shape[0]);
      for (const [name, s] of Object.entries(sessions)) {
        const out = await run(s, x, shape);
        const v = res.variants[name];
        v.cosine = cosine(reference, out);
        if (inputs.labels) {
          const top1 = argmax(out, shape[0]);
          v.accuracy = top1.filter((p, i) => BigInt(p) === inputs.labels![i]).length / top1.length;
          v.top1_agreement = top1.filter((p, i) => p === refTop1[i]).length / top1.length;
        }
      }
      const feed = (s: any) => ({ [s.inputNames[0]]: new ort.Tensor('float32', inputs.latency, inputs.latencyShape) });
      const timed: Record<string, () => unknown> = {};
      for (const [name, s] of Object.entries(sessions)) {
        const f2 = feed(s);
        timed[`${name}@2`] = () => s.run(f2);
      }
      for (const [name, s] of Object.entries(oneThread)) {
        const f1 = feed(s);
        timed[`${name}@1`] = () => s.run(f1);
      }
      const samples = await interleaved(timed, { rounds, perRound, warmup: 3 });
      const best = (name: string) => {
        const m1 = samples[`${name}@1`] ? median(samples[`${name}@1`]) : Infinity,
          m2 = median(samples[`${name}@2`]);
        return m1 < m2
          ? { threads: 1, ms: m1, by: { '1': m1, '2': m2 } }
          : { threads: 2, ms: m2, by: { '1': m1, '2': m2 } };
      };
      const fp32Best = best('fp32');
      for (const name of Object.keys(sessions)) {
        const b = best(name);
        Object.assign(res.variants[name], {
          latency_ms: b.ms,
          threads: b.threads,
          latency_ms_by_threads: b.by,
          speedup: fp32Best.ms / b.ms,
        });
      }
      for (const s of [...Object.values(sessions), ...Object.values(oneThread)]) await s.release?.();
      result.models.push(res);
      addChecks(checks, m.name, m.isEncoder, res);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return result;
}

function addChecks(checks: TargetCheck[], name: string, isEncoder: boolean, r: ModelResult): void {
  const v = r.variants;
  const sp = (x?: VariantResult) => (x?.speedup !== undefined ? `${x.speedup.toFixed(2)}x` : '-');
  const verdict = (x: VariantResult | undefined, ok: (x: VariantResult) => boolean): boolean | null =>
    x && x.speedup !== undefined ? ok(x) : null;
  const why = (x?: VariantResult) => x?.skipped ?? 'not measured';
  if (isEncoder) {
    const d = v.dynamic;
    checks.push({
      section: 'model speed',
      target: 'encoder: dynamic INT8 >= 2.5x faster than FP32',
      value: sp(d),
      met: verdict(d, (x) => x.speedup! >= 2.5),
      note: why(d),
    });
    checks.push({
      section: 'model speed',
      target: 'encoder: dynamic INT8 cosine >= 0.9999',
      value: d?.cosine !== undefined ? d.cosine.toFixed(6) : '-',
      met: verdict(d, (x) => x.cosine! >= 0.9999),
      note: why(d),
    });
    const s = v['static ort-cpu'];
    checks.push({
      section: 'model speed',
      target: 'encoder: static INT8 (ort-cpu) >= 2x faster than FP32',
      value: sp(s),
      met: verdict(s, (x) => x.speedup! >= 2),
      note: why(s),
    });
  } else {
    const s = v['static ort-cpu'];
    checks.push({
      section: 'model speed',
      target: `${name}: static INT8 (ort-cpu) faster than FP32`,
      value: sp(s),
      met: verdict(s, (x) => x.speedup! > 1),
      note: why(s),
    });
    for (const [variant, x] of Object.entries(v)) {
      if (variant === 'fp32' || x.accuracy == null || v.fp32.accuracy == null) continue;
      checks.push({
        section: 'model speed',
        target: `${name}: ${variant} top-1 within 1% of FP32 (onnxruntime)`,
        value: `${(x.accuracy * 100).toFixed(1)}% vs ${(v.fp32.accuracy * 100).toFixed(1)}%`,
        met: v.fp32.accuracy - x.accuracy <= 0.01,
      });
    }
  }
}
