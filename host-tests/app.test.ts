// The main job (src/xs/app.ts over src/core/trainer.ts) on the XS host, with
// MNIST as the stand-in for Fashion-MNIST: the MNIST idx files gzipped into a
// directory laid out as the Debian package dataset-fashion-mnist ships its
// files, so the prepare step's Fashion-MNIST path (idx.gz -> gunzip -> 96x96
// bilinear -> frames files, scripts/prepare-app.ts) is the one that runs.
// Checked: the JSON last line, learning (test accuracy after > before),
// kill -9 and resume = an uninterrupted run (same parameter CRC), a corrupt
// checkpoint falls back with its message, a corrupt plan is a clear error.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { findData, loadIdxSplit } from '../src/node/app-data.js';
import { mnistDir } from '../src/node/mnist.js';
import { FramesReader, resizeBilinear } from '../src/core/frames.js';
import { CHECKPOINT_HEADER_BYTES, checkpointFlashBytes } from '../src/core/checkpoint.js';
import { crc32Hex } from '../src/core/crc32.js';
import { MemoryFlash } from '../src/core/flash.js';
import { ReplaySensor } from '../src/core/sensor-replay.js';
import { TrainerError, TrainerService } from '../src/core/trainer.js';
import { decodePlan } from '../src/core/plan-format.js';
import { NodeDispatch } from '../src/node/addon.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const xst = path.join(root, 'out', 'xs', 'xst-xs');
const app = path.join(root, 'out', 'ts', 'xs', 'app.js');
const work = mkdtempSync(path.join(tmpdir(), 'xstrain-app-'));
const idxDir = path.join(work, 'idx');
const out = path.join(work, 'out');
const data = path.join(out, 'fashion-mnist');
const plan = path.join(out, 'person_detect-10.xstp');

interface Run { status: number | null; stdout: string; stderr: string; json: Record<string, number | string> | null }

function runApp(...args: string[]): Run {
  const r = spawnSync(xst, [app, '--data', data, '--plan', plan, '--report', '50', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let json = null;
  try {
    json = JSON.parse(last);
  } catch { /* not JSON: json stays null */ }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

beforeAll(() => {
  for (const f of [xst, app]) if (!existsSync(f)) throw new Error(`${path.relative(root, f)} is missing: build the XS host and the TypeScript first`);
  spawnSync('mkdir', ['-p', idxDir]);
  for (const f of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) {
    writeFileSync(path.join(idxDir, `${f}.gz`), gzipSync(readFileSync(path.join(mnistDir, f)), { level: 1 }));
  }
  const r = spawnSync('npx', ['tsx', 'scripts/prepare-app.ts', '--data', idxDir, '--train-images', '2000', '--test-images', '200', '--out', out],
    { cwd: root, encoding: 'utf8', timeout: 180_000 });
  if (r.status !== 0) throw new Error(`prepare failed: ${r.stderr}${r.stdout}`);
}, 240_000);

describe('main job data (prepare step)', () => {
  it('reads gzipped idx files, finds them through XSTRAIN_FASHION_DIR, and writes 96x96 bilinear frames', () => {
    const before = process.env.XSTRAIN_FASHION_DIR;
    process.env.XSTRAIN_FASHION_DIR = idxDir;
    try {
      expect(findData('fashion')).toEqual({ name: 'fashion-mnist', dir: idxDir });
    } finally {
      if (before === undefined) delete process.env.XSTRAIN_FASHION_DIR;
      else process.env.XSTRAIN_FASHION_DIR = before;
    }
    const test = loadIdxSplit(idxDir, 'test', 'stand-in');
    const file = readFileSync(path.join(data, 'test.bin'));
    const frames = new FramesReader((o, n) => new Uint8Array(file.buffer, file.byteOffset + o, n), file.length);
    expect([frames.count, frames.header.width, frames.header.height]).toEqual([200, 96, 96]);
    expect(frames.label(7)).toBe(test.labels[7]);
    expect(frames.frame(7).pixels).toEqual(resizeBilinear(test.image(7), 28, 28, 96, 96));
  });

  it('resizes bilinearly with half-pixel centres', () => {
    // 2x2 -> 4x4: the corners keep their values, the inner pixels blend 3:1.
    const r = resizeBilinear(new Uint8Array([0, 100, 200, 40]), 2, 2, 4, 4);
    expect(Array.from(r.subarray(0, 4))).toEqual([0, 25, 75, 100]);
    expect(r[5]).toBe(Math.floor((0 * 0.75 + 100 * 0.25) * 0.75 + (200 * 0.75 + 40 * 0.25) * 0.25 + 0.5));
  });
});

function framesOf(file: string): FramesReader {
  const b = readFileSync(file);
  return new FramesReader((o, n) => new Uint8Array(b.buffer, b.byteOffset + o, n), b.length, file);
}

function nodeService(blob: Uint8Array, frames: FramesReader): TrainerService {
  return new TrainerService({
    blob, what: 'the test plan', sensor: new ReplaySensor({ source: frames.source(), loop: true }), checkpointEvery: 0,
    dispatch: (p) => new NodeDispatch(new ArrayBuffer(p.arenaBytes), new ArrayBuffer(p.flash.length)),
    flash: (bytes) => new MemoryFlash(checkpointFlashBytes(bytes, 4096), 4096),
  });
}

describe('trainer service on Node (src/core/trainer.ts)', () => {
  it('trains the labelled windows to the same bytes as the XS app, refuses a label the head does not have', () => {
    const train = framesOf(path.join(data, 'train.bin'));
    const service = nodeService(new Uint8Array(readFileSync(plan)), train);
    expect(service.start()).toBe(0);
    expect(service.messages).toEqual(["no checkpoint restored (the checkpoint slots are empty): starting from the plan's initial weights"]);
    // A window labelled 12: inference only, and the refusal in the messages.
    expect(service.poll(0, () => 12)).not.toBeNull();
    expect(service.messages.at(-1)).toBe('label 12 rejected: the head has 10 classes (labels 0 to 9)');
    expect([service.learner.steps, service.accuracy]).toEqual([0, null]);
    // Then the stream from frame 1 as the XS app plays it, 60 windows.
    const xsFlash = path.join(work, 'node-vs-xs.bin');
    for (let k = 1; k < 60; k++) service.poll(k, (p) => train.label(p));
    expect(service.learner.steps).toBe(59);
    expect(service.accuracy).toBeGreaterThanOrEqual(0);
    expect(service.loss).toBeGreaterThan(0);
    const arena = decodePlan(new Uint8Array(readFileSync(plan))).arenaBytes;
    expect(service.progress(60)).toMatch(new RegExp(`^step 60/60 {2}running accuracy [\\d.]+% {2}loss [\\d.]+ {2}arena ${arena} B$`));
    // The XS app trains window 0 too: compare a Node run of the same 60 windows.
    const same = nodeService(new Uint8Array(readFileSync(plan)), train);
    same.start();
    for (let k = 0; k < 60; k++) same.poll(k, (p) => train.label(p));
    const xs = runApp('--steps', '60', '--test', '5', '--every', '0', '--fresh', '--flash', xsFlash);
    expect(xs.json!.paramsCrc).toBe(crc32Hex(same.rt.regionBytes()));
  }, 120_000);

  it('a corrupt plan is a TrainerError that says to compile it again', () => {
    const blob = new Uint8Array(readFileSync(plan));
    blob[200]! ^= 0xff;
    expect(() => nodeService(blob, framesOf(path.join(data, 'test.bin')))).toThrow(TrainerError);
    expect(() => nodeService(blob, framesOf(path.join(data, 'test.bin')))).toThrow(/the test plan is not a usable training plan: .*; compile it again/);
  });
});

describe('main job on XS (src/xs/app.ts)', () => {
  it('learns: the last line is the JSON summary and test accuracy rises', () => {
    const r = runApp('--steps', '400', '--test', '100', '--every', '200', '--fresh', '--flash', path.join(work, 'learn.bin'));
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain('starting at step 0');
    expect(r.stdout).toMatch(/step 400\/400 {2}running accuracy [\d.]+% {2}loss [\d.]+ {2}arena \d+ B {2}[\d.]+ steps\/s {2}XS heap \d+ B/);
    const j = r.json!;
    expect(j).not.toBeNull();
    expect(j.steps).toBe(400);
    expect(j.fromStep).toBe(0);
    expect(j.arenaBytes).toBeLessThanOrEqual(196_608);
    expect(j.xsHeapBytes).toBeGreaterThan(0);
    expect(j.xsHeapBytes).toBeLessThanOrEqual(j.xsHeapPeakBytes as number);
    expect(j.accuracyAfter).toBeGreaterThan((j.accuracyBefore as number) + 0.1);
  }, 120_000);

  it('killed with SIGKILL and started again, resumes from the checkpoint and ends as an uninterrupted run', async () => {
    const flash = path.join(work, 'resume.bin'), whole = path.join(work, 'whole.bin');
    const total = 200, common = ['--test', '10', '--every', '50'];
    // Killed on the progress line of step 120: after the checkpoint of step 100
    // reached the file, before the next one.
    const child = spawn(xst, [app, '--data', data, '--plan', plan, '--report', '10', '--steps', String(total), '--fresh', '--flash', flash, ...common], { cwd: root });
    await new Promise<void>((resolve, reject) => {
      let text = '';
      child.stdout.on('data', (b: Buffer) => {
        text += b.toString();
        if (text.includes('step 120/')) child.kill('SIGKILL');
      });
      child.on('exit', (_code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`not killed: ${text}`))));
    });
    // A kill while the flash file was being replaced leaves at most a partial
    // FILE.tmp beside it (the file itself is replaced by a rename): the
    // checkpoints in the file are untouched.
    expect(existsSync(flash)).toBe(true);
    writeFileSync(`${flash}.tmp`, readFileSync(flash).subarray(0, 1000));
    const resumed = runApp('--steps', '100', '--flash', flash, ...common);
    expect(resumed.status, resumed.stderr + resumed.stdout).toBe(0);
    expect(resumed.stdout).toContain('restored checkpoint generation 2 (step 100) from slot 1');
    expect(resumed.stdout).toContain('resuming at step 100');
    expect(resumed.json!.fromStep).toBe(100);
    expect(resumed.json!.steps).toBe(total);
    const straight = runApp('--steps', String(total), '--fresh', '--flash', whole, ...common);
    expect(straight.json!.steps).toBe(total);
    expect(resumed.json!.paramsCrc).toBe(straight.json!.paramsCrc);
  }, 180_000);

  it('falls back to the older checkpoint when the newest is corrupt, and says so', () => {
    const flash = path.join(work, 'corrupt.bin');
    const first = runApp('--steps', '100', '--test', '10', '--every', '50', '--fresh', '--flash', flash);
    expect(first.status, first.stderr + first.stdout).toBe(0);
    // Generation 2 (step 100) is in slot 1, the file's second half: flip a payload byte.
    const bytes = readFileSync(flash);
    bytes[bytes.length / 2 + CHECKPOINT_HEADER_BYTES + 1000]! ^= 0x10;
    writeFileSync(flash, bytes);
    const again = runApp('--steps', '10', '--test', '10', '--every', '50', '--flash', flash);
    expect(again.status, again.stderr + again.stdout).toBe(0);
    expect(again.stdout).toMatch(/checkpoint slot 1: CRC mismatch: .*: ignored/);
    expect(again.stdout).toContain('restored checkpoint generation 1 (step 50) from slot 0');
    expect(again.json!.fromStep).toBe(50);
  }, 120_000);

  it('refuses a corrupt plan with a message that says what to do', () => {
    const bad = path.join(work, 'bad.xstp');
    copyFileSync(plan, bad);
    const bytes = readFileSync(bad);
    bytes[200]! ^= 0xff;
    writeFileSync(bad, bytes);
    const r = spawnSync(xst, [app, '--data', data, '--plan', bad, '--steps', '1', '--flash', path.join(work, 'bad-flash.bin')], { cwd: root, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/app: plan .*bad\.xstp is not a usable training plan: .*; compile it again/);
  });
});
