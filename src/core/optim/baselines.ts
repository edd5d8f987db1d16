// The five optimizer baselines behind the VectorOptimizer interface, each a
// thin wrapper over the TypeScript reference update (src/core/reference/
// optim.ts, bit-identical to native/core/optim_f32.c and optim_s16.c).
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

import { quantizeMultiplier, frexp } from '../quant.js';
import { adamF32, momentumF32, momentumS16, sgdF32, sgdS16, type S16Optim } from '../reference/optim.js';
import type { OptimizerFactory, VectorOptimizer } from './optimizer.js';

export const MOMENTUM = 0.9;
export const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8 } as const;
export const FX16_GRAD_BITS = 20; // |integer gradient| < 2^20
export const FX16_HEADROOM = 8; // parameter range = 8 x initial max |x|
export const FX16_VELOCITY_SHIFT = 4; // velocity exponent = paramExp - 4

export const sgdFp32: OptimizerFactory = (n, lr) => ({
  name: 'sgd-fp32',
  stateBitsPerParam: 0,
  step(x, g) {
    sgdF32(n, lr, g, x);
  },
});

export const momentumFp32: OptimizerFactory = (n, lr) => {
  const v = new Float32Array(n);
  return {
    name: 'momentum-fp32',
    stateBitsPerParam: 32,
    step(x, g) {
      momentumF32(n, lr, MOMENTUM, g, v, x);
    },
  };
};

export const adamFp32: OptimizerFactory = (n, lr) => {
  const m = new Float32Array(n), v = new Float32Array(n), powers = Float32Array.of(1, 1);
  return {
    name: 'adam-fp32',
    stateBitsPerParam: 64,
    step(x, g) {
      adamF32(n, { lr, ...ADAM }, g, m, v, powers, x);
    },
  };
};

// Smallest e with max|values| * 2^-e < 2^bits (0 for an all-zero vector).
function blockExponent(values: ArrayLike<number>, bits: number): number {
  let maxabs = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]!);
    if (a > maxabs) maxabs = a;
  }
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

class Fx16Optimizer implements VectorOptimizer {
  readonly stateBitsPerParam: number;
  private readonly q: Int16Array;
  private readonly velocity: Int16Array | null;
  private readonly gq: Int32Array;
  private readonly rng: { state: number };
  private hyper: S16Optim | null = null;
  private scale = 1;

  // paramRange: a fixed power-of-two range instead of the one from the
  // initial values (real parameters in (-paramRange, paramRange)).
  constructor(readonly name: 'sgd-fx16' | 'momentum-fx16', private readonly n: number, private readonly lr: number,
    seed: number, private readonly paramRange?: number) {
    this.q = new Int16Array(n);
    this.velocity = name === 'momentum-fx16' ? new Int16Array(n) : null;
    this.stateBitsPerParam = this.velocity ? 16 : 0;
    this.gq = new Int32Array(n);
    this.rng = { state: seed >>> 0 || 1 };
  }

  private start(x: Float32Array): S16Optim {
    const paramExp = this.paramRange ? frexp(this.paramRange).e - 1 - 15 : fx16ParamExp(x);
    const lr = quantizeMultiplier(this.lr);
    this.scale = 2 ** paramExp;
    for (let i = 0; i < this.n; i++) {
      const v = Math.round(x[i]! / this.scale);
      this.q[i] = v > 32767 ? 32767 : v < -32767 ? -32767 : v;
    }
    return {
      paramExp,
      stateExp: paramExp - FX16_VELOCITY_SHIFT,
      lrMultiplier: lr.multiplier,
      lrShift: lr.shift,
      momentumQ15: Math.round(MOMENTUM * 32768),
    };
  }

  step(x: Float32Array, g: Float32Array): void {
    const h = (this.hyper ??= this.start(x));
    const e = blockExponent(g, FX16_GRAD_BITS), s = 2 ** -e;
    for (let i = 0; i < this.n; i++) this.gq[i] = Math.round(g[i]! * s);
    if (this.velocity) momentumS16(this.n, h, this.gq, e, this.velocity, this.q, this.rng);
    else sgdS16(this.n, h, this.gq, e, this.q, this.rng);
    for (let i = 0; i < this.n; i++) x[i] = this.q[i]! * this.scale;
  }
}

// An fx16 factory with a fixed parameter range (a power of two), e.g. for a
// problem whose solution lies outside 8x its initial values.
export function fx16WithRange(kind: 'sgd-fx16' | 'momentum-fx16', paramRange: number): OptimizerFactory {
  return (n, lr, seed) => new Fx16Optimizer(kind, n, lr, seed, paramRange);
}

export const sgdFx16: OptimizerFactory = (n, lr, seed) => new Fx16Optimizer('sgd-fx16', n, lr, seed);
export const momentumFx16: OptimizerFactory = (n, lr, seed) => new Fx16Optimizer('momentum-fx16', n, lr, seed);

export const baselines: Readonly<Record<string, OptimizerFactory>> = {
  'sgd-fp32': sgdFp32,
  'momentum-fp32': momentumFp32,
  'adam-fp32': adamFp32,
  'sgd-fx16': sgdFx16,
  'momentum-fx16': momentumFx16,
};
