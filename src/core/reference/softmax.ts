// Reference int8 softmax: TFLite reference_ops::Softmax (int8 in, int8 out
// with scale 1/256 and zero point -128), with gemmlowp's fixed-point exp and
// reciprocal written out as in gemmlowp/fixedpoint.h. Raw values are int32
// Q-format numbers: Qm.n has m integer bits and n = 31 - m fractional bits.

import { clamp, roundingDivideByPot, satRoundDoublingHighMul as mul } from './fixed.js';

const wrap = (x: number): number => x | 0; // gemmlowp's unchecked int32 add

// SaturatingRoundingMultiplyByPOT<e>, e > 0.
function satShl(x: number, e: number): number {
  const threshold = 2 ** (31 - e) - 1;
  if (x > threshold) return 2147483647;
  if (x < -threshold) return -2147483648;
  return x * 2 ** e;
}

// (a + b) / 2 rounded half away from zero.
function roundingHalfSum(a: number, b: number): number {
  const sum = a + b;
  return Math.trunc((sum + (sum >= 0 ? 1 : -1)) / 2);
}

// exp(a), a in [-1/4, 0) as Q0.31; Taylor expansion around -1/8.
function expOnIntervalBetweenNegativeOneQuarterAnd0Excl(a: number): number {
  const constantTerm = 1895147668; // exp(-1/8)
  const constant1Over3 = 715827883;
  const x = wrap(a + 2 ** 28);
  const x2 = mul(x, x);
  const x3 = mul(x2, x);
  const x4 = mul(x2, x2);
  const x4Over4 = roundingDivideByPot(x4, 2);
  const poly = roundingDivideByPot(wrap(mul(wrap(x4Over4 + x3), constant1Over3) + x2), 1);
  return wrap(constantTerm + mul(constantTerm, wrap(x + poly)));
}

// exp(a) for a <= 0 in Q5.26, result Q0.31.
export function expOnNegativeValuesQ5(a: number): number {
  const quarter = 2 ** 24;
  const aModQuarterMinusQuarter = (a & (quarter - 1)) - quarter;
  let result = expOnIntervalBetweenNegativeOneQuarterAnd0Excl(satShl(aModQuarterMinusQuarter, 5));
  const remainder = wrap(aModQuarterMinusQuarter - a);
  // exp(-1/4), exp(-1/2), exp(-1), exp(-2), exp(-4), exp(-8), exp(-16) in Q0.31
  const multipliers = [1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242];
  for (let k = 0; k < multipliers.length; k++) {
    if (remainder & (1 << (24 + k))) result = mul(result, multipliers[k]!);
  }
  return a === 0 ? 2147483647 : result;
}

// 1 / (1 + a), a in [0, 1) as Q0.31: Newton-Raphson in Q2.29.
export function oneOverOnePlusXForXIn01(a: number): number {
  const halfDenominator = roundingHalfSum(a, 2147483647);
  let x = wrap(1515870810 + mul(halfDenominator, -1010580540)); // 48/17 - 32/17 * d
  for (let i = 0; i < 3; i++) {
    const oneMinus = wrap(2 ** 29 - mul(halfDenominator, x));
    x = wrap(x + satShl(mul(x, oneMinus), 2));
  }
  return satShl(x, 1);
}

export interface SoftmaxQuant {
  inputMultiplier: number;
  inputLeftShift: number;
  diffMin: number;
}

export function softmaxForward(rows: number, depth: number, q: SoftmaxQuant, input: Int8Array, out: Int8Array): void {
  for (let r = 0; r < rows; r++) {
    const x = input.subarray(r * depth, (r + 1) * depth);
    const max = Math.max(...x);
    const scaled = (v: number): number => mul((v - max) * 2 ** q.inputLeftShift, q.inputMultiplier); // Q5.26
    let sum = 0; // Q12.19
    for (const v of x) if (v - max >= q.diffMin) sum += roundingDivideByPot(expOnNegativeValuesQ5(scaled(v)), 12);
    // sum = (1 + m) * 2^bitsOverUnit with m in [0, 1): 1/sum via 1/(1+m)
    let bits = 0;
    while (2 ** bits <= sum) bits++;
    const headroomPlusOne = 32 - bits;
    const m = sum * 2 ** headroomPlusOne - 2 ** 31;
    const shiftedScale = oneOverOnePlusXForXIn01(m);
    const exponent = 12 - headroomPlusOne + 31 - 8;
    for (let c = 0; c < depth; c++) {
      const v = x[c]!;
      out[r * depth + c] = v - max < q.diffMin
        ? -128
        : clamp(roundingDivideByPot(mul(shiftedScale, expOnNegativeValuesQ5(scaled(v))), exponent) - 128, -128, 127);
    }
  }
}
