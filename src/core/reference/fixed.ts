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
