// Verification with onnxruntime-node: the FP32 and INT8 files on the same inputs (eval.json + eval.bin
// written by the backend), compared per output; top-1 agreement and accuracy when labels exist; median latency.
import * as fs from 'fs';
import * as path from 'path';
import type * as ortTypes from 'onnxruntime-node';
import {
  MAX_MODEL_BYTES,
  MAX_RESULTS_BYTES,
  readRegularBytes,
  readRegularBytesSync,
  readRegularFile,
  readRegularFileSync,
  requireRegular,
} from '../common/files';

export type TensorData = Float32Array | BigInt64Array;
export interface EvalInput {
  name: string;
  dtype: 'float32' | 'int64';
  shape: number[];
  data: TensorData;
}
export interface EvalBatch {
  inputs: EvalInput[];
  labels?: BigInt64Array;
}

export interface OutputComparison {
  name: string;
  cosine: number;
  max_abs_diff: number;
}
export interface VerifyResult {
  outputs: OutputComparison[];
  cosine_min: number;
  max_abs_diff: number;
  batches: number;
  samples: number;
  top1_agreement: number | null;
  accuracy: { fp32: number; int8: number } | null;
  latency_ms: { fp32: number; int8: number; batch_shape: number[]; runs: number };
  sizes_bytes: { fp32: number; int8: number };
}

let ortModule: typeof ortTypes | undefined;
function ort(): typeof ortTypes {
  // Loaded on first use: the native binding costs ~100 ms and the language server rarely needs it.
  if (!ortModule) ortModule = require('onnxruntime-node') as typeof ortTypes;
  return ortModule;
}

/** eval.json as the backend writes it (artifacts.py): byte ranges into eval.bin. */
interface EvalFileMeta {
  batches: {
    inputs: { name: string; dtype: EvalInput['dtype']; shape: number[]; offset: number; length: number }[];
    labels?: { offset: number; length: number } | null;
  }[];
}

export function readEvalFile(evalJson: string): EvalBatch[] {
  let text: string;
  try {
    text = requireRegular(evalJson, readRegularFileSync(evalJson, MAX_RESULTS_BYTES));
  } catch (e) {
    throw evalReadError(evalJson, e);
  }
  const binPath = evalBinOf(evalJson);
  return evalBatches(evalJson, text, requireRegular(binPath, readRegularBytesSync(binPath, MAX_MODEL_BYTES)));
}

/** readEvalFile without blocking the event loop while the files are read (the pipeline, in the language server). */
export async function loadEvalFile(evalJson: string): Promise<EvalBatch[]> {
  let text: string;
  try {
    text = requireRegular(evalJson, await readRegularFile(evalJson, MAX_RESULTS_BYTES));
  } catch (e) {
    throw evalReadError(evalJson, e);
  }
  const binPath = evalBinOf(evalJson);
  return evalBatches(evalJson, text, requireRegular(binPath, await readRegularBytes(binPath, MAX_MODEL_BYTES)));
}

const evalBinOf = (evalJson: string) => path.join(path.dirname(evalJson), path.basename(evalJson, '.json') + '.bin');
const evalReadError = (evalJson: string, e: unknown) =>
  new Error(`cannot read the evaluation inputs ${evalJson}: ${(e as Error).message}`);

/** The batches eval.json describes, their tensors sliced out of eval.bin. */
function evalBatches(evalJson: string, text: string, bin: Buffer): EvalBatch[] {
  let meta: EvalFileMeta;
  try {
    meta = JSON.parse(text);
  } catch (e) {
    throw evalReadError(evalJson, e);
  }
  const binPath = evalBinOf(evalJson);
  const slice = (offset: number, length: number): ArrayBuffer => {
    if (offset + length > bin.length)
      throw new Error(`${binPath} is shorter than ${evalJson} says (${offset}+${length} > ${bin.length})`);
    const ab = new ArrayBuffer(length);
    new Uint8Array(ab).set(bin.subarray(offset, offset + length));
    return ab;
  };
  return meta.batches.map((b) => ({
    inputs: b.inputs.map((i) => ({
      name: i.name,
      dtype: i.dtype,
      shape: i.shape,
      data:
        i.dtype === 'int64'
          ? new BigInt64Array(slice(i.offset, i.length))
          : new Float32Array(slice(i.offset, i.length)),
    })),
    labels: b.labels ? new BigInt64Array(slice(b.labels.offset, b.labels.length)) : undefined,
  }));
}

export async function createSession(file: string, threads = 2): Promise<ortTypes.InferenceSession> {
  return ort().InferenceSession.create(file, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    // Each session has its own intra-op pool, whose idle worker keeps spinning after run() returns. Timing one
    // session right after another then measures it against that spinning thread: on this 2-core machine the
    // dynamic encoder ran 19-23 ms just after an FP32 run instead of 13 ms. Stopping the spin when run() ends
    // costs nothing measurable here (bench/README.md, "The timing fix").
    extra: { session: { force_spinning_stop: '1' } },
  });
}

function feeds(session: ortTypes.InferenceSession, batch: EvalBatch): Record<string, ortTypes.Tensor> {
  const { Tensor } = ort();
  const out: Record<string, ortTypes.Tensor> = {};
  // Match by name; fall back to position (the exporter may rename inputs it could not name).
  session.inputNames.forEach((name, i) => {
    const inp = batch.inputs.find((x) => x.name === name) ?? batch.inputs[i];
    if (!inp) throw new Error(`no evaluation data for model input '${name}'`);
    out[name] = new Tensor(inp.dtype, inp.data, inp.shape);
  });
  return out;
}

export async function runBatch(
  session: ortTypes.InferenceSession,
  batch: EvalBatch,
): Promise<Record<string, ortTypes.Tensor>> {
  return session.run(feeds(session, batch));
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Median latency (ms) of each session on the same batch, timed in turn: blocks of up to 5 runs, each after one
 * untimed run, alternating between the sessions, so that a slow spell of this shared machine falls on both
 * rather than on whichever was timed second.
 */
export async function pairedMedianLatency(
  sessions: ortTypes.InferenceSession[],
  batch: EvalBatch,
  runs: number,
  warmup: number,
): Promise<number[]> {
  const inputs = sessions.map((s) => feeds(s, batch));
  for (const [i, s] of sessions.entries()) for (let w = 0; w < warmup; w++) await s.run(inputs[i]);
  const times: number[][] = sessions.map(() => []);
  const block = 5;
  for (let done = 0; done < runs; done += block) {
    for (const [i, s] of sessions.entries()) {
      await s.run(inputs[i]);
      for (let k = 0; k < Math.min(block, runs - done); k++) {
        const t0 = process.hrtime.bigint();
        await s.run(inputs[i]);
        times[i].push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
  }
  return times.map(median);
}

class Accumulator {
  dot = 0;
  na = 0;
  nb = 0;
  maxAbs = 0;
  add(a: ArrayLike<number>, b: ArrayLike<number>): void {
    for (let i = 0; i < a.length; i++) {
      const x = a[i],
        y = b[i];
      this.dot += x * y;
      this.na += x * x;
      this.nb += y * y;
      const d = Math.abs(x - y);
      // NaN in the INT8 output must not hide behind Math.max.
      if (d > this.maxAbs || Number.isNaN(d)) this.maxAbs = Number.isNaN(d) ? Infinity : d;
    }
  }
  cosine(): number {
    if (this.na === 0 && this.nb === 0) return 1;
    if (this.na === 0 || this.nb === 0) return 0;
    return this.dot / Math.sqrt(this.na * this.nb);
  }
}

function argmaxRows(data: ArrayLike<number>, rows: number, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (data[r * cols + c] > data[r * cols + best]) best = c;
    out.push(best);
  }
  return out;
}

export interface VerifyOptions {
  latencyRuns?: number;
  warmup?: number;
  threads?: number;
}

export async function verifyModels(
  fp32File: string,
  int8File: string,
  batches: EvalBatch[],
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  if (batches.length === 0) throw new Error('no evaluation batches to verify with');
  const [a, b] = [await createSession(fp32File, opts.threads ?? 2), await createSession(int8File, opts.threads ?? 2)];
  try {
    const acc = new Map<string, Accumulator>();
    let agree = 0,
      rowsSeen = 0,
      correctA = 0,
      correctB = 0,
      labelled = 0,
      samples = 0;
    for (const batch of batches) {
      const [ra, rb] = [await runBatch(a, batch), await runBatch(b, batch)];
      samples += batch.inputs[0]?.shape[0] ?? 1;
      a.outputNames.forEach((name, i) => {
        const ta = ra[name],
          tb = rb[name] ?? rb[b.outputNames[i]];
        if (!tb) throw new Error(`INT8 model has no output '${name}'`);
        const da = ta.data as Float32Array,
          db = tb.data as Float32Array;
        if (da.length !== db.length)
          throw new Error(`output '${name}' has ${da.length} values in FP32 and ${db.length} in INT8`);
        const e = acc.get(name) ?? new Accumulator();
        e.add(da, db);
        acc.set(name, e);
        // Classifier heads: the first output shaped [batch, classes].
        if (i === 0 && ta.dims.length === 2 && ta.dims[1] > 1 && ta.type === 'float32') {
          const rows = ta.dims[0],
            cols = ta.dims[1];
          const pa = argmaxRows(da, rows, cols),
            pb = argmaxRows(db, rows, cols);
          rowsSeen += rows;
          for (let r = 0; r < rows; r++) if (pa[r] === pb[r]) agree++;
          if (batch.labels && batch.labels.length === rows) {
            labelled += rows;
            for (let r = 0; r < rows; r++) {
              const y = Number(batch.labels[r]);
              if (pa[r] === y) correctA++;
              if (pb[r] === y) correctB++;
            }
          }
        }
      });
    }
    const outputs = [...acc.entries()].map(([name, e]) => ({ name, cosine: e.cosine(), max_abs_diff: e.maxAbs }));
    const runs = opts.latencyRuns ?? 20,
      warmup = opts.warmup ?? 3;
    const [latA, latB] = await pairedMedianLatency([a, b], batches[0], runs, warmup);
    return {
      outputs,
      cosine_min: Math.min(...outputs.map((o) => o.cosine)),
      max_abs_diff: Math.max(...outputs.map((o) => o.max_abs_diff)),
      batches: batches.length,
      samples,
      top1_agreement: rowsSeen ? agree / rowsSeen : null,
      accuracy: labelled ? { fp32: correctA / labelled, int8: correctB / labelled } : null,
      latency_ms: { fp32: latA, int8: latB, batch_shape: batches[0].inputs[0]?.shape ?? [], runs },
      sizes_bytes: { fp32: fs.statSync(fp32File).size, int8: fs.statSync(int8File).size },
    };
  } finally {
    await a.release();
    await b.release();
  }
}
