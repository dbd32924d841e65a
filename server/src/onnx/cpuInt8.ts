// Whether ONNX Runtime's u8 x s8 integer kernels are exact on this CPU. Without VNNI, x86 kernels multiply
// u8 x s8 pairs with (v)pmaddubsw, which adds two products into an int16 and saturates: 255 * 127 * 2 does not
// fit. ONNX Runtime's own advice for such CPUs is weights of 7 bits (|q| <= 64: 255 * 64 * 2 fits). Asked once
// per process by running the worst case, so the answer holds on any CPU.
import type * as ortTypes from 'onnxruntime-node';
import { DataType, Model, encodeModel, int8Tensor, makeNode } from './model';

/** The weight range that keeps every u8 x s8 pair sum within int16 (ONNX Runtime's "reduce_range"). */
export const NARROW_WEIGHT_MAX = 64;
export const FULL_WEIGHT_MAX = 127;

export const SATURATION_NOTE =
  "this CPU's ONNX Runtime u8 x s8 kernels saturate (no VNNI): the ort-cpu and dynamic forms' integer weights " +
  'use 7 bits, as ONNX Runtime advises for such CPUs (on a VNNI CPU they keep 8 bits)';

const K = 64;
let answer: Promise<boolean> | undefined;
let known: boolean | undefined;

function probeModel(): Model {
  const info = (name: string, elem: number, shape: number[]) => ({
    name,
    type: { tensor_type: { elem_type: elem, shape: { dim: shape.map((d) => ({ dim_value: d })) } } },
  });
  return {
    ir_version: 8,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'u8s8_probe',
      node: [makeNode('MatMulInteger', ['a', 'w'], ['y'], 'probe')],
      initializer: [int8Tensor('w', [K, 1], new Array(K).fill(FULL_WEIGHT_MAX))],
      input: [info('a', DataType.UINT8, [1, K])],
      output: [info('y', DataType.INT32, [1, 1])],
      value_info: [],
    },
  };
}

/** Runs the probe (once per process): true when 255 x 127 summed over K comes back short. */
export function probeU8S8Saturation(): Promise<boolean> {
  answer ??= (async () => {
    try {
      const ort = require('onnxruntime-node') as typeof ortTypes;
      const session = await ort.InferenceSession.create(encodeModel(probeModel()), { logSeverityLevel: 3 });
      const a = new ort.Tensor('uint8', new Uint8Array(K).fill(255), [1, K]);
      const y = (await session.run({ a })).y.data as Int32Array;
      known = y[0] !== 255 * FULL_WEIGHT_MAX * K;
    } catch {
      known = false; // no runtime: nothing here runs integer kernels either
    }
    return known;
  })();
  return answer;
}

/** The probe's answer once it has run; false before (callers that matter await probeU8S8Saturation first). */
export function u8s8Saturates(): boolean {
  return known === true;
}

/** The largest INT8 weight magnitude the integer forms use on this CPU. */
export function integerWeightMax(): number {
  return u8s8Saturates() ? NARROW_WEIGHT_MAX : FULL_WEIGHT_MAX;
}
