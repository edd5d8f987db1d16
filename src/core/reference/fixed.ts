// Reference fixed-point arithmetic: TFLite / gemmlowp semantics, written for
// clarity with BigInt where a product needs 64 bits.

import { xorshift32 } from '../rng.js';

const TWO31 = 2n ** 31n;

export function satRoundDoublingHighMul(a: number, b: number): number {
  if (a === -2147483648 && b === -2147483648) return 2147483647;
  const ab = BigInt(a) * BigInt(b);
  const nudge = ab >= 0n ? 2n ** 30n : 1n - 2n ** 30n;
  return Number((ab + nudge) / TWO31); // BigInt division truncates toward zero
}

export function roundingDivideByPot(x: number, exponent: number): number {
  const mask = 2 ** exponent - 1;
  const remainder = Number(BigInt.asUintN(32, BigInt(x)) & BigInt(mask));
  const threshold = Math.floor(mask / 2) + (x < 0 ? 1 : 0);
  return Math.floor(x / 2 ** exponent) + (remainder > threshold ? 1 : 0);
}

export function requantize(x: number, multiplier: number, shift: number): number {
  const left = shift > 0 ? shift : 0;
  const right = shift > 0 ? 0 : -shift;
  const shifted = Number(BigInt.asIntN(32, BigInt(x) * 2n ** BigInt(left)));
  return roundingDivideByPot(satRoundDoublingHighMul(shifted, multiplier), right);
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

const STEP_MAX = 0x7fffffffn;

// One stochastically rounded SGD step (see xst_sgd_step in native/core):
// floor((g*m + r) / 2^R), R = 31 - shift - exp, r uniform in [0, 2^R).
export function sgdStep(g: number, m: number, shift: number, exp: number, rng: { state: number }): number {
  const x = BigInt(g) * BigInt(m);
  const R = 31 - shift - exp;
  rng.state = xorshift32(rng.state);
  const u = BigInt(rng.state);
  let step: bigint;
  if (R <= 0) {
    step = x * 2n ** BigInt(-R);
  } else if (R > 62) {
    step = 0n;
  } else {
    const r = R <= 32 ? u >> BigInt(32 - R) : u << BigInt(R - 32);
    step = (x + r) >> BigInt(R); // BigInt >> floors
  }
  if (step > STEP_MAX) step = STEP_MAX;
  if (step < -STEP_MAX) step = -STEP_MAX;
  return Number(step);
}

export function bitLength(v: number): number {
  let n = 0;
  while (v > 0) {
    n++;
    v = Math.floor(v / 2);
  }
  return n;
}

// Block floating point: writes acc scaled by 2^-s into int8 (round half up),
// with s chosen so the largest magnitude lands in [64, 127]; returns s.
export function normalizeToInt8(acc: ArrayLike<number>, out: Int8Array): number {
  let maxabs = 0;
  for (let j = 0; j < acc.length; j++) maxabs = Math.max(maxabs, Math.abs(acc[j]!));
  const s = maxabs ? bitLength(maxabs) - 7 : 0;
  for (let j = 0; j < acc.length; j++) {
    const v = s > 0 ? Math.floor((acc[j]! + 2 ** (s - 1)) / 2 ** s) : acc[j]! * 2 ** -s;
    out[j] = clamp(v, -128, 127);
  }
  return s;
}

// The epilogue of every forward kernel with a fused activation: out[k] is v
// clamped to [actMin, actMax]; mask bit k (if any) is set when the clamp let
// the value through (what ReLU/ReLU6 backward reads).
export function storeActivation(out: Int8Array, mask: Uint8Array | null, k: number, v: number, actMin: number, actMax: number): void {
  if (mask) {
    if (v > actMin && v < actMax) mask[k >> 3]! |= 1 << (k & 7);
    else mask[k >> 3]! &= ~(1 << (k & 7));
  }
  out[k] = clamp(v, actMin, actMax);
}
