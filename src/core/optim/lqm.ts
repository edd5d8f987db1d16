// LQM on a real-valued parameter vector (the benchmark functions of
// bench:optim): the same integer rule as the int8 kernels
// (src/core/reference/lqm.ts, native/core/lqm_s8.c) on parameters held in
// fixed point. Parameters are int32 with 2^-F resolution; the gradient becomes
// a block-floating int32 vector (20 significant bits, one exponent), the
// learning rate must be a power of two (eta is a shift), the momentum is the
// 5-bit log state; the write-back rounds stochastically.
import { type LqmParams, lqmElement, lqmScaled, lqmStateBytes } from '../reference/lqm.js';
import type { OptimizerFactory, VectorOptimizer } from './optimizer.js';

export const LQM_VECTOR_F = 11; // parameter resolution 2^-11 (~4.9e-4, below the 1e-3 tolerance)
export const lqmVectorParams: LqmParams = { bits: 5, emin: -8, emax: 6, decay: 3 };

export function lqmVector(p: LqmParams = lqmVectorParams, F = LQM_VECTOR_F): OptimizerFactory {
  return (n, lr, seed): VectorOptimizer => {
    const lrExp = Math.log2(lr);
    if (!Number.isInteger(lrExp)) throw new Error(`lqm: learning rate ${lr} is not a power of two (eta is a shift)`);
    const state = new Uint8Array(lqmStateBytes(p.bits, n));
    const q = new Int32Array(n);
    const rng = { state: seed >>> 0 || 1 };
    let loaded = false;
    return {
      name: 'lqm',
      stateBitsPerParam: p.bits,
      step(x: Float32Array, g: Float32Array): void {
        if (!loaded) {
          for (let i = 0; i < n; i++) q[i] = Math.round(x[i]! * 2 ** F);
          loaded = true;
        }
        let gmax = 0;
        for (let i = 0; i < n; i++) gmax = Math.max(gmax, Math.abs(g[i]!));
        if (!Number.isFinite(gmax)) throw new Error('lqm: gradient is not finite');
        if (gmax === 0) return;
        const ge = Math.floor(Math.log2(gmax)) - 19; // |gq| < 2^21
        // t = lr * g / 2^(emin - F) in momentum units = gq * 2^(ge + lrExp - emin + F)
        const S = ge + lrExp - p.emin + F;
        for (let i = 0; i < n; i++) {
          const gq = Math.round(g[i]! * 2 ** -ge);
          q[i] = lqmElement(p, state, i, lqmScaled(gq, S), q[i]!, rng, 2 ** 30);
          x[i] = q[i]! * 2 ** -F;
        }
      },
    };
  };
}
