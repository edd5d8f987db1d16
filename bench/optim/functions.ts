// The optimisation benchmark functions of the optimizer paper's evaluation:
// Rosenbrock, Beale, Booth and Himmelblau, with analytic gradients, their
// minima, the fixed starts of the issue and seeded random starts.
import { Xorshift32 } from '../../src/core/rng.js';

export interface TestFunction {
  name: string;
  f(x: number, y: number): number;
  grad(x: number, y: number): [number, number];
  minima: [number, number][];
  fixedStarts: [number, number][];
  box: [number, number]; // random starts uniform in box^2
}

export const testFunctions: TestFunction[] = [
  {
    name: 'rosenbrock',
    f: (x, y) => (1 - x) ** 2 + 100 * (y - x * x) ** 2,
    grad: (x, y) => [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)],
    minima: [[1, 1]],
    fixedStarts: [[-1.2, 1], [0, 0], [2, 2]],
    box: [-2, 2],
  },
  {
    name: 'beale',
    f: (x, y) => (1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2 + (2.625 - x + x * y ** 3) ** 2,
    grad: (x, y) => {
      const a = 1.5 - x + x * y, b = 2.25 - x + x * y * y, c = 2.625 - x + x * y ** 3;
      return [2 * a * (y - 1) + 2 * b * (y * y - 1) + 2 * c * (y ** 3 - 1), 2 * a * x + 4 * b * x * y + 6 * c * x * y * y];
    },
    minima: [[3, 0.5]],
    fixedStarts: [[1, 1], [2, -1]],
    box: [-2, 2],
  },
  {
    name: 'booth',
    f: (x, y) => (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2,
    grad: (x, y) => [2 * (x + 2 * y - 7) + 4 * (2 * x + y - 5), 4 * (x + 2 * y - 7) + 2 * (2 * x + y - 5)],
    minima: [[1, 3]],
    fixedStarts: [[0, 0]],
    box: [-5, 5],
  },
  {
    name: 'himmelblau',
    f: (x, y) => (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2,
    grad: (x, y) => [4 * x * (x * x + y - 11) + 2 * (x + y * y - 7), 2 * (x * x + y - 11) + 4 * y * (x + y * y - 7)],
    minima: [[3, 2], [-2.805118, 3.131312], [-3.77931, -3.283186], [3.584428, -1.848126]],
    fixedStarts: [[0, 0]],
    box: [-5, 5],
  },
];

export function randomStarts(fn: TestFunction, count: number, seed: number): [number, number][] {
  const r = new Xorshift32(seed);
  const [lo, hi] = fn.box;
  const u = () => lo + ((r.next() >>> 0) / 2 ** 32) * (hi - lo);
  return Array.from({ length: count }, () => [u(), u()] as [number, number]);
}

export function distanceToMinimum(fn: TestFunction, x: number, y: number): number {
  return Math.min(...fn.minima.map(([a, b]) => Math.hypot(x - a, y - b)));
}
