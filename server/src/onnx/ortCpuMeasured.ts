// The ort-cpu form, measured (target "ort-cpu"). The cost models (ortCpuConvCost.ts, ortCpuLinear.ts) decide op by
// op from tables measured on one machine; whether a whole graph is faster in INT8 depends on how the ops around
// each other share (or do not share) quantized tensors and layouts, and on the CPU. So after the rewrite the
// INT8 graph and the FP32 one are timed side by side in onnxruntime-node, and while INT8 is slower, whole op
// kinds go back to float, the one whose float form helps most first, re-measured each time; if INT8 is still
// slower with every kind that helped left float, the FP32 graph is the ort-cpu output. What it answers: with the
// cost models alone convnext_atto ran 0.62-0.66x FP32 speed in ONNX Runtime, efficientnet_b0 0.40-0.84x, HF ViT
// 0.94-0.98x (bench/compat.ts configurations; this 2-core AMD EPYC shared with other jobs, pairedBestLatency,
// three repeats); with this step they get the FP32 graph (0.99-1.04x, the noise of timing a file against itself).
//
// Timing (pairedBestLatency): best of 30 runs of each graph over 3 sessions of each, in turn, each run after a
// 1 ms sleep, on one thread. The best run is what the graph costs when nothing else disturbs it; medians on this shared 2-core
// machine moved by 10-20% between repeats of the same pair.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Model, decodeModel, writeModel } from './model';
import { foldWeights } from './foldWeights';
import { optimizeForOrtCpu, OrtCpuCalibration, OrtCpuFloatKinds, OrtCpuResult } from './ortCpu';
import { createSession, EvalBatch, runBatch } from './verify';

export type FloatKind = keyof OrtCpuFloatKinds;
const KINDS: { kind: FloatKind; what: string }[] = [
  { kind: 'groupedConv', what: 'grouped (depthwise) convolutions' },
  { kind: 'conv', what: 'dense convolutions' },
  { kind: 'activationMatMul', what: 'activation x activation MatMuls (attention)' },
  { kind: 'linear', what: 'linears (MatMul/Gemm with a weight)' },
];

/** A candidate's INT8 time has to beat the current one by this much to be taken (noise of the best-of). */
const MIN_GAIN = 0.03;
/**
 * INT8 within this much of FP32 counts as as fast (the best-of's noise here is a few percent): the INT8 graph,
 * 4x smaller in weights, is kept rather than replaced by FP32 on a coin toss.
 */
export const PARITY = 1.02;
/** A decision within this much of its limit is timed again before it is taken. */
const CONFIRM_MARGIN = 0.05;

export interface OrtCpuTrial {
  float_kinds: FloatKind[];
  fp32_ms: number;
  int8_ms: number;
  /** The chosen graph timed again (a close call); its times are each file's best over both timings. */
  confirmation?: boolean;
}

export interface OrtCpuMeasured {
  /** How the times were taken. */
  method: string;
  /** Every graph timed, the first with the cost models alone. */
  trials: OrtCpuTrial[];
  /** Op kinds left in float because INT8 was slower with them integer. */
  float_kinds: FloatKind[];
  /** INT8 stayed slower than FP32 whatever was left float: the ort-cpu file is the FP32 graph. */
  fp32_fallback: boolean;
  /** The chosen graph's times (FP32 when fp32_fallback). */
  fp32_ms: number;
  int8_ms: number;
}

/** Small models are timed until about this much time was timed (pairedBestLatency). */
const MIN_TIMED_MS = 1000;

/** Times FP32 and INT8 files side by side: best-of milliseconds of each. Injected by tests. */
export type PairTimer = (fp32File: string, int8File: string) => Promise<{ fp32: number; int8: number }>;

/**
 * The best of at least `runs` timed runs of each file (more for small models: MIN_TIMED_MS; after `warmup`
 * each), spread over `instances` sessions of each, one run of each session in turn, each run after a 1 ms sleep. Measured on this 2-core machine with other jobs
 * running (load 4-5), one efficientnet_b0 FP32 file against a copy of itself: back to back, a session's runs
 * kept landing on the same scheduler boundaries, so its best of 30 was 3.3 ms or 7.4-12 ms (about 4 ms steps)
 * and the ratio of the two identical files came out anywhere from 0.29x to 3.3x; with the sleep each run
 * starts on a fresh time slice. On one thread (the default) a run needs one free core, not two: identical
 * convnext_atto and efficientnet_b0 files then measured 1.00x in four repeats, against 0.97-1.16x on two threads.
 * The decision takes one thread's ratio; verification's figures (verify.ts) are on two threads.
 */
export async function pairedBestLatency(
  fp32File: string,
  int8File: string,
  batch: EvalBatch,
  runs = 30,
  warmup = 2,
  instances = 3,
  threads = 1,
): Promise<{ fp32: number; int8: number }> {
  const sessions: { file: number; session: Awaited<ReturnType<typeof createSession>> }[] = [];
  try {
    for (let k = 0; k < instances; k++)
      for (const [file, f] of [fp32File, int8File].entries())
        sessions.push({ file, session: await createSession(f, threads) });
    const best = [Infinity, Infinity];
    const rounds = Math.ceil(runs / instances);
    // A small model: more rounds until about 1 s was timed (up to 10x `runs`): sub-millisecond runs of two
    // identical files gave ratios of 0.98-1.13 over 30 runs each and 0.99-1.07 over 300 (HF ViT, 0.3 ms).
    let timed = 0;
    const moreRounds = (r: number) => r < warmup + rounds || (timed < MIN_TIMED_MS && r < warmup + rounds * 10);
    for (let r = 0; moreRounds(r); r++) {
      for (const { file, session } of sessions) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        const t0 = process.hrtime.bigint();
        await runBatch(session, batch);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (r >= warmup) {
          best[file] = Math.min(best[file], ms);
          timed += ms;
        }
      }
      // A big model: stop after about 10 s of timed runs (at least 2 rounds of each session).
      if (r >= warmup + 1 && (r - warmup + 1) * instances * (best[0] + best[1]) > 10_000) break;
    }
    return { fp32: best[0], int8: best[1] };
  } finally {
    for (const { session } of sessions) await session.release();
  }
}

export interface MeasureOptions {
  /** The INT8 file's bytes as exported, before foldWeights and the ort-cpu rewrite: each try decodes its own copy. */
  source: Uint8Array;
  calibration: OrtCpuCalibration;
  fp32File: string;
  /** The ort-cpu file already written (the cost models' rewrite); replaced by the chosen graph. */
  int8File: string;
  /** The rewrite that wrote it. */
  rewrite: OrtCpuResult;
  timer: PairTimer;
}

function reasonFor(kind: FloatKind): string {
  const what = KINDS.find((k) => k.kind === kind)!.what;
  return `all ${what} left in float: ONNX Runtime ran this graph slower than FP32 with them in INT8 (measured, report.ort_cpu_measured)`;
}

/** Weighted ops still integer: MatMulIntegerToFloat, and Conv/MatMul/Gemm reading a DequantizeLinear. */
function integerOps(model: Model): number {
  const producer = new Map(model.graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
  return model.graph.node.filter(
    (n) =>
      n.op_type === 'MatMulIntegerToFloat' ||
      (['Conv', 'MatMul', 'Gemm'].includes(n.op_type) &&
        n.input.slice(0, 2).some((i) => producer.get(i)?.op_type === 'DequantizeLinear')),
  ).length;
}

/** The ort-cpu rewrite of a copy of `source` with `kinds` in float. */
function build(source: Uint8Array, calibration: OrtCpuCalibration, kinds: FloatKind[]) {
  const model = decodeModel(source);
  foldWeights(model);
  const floatKinds: OrtCpuFloatKinds = Object.fromEntries(kinds.map((k) => [k, reasonFor(k)]));
  return { model, rewrite: optimizeForOrtCpu(model, {}, calibration, floatKinds) };
}

/**
 * Times the ort-cpu graph against FP32 and, while INT8 is slower, leaves op kinds in float (greedily, the most
 * helpful first); falls back to the FP32 graph when nothing makes INT8 at least as fast. Returns the rewrite of
 * the graph written (undefined when it is the first one, unchanged) and what was measured.
 */
export async function measureOrtCpuForm(
  opts: MeasureOptions,
): Promise<{ measured: OrtCpuMeasured; rewrite?: OrtCpuResult }> {
  const { source, calibration, fp32File, int8File, timer } = opts;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-ort-cpu-measure-'));
  try {
    const first = await timer(fp32File, int8File);
    const trials: OrtCpuTrial[] = [{ float_kinds: [], fp32_ms: first.fp32, int8_ms: first.int8 }];
    const ratio = (t: OrtCpuTrial) => t.int8_ms / t.fp32_ms;
    let current = { trial: trials[0], kinds: [] as FloatKind[], file: int8File, rewrite: opts.rewrite };
    let floatCount = opts.rewrite.linears.float.length;
    while (ratio(current.trial) > 1) {
      let best: typeof current | undefined;
      let bestFloat = floatCount;
      for (const { kind } of KINDS) {
        if (current.kinds.includes(kind)) continue;
        const kinds = [...current.kinds, kind];
        const b = build(source, calibration, kinds);
        // A kind the graph has none of (integer) changes nothing: not worth a measurement. Nor is a graph with no
        // integer weighted op left: FP32 with some Q/DQ pairs, which the FP32 fallback beats.
        if (b.rewrite.linears.float.length === floatCount || integerOps(b.model) === 0) continue;
        const file = path.join(tmp, `${kinds.join('+')}.onnx`);
        writeModel(b.model, file);
        const t = await timer(fp32File, file);
        const trial = { float_kinds: kinds, fp32_ms: t.fp32, int8_ms: t.int8 };
        trials.push(trial);
        if (!best || ratio(trial) < ratio(best.trial)) {
          best = { trial, kinds, file, rewrite: b.rewrite };
          bestFloat = b.rewrite.linears.float.length;
        }
      }
      if (!best || ratio(best.trial) > ratio(current.trial) * (1 - MIN_GAIN)) break;
      current = best;
      floatCount = bestFloat;
    }
    // The cost models' graph is kept within PARITY of FP32; one with kinds left float has to be at least as fast
    // (it was made for speed: convnext_atto's, 40 of 41 weighted ops float, measured 0.96-1.01x).
    const limit = current.kinds.length ? 1 : PARITY;
    if (ratio(current.trial) <= limit && ratio(current.trial) > limit - CONFIRM_MARGIN) {
      // A close call: timed again, each file's best over both timings. HF ViT's graph with its patch conv float
      // measured 1.03x FP32 speed once and 0.94-0.97x in three repeats.
      const again = await timer(fp32File, current.file);
      const t = current.trial;
      const confirm = {
        float_kinds: t.float_kinds,
        fp32_ms: Math.min(t.fp32_ms, again.fp32),
        int8_ms: Math.min(t.int8_ms, again.int8),
      };
      trials.push({ ...confirm, confirmation: true });
      current = { ...current, trial: confirm };
    }
    const fallback = ratio(current.trial) > limit;
    if (fallback) fs.copyFileSync(fp32File, int8File);
    else if (current.file !== int8File) fs.copyFileSync(current.file, int8File);
    return {
      measured: {
        method:
          'best of 30 runs of each graph over 3 sessions of each, one run of each session in turn, each after a 1 ms sleep; onnxruntime-node, 1 thread',
        trials,
        float_kinds: fallback ? [] : current.kinds,
        fp32_fallback: fallback,
        fp32_ms: current.trial.fp32_ms,
        int8_ms: fallback ? current.trial.fp32_ms : current.trial.int8_ms,
      },
      rewrite: fallback || current.rewrite === opts.rewrite ? undefined : current.rewrite,
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The CLI's note on what the measurement did (undefined when the cost models' graph was already as fast as FP32). */
export function measuredNote(m: OrtCpuMeasured): string | undefined {
  const first = m.trials[0];
  const speed = (t: { fp32_ms: number; int8_ms: number }) => `${(t.fp32_ms / t.int8_ms).toFixed(2)}x`;
  if (m.fp32_fallback)
    return (
      `ort-cpu: INT8 ran slower than FP32 in ONNX Runtime here (${speed(first)} FP32 speed, best of runs) whatever op kinds were left in float, ` +
      'so the ort-cpu file is the FP32 graph (timings in report.ort_cpu_measured)'
    );
  if (!m.float_kinds.length) return undefined;
  const what = m.float_kinds.map((k) => KINDS.find((x) => x.kind === k)!.what).join(', ');
  return `ort-cpu: ${what} left in float, measured faster that way (${speed(first)} -> ${speed(m)} FP32 speed, best of runs; report.ort_cpu_measured)`;
}
