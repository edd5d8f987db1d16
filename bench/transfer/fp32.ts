// The fp32 arms of npm run bench:transfer, trained with tfjs (tfjs-core on
// the pure-JS CPU backend) from the same starting point as the int8 arms:
//  (v)  full fine-tuning: every weight and bias, Adam;
//  (vi) classifier only: the last layer (the logits' fully-connected op)
//       trains, the backbone is frozen.
// Batch 1, one pass over the task's training stream in its order, softmax
// cross-entropy on the logits, accuracy on the whole test set before
// training, every evalEvery samples and after the last one.
// Node: tfjs, files.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Graph } from '../../src/core/graph.js';
import { dequantizeGraph } from '../../src/compiler/quantize/dequantize.js';
import { importTflite } from '../../src/compiler/tflite/import.js';
import { prepareHead } from '../../src/compiler/train/head.js';
import { repoRoot } from '../../src/node/addon.js';
import { graphToTfjs, type TfjsGraph, tfjsReady, tfjsVersion } from '../../src/node/tfjs-graph.js';
export { tfjsVersion };
import { imageOf, loadTaskA, loadTaskB, TASK_A, TASK_B, type TransferTask, TRANSFER_HEAD_SEED } from './data.js';
import { pretrainedMnistCnn, type Pretrained } from './pretrain.js';
import type { ArmResult, CurvePoint } from './types.js';

export type Fp32Arm = 'v' | 'vi';

// Learning rates (Adam, batch 1), fixed in the protocol:
//  - task A: 1e-4 for the full fine-tune (the usual Adam rate for
//    fine-tuning a whole pretrained CNN; larger rates wreck the pretrained
//    features at batch 1), 1e-3 for the classifier alone (a linear model on
//    frozen features tolerates Adam's default rate).
//  - task B: chosen by a grid on the training stream only (taskBLrGrid:
//    train on its first 700 images, score on its last 300; the test set is
//    never read), with the MNIST CNN of protocol 78e1b223ce114951 (MNIST test
//    91.13%); held-out accuracy 17.0% before training, after one pass:
//      full fine-tune:   3e-4 31.3%, 1e-3 58.3%, 3e-3 78.7%, 1e-2 83.7%, 3e-2 15.3% (diverges)
//      classifier only:  1e-3 25.7%, 3e-3 37.3%, 1e-2 56.0%, 3e-2 43.3%
export const FP32_LR = {
  A: { v: 1e-4, vi: 1e-3 },
  B: { v: 1e-2, vi: 1e-2 },
} as const;

// Bumped when the arms' protocol changes in a way the cache must see.
export const FP32_PROTOCOL_VERSION = 1;

export const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

export const PERSON_DETECT = join(repoRoot, 'models', 'person_detect.tflite');

// Task A's model: person_detect with the new 10-class head every arm starts
// from (prepareHead, seed TRANSFER_HEAD_SEED), dequantised to float32. Also
// its int8 input quantisation, which gives the real value of a camera byte.
export function taskAModel(): { graph: Graph; int8: Graph; modelSha256: string; inputReal: (bytes: Uint8Array) => Float32Array } {
  const bytes = new Uint8Array(readFileSync(PERSON_DETECT));
  const int8 = prepareHead(importTflite(bytes, 'person_detect'), { classes: 10, seed: TRANSFER_HEAD_SEED }).graph;
  const q = int8.tensors[int8.inputs[0]!]!.quant!;
  const s = q.scale[0]!, zp = q.zeroPoint[0]!;
  // The int8 arms feed int8 = byte - 128; its real value is (int8 - zp) * s.
  const inputReal = (b: Uint8Array) => Float32Array.from(b, (v) => (v - 128 - zp) * s);
  return { graph: dequantizeGraph(int8, 'person_detect-head10-float'), int8, modelSha256: sha256(bytes), inputReal };
}

// Task B's input: the pretraining's (pixel / 255).
export const taskBInputReal = (b: Uint8Array): Float32Array => Float32Array.from(b, (v) => v / 255);

export interface Fp32ArmOptions {
  arm: Fp32Arm;
  lr: number;
  evalEvery?: number; // default 250
  inputReal: (bytes: Uint8Array) => Float32Array;
  evalBatch?: number; // images per forward in evaluation (default 1)
  // Called after each evaluation with the result so far (finalAccuracy =
  // the last point); lets a long run save its curve as it goes.
  onProgress?: (partial: ArmResult, log: string) => void;
  log?: (line: string) => void;
}

interface Features {
  x: tf.Tensor; // [N, ...]
  labels: Uint8Array;
}

function inputsOf(task: TransferTask, split: 'train' | 'test', inputReal: (b: Uint8Array) => Float32Array, shape: number[], from: number, to: number): tf.Tensor {
  const s = task[split], n = to - from, per = shape.reduce((a, d) => a * d, 1);
  const buf = new Float32Array(n * per);
  for (let i = from; i < to; i++) buf.set(inputReal(imageOf(s, i)), (i - from) * per);
  return tf.tensor(buf, [n, ...shape]);
}

function argmaxCorrect(logits: tf.Tensor, labels: Uint8Array, offset: number): number {
  const p = tf.tidy(() => tf.argMax(logits, 1)).dataSync();
  let c = 0;
  for (let i = 0; i < p.length; i++) if (p[i] === labels[offset + i]) c++;
  return c;
}

export async function runFp32Arm(task: TransferTask, floatGraph: Graph, o: Fp32ArmOptions): Promise<ArmResult> {
  await tfjsReady();
  const log = o.log ?? (() => {});
  const evalEvery = o.evalEvery ?? 250, evalBatch = o.evalBatch ?? 1;
  const m: TfjsGraph = graphToTfjs(floatGraph);
  if (m.classes !== task.classes) throw new Error(`model "${floatGraph.name}" has ${m.classes} logits, task ${task.id} has ${task.classes} classes`);
  const classifier = m.layers[m.layers.length - 1]!;
  const featuresT = classifier.op.inputs[0]!; // the classifier's input tensor
  const trainVars = o.arm === 'v' ? m.variables() : [classifier.weights, ...(classifier.bias ? [classifier.bias] : [])];
  const count = (vs: tf.Variable[]) => vs.reduce((a, v) => a + v.size, 0);
  const totalParams = count(m.variables()), trainParams = count(trainVars);
  const optimizer = tf.train.adam(o.lr); // beta1 0.9, beta2 0.999, epsilon 1e-7 (tfjs defaults)

  // Evaluation. Arm vi: the backbone is frozen, so the test images' features
  // are computed once and each evaluation runs the classifier on them (the
  // same arithmetic as the whole forward).
  let testFeatures: Features | null = null;
  if (o.arm === 'vi') {
    const parts: tf.Tensor[] = [];
    for (let i = 0; i < task.test.count; i += evalBatch) {
      const j = Math.min(task.test.count, i + evalBatch);
      parts.push(tf.tidy(() => m.apply(inputsOf(task, 'test', o.inputReal, m.inputShape, i, j), { to: featuresT })));
    }
    testFeatures = { x: tf.concat(parts, 0), labels: task.test.labels };
    parts.forEach((p) => p.dispose());
  }
  const accuracy = (): number => {
    let correct = 0;
    for (let i = 0; i < task.test.count; i += evalBatch) {
      const j = Math.min(task.test.count, i + evalBatch);
      correct += tf.tidy(() => {
        const logits = testFeatures
          ? m.apply(tf.slice(testFeatures.x, i, j - i), { from: featuresT })
          : m.apply(inputsOf(task, 'test', o.inputReal, m.inputShape, i, j));
        return argmaxCorrect(logits, task.test.labels, i);
      });
    }
    return correct / task.test.count;
  };

  const curve: CurvePoint[] = [];
  const stepMs: number[] = [];
  let profilePeak = 0, profileNewBytes = 0, lossWindow = 0, lossN = 0;
  const rssBefore = process.memoryUsage.rss();
  let rssPeak = rssBefore;
  const label = o.arm === 'v' ? 'tfjs fp32, full fine-tune, Adam' : 'tfjs fp32, classifier only, Adam';
  const result = (): ArmResult => ({
    arm: o.arm,
    label,
    engine: 'tfjs',
    finalAccuracy: curve[curve.length - 1]?.accuracy ?? NaN,
    accuracyBefore: curve[0]?.accuracy ?? NaN,
    curve: curve.slice(),
    samples: curve[curve.length - 1]?.samples ?? 0,
    // The measure: the library's tensor bytes plus the process's
    // memory growth (which holds those tensors again, and garbage: the
    // report gives the tensors alone beside it).
    peakTrainingBytes: profilePeak + Math.max(0, rssPeak - rssBefore),
    memory: {
      tensorPeakBytes: profilePeak,
      tensorPeakHow: 'tf.profile(step 0).peakBytes: the most bytes held by live tfjs tensors during one training step ' +
        '(all weights, Adam moments, the activations the tape keeps, gradients; step 0 creates the Adam moments), ' +
        'less evaluationBytesExcluded',
      evaluationBytesExcluded: evalBytes,
      tensorNewBytesStep0: profileNewBytes,
      parameterBytes: totalParams * 4,
      adamStateBytes: trainParams * 8,
      rssBeforeBytes: rssBefore,
      rssPeakBytes: rssPeak,
      rssGrowthBytes: rssPeak - rssBefore,
      rssHow: 'process RSS before the first training step (after the evaluation at 0 samples) vs its maximum sampled after every step (Node heap, tfjs buffers, garbage not yet collected)',
      peakTrainingBytesIs: 'tensorPeakBytes + rssGrowthBytes (the issue\'s measure; the growth contains those tensors again)',
    },
    stepInstructionsM4: null,
    hostMsPerStep: stepMs.length ? stepMs.reduce((a, b) => a + b, 0) / stepMs.length : NaN,
    settings: {
      optimizer: 'Adam (tfjs: beta1 0.9, beta2 0.999, epsilon 1e-7)',
      lr: o.lr,
      trains: o.arm === 'v' ? 'every weight and bias' : `the classifier (operator ${classifier.op.index}, ${classifier.op.kind}) only`,
      trainableParameters: trainParams,
      totalParameters: totalParams,
      batch: 1,
      loss: 'softmax cross-entropy on the logits',
      backend: `tfjs-core ${tfjsVersion()} cpu (pure JS)`,
      evalEvery,
      hostMsPerStepHow: 'mean wall ms per training step, steps 1..n (step 0 runs under tf.profile and is left out): ' +
        'input tensor, forward (arm vi: the frozen backbone forward of that image, then the classifier), backward, Adam update, loss read back',
    },
  });
  const evalBytes = testFeatures ? testFeatures.x.size * 4 : 0;
  const evaluate = (samples: number) => {
    const t0 = performance.now();
    curve.push({ samples, accuracy: accuracy() });
    const line = `task ${task.id} arm ${o.arm}: ${samples} samples, accuracy ${(curve[curve.length - 1]!.accuracy * 100).toFixed(2)}%` +
      (lossN ? `, mean train loss ${(lossWindow / lossN).toFixed(4)}` : '') +
      (stepMs.length ? `, ${(stepMs.reduce((a, b) => a + b, 0) / stepMs.length).toFixed(1)} ms/step` : '') +
      `, eval ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    lossWindow = 0;
    lossN = 0;
    log(line);
    o.onProgress?.(result(), line);
  };

  evaluate(0);
  const n = task.train.count;
  for (let i = 0; i < n; i++) {
    const step = (): number => {
      const x = inputsOf(task, 'train', o.inputReal, m.inputShape, i, i + 1);
      const y = tf.tidy(() => tf.oneHot(tf.tensor1d([task.train.labels[i]!], 'int32'), task.classes));
      const feats = o.arm === 'vi' ? tf.tidy(() => m.apply(x, { to: featuresT })) : null;
      const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, feats ? m.apply(feats, { from: featuresT }) : m.apply(x)) as tf.Scalar, true, trainVars)!;
      const v = loss.dataSync()[0]!;
      tf.dispose([x, y, loss, ...(feats ? [feats] : [])]);
      return v;
    };
    let v: number;
    if (i === 0) {
      let out = NaN;
      const info = await tf.profile(() => { out = step(); });
      // The test set's frozen features (arm vi) are evaluation data held
      // across steps, not part of a training step.
      profilePeak = info.peakBytes - evalBytes;
      profileNewBytes = info.newBytes;
      v = out;
    } else {
      const t0 = performance.now();
      v = step();
      stepMs.push(performance.now() - t0);
    }
    if (!Number.isFinite(v)) throw new Error(`task ${task.id} arm ${o.arm}: loss ${v} at sample ${i}; lr ${o.lr} diverges`);
    lossWindow += v;
    lossN++;
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    if ((i + 1) % evalEvery === 0 || i + 1 === n) evaluate(i + 1);
  }
  testFeatures?.x.dispose();
  optimizer.dispose();
  m.dispose();
  return result();
}

// The cache key of an arm's result: everything that decides it.
export interface Fp32Protocol {
  version: number;
  task: 'A' | 'B';
  arm: Fp32Arm;
  lr: number;
  evalEvery: number;
  data: object; // the task's protocol constants (data.ts)
  modelSha256: string; // task A: person_detect.tflite; task B: the pretrained float .tflite
  headSeed: number | null;
  input: string;
  optimizer: string;
  library: string;
}

export function fp32Protocol(task: 'A' | 'B', arm: Fp32Arm, modelSha256: string, lr: number = FP32_LR[task][arm], evalEvery = 250): Fp32Protocol {
  return {
    version: FP32_PROTOCOL_VERSION,
    task, arm, lr, evalEvery,
    data: task === 'A' ? { ...TASK_A } : { ...TASK_B },
    modelSha256,
    headSeed: task === 'A' ? TRANSFER_HEAD_SEED : null,
    input: task === 'A' ? 'int8 = byte - 128, real = (int8 - zp) * s of the int8 input' : 'byte / 255',
    optimizer: 'tfjs Adam beta1 0.9 beta2 0.999 eps 1e-7, batch 1, one pass, softmax cross-entropy',
    library: `@tensorflow/tfjs-core ${tfjsVersion()} + tfjs-backend-cpu`,
  };
}

export const fp32ProtocolHash = (p: Fp32Protocol): string => sha256(JSON.stringify(p));

// ---- For the benchmark driver ----

// The slow arm (task A, full fine-tune) is computed once by run-fp32.ts and
// read back from this file while its protocol hash matches.
export const FP32_A_V_FILE = join(repoRoot, 'bench', 'results', 'transfer-fp32-A.json');

export interface CachedFp32Arm {
  file: string;
  protocolHash: string; // as stored
  expectedHash: string; // of the current protocol
  matches: boolean;
  complete: boolean; // false: a run still going (or interrupted); result.curve is what it has so far
  result: ArmResult;
}

export function readCachedFp32ArmAv(file = FP32_A_V_FILE): CachedFp32Arm | null {
  if (!existsSync(file)) return null;
  const d = JSON.parse(readFileSync(file, 'utf8')) as { protocolHash: string; complete?: boolean; result: ArmResult };
  const expectedHash = fp32ProtocolHash(fp32Protocol('A', 'v', taskAModel().modelSha256));
  return { file, protocolHash: d.protocolHash, expectedHash, matches: d.protocolHash === expectedHash, complete: d.complete === true, result: d.result };
}

export interface Fp32Run {
  result: ArmResult;
  protocol: Fp32Protocol;
  protocolHash: string;
}

// One arm end to end: the task's data (or the one given, e.g. shortened),
// its starting model (task A: person_detect + new head; task B: the cached
// MNIST pre-training, run first if absent), the protocol's learning rate.
export async function runFp32ArmFor(taskId: 'A' | 'B', arm: Fp32Arm, o: { task?: TransferTask; lr?: number; log?: (l: string) => void; onProgress?: Fp32ArmOptions['onProgress'] } = {}): Promise<Fp32Run> {
  const task = o.task ?? (taskId === 'A' ? loadTaskA() : loadTaskB());
  const lr = o.lr ?? FP32_LR[taskId][arm];
  const model = taskId === 'A' ? taskAModel() : await pretrainedMnistCnn({ log: o.log });
  const inputReal = taskId === 'A' ? (model as ReturnType<typeof taskAModel>).inputReal : taskBInputReal;
  const protocol = fp32Protocol(taskId, arm, model.modelSha256, lr);
  const result = await runFp32Arm(task, model.graph, { arm, lr, inputReal, log: o.log, onProgress: o.onProgress });
  if (taskId === 'B') result.settings.pretrainedMnistTestAccuracy = (model as Pretrained).mnistTestAccuracy;
  return { result, protocol, protocolHash: fp32ProtocolHash(protocol) };
}

// Task B's learning rates were chosen with this grid, on the training stream
// only: train on its first 700 images in order, score on its last 300; the
// test set is never read.
export async function taskBLrGrid(arm: Fp32Arm, lrs: number[], log: (l: string) => void = () => {}): Promise<{ lr: number; heldOutAccuracy: number; before: number }[]> {
  const b = loadTaskB();
  const part = (from: number, to: number) => {
    const n = b.train.side * b.train.side;
    return { side: b.train.side, count: to - from, images: b.train.images.subarray(from * n, to * n), labels: b.train.labels.subarray(from, to) };
  };
  const task: TransferTask = { ...b, train: part(0, 700), test: part(700, b.train.count) };
  const model = await pretrainedMnistCnn({ log });
  const out: { lr: number; heldOutAccuracy: number; before: number }[] = [];
  for (const lr of lrs) {
    const r = await runFp32Arm(task, model.graph, { arm, lr, evalEvery: 700, inputReal: taskBInputReal });
    out.push({ lr, heldOutAccuracy: r.finalAccuracy, before: r.accuracyBefore });
    log(`task B arm ${arm} lr ${lr}: held-out training images ${(r.accuracyBefore * 100).toFixed(1)}% -> ${(r.finalAccuracy * 100).toFixed(1)}%`);
  }
  return out;
}
