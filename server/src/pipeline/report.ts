// The part of report.json that decides between the exported forms: FP32 and every INT8 form side by side (accuracy,
// agreement, pooled / worst-batch / worst-sample cosine, latency, size, deltas against FP32), where each accuracy
// figure was measured, and a headline naming the fastest form here and the one meant for TensorRT.
import { MAX_RESULTS_BYTES, readRegularFile } from '../common/files';
import type { FormsVerification, FormVerification } from '../onnx/verifyForms';

/** Where the accuracy and similarity figures were measured. */
export interface MeasuredOn {
  /** 'eval-data': the configured eval-data; 'calibration-data' / 'random-normal': batches of the calibration source. */
  source: 'eval-data' | 'calibration-data' | 'random-normal';
  /** False when these are batches calibration itself used (the data ended before any further batch). */
  held_out: boolean;
  batches: number;
  samples: number;
  /** Samples with labels (accuracy is over these); 0 without eval-data. */
  labelled_samples: number;
  /** Calibration batches used before these (without eval-data, held-out batches come after them). */
  calibration_batches_used: number;
  /** One sentence for the report and the CLI. */
  text: string;
}

export interface FormFigures {
  /** 'tensorrt' | 'tensorrt10' | 'ort-cpu' | 'dynamic' */
  name: string;
  file: string;
  /** What the form is for, in words. */
  runtime: string;
  accuracy: number | null;
  top1_agreement: number | null;
  cosine: { pooled: number; worst_batch: number; worst_sample: number };
  max_abs_diff: number;
  latency_ms: number;
  size_bytes: number;
  /** Against FP32: accuracy in points (fractions), latency and size as ratios (INT8 / FP32). */
  delta: { accuracy: number | null; latency_ratio: number; size_ratio: number };
}

export interface FormsReport {
  measured_on: MeasuredOn;
  fp32: { file: string; accuracy: number | null; latency_ms: number; size_bytes: number };
  forms: FormFigures[];
  /** Latency input and the number of timed runs per model (alternating blocks, medians). */
  latency: { batch_shape: number[]; runs: number };
  headline: { fastest: string; fastest_speedup: number; for_tensorrt: string | null; text: string };
}

const RUNTIME: Record<string, string> = {
  tensorrt: 'TensorRT 11 (strongly typed Q/DQ); ONNX Runtime on the CPU does not fuse it',
  tensorrt10: 'TensorRT 10 (FP32 + Q/DQ); ONNX Runtime on the CPU does not fuse it',
  'ort-cpu': "ONNX Runtime's CPU provider (integer kernels)",
  dynamic: 'ONNX Runtime CPU, dynamic INT8 (weights INT8, activations quantized at run time)',
};

/** eval.json's header (written by the backend): where the evaluation batches came from. */
export interface EvalMeta {
  source: string;
  labelled: boolean;
  held_out?: boolean;
  used?: number;
}

export async function loadEvalMeta(evalJson: string): Promise<EvalMeta> {
  try {
    const doc = JSON.parse((await readRegularFile(evalJson, MAX_RESULTS_BYTES)) ?? '') as Record<string, unknown>;
    return {
      source: typeof doc.source === 'string' ? doc.source : 'unknown',
      labelled: doc.labelled === true,
      held_out: typeof doc.held_out === 'boolean' ? doc.held_out : undefined,
      used: typeof doc.calibration_batches_used === 'number' ? doc.calibration_batches_used : undefined,
    };
  } catch {
    return { source: 'unknown', labelled: false };
  }
}

export function measuredOn(v: FormsVerification, meta: EvalMeta): MeasuredOn {
  const evalData = meta.source === 'eval-data';
  const source: MeasuredOn['source'] = evalData
    ? 'eval-data'
    : meta.source === 'random-normal'
      ? 'random-normal'
      : 'calibration-data';
  const heldOut = evalData || meta.held_out === true;
  const used = meta.used ?? 0;
  const what = `${v.batches} batch${v.batches === 1 ? '' : 'es'} (${v.samples} samples)`;
  const text = evalData
    ? `measured on ${what} of eval-data, ${v.labelled_samples} labelled`
    : heldOut
      ? `measured on ${what} of ${source === 'random-normal' ? 'random normal inputs' : 'calibration-data'} held out from calibration (the ${used} batches before them calibrated); no labels, so no accuracy: configure eval-data for it`
      : `measured on ${what} that calibration also used (the calibration data has no batch beyond the ${used} it calibrated on); configure eval-data for held-out figures`;
  return {
    source,
    held_out: heldOut,
    batches: v.batches,
    samples: v.samples,
    labelled_samples: v.labelled_samples,
    calibration_batches_used: used,
    text,
  };
}

function figures(f: FormVerification, fp32: FormsVerification['fp32']): FormFigures {
  return {
    name: f.name,
    file: f.file,
    runtime: RUNTIME[f.name] ?? f.name,
    accuracy: f.accuracy,
    top1_agreement: f.top1_agreement,
    cosine: { pooled: f.cosine_pooled, worst_batch: f.cosine_worst_batch, worst_sample: f.cosine_worst_sample },
    max_abs_diff: f.max_abs_diff,
    latency_ms: f.latency_ms,
    size_bytes: f.size_bytes,
    delta: {
      accuracy: f.accuracy !== null && fp32.accuracy !== null ? f.accuracy - fp32.accuracy : null,
      latency_ratio: fp32.latency_ms > 0 ? f.latency_ms / fp32.latency_ms : NaN,
      size_ratio: fp32.size_bytes > 0 ? f.size_bytes / fp32.size_bytes : NaN,
    },
  };
}

/** The side-by-side section of report.json from one verifyForms run. */
export function formsReport(v: FormsVerification, meta: EvalMeta): FormsReport {
  const forms = v.forms.map((f) => figures(f, v.fp32));
  const fastest = forms.reduce((a, b) => (b.latency_ms < a.latency_ms ? b : a));
  const trt = forms.find((f) => f.name === 'tensorrt' || f.name === 'tensorrt10') ?? null;
  const speedup = v.fp32.latency_ms / fastest.latency_ms;
  const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 1)} ms`;
  const here =
    speedup >= 1
      ? `Fastest here: INT8 ${fastest.name} ${ms(fastest.latency_ms)} vs FP32 ${ms(v.fp32.latency_ms)} (${speedup.toFixed(2)}x) on ONNX Runtime CPU`
      : `No INT8 form beats FP32 on ONNX Runtime CPU here: the fastest, ${fastest.name}, takes ${ms(fastest.latency_ms)} vs FP32 ${ms(v.fp32.latency_ms)}`;
  const forTrt = trt
    ? `; for TensorRT deploy ${trt.name} (${trt.file.split(/[\\/]/).pop()}), whose CPU time says nothing of its TensorRT speed`
    : '';
  return {
    measured_on: measuredOn(v, meta),
    fp32: v.fp32,
    forms,
    latency: { batch_shape: v.latency_batch_shape, runs: v.latency_runs },
    headline: { fastest: fastest.name, fastest_speedup: speedup, for_tensorrt: trt?.name ?? null, text: here + forTrt },
  };
}
