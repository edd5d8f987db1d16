// The optimizer baselines on MNIST (not part of npm test): the float MLP
// 784-100-10 (src/core/float-mlp.ts), batch 1, one pass (60,000 steps, seed
// 1 order and init) for each of the five baselines of src/core/optim/
// baselines.ts at each learning rate of a small power-of-two grid. Per run:
// the step at which accuracy on the first 2,000 test images first reaches 95%
// (checked every 500 steps), and the final accuracy on the 10,000 test images.
// The best learning rate of each optimizer is the one with the highest final
// accuracy. Two processes share the runs (the machine has 2 cores).
//
//   npx tsx bench/baselines-mnist.ts            (about 15 minutes)
//   npx tsx bench/baselines-mnist.ts --extend   (the lower learning rates of
//     EXTENSION, added to the runs already in the results file: the first
//     grid's best rates were at its low edge; about 7 minutes)
//   npx tsx bench/baselines-mnist.ts --quick    (6,000 steps: a smoke run)
// Writes bench/results/baselines-mnist.json.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FloatMlp, evaluateFloatMlp } from '../src/core/float-mlp.js';
import { baselines } from '../src/core/optim/baselines.js';
import { shuffledIndices } from '../src/core/rng.js';
import { repoRoot } from '../src/node/addon.js';
import { loadMnist } from '../src/node/mnist.js';

const GRID: Record<string, number[]> = {
  'sgd-fp32': [2 ** -6, 2 ** -5, 2 ** -4],
  'momentum-fp32': [2 ** -9, 2 ** -8, 2 ** -7],
  'adam-fp32': [2 ** -11, 2 ** -10, 2 ** -9],
  'sgd-fx16': [2 ** -6, 2 ** -5, 2 ** -4],
  'momentum-fx16': [2 ** -9, 2 ** -8, 2 ** -7],
};
const EXTENSION: Record<string, number[]> = {
  'sgd-fp32': [2 ** -8, 2 ** -7],
  'momentum-fp32': [2 ** -11, 2 ** -10],
  'adam-fp32': [2 ** -12],
  'sgd-fx16': [2 ** -8, 2 ** -7],
  'momentum-fx16': [2 ** -11, 2 ** -10],
};
// Rough cost per step (ms) to balance the two processes.
const COST: Record<string, number> = { 'sgd-fp32': 1, 'momentum-fp32': 2.2, 'adam-fp32': 4, 'sgd-fx16': 2.5, 'momentum-fx16': 2.9 };
const TARGET = 0.95, EVERY = 500, EVAL_IMAGES = 2000, SEED = 1;

interface Run {
  optimizer: string;
  lr: number;
  stateBitsPerParam: number;
  stepsTo95: number | null;
  final10k: number;
  final2000: number;
  seconds: number;
}

function runOne(optimizer: string, lr: number, steps: number): Run {
  const train = loadMnist('train'), test = loadMnist('test');
  const order = shuffledIndices(train.count, SEED);
  const m = new FloatMlp(baselines[optimizer]!, lr);
  const t0 = Date.now();
  let stepsTo95: number | null = null;
  for (let s = 0; s < steps; s++) {
    const k = order[s % train.count]!;
    m.train(train.image(k), train.labels[k]!);
    if (stepsTo95 === null && (s + 1) % EVERY === 0 && evaluateFloatMlp(m, test, EVAL_IMAGES) >= TARGET) stepsTo95 = s + 1;
  }
  const final2000 = evaluateFloatMlp(m, test, EVAL_IMAGES), final10k = evaluateFloatMlp(m, test);
  const stateBitsPerParam = baselines[optimizer]!(1, lr, 1).stateBitsPerParam;
  return { optimizer, lr, stateBitsPerParam, stepsTo95, final10k, final2000, seconds: (Date.now() - t0) / 1000 };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const steps = args.includes('--quick') ? 6000 : 60000;
  const w = args.indexOf('--worker');
  if (w >= 0) {
    for (const job of args.slice(w + 1)) {
      const [name, lr] = job.split('@') as [string, string];
      console.log(JSON.stringify(runOne(name, Number(lr), steps)));
    }
    return;
  }
  const extend = args.includes('--extend');
  const dir = join(repoRoot, 'bench', 'results');
  const file = join(dir, steps === 60000 ? 'baselines-mnist.json' : 'baselines-mnist-quick.json');
  const earlier: Run[] = extend && existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { runs: Run[] }).runs : [];
  const jobs = Object.entries(extend ? EXTENSION : GRID).flatMap(([name, lrs]) => lrs.map((lr) => ({ name, lr, cost: COST[name]! })));
  jobs.sort((a, b) => b.cost - a.cost);
  const shares: string[][] = [[], []], load = [0, 0];
  for (const j of jobs) {
    const k = load[0]! <= load[1]! ? 0 : 1;
    shares[k]!.push(`${j.name}@${j.lr}`);
    load[k]! += j.cost;
  }
  const script = fileURLToPath(import.meta.url);
  const t0 = Date.now();
  const results = (await Promise.all(shares.map((share) => new Promise<Run[]>((resolve, reject) => {
    const p = spawn(process.execPath, [...process.execArgv, script, ...(steps === 6000 ? ['--quick'] : []), '--worker', ...share],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const l of lines) if (l.startsWith('{')) process.stderr.write(`  ${l}\n`);
      runs.push(...lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Run));
    });
    const runs: Run[] = [];
    p.on('exit', (code) => (code === 0 ? resolve(runs) : reject(new Error(`worker exited with ${code}`))));
  })))).flat().concat(earlier);
  const best = Object.keys(GRID).map((name) => {
    const rs = results.filter((r) => r.optimizer === name);
    rs.sort((a, b) => b.final10k - a.final10k || (a.stepsTo95 ?? Infinity) - (b.stepsTo95 ?? Infinity));
    return rs[0]!;
  });
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  console.log(`MNIST 784-100-10 float MLP, batch 1, ${steps} steps, seed ${SEED} (${((Date.now() - t0) / 60000).toFixed(1)} min)`);
  console.log('| optimizer | state bits/param | best lr | steps to 95% (first 2,000) | final (10,000) | lr grid: final (steps to 95%) |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const b of best) {
    const grid = results.filter((r) => r.optimizer === b.optimizer).sort((x, y) => x.lr - y.lr)
      .map((r) => `2^${Math.log2(r.lr)}: ${pct(r.final10k)} (${r.stepsTo95 ?? '-'})`).join(', ');
    console.log(`| ${b.optimizer} | ${b.stateBitsPerParam} | 2^${Math.log2(b.lr)} | ${b.stepsTo95 ?? 'not reached'} | ${pct(b.final10k)} | ${grid} |`);
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(file,
    JSON.stringify({ steps, seed: SEED, target: TARGET, every: EVERY, evalImages: EVAL_IMAGES, best, runs: results }, null, 1) + '\n');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
