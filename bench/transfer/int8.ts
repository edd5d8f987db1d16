// The xstrain arms of npm run bench:transfer (bench/transfer.ts): the int8
// model fine-tuned online, batch 1, one pass, through the plan runtime on the
// C kernels (Node addon, NodeDispatch).
//   (i)   the scheme chosen greedily by bytes for boards/moddable_two.json's
//         arena (SchemeFitter.choose, as `xstrain compile --board` does),
//         QAS + LQM
//   (ii)  the same scheme, SGD (no optimizer state: the same fit)
//   (iii) the same scheme, LQM without QAS
//   (iv)  the classifier only (weights + bias of the last layer), QAS + LQM
// Each plan is fitted with the board's memory options (SchemeFitter.fit: the
// cheapest level that fits the arena). Inputs: a byte image b is the real
// value b / 255, quantised with the model input's scale and zero point
// (person_detect: b - 128).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { SchemeFitter } from '../../src/compiler/train/budget.js';
import type { HeadOption } from '../../src/compiler/train/head.js';
import { importModel } from '../../src/compiler/import-model.js';
import { lowerTraining } from '../../src/compiler/train/lower.js';
import type { SparseUpdateScheme } from '../../src/compiler/train/scheme.js';
import type { Optimizer } from '../../src/compiler/train/train-graph.js';
import type { CalibrationSample } from '../../src/compiler/quantize/calibrate.js';
import type { Graph, GraphTensor } from '../../src/core/graph.js';
import { type Plan, encodePlan } from '../../src/core/plan-format.js';
import { PlanRuntime, seededSample } from '../../src/core/plan-runtime.js';
import { crc32Hex } from '../../src/core/crc32.js';
import { type HoldoutSample, holdoutAccuracy } from '../../src/core/rollback.js';
import { shuffledIndices } from '../../src/core/rng.js';
import { NodeDispatch, repoRoot } from '../../src/node/addon.js';
import { loadMnist } from '../../src/node/mnist.js';
import { measurePlanStep } from '../train-plan.js';
import { type ImageSplit, TRANSFER_HEAD_SEED, type TransferTask, imageOf } from './data.js';
import type { ArmId, ArmResult, CurvePoint } from './types.js';

export type XstrainArm = Extract<ArmId, 'i' | 'ii' | 'iii' | 'iv'>;
export const XSTRAIN_ARMS: readonly XstrainArm[] = ['i', 'ii', 'iii', 'iv'];

export const BOARD = 'moddable_two';
export const EVAL_EVERY = 250;

export interface ArmSpec {
  label: string;
  optimizer: Optimizer;
  qas: boolean;
  classifierOnly: boolean;
}

export const ARM_SPECS: Record<XstrainArm, ArmSpec> = {
  i: { label: 'xstrain int8, sparse (board scheme), QAS + LQM', optimizer: 'lqm', qas: true, classifierOnly: false },
  ii: { label: 'xstrain int8, sparse (board scheme), QAS + SGD', optimizer: 'sgd', qas: true, classifierOnly: false },
  iii: { label: 'xstrain int8, sparse (board scheme), LQM without QAS', optimizer: 'lqm', qas: false, classifierOnly: false },
  iv: { label: 'xstrain int8, classifier only, QAS + LQM', optimizer: 'lqm', qas: true, classifierOnly: true },
};

// Learning rates, as `xstrain compile --lr X --backbone-lr F`: the
// classifier's weights and biases step at lr, every earlier layer's at
// lr x backbone (backboneLrFactor, src/compiler/train/lower.ts). Chosen by
// `tsx bench/transfer.ts --tune-only` from power-of-two grids on TRAINING
// data only (TUNE below; never the test set). Without QAS the int8-domain
// steps are smaller by s_W^2 (weights) and (s_in s_W)^2 (biases), so arm
// iii's grid is far larger.
export interface Rate {
  lr: number;
  backbone: number; // factor of the layers before the classifier (1: one rate for all)
}
const grid = (lrs: number[], backbones: number[]): Rate[] => lrs.flatMap((lr) => backbones.map((backbone) => ({ lr: 2 ** lr, backbone: 2 ** backbone })));
// Task A: one rate for all (backbone 1) at the best of an earlier one-rate
// grid, and larger head rates with slower backbones. Task B (a small CNN
// quantised from fp32, far from its data): much smaller steps, so a wider
// grid (its tuning takes seconds).
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);
export const RATE_GRID: Record<'A' | 'B', Record<XstrainArm, Rate[]>> = {
  A: {
    i: [...grid([-9], [0]), ...grid([-7, -6, -5, -4], [-3, -5, -7])],
    ii: [...grid([-8], [0]), ...grid([-7, -6, -5], [-3, -5, -7])],
    iii: [...grid([12], [0]), ...grid([13, 14, 15], [-3, -5, -7])],
    iv: grid([-7, -6, -5, -4], [0]),
  },
  B: {
    i: grid(range(-14, -6), [0, -3, -5]),
    ii: grid(range(-14, -6), [0, -3, -5]),
    iii: grid(range(4, 12), [0, -3, -5]),
    iv: grid(range(-14, -7), [0]),
  },
};
// The stream's first 3/4 trained, its last 1/4 scored (task A: 1,500 and
// 500; task B: 750 and 250): a run almost as long as the arm's, since
// short runs hide late instability (500 steps chose 2^-4 for arm i, which
// collapses after 750 samples).
export const TUNE = { trainShare: 0.75 } as const;
// RATES: what --tune-only chose (bench/results/transfer-tuning.json; single
// runs, 500 scored training images of task A, so a few points of noise):
//   A (i)   2^-9 44.0; 2^-7 x2^-3/-5/-7 42.8/37.0/34.2; 2^-6 37.0/47.6/43.2;
//           2^-5 39.6/44.2/46.0; 2^-4 37.2/38.6/46.6 %
//   A (ii)  2^-8 40.4; 2^-7 31.2/28.6/24.4; 2^-6 41.2/35.2/33.8; 2^-5 36.2/42.2/41.8 %
//   A (iii) 2^12 40.8; 2^13 39.4/48.4/48.0; 2^14 35.2/35.6/40.8; 2^15 38.4/32.2/32.0 %
//   A (iv)  2^-9 22.8, 2^-8 26.0, 2^-7 33.0, 2^-6 41.2, 2^-5 45.6, 2^-4 42.4 % (earlier grid)
//   B (750 trained, 250 scored; the board scheme trains every layer of the
//   small CNN): (i) best 2^-7 x2^-3 75.2% (2^-7 70.0, 2^-6 x2^-3 74.4,
//   2^-8 x2^-3 69.2); (ii) 2^-6 x2^-3 74.4% (2^-6 73.6, 2^-7 73.2);
//   (iii) 2^10 x2^-3 73.2% (2^8 x2^-3 70.8, 2^10 35.2); (iv) 2^-9 50.8%
//   (2^-10 43.2, 2^-8 12.4)
// (x2^-k: the backbone factor; a plain 2^e: one rate for all layers.)
export const RATES: Record<'A' | 'B', Record<XstrainArm, Rate>> = {
  A: { i: { lr: 2 ** -6, backbone: 2 ** -5 }, ii: { lr: 2 ** -5, backbone: 2 ** -5 }, iii: { lr: 2 ** 13, backbone: 2 ** -5 }, iv: { lr: 2 ** -5, backbone: 1 } },
  B: { i: { lr: 2 ** -7, backbone: 2 ** -3 }, ii: { lr: 2 ** -6, backbone: 2 ** -3 }, iii: { lr: 2 ** 10, backbone: 2 ** -3 }, iv: { lr: 2 ** -9, backbone: 1 } },
};
export const rateText = (r: Rate): string => `2^${Math.log2(r.lr)}${r.backbone === 1 ? '' : `, backbone x2^${Math.log2(r.backbone)}`}`;

export function boardArenaBytes(board = BOARD): number {
  const b = JSON.parse(readFileSync(join(repoRoot, 'boards', `${board}.json`), 'utf8')) as { arenaBytes?: unknown };
  if (typeof b.arenaBytes !== 'number') throw new Error(`boards/${board}.json has no arenaBytes`);
  return b.arenaBytes;
}

// ---- models ------------------------------------------------------------------------

export interface XstrainModel {
  task: 'A' | 'B';
  graph: Graph; // int8
  head: HeadOption;
  source: string; // how the int8 graph was made
}

// Task A: person_detect as it is bundled (int8), a new 10-class head.
export function taskAModel(): XstrainModel {
  const bytes = new Uint8Array(readFileSync(join(repoRoot, 'models', 'person_detect.tflite')));
  return {
    task: 'A', graph: importModel(bytes, 'person_detect').graph, head: { classes: 10, seed: TRANSFER_HEAD_SEED },
    source: 'models/person_detect.tflite (int8), new 10-class head (seed 1)',
  };
}

export const CALIBRATION = { images: 200, seed: 7 } as const;

// MNIST training images as real inputs, pixel / 255 (the float CNN's input
// convention), a seeded sample: the float path's calibration samples.
export function mnistCalibration(count: number = CALIBRATION.images, seed: number = CALIBRATION.seed): CalibrationSample[] {
  const set = loadMnist('train');
  return [...shuffledIndices(set.count, seed).subarray(0, count)].map((i) => Float32Array.from(set.image(i), (v) => v / 255));
}

// Task B: the float32 MNIST CNN through the float path exactly as `xstrain
// compile MODEL.tflite --calibration DIR` takes it (importModel with real
// calibration samples: post-training quantisation), the head kept.
export function taskBModel(floatTflite: Uint8Array, calibration: readonly CalibrationSample[] = mnistCalibration()): XstrainModel {
  const m = importModel(floatTflite, 'mnist-cnn', { calibration });
  if (!m.float) throw new Error('task B: the MNIST CNN must be a float32 .tflite (the float path); this one is already int8');
  return {
    task: 'B', graph: m.graph, head: 'keep',
    source: `float32 MNIST CNN quantised by importModel with ${calibration.length} MNIST training images (pixel / 255), head kept`,
  };
}

// ---- inputs ------------------------------------------------------------------------

// byte b -> real b / 255 -> the model input's int8.
export function inputQuantizer(g: Graph): (bytes: Uint8Array) => Int8Array {
  const t: GraphTensor = g.tensors[g.inputs[0]!]!;
  if (t.dtype !== 'int8' || !t.quant) throw new Error(`${g.name}: input "${t.name}" is not int8 with a scale`);
  const scale = t.quant.scale[0]!, zp = t.quant.zeroPoint[0]!;
  const n = t.shape.reduce((a, b) => a * b, 1);
  const table = Int8Array.from({ length: 256 }, (_, b) => Math.max(-128, Math.min(127, Math.round(b / 255 / scale) + zp)));
  return (bytes) => {
    if (bytes.length !== n) throw new Error(`${g.name}: input "${t.name}" has ${n} values, the image ${bytes.length}`);
    const out = new Int8Array(n);
    for (let i = 0; i < n; i++) out[i] = table[bytes[i]!]!;
    return out;
  };
}

export function quantizedSamples(g: Graph, split: ImageSplit, from = 0, to = split.count): HoldoutSample[] {
  const q = inputQuantizer(g);
  const out: HoldoutSample[] = [];
  for (let i = from; i < to; i++) out.push({ input: q(imageOf(split, i)), label: split.labels[i]! });
  return out;
}

// ---- plans -------------------------------------------------------------------------

export interface ArmPlan {
  arm: XstrainArm;
  scheme: SparseUpdateScheme;
  schemeOrigin: string;
  memoryLevel: string;
  plan: Plan;
  blob: Uint8Array;
  rate: Rate;
}

// The board scheme: greedy by bytes within the arena, for the arm's
// optimizer (LQM's state counts against the arena).
export function boardScheme(model: XstrainModel, optimizer: Optimizer = 'lqm'): SparseUpdateScheme {
  return new SchemeFitter(model.graph, { budget: boardArenaBytes(), budgetSource: `board ${BOARD}`, head: model.head, optimizer }).choose();
}

export function compileArm(model: XstrainModel, arm: XstrainArm, rate: Rate, scheme?: SparseUpdateScheme): ArmPlan {
  const spec = ARM_SPECS[arm];
  const fitter = new SchemeFitter(model.graph, { budget: boardArenaBytes(), budgetSource: `board ${BOARD}`, head: model.head, optimizer: spec.optimizer });
  let s: SparseUpdateScheme, origin: string;
  if (spec.classifierOnly) [s, origin] = [{ biasLayers: 0, weights: [] }, 'the classifier only'];
  else if (scheme) [s, origin] = [scheme, 'given'];
  else if (arm === 'i') [s, origin] = [fitter.choose(), `chosen greedily by bytes for board ${BOARD} (${boardArenaBytes()} B arena)`];
  else [s, origin] = [boardScheme(model, ARM_SPECS.i.optimizer), `arm i's (chosen greedily by bytes for board ${BOARD} with LQM's state)`];
  const fitted = fitter.fit(s);
  const plan = lowerTraining(model.graph, fitted.compiled, { lr: rate.lr, lrBias: rate.lr, backboneLrFactor: rate.backbone, qas: spec.qas });
  if (plan.arenaBytes > boardArenaBytes()) throw fitter.overBudget(s);
  return { arm, scheme: s, schemeOrigin: origin, memoryLevel: fitted.level.name, plan, blob: encodePlan(plan), rate };
}

export function loadRuntime(p: ArmPlan): PlanRuntime {
  return PlanRuntime.load(new NodeDispatch(new ArrayBuffer(p.plan.arenaBytes), new ArrayBuffer(p.plan.flash.length)), p.blob);
}

// Instructions of one training step (the stream's first sample) on
// Cortex-M4F under QEMU (-icount, deterministic): the cortex-m4 image, or
// the bench-only cortex-m4-big image when the plan's flash section does not
// fit the small one.
export async function stepInstructionsM4(p: ArmPlan, sample: HoldoutSample): Promise<{ instructions: number | null; target: string; reason: string | null }> {
  let m = await measurePlanStep(p.plan, p.blob, sample, 'cortex-m4');
  if (m.instructions === null) m = await measurePlanStep(p.plan, p.blob, sample, 'cortex-m4-big');
  return { instructions: m.instructions, target: m.target, reason: m.reason };
}

// Bit-identity spot check on the XS engine (the device's JavaScript engine,
// xsmc glue to the same C): `steps` training steps of the plan on
// seededSample(plan, i, seed) run by the XS host (src/xs/main.ts plan) and
// here on the Node addon must end with the same trained-region CRC, the same
// per-step metrics and the same inference output. null when the XS host is
// not built (npm run build:xs && npm run build:ts; scripts/setup.sh does).
export function xsSpotCheck(p: ArmPlan, steps = 3, seed = 5): { identical: boolean | null; detail: string } {
  const xs = join(repoRoot, 'out', 'xs', 'xst-xs'), main = join(repoRoot, 'out', 'ts', 'xs', 'main.js');
  if (!existsSync(xs) || !existsSync(main)) return { identical: null, detail: 'XS host not built (npm run build:xs && npm run build:ts)' };
  const dir = join(repoRoot, 'out', 'transfer');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `xs-check-${process.pid}-${p.arm}.xstp`);
  writeFileSync(file, p.blob);
  const r = spawnSync(xs, [main, 'plan', file, String(steps), String(seed)], { encoding: 'utf8', timeout: 300_000 });
  rmSync(file, { force: true });
  const line = r.stdout?.split('\n').find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line) return { identical: false, detail: `the XS host failed: ${r.status} ${r.stderr ?? ''}`.trim() };
  const rt = loadRuntime(p);
  const metrics: (number | null)[] = [];
  for (let i = 0; i < steps; i++) {
    const x = seededSample(p.plan, i, seed);
    metrics.push(rt.step(x.input, x.label));
  }
  const node = { crc: crc32Hex(rt.regionBytes()), metrics, output: Array.from(rt.infer(seededSample(p.plan, 0, seed).input)), target: 'xs' };
  const got = JSON.stringify(JSON.parse(line));
  const identical = got === JSON.stringify(node);
  return { identical, detail: identical ? `${steps} steps: trained regions CRC ${node.crc}, metrics and inference output identical on XS and Node` : `XS ${got} vs Node ${JSON.stringify(node)}` };
}

// ---- one arm -----------------------------------------------------------------------

export interface RunOptions {
  rate?: Rate; // default RATES[task][arm]
  scheme?: SparseUpdateScheme; // default: arm i's board scheme (arms i-iii), the classifier (iv)
  every?: number; // evaluation interval in samples (EVAL_EVERY)
  m4?: boolean; // count the instructions of a step on Cortex-M4F (default true)
  xs?: boolean; // spot-check bit identity on the XS engine (default true)
  log?: (s: string) => void;
}

export async function runXstrainArm(task: TransferTask, model: XstrainModel, arm: XstrainArm, o: RunOptions = {}): Promise<ArmResult> {
  const rate = o.rate ?? RATES[task.id][arm];
  const every = o.every ?? EVAL_EVERY;
  const p = compileArm(model, arm, rate, o.scheme);
  const rt = loadRuntime(p);
  const train = quantizedSamples(model.graph, task.train), test = quantizedSamples(model.graph, task.test);
  const curve: CurvePoint[] = [{ samples: 0, accuracy: holdoutAccuracy(rt, test) }];
  let stepNs = 0n;
  for (let s = 0; s < train.length; s++) {
    const x = train[s]!;
    const t0 = process.hrtime.bigint();
    rt.step(x.input, x.label);
    stepNs += process.hrtime.bigint() - t0;
    if ((s + 1) % every === 0 || s + 1 === train.length) {
      curve.push({ samples: s + 1, accuracy: holdoutAccuracy(rt, test) });
      o.log?.(`task ${task.id} arm ${arm}: ${s + 1} samples, ${(100 * curve.at(-1)!.accuracy).toFixed(1)}%`);
      await new Promise((done) => setImmediate(done)); // let the event loop run (a test runner's RPC) between long synchronous stretches
    }
  }
  const m4 = o.m4 === false ? null : await stepInstructionsM4(p, train[0]!);
  const xs = o.xs === false ? null : xsSpotCheck(p);
  const spec = ARM_SPECS[arm];
  return {
    arm, label: spec.label, engine: 'xstrain',
    finalAccuracy: curve.at(-1)!.accuracy, accuracyBefore: curve[0]!.accuracy, curve, samples: train.length,
    peakTrainingBytes: p.plan.arenaBytes,
    memory: {
      arenaBytes: p.plan.arenaBytes, boardArenaBytes: boardArenaBytes(), flashBytes: p.plan.flash.length, planBlobBytes: p.blob.length,
      how: 'the plan\'s arena: every activation, gradient, optimizer state and trained weight of a step (frozen weights stay in flash)',
    },
    stepInstructionsM4: m4?.instructions ?? null,
    hostMsPerStep: Number(stepNs) / 1e6 / train.length,
    settings: {
      optimizer: spec.optimizer, qas: spec.qas, lr: rate.lr, lrBias: rate.lr, lrLog2: Math.log2(rate.lr),
      backboneLrFactor: rate.backbone, backboneLrLog2: Math.log2(rate.backbone), rate: rateText(rate),
      scheme: JSON.stringify(p.scheme), schemeOrigin: p.schemeOrigin, memoryLevel: p.memoryLevel, board: BOARD,
      model: model.source, batch: 1, engine: 'plan runtime on the C kernels (Node addon)',
      hostLoadAverage1m: Math.round(loadavg()[0]! * 100) / 100, // host ms per step were measured under this load
      ...(m4 ? { m4Target: m4.target, ...(m4.reason ? { m4Missing: m4.reason } : {}) } : {}),
      ...(xs ? { xsBitIdentical: xs.identical ?? 'not checked', xsCheck: xs.detail } : {}),
    },
  };
}

// ---- learning-rate tuning (training data only) ----------------------------------------

export interface TuneRow { rate: Rate; accuracy: number }

// Trains the first 3/4 of the stream and scores its last 1/4 (training
// images, never the test set); each lr of the grid from the same start.
export function tuneArm(task: TransferTask, model: XstrainModel, arm: XstrainArm, rates: readonly Rate[] = RATE_GRID[task.id][arm],
  o: { scheme?: SparseUpdateScheme } = {}): { best: Rate; rows: TuneRow[] } {
  const steps = Math.round(task.train.count * TUNE.trainShare);
  const evalN = task.train.count - steps;
  if (evalN <= 0) throw new Error(`tuning task ${task.id}: ${task.train.count} training images leave none to score after ${steps} steps`);
  const train = quantizedSamples(model.graph, task.train, 0, steps);
  const score = quantizedSamples(model.graph, task.train, task.train.count - evalN);
  const scheme = o.scheme ?? (ARM_SPECS[arm].classifierOnly ? undefined : boardScheme(model, ARM_SPECS.i.optimizer));
  const rows = rates.map((rate) => {
    const rt = loadRuntime(compileArm(model, arm, rate, scheme));
    for (const x of train) rt.step(x.input, x.label);
    return { rate, accuracy: holdoutAccuracy(rt, score) };
  });
  const best = rows.reduce((a, b) => (b.accuracy > a.accuracy ? b : a)).rate;
  return { best, rows };
}

