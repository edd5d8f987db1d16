// Quantisation parameters computed with exact float operations only (scaling
// by powers of two, one rounding), so every engine (V8, XS) gets the same
// integers. No Math.log/exp: their last bit may differ between engines.

export interface QuantizedMultiplier {
  multiplier: number; // Q31, in [2^30, 2^31) or 0
  shift: number; // TFLite convention: value = multiplier * 2^(shift - 31)
}

// real = q * 2^e with q in [0.5, 1); exact for finite positive real.
export function frexp(real: number): { q: number; e: number } {
  if (!(real > 0) || !Number.isFinite(real)) throw new Error(`frexp: expected a positive finite number, got ${real}`);
  let q = real, e = 0;
  while (q >= 1) { q /= 2; e++; }
  while (q < 0.5) { q *= 2; e--; }
  return { q, e };
}

export function quantizeMultiplier(real: number, minShift = -31, maxShift = 30): QuantizedMultiplier {
  if (real === 0) return { multiplier: 0, shift: 0 };
  let { q, e } = frexp(real);
  let m = Math.round(q * 2 ** 31);
  if (m === 2 ** 31) { m /= 2; e++; }
  if (e < minShift) return { multiplier: 0, shift: 0 }; // below resolution: zero
  if (e > maxShift) throw new Error(`quantizeMultiplier: ${real} needs shift ${e}, more than ${maxShift}`);
  return { multiplier: m, shift: e };
}

// Per-channel weight scales for the input gradient: s[c] = mantissa[c] * 2^(exp - 15).
export function weightScaleMantissa(scales: ArrayLike<number>): { mantissa: Int16Array; exp: number } {
  let max = 0;
  for (let c = 0; c < scales.length; c++) max = Math.max(max, scales[c]!);
  const { e } = frexp(max); // max < 2^e
  const mantissa = new Int16Array(scales.length);
  for (let c = 0; c < scales.length; c++) mantissa[c] = Math.min(32767, Math.round(scales[c]! * 2 ** (15 - e)));
  return { mantissa, exp: e };
}

// round(scale * log2(e) * 2^16), the softmax exponent factor of native/core.
export function log2eScaleQ16(scale: number): number {
  return Math.round(scale * Math.LOG2E * 65536);
}

// Real values -> int8 codes of a per-tensor quantised tensor (a model's
// input), as TFLite's QUANTIZE op: round(x / scale) + zeroPoint, saturated.
// `clamped` counts the values outside the representable range: many of them
// mean the samples are not normalised as the model expects.
export function quantizeReal(values: ArrayLike<number>, quant: { scale: readonly number[]; zeroPoint: readonly number[] }): { data: Int8Array; clamped: number } {
  const scale = quant.scale[0]!, zeroPoint = quant.zeroPoint[0]!;
  const data = new Int8Array(values.length);
  let clamped = 0;
  for (let i = 0; i < values.length; i++) {
    const q = Math.round(values[i]! / scale) + zeroPoint;
    if (q < -128 || q > 127) clamped++;
    data[i] = Math.max(-128, Math.min(127, q));
  }
  return { data, clamped };
}
