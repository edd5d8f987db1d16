// The five optimizer baselines behind the VectorOptimizer interface, each a
// thin wrapper over one update of an engine (./engine.ts): by default the
// TypeScript references (src/core/reference/optim.ts), or the C ops they are
// bit-identical to (native/core/optim_f32.c, optim_s16.c) through
// src/node/optim-engine.ts. Every factory takes the engine as its parameter.
//
//   sgd-fp32       x -= lr g                                   state 0 bits
//   momentum-fp32  v = 0.9 v + g; x -= lr v                    state 32 bits
//   adam-fp32      beta1 0.9, beta2 0.999, eps 1e-8,           state 64 bits
//                  bias-corrected
//   sgd-fx16       int16 parameters, stochastic rounding       state 0 bits
//   momentum-fx16  int16 parameters and int16 velocity         state 16 bits
//
// The fx16 optimizers store the parameters as int16 q with one power-of-two
// scale per tensor (real = q * 2^paramExp) and, for momentum, an int16
// velocity in parameter units (real = v * 2^(paramExp - 4)); after each step
// they write the dequantised q * 2^paramExp into x, so the forward pass sees
// exactly the 16-bit weights. The float x is only that view: nothing of it
// is read back except on the first step, where the tensor's initial values
// are quantised (round to nearest) and its exponent is chosen:
// paramExp = log2(range) - 15 with range the power of two at or above
// 8 * max|x0| (1.0 when x0 is all zero, e.g. a bias), so the tensor can grow
// to 8x its initial range before it saturates. The float gradient is put into
// the FC weight-gradient format first: int32 with one exponent per step,
// |q| < 2^20 (round to nearest), as the integer backward kernels would give.
//
// A NaN or infinite gradient element is an error naming the optimizer, the
// tensor and the element, before anything is updated, whatever the engine
// (the C fp32 ops would take it and write NaN; the fx16 quantisation would
// turn a NaN into 0).

import { quantizeMultiplier, frexp } from '../quant.js';
import type { S16Optim } from '../reference/optim.js';
import { referenceEngine, type F32Updater, type OptimEngine, type S16Updater } from './engine.js';
import type { OptimizerFactory, VectorOptimizer } from './optimizer.js';

export const MOMENTUM = 0.9;
export const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8 } as const;
export const FX16_GRAD_BITS = 20; // |integer gradient| < 2^20
export const FX16_HEADROOM = 8; // parameter range = 8 x initial max |x|
export const FX16_VELOCITY_SHIFT = 4; // velocity exponent = paramExp - 4

const DEFAULT_TENSOR = 'the parameter vector';

function nonFiniteGradient(g: Float32Array, optimizer: string, tensor: string): Error {
  const i = g.findIndex((v) => !Number.isFinite(v));
  return new Error(`${optimizer}: gradient of ${tensor} is ${g[i]} at element ${i} (of ${g.length}); ` +
    'the update needs a finite gradient (diverged? try a lower learning rate)');
}

// Throws the error above for a NaN or infinite element. A float64 sum of
// float32 values cannot overflow, so it is finite iff every element is: the
// cheapest scan (this runs on every step), four sums so the adds overlap
// (1.6x faster in V8 than one).
function checkGradient(g: Float32Array, optimizer: string, tensor: string): void {
  const n = g.length, n4 = n - (n & 3);
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
  for (; i < n4; i += 4) {
    s0 += g[i]!;
    s1 += g[i + 1]!;
    s2 += g[i + 2]!;
    s3 += g[i + 3]!;
  }
  for (; i < n; i++) s0 += g[i]!;
  if (!Number.isFinite(s0 + s1 + s2 + s3)) throw nonFiniteGradient(g, optimizer, tensor);
}

// max |g|, or the error above. (A NaN makes max NaN and keeps it: NaN <= m
// is false and m + NaN * 0 is NaN. Costs what the plain max loop costs.)
function gradientMaxAbs(g: Float32Array, optimizer: string, tensor: string): number {
  let max = 0;
  for (let i = 0; i < g.length; i++) {
    const a = Math.abs(g[i]!);
    if (!(a <= max)) max = a + max * 0;
  }
  if (!Number.isFinite(max)) throw nonFiniteGradient(g, optimizer, tensor);
  return max;
}

// An fp32 baseline: the gradient checked, then the engine's update.
function f32Baseline(name: string, stateBitsPerParam: number, tensor: string, update: F32Updater): VectorOptimizer {
  return {
    name,
    stateBitsPerParam,
    step(x, g) {
      checkGradient(g, name, tensor);
      update.step(x, g);
    },
  };
}

export const sgdFp32 = (engine: OptimEngine = referenceEngine): OptimizerFactory =>
  (n, lr, _seed, tensor = DEFAULT_TENSOR) => f32Baseline('sgd-fp32', 0, tensor, engine.sgdF32(n, lr));

export const momentumFp32 = (engine: OptimEngine = referenceEngine): OptimizerFactory =>
  (n, lr, _seed, tensor = DEFAULT_TENSOR) => f32Baseline('momentum-fp32', 32, tensor, engine.momentumF32(n, lr, MOMENTUM));

export const adamFp32 = (engine: OptimEngine = referenceEngine): OptimizerFactory =>
  (n, lr, _seed, tensor = DEFAULT_TENSOR) => f32Baseline('adam-fp32', 64, tensor, engine.adamF32(n, { lr, ...ADAM }));

// Smallest e with maxabs * 2^-e < 2^bits (0 for an all-zero vector).
function blockExponent(maxabs: number, bits: number): number {
  if (maxabs === 0) return 0;
  return frexp(maxabs).e - bits; // maxabs < 2^frexp.e
}

// The parameter exponent of an fx16 tensor from its initial values.
export function fx16ParamExp(x0: ArrayLike<number>): number {
  let maxabs = 0;
  for (let i = 0; i < x0.length; i++) maxabs = Math.max(maxabs, Math.abs(x0[i]!));
  const range = maxabs > 0 ? 2 ** frexp(FX16_HEADROOM * maxabs).e : 1; // power of two >= 8 max|x0|
  return frexp(range).e - 1 - 15;
}

type Fx16Kind = 'sgd-fx16' | 'momentum-fx16';

class Fx16Optimizer implements VectorOptimizer {
  readonly stateBitsPerParam: number;
  private state: S16Updater | null = null; // from the first step (the exponent needs x0)
  private scale = 1;

  // paramRange: a fixed power-of-two range instead of the one from the
  // initial values (real parameters in (-paramRange, paramRange)).
  constructor(readonly name: Fx16Kind, private readonly engine: OptimEngine, private readonly n: number,
    private readonly lr: number, private readonly seed: number, private readonly tensor: string,
    private readonly paramRange?: number) {
    this.stateBitsPerParam = name === 'momentum-fx16' ? 16 : 0;
  }

  private start(x: Float32Array): S16Updater {
    const paramExp = this.paramRange ? frexp(this.paramRange).e - 1 - 15 : fx16ParamExp(x);
    const lr = quantizeMultiplier(this.lr);
    const h: S16Optim = {
      paramExp,
      stateExp: paramExp - FX16_VELOCITY_SHIFT,
      lrMultiplier: lr.multiplier,
      lrShift: lr.shift,
      momentumQ15: Math.round(MOMENTUM * 32768),
    };
    const rngState = this.seed >>> 0 || 1;
    const s = this.name === 'momentum-fx16' ? this.engine.momentumS16(this.n, h, rngState)
      : this.engine.sgdS16(this.n, h, rngState);
    this.scale = 2 ** paramExp;
    const q = s.param;
    for (let i = 0; i < this.n; i++) {
      const v = Math.round(x[i]! / this.scale);
      q[i] = v > 32767 ? 32767 : v < -32767 ? -32767 : v;
    }
    return s;
  }

  step(x: Float32Array, g: Float32Array): void {
    const maxabs = gradientMaxAbs(g, this.name, this.tensor); // before start: a bad first step changes nothing
    const s = (this.state ??= this.start(x));
    const e = blockExponent(maxabs, FX16_GRAD_BITS), k = 2 ** -e;
    const gq = s.grad, q = s.param, scale = this.scale, n = this.n; // locals: 15% faster loops in V8
    // Math.round(v) (nearest, ties up), twice as fast in V8: v = g * 2^-e has
    // at most 24 significant bits and |v| < 2^20, so v + 0.5 is exact for
    // |v| >= 2^-30; below, both give 0 (v + 0.5 rounds to within 2^-30 of 0.5).
    for (let i = 0; i < n; i++) gq[i] = Math.floor(g[i]! * k + 0.5);
    s.update(e);
    for (let i = 0; i < n; i++) x[i] = q[i]! * scale;
  }
}

// An fx16 factory with a fixed parameter range (a power of two), e.g. for a
// problem whose solution lies outside 8x its initial values.
export function fx16WithRange(kind: Fx16Kind, paramRange: number, engine: OptimEngine = referenceEngine): OptimizerFactory {
  return (n, lr, seed, tensor = DEFAULT_TENSOR) => new Fx16Optimizer(kind, engine, n, lr, seed, tensor, paramRange);
}

export const sgdFx16 = (engine: OptimEngine = referenceEngine): OptimizerFactory =>
  (n, lr, seed, tensor = DEFAULT_TENSOR) => new Fx16Optimizer('sgd-fx16', engine, n, lr, seed, tensor);

export const momentumFx16 = (engine: OptimEngine = referenceEngine): OptimizerFactory =>
  (n, lr, seed, tensor = DEFAULT_TENSOR) => new Fx16Optimizer('momentum-fx16', engine, n, lr, seed, tensor);

// The five baselines, their updates on `engine`.
export function baselineFactories(engine: OptimEngine = referenceEngine): Readonly<Record<string, OptimizerFactory>> {
  return {
    'sgd-fp32': sgdFp32(engine),
    'momentum-fp32': momentumFp32(engine),
    'adam-fp32': adamFp32(engine),
    'sgd-fx16': sgdFx16(engine),
    'momentum-fx16': momentumFx16(engine),
  };
}

export const baselines = baselineFactories();
