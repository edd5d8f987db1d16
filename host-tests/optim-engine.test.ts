// The optimizer baselines on the C ops (src/node/optim-engine.ts) against the
// TypeScript references (the default engine): the float MLP trained on MNIST
// ends with the same weight bytes, and a NaN or infinite gradient is the same
// named error on both, before anything is updated.
import { describe, expect, it } from 'vitest';
import { FloatMlp, evaluateFloatMlp } from '../src/core/float-mlp.js';
import { baselineFactories } from '../src/core/optim/baselines.js';
import { referenceEngine } from '../src/core/optim/engine.js';
import { shuffledIndices } from '../src/core/rng.js';
import { nodeOptimEngine } from '../src/node/optim-engine.js';
import { loadMnist } from '../src/node/mnist.js';

const STEPS = 300;
// Learning rates that learn within 300 steps (about 75% on the test images).
const LR: Record<string, number> = {
  'sgd-fp32': 2 ** -5, 'momentum-fp32': 2 ** -8, 'adam-fp32': 2 ** -9, 'sgd-fx16': 2 ** -5, 'momentum-fx16': 2 ** -8,
};
const TENSORS = ['w1', 'b1', 'w2', 'b2'] as const;

const reference = baselineFactories(referenceEngine), native = baselineFactories(nodeOptimEngine);
const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe('optimizer baselines: C engine and TypeScript references', () => {
  const train = loadMnist('train'), test = loadMnist('test');
  const order = shuffledIndices(train.count, 7);

  for (const name of Object.keys(LR)) {
    it(`${name}: the float MLP after ${STEPS} MNIST steps has the same weight bytes on both`, () => {
      const models = [reference, native].map((f) => new FloatMlp(f[name]!, LR[name]!));
      const afterFirst: Float32Array[][] = [];
      for (const m of models) {
        for (let s = 0; s < STEPS; s++) {
          m.train(train.image(order[s]!), train.labels[order[s]!]!);
          if (s === 0) afterFirst.push(TENSORS.map((t) => m[t].slice()));
        }
      }
      const [ts, c] = models as [FloatMlp, FloatMlp];
      for (const [k, t] of TENSORS.entries()) {
        const i = bytes(ts[t]).findIndex((v, j) => v !== bytes(c[t])[j]);
        if (i >= 0) expect.fail(`${t}: byte ${i} differs (float ${i >> 2}: reference ${ts[t][i >> 2]}, C ${c[t][i >> 2]})`);
        // steps 2-300 changed every tensor (for fx16 the first step also quantised it)
        expect(bytes(ts[t]), `${t} unchanged since step 1`).not.toEqual(bytes(afterFirst[0]![k]!));
      }
      expect(evaluateFloatMlp(c, test, 1000)).toBeGreaterThan(0.6);
    }, 60_000); // adam on the C: ~10 ms a step (integer square root)
  }
});

describe('optimizer baselines: a non-finite gradient', () => {
  for (const name of Object.keys(LR)) {
    it(`${name}: is the same error naming the tensor and element on both engines, nothing updated`, () => {
      const after: number[][] = [];
      for (const f of [reference, native]) {
        for (const [bad, at] of [[NaN, 3], [-Infinity, 4]] as const) {
          const o = f[name]!(5, 2 ** -4, 1, 'w1');
          const x = Float32Array.of(0.5, -0.25, 0.125, 1, 0), g = Float32Array.of(0.1, 0.2, 0.3, 0.4, 0.5);
          o.step(x, g); // a good step first: the state is set up
          const before = x.slice();
          g[at] = bad;
          expect(() => o.step(x, g)).toThrow(`${name}: gradient of w1 is ${bad} at element ${at} (of 5)`);
          expect(x).toEqual(before);
          g[at] = 0.4;
          o.step(x, g); // still usable
          after.push([...bytes(x)]);
        }
      }
      expect(after.slice(2)).toEqual(after.slice(0, 2)); // C = reference
    });
  }

  it('through the float MLP: a NaN weight gives an error naming w1 on both engines', () => {
    const train = loadMnist('train');
    const errors = [reference, native].map((f) => {
      const m = new FloatMlp(f['momentum-fp32']!, 2 ** -8);
      m.w2[0] = NaN;
      try {
        m.train(train.image(0), train.labels[0]!);
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    });
    expect(errors[0]).toMatch(/^momentum-fp32: gradient of w1 is NaN at element \d+ \(of 78400\)/);
    expect(errors[1]).toBe(errors[0]);
  });
});
