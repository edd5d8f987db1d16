// The optimizer baselines (native/core/optim_f32.c, optim_s16.c, ops 28-32):
// C and the TypeScript reference give the same bytes (random sizes, states,
// exponents, hyper-parameters), so do the Cortex-M4F (hard float) and RV32IMC
// (soft float) images replaying a recorded trace; each baseline converges on
// Booth and Rosenbrock; the float MLP learns MNIST; bad input is a named
// error.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ArenaLayout } from '../src/core/arena.js';
import { crc32 } from '../src/core/crc32.js';
import { FloatMlp, evaluateFloatMlp } from '../src/core/float-mlp.js';
import { Kernels, KernelArgumentError, type Dispatch } from '../src/core/kernels.js';
import { baselines, fx16WithRange } from '../src/core/optim/baselines.js';
import type { OptimizerFactory } from '../src/core/optim/optimizer.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { sgdF32 } from '../src/core/reference/optim.js';
import { shuffledIndices } from '../src/core/rng.js';
import { randomOptimCase as randomCase, runOptimCase as runCase } from '../src/core/optim/random-cases.js';
import { TraceWriter } from '../src/core/trace.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { loadMnist } from '../src/node/mnist.js';
import { runTrace } from '../src/node/qemu.js';

const CASES = 400;

describe('optimizer baselines: C and the TypeScript reference', () => {
  it(`give the same bytes on ${CASES} random cases (all five ops, 1-3 steps each)`, () => {
    const seen = new Set<string>();
    for (let s = 1; s <= CASES; s++) {
      const c = randomCase(s);
      seen.add(c.label.split(' ')[0]!);
      const a = runCase(c, (b) => new NodeDispatch(b)), b = runCase(c, (b) => new ReferenceDispatch(b));
      const i = a.findIndex((v, j) => v !== b[j]);
      if (i >= 0) expect.fail(`case ${s} (${c.label}): byte ${i} differs (C ${a[i]}, reference ${b[i]})`);
      if (c.calls.length && a.every((v, j) => v === c.init[j])) {
        // nothing changed: only possible with zero gradients/lr; keep count low
        seen.add(`unchanged ${s}`);
      }
    }
    expect([...seen].filter((l) => !l.startsWith('unchanged')).sort()).toEqual(
      ['adam_f32', 'momentum_f32', 'momentum_s16', 'sgd_f32', 'sgd_s16']);
    expect([...seen].filter((l) => l.startsWith('unchanged')).length).toBeLessThan(CASES / 10);
  });

  it('reject a NaN/Inf hyper-parameter and a wrong state size with an error naming it', () => {
    const L = new ArenaLayout(4096);
    const grad = L.alloc('grad', 'float32', [8]), param = L.alloc('param', 'float32', [8]);
    const velocity = L.alloc('velocity', 'float32', [7]);
    const m = L.alloc('m', 'float32', [8]), v = L.alloc('v', 'float32', [8]), betaPowers = L.alloc('bp', 'float32', [2]);
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(4096)));
    const err = (f: () => void, re: RegExp) => {
      expect(f).toThrow(KernelArgumentError);
      expect(f).toThrow(re);
    };
    err(() => k.sgdF32Update({ n: 8, lr: NaN, grad, param }), /sgd_f32_update: lr is NaN/);
    err(() => k.sgdF32Update({ n: 8, lr: 1e39, grad, param }), /lr is 1e\+39 \(float32 Infinity\)/);
    err(() => k.momentumF32Update({ n: 8, lr: 0.1, momentum: Infinity, grad, velocity: m, param }), /momentum is Infinity/);
    err(() => k.momentumF32Update({ n: 8, lr: 0.1, momentum: 0.9, grad, velocity, param }), /velocity state tensor "velocity"/);
    err(() => k.adamF32Update({ n: 8, lr: 0.1, beta1: 0.9, beta2: 1, eps: 1e-8, grad, m, v, betaPowers, param }), /beta2 is 1/);
    err(() => k.adamF32Update({ n: 8, lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 0, grad, m, v, betaPowers, param }), /eps is 0/);
    err(() => k.adamF32Update({ n: 8, lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, grad, m: velocity, v, betaPowers, param }),
      /m state tensor "velocity"/);
    err(() => k.adamF32Update({ n: 8, lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, grad, m, v, betaPowers: m, param }),
      /beta powers state tensor "m"/);
    const gi = L.alloc('gi', 'int32', [8]), ge = L.cell('ge'), q = L.alloc('q', 'int16', [8]), rng = L.cell('rng');
    const vq = L.alloc('vq', 'int16', [4]);
    err(() => k.sgdS16Update({ n: 8, paramExp: 99, lrMultiplier: 1 << 30, lrShift: 0, grad: gi, gradExp: ge, param: q, rng }),
      /sgd_s16_update: param_exp is 99/);
    err(() => k.momentumS16Update({ n: 8, paramExp: 0, velocityExp: 0, lrMultiplier: 1 << 30, lrShift: 0, momentumQ15: 40000,
      grad: gi, gradExp: ge, velocity: q, param: q, rng }), /momentum_q15 is 40000/);
    err(() => k.momentumS16Update({ n: 8, paramExp: 0, velocityExp: 0, lrMultiplier: 1 << 30, lrShift: 0, momentumQ15: 1,
      grad: gi, gradExp: ge, velocity: vq, param: q, rng }), /velocity state tensor "vq"/);
    // The state values the kernels read: a beta power outside [0, 1] (C: status 7; reference: a named error).
    const buf = new ArrayBuffer(4096);
    new Float32Array(buf, betaPowers.offset, 2).set([NaN, 1]);
    const adam = { n: 8, lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, grad, m, v, betaPowers, param };
    expect(() => new Kernels(new NodeDispatch(buf)).adamF32Update(adam)).toThrow('quantisation parameter out of range');
    expect(() => new Kernels(new ReferenceDispatch(buf)).adamF32Update(adam)).toThrow(/beta_powers\[0\] \(beta1\^t\) is NaN/);
    expect(() => sgdF32(1, NaN, new Float32Array(1), new Float32Array(1))).toThrow(/lr is NaN/);
  });
});

// ---- bare metal: one trace, both images ----

const TRACE_CASES = 60;

describe('optimizer baselines on the bare-metal images', () => {
  // Record: per case ARENA, WRITE, the calls, CRC of the arena.
  const w = new TraceWriter(1 << 16);
  const expected: number[] = [];
  const recorder: Dispatch = {
    name: 'trace',
    call: (op, args) => void w.call(op, args),
    write: (offset, bytes) => void w.write(offset, bytes),
    read: () => {
      throw new Error('recording');
    },
  };
  for (let s = 1; s <= TRACE_CASES; s++) {
    const c = randomCase(1000 + s);
    w.arena(c.arenaBytes).write(0, c.init);
    const k = new Kernels(recorder);
    for (const call of c.calls) call(k);
    w.crc(0, c.arenaBytes);
    expected.push(crc32(runCase(c, (b) => new NodeDispatch(b))));
  }
  const trace = w.end();
  for (const target of ['cortex-m4', 'rv32'] as const) {
    it(`${target}: ${TRACE_CASES} random cases end with the bytes of the Node addon`, async () => {
      const r = await runTrace(target, trace);
      expect(r.parsed.errors).toEqual([]);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(r.parsed.calls.every((c) => c.status === 0)).toBe(true);
      expect(r.parsed.crcs.map((c) => c.crc)).toEqual(expected);
    }, 120_000);
  }
});

// ---- XS engine: the C through the xsmc glue and the reference on XS ----

describe('optimizer baselines on the XS engine', () => {
  it('60 random cases: C (xsmc) and the reference on XS end with the bytes of the Node addon', () => {
    const xs = join(repoRoot, 'out', 'xs', 'xst-xs'), check = join(repoRoot, 'out', 'ts', 'xs', 'optim-check.js');
    if (!existsSync(xs) || !existsSync(check)) expect.fail('XS host or compiled TS missing: run npm run setup');
    const lines = execFileSync(xs, [check, '60'], { encoding: 'utf8' }).trim().split('\n');
    expect(lines).toHaveLength(60);
    for (const line of lines) {
      const [, seed, c, ref] = line.split(' ');
      const node = crc32(runCase(randomCase(Number(seed)), (b) => new NodeDispatch(b))).toString(16).padStart(8, '0');
      expect(`${seed} ${c} ${ref}`).toBe(`${seed} ${node} ${node}`);
    }
  });
});

// ---- convergence on two test functions (VectorOptimizer on a 2-vector) ----

type Fn = { f: (x: number, y: number) => number; g: (x: number, y: number) => [number, number] };
const booth: Fn = {
  f: (x, y) => (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2,
  g: (x, y) => [2 * (x + 2 * y - 7) + 4 * (2 * x + y - 5), 4 * (x + 2 * y - 7) + 2 * (2 * x + y - 5)],
};
const rosenbrock: Fn = {
  f: (x, y) => (1 - x) ** 2 + 100 * (y - x * x) ** 2,
  g: (x, y) => [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)],
};

function iterationsTo(fac: OptimizerFactory, lr: number, fn: Fn, x0: [number, number], tol: number, max: number): number {
  const x = Float32Array.of(...x0), g = new Float32Array(2), o = fac(2, lr, 1);
  for (let t = 0; t < max; t++) {
    if (fn.f(x[0]!, x[1]!) < tol) return t;
    g.set(fn.g(x[0]!, x[1]!));
    o.step(x, g);
  }
  return Infinity;
}

// fx16 on these problems: parameters in (-8, 8) (exponent -12), as the
// solutions lie outside 8x the all-zero or small start.
const factories: Record<string, OptimizerFactory> = {
  ...baselines,
  'sgd-fx16': fx16WithRange('sgd-fx16', 8),
  'momentum-fx16': fx16WithRange('momentum-fx16', 8),
};
// [optimizer, log2 lr, iteration bound] (measured: about half the bound).
const BOOTH: [string, number, number][] = [
  ['sgd-fp32', -6, 250], ['momentum-fp32', -6, 160], ['adam-fp32', -4, 600], ['sgd-fx16', -6, 250], ['momentum-fx16', -6, 160],
];
const ROSENBROCK: [string, number, number][] = [
  ['sgd-fp32', -9, 5000], ['momentum-fp32', -9, 800], ['adam-fp32', -3, 1300], ['sgd-fx16', -9, 5000],
  ['momentum-fx16', -9, 800],
];

describe('optimizer baselines converge', () => {
  for (const [name, lg, bound] of BOOTH) {
    it(`${name}, lr 2^${lg}: Booth from (0, 0) below 1e-3 within ${bound} iterations`, () => {
      expect(iterationsTo(factories[name]!, 2 ** lg, booth, [0, 0], 1e-3, bound)).toBeLessThan(bound);
    });
  }
  for (const [name, lg, bound] of ROSENBROCK) {
    it(`${name}, lr 2^${lg}: Rosenbrock from (-1.2, 1) below 1e-3 within ${bound} iterations`, () => {
      expect(iterationsTo(factories[name]!, 2 ** lg, rosenbrock, [-1.2, 1], 1e-3, bound)).toBeLessThan(bound);
    });
  }
});

describe('float MLP 784-100-10', () => {
  it('learns MNIST with sgd-fp32: >= 86% on the first 2,000 test images after 5,000 steps (lr 2^-5)', () => {
    const train = loadMnist('train'), test = loadMnist('test');
    const order = shuffledIndices(train.count, 1);
    const m = new FloatMlp(baselines['sgd-fp32']!, 2 ** -5);
    const before = evaluateFloatMlp(m, test, 2000);
    for (let s = 0; s < 5000; s++) m.train(train.image(order[s]!), train.labels[order[s]!]!);
    const acc = evaluateFloatMlp(m, test, 2000);
    console.log(`float MLP, sgd-fp32 lr 2^-5, 5,000 steps: ${(100 * acc).toFixed(2)}% on the first 2,000 test images ` +
      `(untrained ${(100 * before).toFixed(1)}%)`);
    expect(before).toBeLessThan(0.3);
    expect(acc).toBeGreaterThanOrEqual(0.86);
  }, 60_000); // about 8 s on an idle core
});
