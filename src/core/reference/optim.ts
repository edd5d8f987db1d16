// Reference optimizer baselines (native/core/optim_f32.c, optim_s16.c): the
// oracle the C is tested against, bit for bit.
//
// fp32: every binary32 operation of the C is one Math.fround here, in the C's
// order (no fused multiply-add there). A float64 +, -, *, / or sqrt of two
// float32 values rounded once more to float32 is the correctly rounded
// float32 result (53 >= 2*24 + 2), so the bits match IEEE float32 hardware,
// soft-float libraries and the C's integer square root.
//
// int16: Number arithmetic where every intermediate stays below 2^53 (the
// usual case: |gradient| <= 2^21), BigInt otherwise; both give the C's bits.

import { KernelArgumentError, checkF32Hyper, checkS16Hyper } from '../kernels.js';
import { xorshift32 } from '../rng.js';
import { sgdStep } from './fixed.js';

const f = Math.fround;

// The float32 an int32 arg carries (the dispatcher's float args). A fresh
// buffer per call: module-level objects are frozen when Moddable preloads
// src/core.
export function f32FromBits(bits: number): number {
  return new Float32Array(Int32Array.of(bits).buffer)[0]!;
}

export interface AdamHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export function checkAdam(h: AdamHyper, betaPowers: ArrayLike<number>): void {
  const op = 'adam_f32_update';
  checkF32Hyper(op, 'lr', h.lr);
  checkF32Hyper(op, 'beta1', h.beta1, 0, 1, true);
  checkF32Hyper(op, 'beta2', h.beta2, 0, 1, true);
  checkF32Hyper(op, 'eps', h.eps);
  if (!(f(h.eps) > 0)) throw new KernelArgumentError(`${op}: eps is ${h.eps}, expected a float32 > 0`);
  for (let k = 0; k < 2; k++) {
    const p = betaPowers[k]!;
    if (!(p >= 0 && p <= 1)) {
      throw new KernelArgumentError(`${op}: state beta_powers[${k}] (beta${k + 1}^t) is ${p}, expected [0, 1]`);
    }
  }
}

// x -= lr * g
export function sgdF32(n: number, lr: number, grad: Float32Array, param: Float32Array): void {
  checkF32Hyper('sgd_f32_update', 'lr', lr);
  const l = f(lr);
  for (let i = 0; i < n; i++) param[i] = f(param[i]! - f(l * grad[i]!));
}

// v = momentum * v + g; x -= lr * v
export function momentumF32(n: number, lr: number, momentum: number, grad: Float32Array, velocity: Float32Array,
  param: Float32Array): void {
  checkF32Hyper('momentum_f32_update', 'lr', lr);
  checkF32Hyper('momentum_f32_update', 'momentum', momentum);
  const l = f(lr), mu = f(momentum);
  for (let i = 0; i < n; i++) {
    const v = f(f(mu * velocity[i]!) + grad[i]!);
    velocity[i] = v;
    param[i] = f(param[i]! - f(l * v));
  }
}

// Adam with bias correction; betaPowers = [beta1^t, beta2^t] (start at 1, 1)
// is advanced first.
export function adamF32(n: number, h: AdamHyper, grad: Float32Array, m: Float32Array, v: Float32Array,
  betaPowers: Float32Array, param: Float32Array): void {
  checkAdam(h, betaPowers);
  const lr = f(h.lr), b1 = f(h.beta1), b2 = f(h.beta2), eps = f(h.eps);
  const p1 = f(betaPowers[0]! * b1), p2 = f(betaPowers[1]! * b2);
  betaPowers[0] = p1;
  betaPowers[1] = p2;
  const c1 = f(1 - p1), c2 = f(1 - p2), omb1 = f(1 - b1), omb2 = f(1 - b2);
  for (let i = 0; i < n; i++) {
    const g = grad[i]!;
    const mi = f(f(b1 * m[i]!) + f(omb1 * g));
    const vi = f(f(b2 * v[i]!) + f(omb2 * f(g * g)));
    m[i] = mi;
    v[i] = vi;
    const mHat = f(mi / c1), vHat = f(vi / c2);
    const den = f(f(Math.sqrt(vHat)) + eps);
    param[i] = f(param[i]! - f(f(lr * mHat) / den));
  }
}

// ---- int16 fixed point ----

export interface S16Optim {
  paramExp: number; // real = q * 2^paramExp, in [-64, 64]
  stateExp: number; // momentum: velocity exponent, in [-64, 64]
  lrMultiplier: number; // Q31, >= 0
  lrShift: number; // [-62, 62]; lr = multiplier * 2^(shift - 31)
  momentumQ15: number; // [0, 32767]
}

const S16_MAX = 32767;
const sat16 = (v: number): number => (v < -S16_MAX ? -S16_MAX : v > S16_MAX ? S16_MAX : v);

export function checkS16(op: string, p: S16Optim, rngState: number): void {
  checkS16Hyper(op, p);
  if (rngState >>> 0 === 0) throw new KernelArgumentError(`${op}: rng state is 0 (xorshift32 needs a nonzero seed)`);
}

const clampExp = (d: number): number => (d < -(1 << 20) ? -(1 << 20) : d > 1 << 20 ? 1 << 20 : d);

// q -= sr(lr * g * 2^(gradExp - paramExp)) for g != 0 (one draw each).
export function sgdS16(n: number, p: S16Optim, grad: Int32Array, gradExp: number, param: Int16Array,
  rng: { state: number }): void {
  checkS16('sgd_s16_update', p, rng.state);
  const e = clampExp(gradExp - p.paramExp);
  const M = p.lrMultiplier, R = 31 - p.lrShift - e;
  const fast = R >= 1 && R <= 52;
  const pow = 2 ** R, rDiv = R <= 32 ? 2 ** (32 - R) : 0, rMul = R > 32 ? 2 ** (R - 32) : 0;
  for (let i = 0; i < n; i++) {
    const g = grad[i]!;
    if (g === 0) continue;
    let step: number;
    if (fast && g <= 2097152 && g >= -2097152) {
      // |g * M| < 2^52 and r < 2^R <= 2^52: exact
      rng.state = xorshift32(rng.state);
      const r = R <= 32 ? Math.floor(rng.state / rDiv) : rng.state * rMul;
      step = Math.floor((g * M + r) / pow);
    } else {
      step = sgdStep(g, M, p.lrShift, e, rng);
    }
    param[i] = sat16(param[i]! - step);
  }
}

const TERM_MAX = 2 ** 47;
const TERM_MAX_N = 2n ** 47n;

// lr * g in units of 2^(stateExp - 30): floor(g * M * 2^k) clamped to +-2^47.
function lrTerm(g: number, M: number, k: number): number {
  if (g <= 2097152 && g >= -2097152) {
    const x = g * M; // exact, < 2^52
    if (k >= 0) {
      if (k > 47) return x > 0 ? TERM_MAX : x < 0 ? -TERM_MAX : 0;
      const t = x * 2 ** k; // exact unless clamped
      return t > TERM_MAX ? TERM_MAX : t < -TERM_MAX ? -TERM_MAX : t;
    }
    return Math.floor(x / 2 ** (k < -63 ? 63 : -k));
  }
  const x = BigInt(g) * BigInt(M);
  let t: bigint;
  if (k >= 0) t = k > 47 ? (x > 0n ? TERM_MAX_N : x < 0n ? -TERM_MAX_N : 0n) : x << BigInt(k);
  else t = x >> BigInt(k < -63 ? 63 : -k); // floors
  return Number(t > TERM_MAX_N ? TERM_MAX_N : t < -TERM_MAX_N ? -TERM_MAX_N : t);
}

// Heavy ball with the learning rate in the state (velocity in parameter
// units): v = sr(mu * v + lr * g), q -= sr(v * 2^(stateExp - paramExp)); two
// draws per element with g != 0 or v != 0. See native/core/xst.h. (Powers
// of two hoisted out of the loop and xorshift32 inlined: the MNIST bench
// runs this on 79,510 parameters per step.)
export function momentumS16(n: number, p: S16Optim, grad: Int32Array, gradExp: number, velocity: Int16Array,
  param: Int16Array, rng: { state: number }): void {
  checkS16('momentum_s16_update', p, rng.state);
  const k = p.lrShift + gradExp - p.stateExp - 1;
  const R = p.paramExp - p.stateExp;
  const mu = p.momentumQ15 * 32768, M = p.lrMultiplier;
  // lr * g term for |g| <= 2^21 (g * M exact): k >= 0: g * M * 2^k, clamped
  // (k > 47: saturated); k < 0: floor(g * M / 2^-k).
  const kUp = k >= 0 && k <= 47 ? 2 ** k : 0, kDown = k < 0 ? 2 ** (k < -63 ? 63 : -k) : 0;
  // v -> parameter LSBs: R <= 0 exact multiply, 1 <= R <= 30 stochastic.
  const up = R <= 0 ? 2 ** (-R > 17 ? 17 : -R) : 0, down = R >= 1 && R <= 30 ? 2 ** (30 - R) : 0;
  const TWO30 = 1073741824;
  let state = rng.state >>> 0;
  for (let i = 0; i < n; i++) {
    const g = grad[i]!, v = velocity[i]!;
    if (g === 0 && v === 0) continue;
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    let t: number;
    if (g > 2097152 || g < -2097152) t = lrTerm(g, M, k);
    else if (k < 0) t = Math.floor((g * M) / kDown);
    else if (k > 47) t = g > 0 && M > 0 ? TERM_MAX : g < 0 && M > 0 ? -TERM_MAX : 0;
    else {
      t = g * M * kUp;
      t = t > TERM_MAX ? TERM_MAX : t < -TERM_MAX ? -TERM_MAX : t;
    }
    let vn = Math.floor((v * mu + t + (state >>> 2)) / TWO30); // |sum| < 2^48: exact
    vn = vn < -S16_MAX ? -S16_MAX : vn > S16_MAX ? S16_MAX : vn;
    velocity[i] = vn;
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    const step = up ? vn * up : down ? Math.floor((vn * down + (state >>> 2)) / TWO30) : 0;
    const w = param[i]! - step;
    param[i] = w < -S16_MAX ? -S16_MAX : w > S16_MAX ? S16_MAX : w;
  }
  rng.state = state;
}
