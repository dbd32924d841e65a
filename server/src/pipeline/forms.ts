// The second INT8 form of a run with no target chosen: the ort-cpu graph (the QDQ form ONNX Runtime's CPU provider
// fuses into integer kernels) written beside the TensorRT one, from the same loaded model and the same calibration
// (the backend exports only the INT8 file; the FP32 model and evaluation inputs are the first export's).
import * as fs from 'fs';
import { MAX_MODEL_BYTES, readRegularBytes, requireRegular } from '../common/files';
import * as path from 'path';
import type { BackendClient, RequestOptions } from './backendClient';
import type { QdqConfig } from './config';
import { decodeModel, writeModel } from '../onnx/model';
import { foldWeights } from '../onnx/foldWeights';
import { optimizeForOrtCpu, OrtCpuCalibration, OrtCpuResult } from '../onnx/ortCpu';
import { measureOrtCpuForm, measuredNote, pairedBestLatency, OrtCpuMeasured } from '../onnx/ortCpuMeasured';
import { loadEvalFile } from '../onnx/verify';

export const ORT_CPU_FORM_FILE = 'model.int8.ort-cpu.onnx';

export async function exportOrtCpuForm(
  backend: BackendClient,
  rpc: RequestOptions,
  outDir: string,
  cfg: QdqConfig,
): Promise<{ file: string; rewrite: OrtCpuResult; source: Uint8Array; calibration: OrtCpuCalibration }> {
  const exp = await backend.export(
    {
      out_dir: outDir,
      opset: cfg.opset,
      dynamic_batch: cfg.dynamicBatch,
      target: 'ort-cpu',
      fold_weights: false,
      int8_only: true,
      int8_file: ORT_CPU_FORM_FILE,
    },
    rpc,
  );
  const source = requireRegular(exp.int8_onnx, await readRegularBytes(exp.int8_onnx, MAX_MODEL_BYTES));
  const model = decodeModel(Buffer.from(source)); // a copy: the measured step decodes `source` again per try
  const calibration = { batchNormOutputAmax: exp.batchnorm_output_amax };
  foldWeights(model);
  const rewrite = optimizeForOrtCpu(model, {}, calibration);
  writeModel(model, exp.int8_onnx);
  return { file: path.resolve(exp.int8_onnx), rewrite, source, calibration };
}

/**
 * The ort-cpu file timed against FP32 on the first evaluation batch, op kinds left in float or the FP32 graph
 * written while INT8 is slower (onnx/ortCpuMeasured.ts); the report gets the final rewrite, the timings and a note.
 */
export async function measureOrtCpuStep(
  ortCpu: { file: string; source: Uint8Array; calibration: OrtCpuCalibration },
  fp32File: string,
  evalFile: string,
  report: { ort_cpu_rewrite?: OrtCpuResult; ort_cpu_measured?: OrtCpuMeasured },
  notes: string[],
): Promise<void> {
  if (!report.ort_cpu_rewrite) return;
  const batch = (await loadEvalFile(evalFile))[0];
  if (!batch) return;
  const { measured, rewrite } = await measureOrtCpuForm({
    ...ortCpu,
    fp32File,
    int8File: ortCpu.file,
    rewrite: report.ort_cpu_rewrite,
    timer: (a, b) => pairedBestLatency(a, b, batch),
  });
  report.ort_cpu_measured = measured;
  if (rewrite) report.ort_cpu_rewrite = rewrite;
  const note = measuredNote(measured);
  if (note) notes.push(note);
}

/** A stale second form from an earlier run with no target would read as this run's: removed when not rewritten. */
export function removeStaleOrtCpuForm(outDir: string): void {
  fs.rmSync(path.join(outDir, ORT_CPU_FORM_FILE), { force: true });
}
