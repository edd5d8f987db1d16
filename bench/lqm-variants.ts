// npx tsx bench/lqm-variants.ts [--steps N] [--quick] — not part of npm test.
// MNIST 784-100-10 int8 MLP, one online pass (seed 1, batch 1), C kernels via
// the Node addon: test accuracy after the pass (10,000 images) and the first
// step at which accuracy on the first 2,000 test images reaches 95%
// (evaluated every 500 steps), for int8 SGD and LQM variants, with and without
// QAS, each at the best power-of-two learning rate of a small grid. Runs the
// variants on two worker threads. Prints a table and writes
// bench/results/lqm-variants.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Kernels, type LqmSettings } from '../src/core/kernels.js';
import { MlpTrainer, defaultMlpConfig, evaluate, trainOnline } from '../src/core/mlp.js';
import { shuffledIndices } from '../src/core/rng.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { loadMnist } from '../src/node/mnist.js';

interface Job {
  name: string;
  optimizer: 'sgd' | 'lqm';
  qas: boolean;
  lqm?: LqmSettings;
  lr: number;
  steps: number;
}
interface Result extends Job {
  acc: number;
  stepsTo95: number | null;
  seconds: number;
}

function run(j: Job): Result {
  const train = loadMnist('train'), test = loadMnist('test');
  const order = shuffledIndices(train.count, 1);
  // Biases use SGD: at the weights' rate (SGD), or at the SGD default rate
  // (2^-6 with QAS, 2^13 without) under LQM, whose eta is not an SGD rate.
  const lrBias = j.optimizer === 'sgd' ? j.lr : j.qas ? 2 ** -6 : 2 ** 13;
  const cfg = { ...defaultMlpConfig, seed: 1, lr: j.lr, lrBias, optimizer: j.optimizer, qas: j.qas, lqm: j.lqm };
  const m = new MlpTrainer(new Kernels(new NodeDispatch(new ArrayBuffer(192 * 1024))), cfg);
  m.init();
  const t0 = Date.now();
  let stepsTo95: number | null = null;
  for (let s = 0; s < j.steps; s += 500) {
    trainOnline(m, train, order, s, Math.min(500, j.steps - s));
    if (stepsTo95 === null && evaluate(m, test, 2000) >= 0.95) stepsTo95 = s + 500;
  }
  return { ...j, acc: evaluate(m, test), stepsTo95, seconds: (Date.now() - t0) / 1000 };
}

if (process.argv[2] === '--job') {
  process.stdout.write(JSON.stringify(run(JSON.parse(process.argv[3]!) as Job)));
} else {
  const args = process.argv.slice(2);
  const steps = args.includes('--steps') ? Number(args[args.indexOf('--steps') + 1]) : 60000;
  const jobs: Job[] = [];
  const add = (name: string, optimizer: 'sgd' | 'lqm', qas: boolean, lrs: number[], lqm?: LqmSettings) => {
    for (const lr of lrs) jobs.push({ name, optimizer, qas, lqm, lr, steps });
  };
  const p2 = (es: number[]) => es.map((e) => 2 ** e);
  // SGD: the existing default is lr 2^-6; without QAS the int8-domain
  // gradient is s_W^2 (~2^-19) smaller, hence the shifted grid.
  add('sgd', 'sgd', true, p2([-7, -6, -5]));
  add('sgd no-QAS', 'sgd', false, p2([11, 12, 13]));
  const L = (bits: number, emin: number, emax: number, decay: number): LqmSettings => ({ bits, emin, emax, decay });
  add('lqm 5b [-12,2] d3', 'lqm', true, p2([-9, -8, -7]), L(5, -12, 2, 3));
  add('lqm 5b [-12,2] d0 (published)', 'lqm', true, p2([-9, -8]), L(5, -12, 2, 0));
  add('lqm 5b [-12,2] d2', 'lqm', true, p2([-8]), L(5, -12, 2, 2));
  add('lqm 5b [-12,2] d4', 'lqm', true, p2([-8]), L(5, -12, 2, 4));
  add('lqm 5b [-10,4] d3', 'lqm', true, p2([-8]), L(5, -10, 4, 3));
  add('lqm 4b [-6,0] d3', 'lqm', true, p2([-8]), L(4, -6, 0, 3));
  add('lqm 5b [-12,2] d3 no-QAS', 'lqm', false, p2([10]), L(5, -12, 2, 3));
  if (args.includes('--quick')) jobs.splice(0, jobs.length, ...jobs.filter((_, i) => i % 3 === 1));

  const results: Result[] = [];
  const queue = [...jobs];
  const file = fileURLToPath(import.meta.url);
  const tsx = join(repoRoot, 'node_modules', '.bin', 'tsx');
  // Two processes at a time (two cores), one job each.
  const worker = async (): Promise<void> => {
    for (let j = queue.shift(); j; j = queue.shift()) {
      const out = await new Promise<string>((resolve, reject) =>
        execFile(tsx, [file, '--job', JSON.stringify(j)], { maxBuffer: 1 << 20 }, (e, so) => (e ? reject(e) : resolve(so))));
      const r = JSON.parse(out) as Result;
      results.push(r);
      console.log(`${r.name.padEnd(30)} lr 2^${Math.log2(r.lr)}  acc ${(100 * r.acc).toFixed(2)}%  ` +
        `95% at ${r.stepsTo95 ?? '-'}  (${r.seconds.toFixed(0)} s)`);
    }
  };
  await Promise.all([worker(), worker()]);

  // Best learning rate per variant: highest final accuracy.
  const best = new Map<string, Result>();
  for (const r of results) {
    const b = best.get(r.name);
    if (!b || r.acc > b.acc) best.set(r.name, r);
  }
  console.log(`\nbest power-of-two learning rate per variant (${steps} steps, seed 1)`);
  console.log('| variant | lr | test accuracy | steps to 95% (first 2,000 test images) |');
  console.log('| --- | --- | --- | --- |');
  for (const r of best.values()) {
    console.log(`| ${r.name} | 2^${Math.log2(r.lr)} | ${(100 * r.acc).toFixed(2)} % | ${r.stepsTo95 ?? 'not reached'} |`);
  }
  const dir = join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'lqm-variants.json'), JSON.stringify({ steps, results }, null, 1) + '\n');
}
