// The second INT8 form of a run with no target chosen: the ort-cpu graph (the QDQ form ONNX Runtime's CPU provider
// fuses into integer kernels) written beside the TensorRT one, from the same loaded model and the same calibration
// (the backend exports only the INT8 file; the FP32 model and evaluation inputs are the first export's).
import * as fs from 'fs';
import * as path from 'path';
import type { BackendClient, RequestOptions } from './backendClient';
import type { QdqConfig } from './config';
import { readModel, writeModel } from '../onnx/model';
import { foldWeights } from '../onnx/foldWeights';
import { optimizeForOrtCpu, OrtCpuResult } from '../onnx/ortCpu';

export const ORT_CPU_FORM_FILE = 'model.int8.ort-cpu.onnx';

export async function exportOrtCpuForm(
  backend: BackendClient,
  rpc: RequestOptions,
  outDir: string,
  cfg: QdqConfig,
): Promise<{ file: string; rewrite: OrtCpuResult }> {
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
  const model = readModel(exp.int8_onnx);
  foldWeights(model);
  const rewrite = optimizeForOrtCpu(model, {}, { batchNormOutputAmax: exp.batchnorm_output_amax });
  writeModel(model, exp.int8_onnx);
  return { file: path.resolve(exp.int8_onnx), rewrite };
}

/** A stale second form from an earlier run with no target would read as this run's: removed when not rewritten. */
export function removeStaleOrtCpuForm(outDir: string): void {
  fs.rmSync(path.join(outDir, ORT_CPU_FORM_FILE), { force: true });
}
