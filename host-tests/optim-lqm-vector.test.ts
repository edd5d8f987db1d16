// LQM on a real-valued vector (src/core/optim/lqm.ts, the function benchmark's
// LQM): converges on Booth and Rosenbrock from the fixed starts within
// bounds that fail if the rule or its fixed point breaks (measured: Booth 31
// iterations at 2^-4, Rosenbrock 3,056 at 2^-9), and refuses a learning rate
// that is not a shift.
import { describe, expect, it } from 'vitest';
import { lqmVector } from '../src/core/optim/lqm.js';
import { iterationsFrom } from '../bench/optim/run-functions.js';
import { testFunctions } from '../bench/optim/functions.js';

const fn = (name: string) => testFunctions.find((f) => f.name === name)!;

describe('LQM on the benchmark functions', () => {
  it('Booth from (0, 0) reaches |x - (1, 3)| < 1e-3 within 100 iterations', () => {
    const n = iterationsFrom(fn('booth'), lqmVector(), 2 ** -4, [0, 0], 1);
    expect(n).not.toBeNull();
    expect(n!).toBeLessThanOrEqual(100);
  });

  it('Rosenbrock from (-1.2, 1) reaches |x - (1, 1)| < 1e-3 within 5,000 iterations', () => {
    const n = iterationsFrom(fn('rosenbrock'), lqmVector(), 2 ** -9, [-1.2, 1], 1);
    expect(n).not.toBeNull();
    expect(n!).toBeLessThanOrEqual(5000);
  });

  it('a learning rate that is not a power of two is refused by name', () => {
    expect(() => lqmVector()(2, 0.3, 1)).toThrow('lqm: learning rate 0.3 is not a power of two (eta is a shift)');
  });
});
