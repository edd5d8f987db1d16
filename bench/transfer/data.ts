// The two tasks of npm run bench:transfer, as byte images every arm reads in
// the same order (Node: reads files of Debian packages).
//  - Task A: Fashion-MNIST (Debian dataset-fashion-mnist) resized from 28x28
//    to 96x96 grayscale (bilinear, half-pixel centres: the camera stream of
//    the main job): a fixed seeded sample of the training split (the
//    training stream, in that order) and of the test split.
//  - Task B: the 8x8 handwritten digits sklearn ships (Debian
//    python3-sklearn, datasets/data/digits.csv.gz: the UCI optical digits
//    test set, 1,797 images, pixel values 0-16), scaled to bytes (v * 255 /
//    16, rounded) and upscaled to MNIST's 28x28 the same way; a seeded
//    shuffle split into the first 1,000 (training stream) and the other 797
//    (test).
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { resizeBilinear } from '../../src/core/frames.js';
import type { ImageSet } from '../../src/core/idx.js';
import { shuffledIndices } from '../../src/core/rng.js';
import { findData, loadIdxSplit } from '../../src/node/app-data.js';

export interface ImageSplit {
  side: number; // images are side x side bytes, 0 = black
  count: number;
  images: Uint8Array; // count * side * side
  labels: Uint8Array;
}

export function imageOf(s: ImageSplit, i: number): Uint8Array {
  const n = s.side * s.side;
  return s.images.subarray(i * n, (i + 1) * n);
}

export interface TransferTask {
  id: 'A' | 'B';
  title: string;
  classes: number;
  train: ImageSplit; // the stream, in training order
  test: ImageSplit;
}

export interface TaskOptions {
  train?: number; // default: the protocol's count
  test?: number;
  seed?: number;
}

function resized(set: ImageSet, indices: ArrayLike<number>, from: number, side: number): ImageSplit {
  const count = indices.length;
  const images = new Uint8Array(count * side * side), labels = new Uint8Array(count);
  for (let k = 0; k < count; k++) {
    const i = indices[k]!;
    labels[k] = set.labels[i]!;
    images.set(resizeBilinear(set.image(i), from, from, side, side), k * side * side);
  }
  return { side, count, images, labels };
}

export const TASK_A = { train: 2000, test: 2000, side: 96, seed: 20261123 } as const;
export const TASK_B = { train: 1000, test: 797, side: 28, seed: 20261123 } as const;
export const TRANSFER_HEAD_SEED = 1; // prepareHead's seed for task A's new 10-class head (every arm, int8 and fp32)

export function loadTaskA(o: TaskOptions = {}): TransferTask {
  const seed = o.seed ?? TASK_A.seed;
  const src = findData('fashion');
  if (src.name !== 'fashion-mnist') throw new Error('task A needs Fashion-MNIST');
  const train = loadIdxSplit(src.dir, 'train', 'Fashion-MNIST');
  const test = loadIdxSplit(src.dir, 'test', 'Fashion-MNIST');
  const nTrain = Math.min(o.train ?? TASK_A.train, train.count), nTest = Math.min(o.test ?? TASK_A.test, test.count);
  return {
    id: 'A',
    title: 'person_detect, new 10-class head, Fashion-MNIST 96x96',
    classes: 10,
    train: resized(train, shuffledIndices(train.count, seed).subarray(0, nTrain), 28, TASK_A.side),
    test: resized(test, shuffledIndices(test.count, seed + 1).subarray(0, nTest), 28, TASK_A.side),
  };
}

// Where python3-sklearn puts its digits (Debian's dist-packages; a pip
// install's site-packages as a fallback, or XSTRAIN_DIGITS_CSV).
export const DIGITS_FILES = [
  '/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz',
  '/usr/local/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz',
];

// The 1,797 digits: 64 values 0-16 a row, then the label.
export function loadDigits8x8(): { count: number; pixels: Uint8Array; labels: Uint8Array } {
  const files = [process.env.XSTRAIN_DIGITS_CSV, ...DIGITS_FILES].filter((f): f is string => !!f);
  const file = files.find((f) => existsSync(f));
  if (!file) {
    throw new Error(`sklearn's digits.csv.gz not found (looked in ${files.join(', ')}): install the Debian package python3-sklearn ` +
      '(scripts/setup.sh does) or set XSTRAIN_DIGITS_CSV to the file');
  }
  const raw = readFileSync(file);
  const text = (file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('latin1');
  const rows = text.split('\n').filter((l) => l.trim() !== '');
  const pixels = new Uint8Array(rows.length * 64), labels = new Uint8Array(rows.length);
  rows.forEach((row, r) => {
    const v = row.split(',').map(Number);
    if (v.length !== 65 || v.some((x, k) => !Number.isInteger(x) || x < 0 || (k < 64 ? x > 16 : x > 9))) {
      throw new Error(`${file}: row ${r + 1} is not 64 values 0-16 and a label 0-9`);
    }
    pixels.set(v.slice(0, 64), r * 64);
    labels[r] = v[64]!;
  });
  return { count: rows.length, pixels, labels };
}

export function loadTaskB(o: TaskOptions = {}): TransferTask {
  const d = loadDigits8x8();
  const order = shuffledIndices(d.count, o.seed ?? TASK_B.seed);
  const nTrain = Math.min(o.train ?? TASK_B.train, d.count);
  const nTest = Math.min(o.test ?? TASK_B.test, d.count - TASK_B.train);
  const split = (idx: ArrayLike<number>): ImageSplit => {
    const side = TASK_B.side, count = idx.length;
    const images = new Uint8Array(count * side * side), labels = new Uint8Array(count);
    const small = new Uint8Array(64);
    for (let k = 0; k < count; k++) {
      const i = idx[k]!;
      for (let p = 0; p < 64; p++) small[p] = Math.round((d.pixels[i * 64 + p]! * 255) / 16);
      images.set(resizeBilinear(small, 8, 8, side, side), k * side * side);
      labels[k] = d.labels[i]!;
    }
    return { side, count, images, labels };
  };
  return {
    id: 'B',
    title: 'MNIST CNN adapted to sklearn 8x8 digits (28x28)',
    classes: 10,
    // The test set is always the images after the protocol's 1,000, so a
    // shortened stream does not move them.
    train: split(order.subarray(0, nTrain)),
    test: split(order.subarray(TASK_B.train, TASK_B.train + nTest)),
  };
}
