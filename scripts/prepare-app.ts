// The main job's prepare step (Node; `npm start` runs it before the XS app):
//   npx tsx scripts/prepare-app.ts [--data fashion|mnist|DIR] [--train N] [--test N] [--out DIR] [--lr X] [--force]
// writes, under DIR (default out/app):
//   person_detect-10.xstp  person_detect (models/) with a new 10-class head, a
//                          sparse scheme chosen greedily for boards/moddable_two.json's
//                          arena (196,608 B), LQM at lr 2^-6 (--lr); compiled by `xstrain compile`
//                          (kept when it exists: delete it to compile again)
//   <data>/train.bin       N (default 6000) training images of a seeded shuffle, 96x96
//   <data>/test.bin        the first N (default 1000) test images, 96x96
//   <data>/holdout.bin     the last 32 test images (the rollback guard's holdout)
// <data> is fashion-mnist or mnist (the stand-in); the frames are kept when
// they exist (--force writes them again). Frames files: src/core/frames.ts.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main as xstrain } from '../src/cli/xstrain.js';
import { findData, framesFile, loadIdxSplit, trainOrder } from '../src/node/app-data.js';

export const APP_BOARD = 'moddable_two';
export const HOLDOUT = 32;
const SIDE = 96;
const SEED = 1;

function option(args: string[], name: string, fallback: string): string {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const v = args[at + 1];
  if (v === undefined) throw new Error(`--${name} needs a value`);
  return v;
}

async function prepare(args: string[]): Promise<number> {
  const out = option(args, 'out', 'out/app');
  const data = findData(option(args, 'data', 'fashion'));
  const trainCount = Number(option(args, 'train', '6000')), testCount = Number(option(args, 'test', '1000'));
  if (!(trainCount >= 1 && testCount >= 1)) throw new Error('--train and --test take positive counts');
  mkdirSync(join(out, data.name), { recursive: true });

  const plan = join(out, 'person_detect-10.xstp');
  if (!existsSync(plan)) {
    process.stdout.write(`prepare: compiling models/person_detect.tflite with a 10-class head for ${APP_BOARD} -> ${plan}\n`);
    const code = await xstrain(['compile', 'models/person_detect.tflite', '--board', APP_BOARD, '--classes', '10',
      '--optimizer', 'lqm', '--lr', option(args, 'lr', String(2 ** -6)), '-o', plan]);
    if (code !== 0) return code;
  }

  const dir = join(out, data.name);
  if (['train.bin', 'test.bin', 'holdout.bin'].every((f) => existsSync(join(dir, f))) && !args.includes('--force')) {
    process.stdout.write(`prepare: ${dir} holds the prepared frames (--force, or delete it, to prepare them again)\n`);
    return 0;
  }
  const train = loadIdxSplit(data.dir, 'train', data.name), test = loadIdxSplit(data.dir, 'test', data.name);
  if (testCount + HOLDOUT > test.count) throw new Error(`--test ${testCount}: the test split has ${test.count} images, ${HOLDOUT} of them the holdout`);
  const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
  writeFileSync(join(dir, 'train.bin'), framesFile(train, trainOrder(train, trainCount, SEED), SIDE));
  writeFileSync(join(dir, 'test.bin'), framesFile(test, range(0, testCount), SIDE));
  writeFileSync(join(dir, 'holdout.bin'), framesFile(test, range(test.count - HOLDOUT, HOLDOUT), SIDE));
  process.stdout.write(`prepare: ${data.name} from ${data.dir}: ${Math.min(trainCount, train.count)} training and ${testCount} test images ` +
    `(+${HOLDOUT} holdout) resized to ${SIDE}x${SIDE} (bilinear) in ${dir}\n`);
  return 0;
}

try {
  process.exitCode = await prepare(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`prepare: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
