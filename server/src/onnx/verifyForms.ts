// FP32 against every INT8 form of one run (tensorrt, ort-cpu, dynamic) on the same evaluation batches, each
// session run once per batch, and all of them timed in the same alternating blocks, so that the report can put
// the forms side by side: a latency measured in another loop, minutes apart on a shared machine, would not
// compare. Besides the pooled cosine (all values of an output at once, what verifyModels reports) it keeps the
// worst batch and the worst sample: one bad image disappears in a pooled figure.
import * as fs from 'fs';
import { createSession, EvalBatch, pairedMedianLatency, runBatch } from './verify';

export interface FormToVerify {
  name: string;
  file: string;
}

export interface FormVerification {
  name: string;
  file: string;
  /** Cosine over every value of the worst output, pooled over all batches. */
  cosine_pooled: number;
  /** The lowest cosine of one batch (one output, all its values in that batch). */
  cosine_worst_batch: number;
  /** The lowest cosine of one sample (one row of the batch dimension of one output). */
  cosine_worst_sample: number;
  max_abs_diff: number;
  /** Per output: pooled cosine and max |diff|. */
  outputs: { name: string; cosine: number; max_abs_diff: number }[];
  top1_agreement: number | null;
  accuracy: number | null;
  latency_ms: number;
  size_bytes: number;
}

export interface FormsVerification {
  fp32: { file: string; accuracy: number | null; latency_ms: number; size_bytes: number };
  forms: FormVerification[];
  batches: number;
  samples: number;
  labelled_samples: number;
  latency_batch_shape: number[];
  latency_runs: number;
}

class Cos {
  dot = 0;
  na = 0;
  nb = 0;
  add(x: number, y: number): void {
    this.dot += x * y;
    this.na += x * x;
    this.nb += y * y;
  }
  merge(o: Cos): void {
    this.dot += o.dot;
    this.na += o.na;
    this.nb += o.nb;
  }
  value(): number {
    if (this.na === 0 && this.nb === 0) return 1;
    if (this.na === 0 || this.nb === 0) return 0;
    return this.dot / Math.sqrt(this.na * this.nb);
  }
}

/** Running comparison of one INT8 form against FP32. */
class FormStats {
  pooled = new Map<string, Cos>();
  outputMaxAbs = new Map<string, number>();
  worstBatch = 1;
  worstSample = 1;
  maxAbs = 0;
  agree = 0;
  rows = 0;
  correct = 0;

  /** One output of one batch; `rows` splits it into samples when its first dimension is the batch. */
  output(name: string, a: ArrayLike<number>, b: ArrayLike<number>, rows: number): void {
    const batchCos = new Cos();
    let maxAbs = this.outputMaxAbs.get(name) ?? 0;
    const per = rows > 0 && a.length % rows === 0 ? a.length / rows : a.length;
    for (let start = 0; start < a.length; start += per) {
      const sample = new Cos();
      for (let i = start; i < start + per; i++) {
        const x = a[i],
          y = b[i];
        sample.add(x, y);
        const d = Math.abs(x - y);
        // NaN in the INT8 output must not hide behind a comparison.
        if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
      }
      this.worstSample = Math.min(this.worstSample, sample.value());
      batchCos.merge(sample);
    }
    this.outputMaxAbs.set(name, maxAbs);
    this.maxAbs = Math.max(this.maxAbs, maxAbs);
    this.worstBatch = Math.min(this.worstBatch, batchCos.value());
    const p = this.pooled.get(name) ?? new Cos();
    p.merge(batchCos);
    this.pooled.set(name, p);
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

export async function verifyForms(
  fp32File: string,
  forms: FormToVerify[],
  batches: EvalBatch[],
  opts: { latencyRuns?: number; warmup?: number; threads?: number } = {},
): Promise<FormsVerification> {
  if (batches.length === 0) throw new Error('no evaluation batches to verify with');
  const threads = opts.threads ?? 2;
  const base = await createSession(fp32File, threads);
  const sessions = [];
  try {
    for (const f of forms) sessions.push(await createSession(f.file, threads));
    const stats = forms.map(() => new FormStats());
    let samples = 0,
      labelled = 0,
      correctFp32 = 0;
    for (const batch of batches) {
      const ref = await runBatch(base, batch);
      const rowsOf = batch.inputs[0]?.shape[0] ?? 1;
      samples += rowsOf;
      const head = ref[base.outputNames[0]];
      // Classifier heads: the first output shaped [batch, classes].
      const classifier = head && head.dims.length === 2 && head.dims[1] > 1 && head.type === 'float32';
      const refTop = classifier ? argmaxRows(head.data as Float32Array, head.dims[0], head.dims[1]) : [];
      const labels = batch.labels && classifier && batch.labels.length === refTop.length ? batch.labels : undefined;
      if (labels) {
        labelled += refTop.length;
        refTop.forEach((p, r) => (correctFp32 += p === Number(labels[r]) ? 1 : 0));
      }
      for (const [k, session] of sessions.entries()) {
        const out = await runBatch(session, batch);
        const s = stats[k];
        base.outputNames.forEach((name, i) => {
          const ta = ref[name],
            tb = out[name] ?? out[session.outputNames[i]];
          if (!tb) throw new Error(`${forms[k].name} INT8 model has no output '${name}'`);
          const da = ta.data as Float32Array,
            db = tb.data as Float32Array;
          if (da.length !== db.length)
            throw new Error(`output '${name}' has ${da.length} values in FP32 and ${db.length} in ${forms[k].name}`);
          s.output(name, da, db, ta.dims[0] === rowsOf ? rowsOf : 1);
          if (i === 0 && classifier) {
            const top = argmaxRows(db, ta.dims[0], ta.dims[1]);
            s.rows += top.length;
            top.forEach((p, r) => {
              if (p === refTop[r]) s.agree++;
              if (labels && p === Number(labels[r])) s.correct++;
            });
          }
        });
      }
    }
    const runs = opts.latencyRuns ?? 20;
    const latency = await pairedMedianLatency([base, ...sessions], batches[0], runs, opts.warmup ?? 3);
    return {
      fp32: {
        file: fp32File,
        accuracy: labelled ? correctFp32 / labelled : null,
        latency_ms: latency[0],
        size_bytes: fs.statSync(fp32File).size,
      },
      forms: forms.map((f, k) => {
        const s = stats[k];
        return {
          name: f.name,
          file: f.file,
          cosine_pooled: Math.min(...[...s.pooled.values()].map((c) => c.value())),
          cosine_worst_batch: s.worstBatch,
          cosine_worst_sample: s.worstSample,
          max_abs_diff: s.maxAbs,
          outputs: [...s.pooled.entries()].map(([name, c]) => ({
            name,
            cosine: c.value(),
            max_abs_diff: s.outputMaxAbs.get(name) ?? 0,
          })),
          top1_agreement: s.rows ? s.agree / s.rows : null,
          accuracy: labelled ? s.correct / labelled : null,
          latency_ms: latency[k + 1],
          size_bytes: fs.statSync(f.file).size,
        };
      }),
      batches: batches.length,
      samples,
      labelled_samples: labelled,
      latency_batch_shape: batches[0].inputs[0]?.shape ?? [],
      latency_runs: runs,
    };
  } finally {
    await base.release();
    for (const s of sessions) await s.release();
  }
}
