// Integer rounding and saturation exactly as ONNX QuantizeLinear defines them (round half to even).

export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  // Math.round rounds .5 up; ONNX (and numpy/torch) round ties to the even neighbour.
  if (Math.abs(v % 1) === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}

export function saturate(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/**
 * Symmetric per-column INT8 quantization of a row-major [K, N] matrix: one scale per output column,
 * zero point 0, range [-max, max]: 127 keeps u8 x s8 products within the VNNI accumulators, 64 within the int16
 * pair sums of CPUs without VNNI (cpuInt8.ts).
 */
export function quantizePerColumn(
  w: Float32Array,
  k: number,
  n: number,
  max = 127,
): { q: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(n);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < n; j++) {
      const a = Math.abs(w[i * n + j]);
      if (a > scales[j]) scales[j] = a;
    }
  }
  for (let j = 0; j < n; j++) scales[j] = scales[j] > 0 ? scales[j] / max : 1;
  const q = new Int8Array(k * n);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < n; j++) q[i * n + j] = saturate(roundHalfEven(w[i * n + j] / scales[j]), -max, max);
  }
  return { q, scales };
}

export function transpose2d(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = w[i * cols + j];
  return t;
}
