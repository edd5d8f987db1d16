// The scheme search (src/compiler/train/search.ts) on a real transfer task
// (not part of npm test):
//  1. "pre-training": a seeded MobileNetV2-w0.35 at 32x32 (its float
//     network quantised on MNIST images) trained int8 on the kernels on
//     MNIST digits 0-4 (5-class head; every bias and every pointwise and
//     fully-connected weight, all the kernels can update), then taken as the
//     pre-trained model (trainedModel);
//  2. transfer to digits 5-9 with a new 5-class head: the search measures
//     each option's contribution with short probes on MNIST-train images
//     (probe training and probe eval sets disjoint), once, at the largest
//     budget, then chooses a scheme for each budget;
//  3. each budget's schemes fine-tuned longer from the same start (same
//     head, same samples), accuracy on MNIST-test 5-9: the classifier
//     alone, the searched scheme, and a hand scheme in the reference's
//     style (the biases of the last half of the layers and the weights of
//     the last expansion convs, as many as fit; fewer biases when even
//     none fit), over several sample orders.
//
//   npx tsx bench/scheme-search.ts            (about 5 minutes on a loaded 2-core machine)
//   npx tsx bench/scheme-search.ts --quick    (a smoke run: short everything)
// Writes bench/results/scheme-search.json (not in --quick).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NETWORK_QUANTIZE_OPTIONS } from '../src/compiler/arch/inverted-residual.js';
import { buildFloatNetwork, mobileNetV2Spec } from '../src/compiler/arch/mobilenetv2.js';
import { quantizeGraph } from '../src/compiler/quantize/quantize.js';
import { prepareHead } from '../src/compiler/train/head.js';
import { trainableLayers } from '../src/compiler/train/layers.js';
import { type CompiledPlan, compilePlan } from '../src/compiler/train/lower.js';
import type { SparseUpdateScheme } from '../src/compiler/train/scheme.js';
import {
  type LabelledSample, type SearchCompileOptions, type SearchResult, type SearchRow, chooseScheme, formatSearch, measureContributions,
} from '../src/compiler/train/search.js';
import { trainedModel } from '../src/compiler/train/trained-model.js';
import type { Graph } from '../src/core/graph.js';
import { PlanRuntime } from '../src/core/plan-runtime.js';
import { holdoutAccuracy } from '../src/core/rollback.js';
import { shuffledIndices } from '../src/core/rng.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { digitIndices, loadMnist, mnistRgb, quantizeImage } from '../src/node/mnist.js';

const quick = process.argv.includes('--quick');
const KB = 1024;
const P = {
  pretrainSteps: quick ? 300 : 6000,
  pretrainLr: 2 ** -12,
  lr: 2 ** -8, // fine-tuning, probes and final runs alike (best of 2^-11..2^-7 for the classifier alone and three larger schemes at 1,500 steps)
  probeSteps: quick ? 60 : 300,
  probeTrain: 2000,
  probeEval: quick ? 100 : 500,
  finalSteps: quick ? 100 : 1500,
  finalOrders: quick ? 1 : 3,
  testImages: quick ? 200 : 2000,
  budgets: [16 * KB, 32 * KB, 64 * KB],
  ratios: [0.25, 0.5, 1],
  seed: 1,
};
const SOURCE = [0, 1, 2, 3, 4], TARGET = [5, 6, 7, 8, 9];
const dispatch = (arena: number, flash: number) => new NodeDispatch(new ArrayBuffer(arena), new ArrayBuffer(flash));
const runtime = (c: CompiledPlan) => PlanRuntime.load(dispatch(c.plan.arenaBytes, c.plan.flash.length), c.blob);
const t0 = Date.now();
const log = (s: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${s}`);

const mnistTrain = loadMnist('train'), mnistTest = loadMnist('test');
const samples = (set: typeof mnistTrain, digits: number[], count: number, seed: number): LabelledSample[] =>
  digitIndices(set, digits, count, seed).map((i) => ({ input: quantizeImage(mnistRgb(set, i)), label: digits.indexOf(set.labels[i]!) }));

function train(c: CompiledPlan, set: readonly LabelledSample[], steps: number, seed: number): PlanRuntime {
  const rt = runtime(c);
  const order = shuffledIndices(set.length, seed);
  for (let s = 0; s < steps; s++) {
    const x = set[order[s % set.length]!]!;
    rt.step(x.input, x.label);
  }
  return rt;
}

// 1. pre-training on 0-4 ----------------------------------------------------------------
const spec = mobileNetV2Spec({ width: 0.35, resolution: 32, classes: 10 });
const float = buildFloatNetwork(spec, { seed: P.seed });
const calibration = digitIndices(mnistTrain, SOURCE, 64, 99).map((i) => mnistRgb(mnistTrain, i));
const seeded = quantizeGraph(float.graph, calibration, NETWORK_QUANTIZE_OPTIONS);
const pointwise = (g: Graph) => trainableLayers(g).filter((l) => l.kind === 'fully_connected' || (l.kind === 'conv2d' && l.kH === 1 && l.kW === 1));
const seededLayers = trainableLayers(prepareHead(seeded, { classes: 5 }).graph);
const everything: SparseUpdateScheme = {
  biasLayers: seededLayers.length,
  weights: pointwise(prepareHead(seeded, { classes: 5 }).graph).filter((l) => l.layer < seededLayers.length - 1).map((l) => ({ layer: l.layer })),
};
const pre = compilePlan(seeded, { head: { classes: 5, seed: 1 }, scheme: everything, reorder: true, rowScratch: true, lr: P.pretrainLr, lrBias: P.pretrainLr });
const preRt = train(pre, samples(mnistTrain, SOURCE, 30000, 2), P.pretrainSteps, P.seed);
const pretrainAccuracy = holdoutAccuracy(preRt, samples(mnistTest, SOURCE, P.testImages, 3));
log(`pre-trained on digits 0-4: ${P.pretrainSteps} steps, ${(100 * pretrainAccuracy).toFixed(1)}% on ${P.testImages} test images`);
const model = trainedModel(pre, (offset, bytes) => preRt.dispatch.read(offset, bytes));

// 2. the search on 5-9 ------------------------------------------------------------------
const compile: SearchCompileOptions = {
  head: { classes: 5, seed: 7 }, reorder: true, sliceWeights: true, rowScratch: true, tile: true, lr: P.lr, lrBias: P.lr,
};
const pool = samples(mnistTrain, TARGET, P.probeTrain + P.probeEval, 4);
const data = { train: pool.slice(0, P.probeTrain), eval: pool.slice(P.probeTrain) };
const test = samples(mnistTest, TARGET, P.testImages, 5);
const maxBudget = Math.max(...P.budgets);
const searchOptions = {
  compile, dispatch, steps: P.probeSteps, seed: P.seed, ratios: P.ratios,
  onProbe: (r: SearchRow) => r.status === 'probed' && log(`${r.option}: ${r.bytes} B, gain ${r.gain}`),
};
const table = measureContributions(model, data, maxBudget, searchOptions);
log(`measured: ${table.probes} probes, ${table.compiles} compiles; classifier alone ${table.baseline.arenaBytes} B, ` +
  `${(100 * table.baseline.probe.accuracy).toFixed(1)}% after the probe`);

// The reference's style by hand: biases of the last half of the layers,
// weights of the last n expansion convs (the pointwise convs that widen),
// n as large as fits; if even n = 0 does not, fewer biases.
const L = trainableLayers(prepareHead(model, compile.head).graph);
const expansions = L.filter((l) => l.kind === 'conv2d' && l.kH === 1 && l.outC > l.inC).map((l) => l.layer);
function handScheme(budget: number): { scheme: SparseUpdateScheme; bytes: number } {
  for (let bias = Math.ceil(L.length / 2); bias >= 0; bias = bias > 1 ? Math.floor(bias / 2) : -1) {
    for (let n = expansions.length; n >= 0; n--) {
      const scheme = { biasLayers: bias, weights: expansions.slice(expansions.length - n).map((layer) => ({ layer })) };
      const bytes = compilePlan(model, { ...compile, scheme }).plan.arenaBytes;
      if (bytes <= budget) return { scheme, bytes };
    }
  }
  throw new Error(`no hand scheme fits ${budget} B`);
}

// 3. final fine-tuning per budget ---------------------------------------------------------
interface Final { scheme: SparseUpdateScheme; bytes: number; accuracy: number[]; mean: number }
function final(scheme: SparseUpdateScheme): Final {
  const c = compilePlan(model, { ...compile, scheme });
  const accs = Array.from({ length: P.finalOrders }, (_, k) => holdoutAccuracy(train(c, data.train, P.finalSteps, 100 + k), test));
  return { scheme, bytes: c.plan.arenaBytes, accuracy: accs, mean: accs.reduce((a, b) => a + b, 0) / accs.length };
}

const classifier = final({ biasLayers: 0, weights: [] });
log(`classifier alone: ${classifier.bytes} B, ${(100 * classifier.mean).toFixed(1)}% on test`);
const budgets: { budget: number; searched: Final & { expectedGain: number; additiveGain: number; notes: string[]; combinations: unknown[] }; hand: Final; text: string }[] = [];
for (const budget of P.budgets) {
  const r: SearchResult = chooseScheme(model, data, table, budget, searchOptions);
  const text = formatSearch(r);
  console.log(text);
  const searched = { ...final(r.scheme), expectedGain: r.expectedGain, additiveGain: r.additiveGain, notes: r.notes, combinations: r.combinations };
  const hand = final(handScheme(budget).scheme);
  log(`budget ${budget} B: searched ${searched.bytes} B ${(100 * searched.mean).toFixed(1)}%, hand ${hand.bytes} B ${(100 * hand.mean).toFixed(1)}% ` +
    `(${JSON.stringify(hand.scheme)})`);
  budgets.push({ budget, searched, hand, text });
}

if (!quick) {
  const dir = join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'scheme-search.json'), JSON.stringify({
    task: 'MobileNetV2-w0.35, 32x32x3, pre-trained int8 on MNIST 0-4, transferred to 5-9 (new 5-class head)',
    params: P, pretrainAccuracy, compile, seconds: Math.round((Date.now() - t0) / 1000),
    baseline: table.baseline, probes: table.probes, compiles: table.compiles, classifier,
    budgets: budgets.map(({ text: _, ...b }) => b), table: table.rows.map(({ note: _, ...r }) => r),
  }, null, 1) + '\n');
}
