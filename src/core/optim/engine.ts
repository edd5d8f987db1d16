// Where the five baseline updates run. An engine hands out one updater per
// parameter tensor and keeps that tensor's optimizer state (velocity, Adam
// moments and beta powers, int16 parameters and velocity, rng state) where it
// computes: in Float32Arrays for the TypeScript references (referenceEngine,
// below) or in an arena for the C ops (src/node/optim-engine.ts). The
// baselines (./baselines.ts) hold everything else (hyper-parameters,
// gradient checks, fx16 quantisation), so every engine gives the bits of
// src/core/reference/optim.ts. Platform-free.

import {
  adamF32, momentumF32, momentumS16, sgdF32, sgdS16, type AdamHyper, type S16Optim,
} from '../reference/optim.js';

// fp32: x -= update(g) in place, n elements each.
export interface F32Updater {
  step(x: Float32Array, g: Float32Array): void;
}

// int16: the caller writes the initial `param` once and `grad` before each
// update, and reads `param` after it (both live where the engine computes).
export interface S16Updater {
  readonly param: Int16Array; // q, real = q * 2^paramExp
  readonly grad: Int32Array; // the integer gradient, real = grad * 2^gradExp
  update(gradExp: number): void;
}

// The semantics of src/core/reference/optim.ts (sgdF32 ... momentumS16); the
// state starts at zero (Adam's beta powers at 1), rngState is nonzero.
export interface OptimEngine {
  readonly name: string;
  sgdF32(n: number, lr: number): F32Updater;
  momentumF32(n: number, lr: number, momentum: number): F32Updater;
  adamF32(n: number, h: AdamHyper): F32Updater;
  sgdS16(n: number, h: S16Optim, rngState: number): S16Updater;
  momentumS16(n: number, h: S16Optim, rngState: number): S16Updater;
}

export const referenceEngine: OptimEngine = {
  name: 'reference',
  sgdF32: (n, lr) => ({ step: (x, g) => sgdF32(n, lr, g, x) }),
  momentumF32(n, lr, momentum) {
    const v = new Float32Array(n);
    return { step: (x, g) => momentumF32(n, lr, momentum, g, v, x) };
  },
  adamF32(n, h) {
    const m = new Float32Array(n), v = new Float32Array(n), powers = Float32Array.of(1, 1);
    return { step: (x, g) => adamF32(n, h, g, m, v, powers, x) };
  },
  sgdS16(n, h, rngState) {
    const param = new Int16Array(n), grad = new Int32Array(n), rng = { state: rngState };
    return { param, grad, update: (gradExp) => sgdS16(n, h, grad, gradExp, param, rng) };
  },
  momentumS16(n, h, rngState) {
    const param = new Int16Array(n), grad = new Int32Array(n), velocity = new Int16Array(n), rng = { state: rngState };
    return { param, grad, update: (gradExp) => momentumS16(n, h, grad, gradExp, velocity, param, rng) };
  },
};
