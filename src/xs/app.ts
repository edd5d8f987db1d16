// The main job on the XS engine (README "Two commands"): person_detect with a
// new 10-class head learns Fashion-MNIST online, batch 1, from a replayed
// camera stream, in the Moddable Two's 98,304-byte arena, checkpointing to
// a file-backed flash partition so a run that is killed resumes.
//
//   xst-xs out/ts/xs/app.js [--data DIR] [--plan FILE] [--flash FILE] [--steps N]
//       [--test N] [--every N] [--report N] [--fresh] [--memory]
//
//   --data DIR   the prepared frames (scripts/prepare-app.ts): DIR/train.bin
//                (the stream), DIR/test.bin, DIR/holdout.bin; default
//                out/app/fashion-mnist
//   --plan FILE  default out/app/person_detect-10.xstp (stands in for the
//                plan's flash partition)
//   --flash FILE the checkpoint partition; default DIR/flash.bin
//   --steps N    windows to take in this run (default: the stream's length);
//                a resumed run takes N more from where the checkpoint left it
//   --test N     test images scored before and after (default 500)
//   --every N    windows between checkpoints (default 200)
//   --report N   windows between progress lines (default 100)
//   --fresh      erase the checkpoints first (start from the plan's weights)
//   --memory     after the JSON line, one more: {memory: the XS heap's live
//                chunk bytes and slots at each stage, the buffers this host
//                keeps in it, the C stack the steps took} (scripts/memory-report.ts)
//
// Output: what boot did, a progress line every --report windows (step,
// running accuracy and loss: exponential moving averages over ~100 labelled
// windows; steps/s; arena; XS heap in use after a GC), the test accuracy at
// the start and at the end, and last one JSON line {accuracyBefore,
// accuracyAfter, steps, fromStep, arenaBytes, xsHeapBytes, xsHeapPeakBytes,
// paramsCrc}.

import { checkpointFlashBytes } from '../core/checkpoint.js';
import { crc32Hex } from '../core/crc32.js';
import { FramesReader } from '../core/frames.js';
import { ReplaySensor } from '../core/sensor-replay.js';
import { TrainerService } from '../core/trainer.js';
import { XsDispatch } from './dispatch.js';
import { HostFileFlash } from './file-flash.js';
import { args, exit, fileSize, heapBytes, print, readFile, readRange, stackPaint, stackUsed, writeFile } from './host.js';

const FLASH_SECTOR = 4096;

function frames(path: string): FramesReader {
  const size = fileSize(path);
  if (size < 0) throw new Error(`${path} does not exist: run the prepare step first (npx tsx scripts/prepare-app.ts, or npm start)`);
  return new FramesReader((offset, length) => readRange(path, offset, length), size, path);
}

function options(all: string[]): Map<string, string> {
  const known = ['data', 'plan', 'flash', 'steps', 'test', 'every', 'report'];
  const m = new Map<string, string>();
  for (let i = 0; i < all.length; i++) {
    const a = all[i]!;
    if (a === '--fresh' || a === '--memory') {
      m.set(a.slice(2), '1');
      continue;
    }
    const name = a.startsWith('--') ? a.slice(2) : '';
    if (!known.includes(name) || all[i + 1] === undefined) {
      throw new Error(`usage: app.js [--data DIR] [--plan FILE] [--flash FILE] [--steps N] [--test N] [--every N] [--report N] [--fresh] [--memory] (got '${a}')`);
    }
    m.set(name, all[++i]!);
  }
  return m;
}

function count(m: Map<string, string>, name: string, fallback: number): number {
  const v = m.has(name) ? Number(m.get(name)) : fallback;
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} ${m.get(name)}: give a whole number`);
  return v;
}

function main(): void {
  // --memory: the heap after a GC at each stage (stages.modules: the modules
  // loaded, nothing run yet).
  const stages: Record<string, { chunks: number; slots: number }> = {};
  const stage = (name: string) => {
    const { chunks, slots } = heapBytes();
    stages[name] = { chunks, slots };
  };
  stage('modules');
  const o = options(args());
  const dir = o.get('data') ?? 'out/app/fashion-mnist';
  const planPath = o.get('plan') ?? 'out/app/person_detect-10.xstp';
  const flashPath = o.get('flash') ?? `${dir}/flash.bin`;
  const train = frames(`${dir}/train.bin`), test = frames(`${dir}/test.bin`), holdoutFrames = frames(`${dir}/holdout.bin`);
  const steps = count(o, 'steps', train.count), testCount = Math.min(count(o, 'test', 500), test.count);
  const every = count(o, 'every', 200), reportEvery = Math.max(1, count(o, 'report', 100));

  const blob = readFile(planPath);
  stage('blob');
  const replay = new ReplaySensor({ source: train.source(), loop: true });
  print(`xstrain app on XS: ${planPath} learning ${dir} online, batch 1 (stream ${train.count} frames of ` +
    `${train.header.width}x${train.header.height}, ${testCount} test images, checkpoints every ${every} steps in ${flashPath})`);
  let flash: HostFileFlash | null = null;
  let dispatch = null as XsDispatch | null; // set by the service's factory
  const service = new TrainerService({
    blob, what: `plan ${planPath}`, sensor: replay, checkpointEvery: every, holdout: holdoutFrames,
    dispatch: (plan) => {
      stage('decoded'); // the blob and its decoded plan
      // No read-only region: the plan runs in C from the blob (bindPlan),
      // reading its flash section where it is.
      return (dispatch = new XsDispatch(new ArrayBuffer(plan.arenaBytes)));
    },
    flash: (stateBytes) => {
      const bytes = checkpointFlashBytes(stateBytes, FLASH_SECTOR);
      if (o.has('fresh') || (fileSize(flashPath) >= 0 && fileSize(flashPath) !== bytes)) {
        if (!o.has('fresh')) print(`${flashPath} is not this plan's checkpoint partition (${fileSize(flashPath)} bytes, not ${bytes}): erased`);
        writeFile(flashPath, new Uint8Array(bytes).fill(0xff));
      }
      return (flash = new HostFileFlash(flashPath, bytes, FLASH_SECTOR, false));
    },
    onMessage: (m) => print(m),
  });
  const from = service.start();
  const sync = () => flash!.sync();
  sync();
  replay.position = from % train.count;
  print(`plan: ${service.plan.io.classes} classes, arena ${service.plan.arenaBytes} B, ${service.plan.trainOps} kernel calls a step; ` +
    `${from ? `resuming at step ${from}` : 'starting at step 0'}`);

  stage('started');
  const before = service.accuracyOn(test, testCount);
  print(`test accuracy at step ${from}: ${pct(before)} on ${testCount} test images`);
  const t0 = Date.now();
  if (o.has('memory')) stackPaint();
  for (let k = 0; k < steps; k++) {
    // now: the window count (the replay gives a frame on every poll).
    if (service.poll(service.windows, (position) => train.label(position % train.count)) === null) {
      throw new Error(`the capture gave no window at step ${service.windows}: ${service.capture.status.message}`);
    }
    sync(); // after a checkpoint: the file holds it
    if ((k + 1) % reportEvery === 0 || k + 1 === steps) {
      const secs = Math.max(0.001, (Date.now() - t0) / 1000);
      print(`${service.progress(from + steps)}  ${((k + 1) / secs).toFixed(1)} steps/s  XS heap ${heapBytes().inUse} B`);
    }
  }
  const rate = steps / Math.max(0.001, (Date.now() - t0) / 1000);
  const stackBytes = o.has('memory') ? stackUsed() : 0;
  stage('steps');
  service.checkpoint();
  sync();
  const after = service.accuracyOn(test, testCount);
  const { inUse, peak } = heapBytes();
  print(`test accuracy at step ${service.windows}: ${pct(after)} on ${testCount} test images (${pct(before)} at step ${from})`);
  print(JSON.stringify({
    accuracyBefore: before, accuracyAfter: after, steps: service.windows, fromStep: from, stepsPerSecond: Math.round(rate * 10) / 10,
    arenaBytes: service.plan.arenaBytes, xsHeapBytes: inUse, xsHeapPeakBytes: peak, paramsCrc: crc32Hex(service.rt.regionBytes()),
    checkpoints: service.checkpoints, rollbacks: service.rollbacks,
  }));
  if (o.has('memory')) {
    // --memory: the XS heap in use (after a GC) at each stage, the buffers
    // this host keeps in it that a device keeps elsewhere, and the C stack
    // the steps took below the loop's frame (scripts/memory-report.ts).
    print(JSON.stringify({
      memory: {
        stages, heapInUse: inUse, heapPeak: peak,
        planBlobBytes: blob.byteLength, arenaBytes: service.plan.arenaBytes, flashSectionBytes: dispatch?.flash?.byteLength ?? 0,
        checkpointPartitionBytes: flash!.bytes.length, stackBytes, steps,
      },
    }));
  }
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

try {
  main();
} catch (e) {
  print(`app: ${(e as Error).message}`);
  exit(1);
}
