// Reference elementwise add, int8: TFLite reference_integer_ops::Add, and the
// sum of two int8 gradients with their own exponents (native/core/add_s8.c).

import type { AddQuantParams } from '../tflite-params.js';
import { requantize, bitLength, normalizeToInt8, storeActivation } from './fixed.js';

// The parameters TFLite's Prepare computes (tflite-params.ts) and the clamp.
export interface AddQuant extends AddQuantParams {
  actMin: number;
  actMax: number;
}

export function addForward(n: number, q: AddQuant, in1: Int8Array, in2: Int8Array, out: Int8Array,
  mask: Uint8Array | null): void {
  for (let k = 0; k < n; k++) {
    const s1 = requantize((in1[k]! + q.input1Offset) * 2 ** q.leftShift, q.input1Multiplier, q.input1Shift);
    const s2 = requantize((in2[k]! + q.input2Offset) * 2 ** q.leftShift, q.input2Multiplier, q.input2Shift);
    const v = requantize(s1 + s2, q.outputMultiplier, q.outputShift) + q.outputOffset;
    storeActivation(out, mask, k, v, q.actMin, q.actMax);
  }
}


// q * 2^sh, rounding half up when sh < 0 (exact in float64: |q| <= 128, |sh| <= 1e3).
function scalePot(q: number, sh: number): number {
  if (q === 0) return 0; // an all-zero operand may have any exponent
  return sh >= 0 ? q * 2 ** sh : Math.floor(q * 2 ** sh + 0.5);
}

// Returns the exponent of out: real out = qa*2^ea + qb*2^eb, normalised so
// the largest magnitude lands in [64, 127]. The common exponent is
// max(min(ea, eb), top - 30), top the larger operand's leading-bit position.
export function gradAdd(n: number, a: Int8Array, ea: number, b: Int8Array, eb: number, out: Int8Array): number {
  let ma = 0, mb = 0;
  for (let k = 0; k < n; k++) {
    ma = Math.max(ma, Math.abs(a[k]!));
    mb = Math.max(mb, Math.abs(b[k]!));
  }
  let ew = Math.min(ea, eb);
  const tops: number[] = [];
  if (ma) tops.push(bitLength(ma) + ea);
  if (mb) tops.push(bitLength(mb) + eb);
  if (tops.length) ew = Math.max(ew, Math.max(...tops) - 30);
  const v: number[] = [];
  for (let k = 0; k < n; k++) v.push(scalePot(a[k]!, ea - ew) + scalePot(b[k]!, eb - ew));
  const s = normalizeToInt8(v, out);
  return ew + s;
}
