// The benchmark-function part of bench:optim: every optimizer from every
// start, at each power-of-two learning rate of a grid; iterations until the
// point is within 1e-3 of a minimum, and the success rate.
import type { OptimizerFactory } from '../../src/core/optim/optimizer.js';
import { distanceToMinimum, randomStarts, type TestFunction, testFunctions } from './functions.js';

export const MAX_ITERS = 20_000;
export const TOL = 1e-3;
export const RANDOM_STARTS = 100;
export const LR_GRID = Array.from({ length: 14 }, (_, i) => 2 ** -(i + 1)); // 2^-1 .. 2^-14
export const COMMON_LR = 2 ** -8;

// Iterations to reach the tolerance, or null (diverged or not within MAX_ITERS).
export function iterationsFrom(fn: TestFunction, make: OptimizerFactory, lr: number, start: [number, number], seed: number): number | null {
  const opt = make(2, lr, seed);
  const x = Float32Array.of(start[0], start[1]);
  const g = new Float32Array(2);
  for (let it = 0; it < MAX_ITERS; it++) {
    if (distanceToMinimum(fn, x[0]!, x[1]!) < TOL) return it;
    const [gx, gy] = fn.grad(x[0]!, x[1]!);
    if (!Number.isFinite(gx) || !Number.isFinite(gy) || Math.abs(x[0]!) > 1e6 || Math.abs(x[1]!) > 1e6) return null;
    g[0] = gx;
    g[1] = gy;
    // A finite float64 gradient can overflow float32: diverged too (the
    // optimizers refuse a non-finite gradient).
    if (!Number.isFinite(g[0]!) || !Number.isFinite(g[1]!)) return null;
    opt.step(x, g);
  }
  return distanceToMinimum(fn, x[0]!, x[1]!) < TOL ? MAX_ITERS : null;
}

export interface LrResult {
  lr: number;
  successRate: number; // over fixed + random starts
  medianIters: number | null; // over the successful starts
  fixed: (number | null)[]; // per fixed start
}

export interface FunctionResult {
  function: string;
  optimizer: string;
  best: LrResult; // the grid's best: highest success rate, then fewest median iterations
  common: LrResult; // at COMMON_LR
}

function median(v: number[]): number | null {
  if (!v.length) return null;
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export function runAtLr(fn: TestFunction, make: OptimizerFactory, lr: number): LrResult {
  const starts = [...fn.fixedStarts, ...randomStarts(fn, RANDOM_STARTS, 1000 + fn.name.length)];
  const iters = starts.map((s, i) => iterationsFrom(fn, make, lr, s, 1 + i));
  const ok = iters.filter((v): v is number => v !== null);
  return { lr, successRate: ok.length / starts.length, medianIters: median(ok), fixed: iters.slice(0, fn.fixedStarts.length) };
}

export function runFunctions(optimizers: Record<string, OptimizerFactory>): FunctionResult[] {
  const out: FunctionResult[] = [];
  for (const fn of testFunctions) {
    for (const [name, make] of Object.entries(optimizers)) {
      const grid = LR_GRID.map((lr) => runAtLr(fn, make, lr));
      const best = grid.reduce((a, b) =>
        b.successRate > a.successRate || (b.successRate === a.successRate && (b.medianIters ?? Infinity) < (a.medianIters ?? Infinity)) ? b : a);
      out.push({ function: fn.name, optimizer: name, best, common: grid.find((r) => r.lr === COMMON_LR) ?? runAtLr(fn, make, COMMON_LR) });
    }
  }
  return out;
}
