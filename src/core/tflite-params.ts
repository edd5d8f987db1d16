// Quantisation parameters of TFLite's int8 ADD, SOFTMAX and MEAN, computed
// exactly as TFLite's Prepare does (micro add_common.cc CalculateOpDataAdd,
// softmax PreprocessSoftmaxScaling / CalculateInputRadius, mean
// QuantizeMultiplier(s_in / s_out)). Scales and beta are float32 in a
// .tflite file, so they are rounded to float32 first and the arithmetic is
// then done in float64, as the C++ does. Only +, *, / and powers of two:
// every engine (V8, XS) gets the same integers.

import { quantizeMultiplier } from './quant.js';

export interface AddQuantParams {
  input1Offset: number;
  input1Multiplier: number;
  input1Shift: number;
  input2Offset: number;
  input2Multiplier: number;
  input2Shift: number;
  leftShift: number;
  outputOffset: number;
  outputMultiplier: number;
  outputShift: number;
}

// QuantizeMultiplierSmallerThanOneExp: real in (0, 1), shift <= 0.
function smallerThanOne(real: number): { multiplier: number; shift: number } {
  if (!(real > 0 && real < 1)) throw new Error(`add params: multiplier ${real} is not in (0, 1)`);
  const q = quantizeMultiplier(real);
  if (q.shift > 0) throw new Error(`add params: multiplier ${real} rounds to 1`);
  return q;
}

export function addQuantParams(
  in1: { scale: number; zeroPoint: number },
  in2: { scale: number; zeroPoint: number },
  out: { scale: number; zeroPoint: number },
): AddQuantParams {
  const s1 = Math.fround(in1.scale), s2 = Math.fround(in2.scale), so = Math.fround(out.scale);
  const leftShift = 20;
  const twiceMaxInputScale = 2 * Math.max(s1, s2);
  const m1 = smallerThanOne(s1 / twiceMaxInputScale);
  const m2 = smallerThanOne(s2 / twiceMaxInputScale);
  const mo = smallerThanOne(twiceMaxInputScale / (2 ** leftShift * so));
  return {
    input1Offset: -in1.zeroPoint, input1Multiplier: m1.multiplier, input1Shift: m1.shift,
    input2Offset: -in2.zeroPoint, input2Multiplier: m2.multiplier, input2Shift: m2.shift,
    leftShift,
    outputOffset: out.zeroPoint, outputMultiplier: mo.multiplier, outputShift: mo.shift,
  };
}

export interface SoftmaxQuantParams {
  inputMultiplier: number;
  inputLeftShift: number;
  diffMin: number;
}

const kScaledDiffIntegerBits = 5;

export function softmaxQuantParams(beta: number, inputScale: number): SoftmaxQuantParams {
  const b = Math.fround(beta), s = Math.fround(inputScale);
  // PreprocessSoftmaxScaling (double rounding: the cap is 2^31 - 1)
  const real = Math.min(b * s * 2 ** (31 - kScaledDiffIntegerBits), 2 ** 31 - 1);
  if (!(real > 1)) throw new Error(`softmax params: beta * scale = ${b * s} is too small (needs > 2^-26)`);
  const q = quantizeMultiplier(real, -31, 31);
  // CalculateInputRadius(5, left_shift): floor((2^5 - 1) * 2^26 / 2^left_shift)
  const radius = Math.floor(((2 ** kScaledDiffIntegerBits - 1) * 2 ** (31 - kScaledDiffIntegerBits)) / 2 ** q.shift);
  return { inputMultiplier: q.multiplier, inputLeftShift: q.shift, diffMin: radius === 0 ? 0 : -radius };
}

// TFLite MEAN int8: QuantizeMultiplier(s_in / s_out).
export function meanQuantParams(inputScale: number, outputScale: number): { multiplier: number; shift: number } {
  return quantizeMultiplier(Math.fround(inputScale) / Math.fround(outputScale));
}
