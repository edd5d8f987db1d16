// The first workload: int8 MLP 784-100-10, online integer SGD on real MNIST.
import { describe, expect, it } from 'vitest';
import { Kernels } from '../src/core/kernels.js';
import { MlpTrainer, defaultMlpConfig, evaluate, trainOnline } from '../src/core/mlp.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { shuffledIndices } from '../src/core/rng.js';
import { NodeDispatch } from '../src/node/addon.js';
import { loadMnist } from '../src/node/mnist.js';

const ARENA = 128 * 1024;
const train = loadMnist('train');
const test = loadMnist('test');
const order = shuffledIndices(train.count, 1);

describe('int8 MLP on MNIST', () => {
  it('C kernels and the TypeScript reference agree on every tensor at every one of 200 steps', () => {
    const cBuf = new ArrayBuffer(ARENA), refBuf = new ArrayBuffer(ARENA);
    const c = new MlpTrainer(new Kernels(new NodeDispatch(cBuf)));
    const ref = new MlpTrainer(new Kernels(new ReferenceDispatch(refBuf)));
    c.init();
    ref.init();
    const cb = new Uint8Array(cBuf), rb = new Uint8Array(refBuf);
    const compared = c.layout.tensors.filter((t) => t.name !== 'scratch'); // C-only workspace
    const before = c.paramBytes();
    for (let step = 0; step < 200; step++) {
      trainOnline(c, train, order, step, 1);
      trainOnline(ref, train, order, step, 1);
      for (const t of compared) {
        const a = cb.subarray(t.offset, t.offset + t.bytes), b = rb.subarray(t.offset, t.offset + t.bytes);
        if (!a.every((v, i) => v === b[i])) expect.fail(`step ${step + 1}: tensor ${t.name} differs`);
      }
    }
    const paramsChanged = !c.paramBytes().every((v, i) => v === before[i]);
    expect(paramsChanged).toBe(true); // training did something
  });

  it('one online pass over the 60,000 training images reaches at least 85% on the 10,000 test images', () => {
    const m = new MlpTrainer(new Kernels(new NodeDispatch(new ArrayBuffer(ARENA))), defaultMlpConfig);
    m.init();
    const before = evaluate(m, test, 1000);
    trainOnline(m, train, order, 0, train.count);
    const acc = evaluate(m, test);
    console.log(`MLP 784-100-10 int8, one online pass: test accuracy ${(100 * acc).toFixed(2)}% (untrained ${(100 * before).toFixed(1)}%)`);
    expect(before).toBeLessThan(0.3);
    expect(acc).toBeGreaterThanOrEqual(0.85);
  }, 120_000);
});
