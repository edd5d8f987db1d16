// One MNIST training run of bench:optim, as its own process (the orchestrator
// runs two at a time on this 2-core machine):
//   tsx bench/optim/mnist-job.ts '{"optimizer":"lqm","lr":0.0078125,"seed":1,"passes":3,"qas":true}'
// Prints one JSON line: the accuracy curve on a fixed 2,000-image test subset
// every 500 steps, the steps to first reach 95% and 97% on it, and the final
// accuracy on all 10,000 test images.
import { shuffledIndices } from '../../src/core/rng.js';
import { loadMnist } from '../../src/node/mnist.js';
import { makeTrainer, type TrainerSpec } from './trainers.js';

export interface JobResult extends TrainerSpec {
  curve: [number, number][]; // [step, accuracy on the 2,000-image subset]
  itersTo95: number | null;
  itersTo97: number | null;
  finalAccuracy: number; // all 10,000 test images
  passAccuracy: number[]; // all 10,000 test images after each pass (the last = finalAccuracy)
  stateBitsPerParam: number;
  seconds: number;
}

export const EVAL_EVERY = 500;
export const SUBSET = 2000;

export function testSubset(count: number): Uint32Array {
  return shuffledIndices(count, 424242).slice(0, SUBSET); // fixed across runs
}

function main(): void {
  const spec = JSON.parse(process.argv[2]!) as TrainerSpec;
  const t0 = Date.now();
  const train = loadMnist('train'), test = loadMnist('test');
  const subset = testSubset(test.count);
  const trainer = makeTrainer(spec);
  const accuracyOn = (idx: ArrayLike<number>) => {
    let ok = 0;
    for (let i = 0; i < idx.length; i++) if (trainer.predict(test.image(idx[i]!)) === test.labels[idx[i]!]) ok++;
    return ok / idx.length;
  };
  const curve: [number, number][] = [[0, accuracyOn(subset)]];
  let itersTo95: number | null = null, itersTo97: number | null = null;
  let step = 0;
  const all = Uint32Array.from({ length: test.count }, (_, i) => i);
  const passAccuracy: number[] = [];
  for (let pass = 0; pass < spec.passes; pass++) {
    const order = shuffledIndices(train.count, spec.seed * 1000 + pass);
    for (let i = 0; i < order.length; i++) {
      trainer.trainStep(train.image(order[i]!), train.labels[order[i]!]!);
      step++;
      if (step % EVAL_EVERY === 0) {
        const a = accuracyOn(subset);
        curve.push([step, a]);
        if (itersTo95 === null && a >= 0.95) itersTo95 = step;
        if (itersTo97 === null && a >= 0.97) itersTo97 = step;
        if (!Number.isFinite(a)) break;
      }
    }
    passAccuracy.push(accuracyOn(all));
  }
  const result: JobResult = {
    ...spec, curve, itersTo95, itersTo97, finalAccuracy: passAccuracy[passAccuracy.length - 1]!, passAccuracy,
    stateBitsPerParam: trainer.stateBitsPerParam, seconds: (Date.now() - t0) / 1000,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

if (process.argv[2]) main();
