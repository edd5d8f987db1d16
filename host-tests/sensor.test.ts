// Sensor capture (src/core/sensor.ts) and the replayed and faulty sensors
// (src/core/sensor-replay.ts, sensor-faults.ts, src/node/sensor-files.ts):
//  - windows (size, hop; overlapping and with gaps) are the samples a
//    direct slice of the recording gives, and their int8 features in the
//    arena equal an independent quantisation of the same samples (centred,
//    planar and scaled variants too); nothing else in the arena is written;
//  - MNIST frames replayed as a camera: byte -> int8 through the input's
//    quantisation, centred on a larger frame;
//  - each fault (bus error, no data, stuck, out of range; transient and
//    lasting) gives the expected status, probing slows while failed, and the
//    capture recovers with the first window made only of good samples;
//  - a recording file (CSV with a NaN reading, JSON) replays through the
//    same interface;
//  - the app's policy over a capture: learning pauses while the sensor has
//    failed (stub trainer), and on a real compiled plan (C kernels through
//    the addon, and the TypeScript reference kernels) a labelled window
//    is one training step on exactly that window's features while an
//    unlabelled one is only an inference.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importTflite } from '../src/compiler/tflite/import.js';
import { compilePlan } from '../src/compiler/train/lower.js';
import { OnlineLearner, type Trainer, planTrainer, predict } from '../src/core/labels.js';
import { PlanRuntime } from '../src/core/plan-runtime.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import {
  type Acceleration, AccelerometerFeatures, Capture, type CaptureOptions, type CaptureStatus, FrameFeatures, type InputTensor,
  STANDARD_GRAVITY, type SensorClass,
} from '../src/core/sensor.js';
import { FaultySensor, type FaultWindow, saturatedAcceleration } from '../src/core/sensor-faults.js';
import { ReplaySensor, arraySource, imageFrames, parseAccelerometerRecording } from '../src/core/sensor-replay.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { loadMnist } from '../src/node/mnist.js';
import { accelerometerReplay, mnistFrameReplay } from '../src/node/sensor-files.js';
import * as tfl from '../src/compiler/tflite/generated/tflite_subset_generated.js';
import { buildTflite, int32Bytes, int8Bytes } from './support/tflite-builder.js';

const out = join(repoRoot, 'out', 'sensor-test');
mkdirSync(out, { recursive: true });

// Readings in [-10, 10] m/s^2 in steps of 1/1000 (no two in a row equal).
function readings(n: number, seed: number): Acceleration[] {
  const rng = new Xorshift32(seed);
  const v = () => (rng.below(20001) - 10000) / 1000;
  return Array.from({ length: n }, () => ({ x: v(), y: v(), z: v() + STANDARD_GRAVITY / 2 }));
}

// The reference quantisation, written independently of sensor.ts:
// round half away from zero, then saturate.
function q8(real: number, scale: number, zeroPoint: number): number {
  const r = real / scale;
  return Math.min(127, Math.max(-128, Math.sign(r) * Math.floor(Math.abs(r) + 0.5) + zeroPoint));
}

class ArenaStub {
  readonly bytes = new Uint8Array(256);
  writes = 0;
  write(offset: number, b: Uint8Array): void {
    this.bytes.set(b, offset);
    this.writes++;
  }
}

const accelInput = (samples: number, offset = 64): InputTensor =>
  ({ offset, bytes: 3 * samples, zeroPoint: -3, scale: Math.fround(0.07), shape: [1, samples, 3] });

// Polls once every 10 ms (a 100 Hz timer); returns the poll indices that
// completed a window, with the features then, and each poll's state.
function drive<S>(c: Capture<S>, polls: number, from = 0): { ends: number[]; features: Int8Array[]; states: CaptureStatus[] } {
  const ends: number[] = [], features: Int8Array[] = [], states: CaptureStatus[] = [];
  for (let i = from; i < from + polls; i++) {
    if (c.poll(i * 10)) {
      ends.push(i);
      features.push(c.features.slice());
    }
    states.push(c.status);
  }
  return { ends, features, states };
}

// Interleaved features of samples [start, start + size), direct.
function expectedInterleaved(s: readonly Acceleration[], start: number, size: number, t: InputTensor): number[] {
  const outv: number[] = [];
  for (let i = start; i < start + size; i++) for (const a of ['x', 'y', 'z'] as const) outv.push(q8(s[i]![a], t.scale, t.zeroPoint));
  return outv;
}

function accelCapture(sensor: SensorClass<Acceleration>, size: number, hop: number, extra: Partial<CaptureOptions<Acceleration>> = {}) {
  const arena = new ArenaStub();
  const input = accelInput(size);
  const capture = new Capture(sensor, { features: new AccelerometerFeatures(), input, arena, size, hop, rateHz: 100, ...extra });
  return { arena, input, capture };
}

describe('windows and int8 features', () => {
  for (const [size, hop] of [[16, 8], [16, 16], [4, 6], [1, 1]] as const) {
    it(`size ${size}, hop ${hop}: every window is the direct slice of the recording, quantised as the reference does`, () => {
      const s = readings(100, 3 + size + hop);
      const { arena, input, capture } = accelCapture(new ReplaySensor({ source: arraySource(s) }), size, hop);
      const r = drive(capture, s.length);
      const starts = Array.from({ length: Math.floor((s.length - size) / hop) + 1 }, (_, j) => j * hop);
      expect(r.ends).toEqual(starts.map((st) => st + size - 1));
      starts.forEach((st, j) => expect(Array.from(r.features[j]!)).toEqual(expectedInterleaved(s, st, size, input)));
      expect(capture.windows).toBe(starts.length);
      expect(arena.writes).toBe(starts.length);
      // The last window sits in the arena at the input's offset, nothing around it.
      expect(Array.from(new Int8Array(arena.bytes.buffer, input.offset, input.bytes))).toEqual(expectedInterleaved(s, starts.at(-1)!, size, input));
      expect(arena.bytes.subarray(0, input.offset).every((b) => b === 0)).toBe(true);
      expect(arena.bytes.subarray(input.offset + input.bytes).every((b) => b === 0)).toBe(true);
      expect(r.states.every((st) => st.state === 'ok')).toBe(true);
    });
  }

  it('centred, planar, in g: per-axis window mean removed, axes laid out one after the other', () => {
    const s = readings(40, 11), size = 10, hop = 10;
    const arena = new ArenaStub();
    const input: InputTensor = { offset: 0, bytes: 30, zeroPoint: 5, scale: Math.fround(1 / 64), shape: [1, 3, size] };
    const features = new AccelerometerFeatures({ normalize: 'center', layout: 'planar', gain: 1 / STANDARD_GRAVITY });
    const capture = new Capture(new ReplaySensor({ source: arraySource(s) }), { features, input, arena, size, hop });
    const r = drive(capture, s.length);
    expect(r.ends).toEqual([9, 19, 29, 39]);
    r.ends.forEach((end, j) => {
      const win = s.slice(end - size + 1, end + 1);
      const want: number[] = [];
      for (const a of ['x', 'y', 'z'] as const) {
        const mean = win.reduce((m, v) => m + v[a], 0) / size;
        for (const v of win) want.push(q8((v[a] - mean) / STANDARD_GRAVITY, input.scale, input.zeroPoint));
      }
      expect(Array.from(r.features[j]!)).toEqual(want);
    });
    // Centred features spread around the zero point: not all saturated.
    expect(r.features.flatMap((f) => Array.from(f)).filter((v) => v === 127 || v === -128).length).toBe(0);
  });

  it('the rate: polled every millisecond, a 100 Hz capture samples every 10 ms', () => {
    const inner = new ReplaySensor({ source: arraySource(readings(50, 5)) });
    const { capture } = accelCapture(inner, 4, 4);
    for (let t = 0; t < 200; t++) capture.poll(t);
    expect(inner.position).toBe(20);
    expect(capture.dueIn(200)).toBe(0);
    expect(capture.dueIn(195)).toBe(5);
  });

  it('a window that does not fit the plan\'s input is refused naming both sizes', () => {
    const sensor = new ReplaySensor({ source: arraySource(readings(4, 1)) });
    expect(() => new Capture(sensor, { features: new AccelerometerFeatures(), input: accelInput(16), arena: new ArenaStub(), size: 20, hop: 4 }))
      .toThrow('a window of 20 sample(s) gives 60 int8 features; the plan\'s input is int8[1x16x3] = 48 bytes');
  });
});

describe('image frames (MNIST replayed as a camera)', () => {
  const test = loadMnist('test');
  const indices = [0, 1, 2, 3, 4];

  it('[-1, 1) pixels at input scale 1/128: the int8 feature is the byte - 128, frame by frame', () => {
    const arena = { bytes: new Uint8Array(784), write(o: number, b: Uint8Array) { this.bytes.set(b, o); } };
    const input: InputTensor = { offset: 0, bytes: 784, zeroPoint: 0, scale: 1 / 128, shape: [1, 28, 28, 1] };
    const capture = new Capture(mnistFrameReplay('test', indices), {
      features: new FrameFeatures({ width: 28, height: 28, byteScale: 1 / 128, byteOffset: -1 }), input, arena, size: 1, hop: 1,
    });
    for (const i of indices) {
      expect(capture.poll(i)).toBe(true);
      const img = test.image(i);
      expect(Array.from(capture.features)).toEqual(Array.from(img, (p) => p - 128));
      expect(Array.from(new Int8Array(arena.bytes.buffer))).toEqual(Array.from(capture.features));
    }
    expect(capture.poll(99)).toBe(false); // the end of the replay: no data
    expect(capture.status).toMatchObject({ state: 'retrying', fault: 'no-data' });
  });

  it('[0, 1] pixels at a float32 scale and zero point -128: the reference quantisation of every byte', () => {
    const scale = Math.fround(1 / 255);
    const input: InputTensor = { offset: 16, bytes: 784, zeroPoint: -128, scale, shape: [1, 784] };
    const capture = new Capture(mnistFrameReplay('test', indices), {
      features: new FrameFeatures({ width: 28, height: 28, byteScale: 1 / 255, byteOffset: 0 }), input, arena: { write() {} }, size: 1, hop: 1,
    });
    for (const i of indices) {
      capture.poll(i);
      expect(Array.from(capture.features)).toEqual(Array.from(test.image(i), (p) => q8(p / 255, scale, -128)));
    }
  });

  it('centred on a 32x32 frame: the digit at (2, 2), background around it', () => {
    const frames = imageFrames(test, [7], { size: 32, background: 0 });
    const f = frames.get(0);
    expect([f.width, f.height, f.pixels.length]).toEqual([32, 32, 1024]);
    const img = test.image(7);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        expect(f.pixels[y * 32 + x]).toBe(inside ? img[(y - 2) * 28 + x - 2] : 0);
      }
    }
  });

  it('a frame of the wrong size is a fault, not features', () => {
    const capture = new Capture(mnistFrameReplay('test', [0]), {
      features: new FrameFeatures({ width: 32, height: 32, byteScale: 1 / 255, byteOffset: 0 }),
      input: { offset: 0, bytes: 1024, zeroPoint: 0, scale: 1, shape: [1, 32, 32, 1] }, arena: { write() {} }, size: 1, hop: 1,
    });
    expect(capture.poll(0)).toBe(false);
    expect(capture.status).toMatchObject({ state: 'retrying', fault: 'out-of-range' });
    expect(capture.status.message).toContain('frame 28x28 (784 bytes), the input needs 32x32');
  });
});

describe('faults: detected, reported, recovered', () => {
  const faulty = (faults: FaultWindow[], n = 200, outOfRange?: (s: Acceleration) => Acceleration) => {
    const s = readings(n, 21);
    return { s, sensor: new FaultySensor(new ReplaySensor({ source: arraySource(s) }), { faults, outOfRange }) };
  };
  const transitions: CaptureStatus[] = [];
  const setup = (sensor: SensorClass<Acceleration>, extra: Partial<CaptureOptions<Acceleration>> = {}) => {
    transitions.length = 0;
    return accelCapture(sensor, 4, 4, { retries: 3, probeMs: 50, stuckAfter: 8, onStatus: (st) => transitions.push(st), ...extra });
  };

  it('a bus error for two polls: retrying 1 and 2 of 3, then ok; the next window has only samples after the error', () => {
    const { s, sensor } = faulty([{ kind: 'bus-error', after: 10, count: 2 }]);
    const { input, capture } = setup(sensor);
    const r = drive(capture, 20);
    expect(r.states[10]).toMatchObject({ state: 'retrying', fault: 'bus-error', failedPolls: 1, since: 100 });
    expect(r.states[10]!.message).toBe('bus-error: sample() threw: I2C bus error (injected); retrying (1 of 3)');
    expect(r.states[11]).toMatchObject({ state: 'retrying', failedPolls: 2 });
    expect(r.states[12]).toMatchObject({ state: 'ok', fault: null, failedPolls: 0 });
    // Windows at 3 and 7; samples 8, 9 were lost with the ring; 12..15 make the next.
    expect(r.ends).toEqual([3, 7, 15, 19]);
    expect(Array.from(r.features[2]!)).toEqual(expectedInterleaved(s, 12, 4, input));
    expect(transitions.map((t) => [t.state, t.fault])).toEqual([['retrying', 'bus-error'], ['ok', null]]);
  });

  it('a lasting bus error: failed after 3 retries, probed every 50 ms instead of every poll, ok again when it answers', () => {
    const { s, sensor } = faulty([{ kind: 'bus-error', after: 10, count: 30 }]);
    const { input, capture } = setup(sensor);
    const r = drive(capture, 14);
    expect(r.states.slice(10).map((st) => st.state)).toEqual(['retrying', 'retrying', 'retrying', 'failed']);
    expect(capture.status.message).toBe('bus-error: sample() threw: I2C bus error (injected); failed after 4 polls, probing every 50 ms; learning paused');
    expect(capture.hasWindow).toBe(false);
    // While failed: one sample() call per 5 polls (50 ms at 100 Hz).
    const before = sensor.calls;
    drive(capture, 50, 14);
    expect(sensor.calls - before).toBe(10);
    expect(capture.status).toMatchObject({ state: 'failed', fault: 'bus-error', failedPolls: 14 });
    // The fault ends at call 40; the probe that makes it is ok, and 3 more polls make a window of calls 40..43.
    let i = 64;
    while (capture.status.state !== 'ok') capture.poll(10 * i++);
    expect(sensor.calls).toBe(41);
    const r2 = drive(capture, 3, i);
    expect(r2.ends).toEqual([i + 2]);
    expect(Array.from(r2.features[0]!)).toEqual(expectedInterleaved(s, 40, 4, input));
    expect(transitions.map((t) => t.state)).toEqual(['retrying', 'failed', 'ok']);
  });

  it('no data (sample() returns nothing): retrying with that reason, then ok', () => {
    const { sensor } = faulty([{ kind: 'no-data', after: 5, count: 1 }]);
    const { capture } = setup(sensor);
    const r = drive(capture, 8);
    expect(r.states[5]).toMatchObject({ state: 'retrying', fault: 'no-data', message: 'no-data: sample() returned nothing; retrying (1 of 3)' });
    expect(r.states[6]!.state).toBe('ok');
  });

  it('a stuck sensor: failed at the 8th identical reading, probed while stuck, ok at the first reading that differs', () => {
    // Calls 10..29 repeat the reading of call 9.
    const { s, sensor } = faulty([{ kind: 'stuck', after: 10, count: 20 }]);
    const { input, capture } = setup(sensor);
    const r = drive(capture, 17);
    expect(r.states[15]!.state).toBe('ok'); // 7 identical readings (9..15)
    expect(r.states[16]).toMatchObject({ state: 'failed', fault: 'stuck', message: 'stuck: 8 identical readings in a row; learning paused until the readings change' });
    let i = 17;
    while (capture.status.state !== 'ok') capture.poll(10 * i++);
    expect(sensor.calls).toBe(31); // the probe that saw call 30, the first good reading again
    const r2 = drive(capture, 3, i);
    expect(Array.from(r2.features[0]!)).toEqual(expectedInterleaved(s, 30, 4, input));
    expect(transitions.map((t) => [t.state, t.fault])).toEqual([['failed', 'stuck'], ['ok', null]]);
  });

  it('out of range: beyond the configured range, and not finite; both retried and recovered', () => {
    const { sensor } = faulty([{ kind: 'out-of-range', after: 6, count: 1 }], 40, (a) => ({ ...a, y: 50 }));
    const { capture } = setup(sensor, { features: new AccelerometerFeatures({ range: 4 * STANDARD_GRAVITY }) });
    const r = drive(capture, 8);
    expect(r.states[6]).toMatchObject({ state: 'retrying', fault: 'out-of-range' });
    expect(r.states[6]!.message).toContain(`y = 50 m/s^2 is beyond the range +-${4 * STANDARD_GRAVITY}`);
    expect(r.states[7]!.state).toBe('ok');

    const inf = faulty([{ kind: 'out-of-range', after: 2, count: 5 }], 40, saturatedAcceleration);
    const c2 = setup(inf.sensor).capture;
    const r2 = drive(c2, 9);
    expect(r2.states[2]!.message).toBe('out-of-range: x = Infinity; retrying (1 of 3)');
    expect(r2.states[5]!.state).toBe('failed');
    expect(r2.states[6]!.state).toBe('failed'); // not probed yet (50 ms)
    let i = 9;
    while (c2.status.state !== 'ok') c2.poll(10 * i++);
    expect(inf.sensor.calls).toBe(8); // calls 2..6 are bad: the probe at 100 ms gets call 6 (bad), the one at 150 ms call 7 (good)
  });

  it('close(): the sensor is closed, the status says so, polls do nothing', () => {
    const inner = new ReplaySensor({ source: arraySource(readings(10, 2)) });
    const { capture } = setup(inner);
    capture.close();
    expect(capture.status).toMatchObject({ state: 'failed', fault: 'closed' });
    expect(capture.poll(0)).toBe(false);
    expect(() => inner.sample()).toThrow('replay: sample() after close()');
  });
});

describe('recordings replayed from files', () => {
  it('CSV with a header and a NaN reading: the NaN is an out-of-range fault, the other readings are windows', () => {
    const s = readings(12, 9);
    const lines = ['# synthetic recording, m/s^2', 't,x,y,z', ...s.map((a, i) => `${i * 10},${a.x},${i === 5 ? 'nan' : a.y},${a.z}`)];
    const path = join(out, 'recording.csv');
    writeFileSync(path, lines.join('\n') + '\n');
    const { input, capture } = accelCapture(accelerometerReplay(path), 4, 2);
    const r = drive(capture, 12);
    expect(r.states[5]).toMatchObject({ state: 'retrying', fault: 'out-of-range', message: 'out-of-range: y = NaN; retrying (1 of 3)' });
    expect(r.ends).toEqual([3, 9, 11]);
    expect(Array.from(r.features[1]!)).toEqual(expectedInterleaved(s, 6, 4, input));
  });

  it('JSON objects and triples read the same readings; a malformed line is named', () => {
    const s = readings(3, 4);
    expect(parseAccelerometerRecording(JSON.stringify(s))).toEqual(s);
    expect(parseAccelerometerRecording(JSON.stringify(s.map((a) => [a.x, a.y, a.z])))).toEqual(s);
    expect(parseAccelerometerRecording('1,2,3\n4e-1,5,-6\n')).toEqual([{ x: 1, y: 2, z: 3 }, { x: 0.4, y: 5, z: -6 }]);
    expect(() => parseAccelerometerRecording('x,y,z\n1,2,oops\n', 'r.csv')).toThrow("r.csv: line 2: 'oops' is not a number");
    expect(() => parseAccelerometerRecording('a,b\n1,2\n', 'r.csv')).toThrow('r.csv: line 1: the header needs columns named x, y and z, it has a, b');
    expect(() => parseAccelerometerRecording('1,2,3,4\n', 'r.csv')).toThrow('without a header a line is x,y,z; it has 4 columns');
  });
});

describe('the app policy over a capture', () => {
  // Records what the learner asks of the model, and the arena's input at
  // each training step.
  class StubTrainer implements Trainer {
    readonly classes = 3;
    readonly logitScale = 0.1;
    calls: string[] = [];
    trainedOn: Int8Array[] = [];
    constructor(readonly arena: ArenaStub, readonly input: InputTensor) {}
    infer(): Int8Array {
      this.calls.push('infer');
      return Int8Array.of(30, 0, -30); // class 0, confident
    }
    train(label: number): void {
      this.calls.push(`train ${label}`);
      this.trainedOn.push(new Int8Array(this.arena.bytes.slice(this.input.offset, this.input.offset + this.input.bytes).buffer));
    }
  }

  it('learning pauses while the sensor has failed; inference and labels resume after it recovers', () => {
    const { sensor } = faulty21([{ kind: 'bus-error', after: 20, count: 30 }]);
    const { arena, input, capture } = accelCapture(sensor, 4, 4, { retries: 3, probeMs: 50 });
    const trainer = new StubTrainer(arena, input);
    const messages: string[] = [];
    const learner = new OnlineLearner(trainer, capture, { report: (m) => messages.push(m) });
    const step = (i: number) => {
      if (capture.poll(10 * i)) learner.onWindow();
    };
    for (let i = 0; i < 10; i++) step(i); // windows at 3 and 7
    expect(trainer.calls).toEqual(['infer', 'infer']);
    expect(learner.label(1, 'console')).toEqual({ accepted: true, message: 'window 2 trained on label 1 (console)' });
    expect(trainer.trainedOn[0]).toEqual(capture.features);
    for (let i = 10; i < 30; i++) step(i);
    expect(capture.status.state).toBe('failed');
    const callsWhileFailed = trainer.calls.length;
    const paused = learner.label(2, 'button');
    expect(paused.accepted).toBe(false);
    expect(paused.message).toMatch(/^label 2 not used: learning is paused while the sensor is failed \(bus-error: /);
    learner.press();
    expect(trainer.calls.length).toBe(callsWhileFailed); // no step, no inference
    let i = 30;
    while (capture.status.state !== 'ok') step(i++);
    expect(learner.label(2, 'console').message).toBe('label 2 not used: no window since the sensor recovered');
    const windowsBefore = capture.windows;
    while (capture.windows === windowsBefore) step(i++);
    expect(learner.label(2, 'console').accepted).toBe(true);
    expect(trainer.calls.filter((c) => c.startsWith('train'))).toEqual(['train 1', 'train 2']);
    expect(learner.rejected).toBe(3);
    expect(messages).toContain(paused.message);
  });

  function faulty21(faults: FaultWindow[]) {
    return { sensor: new FaultySensor(new ReplaySensor({ source: arraySource(readings(200, 21)) }), { faults }) };
  }

  // A 16-sample 3-axis window -> FULLY_CONNECTED -> 3 logits -> SOFTMAX.
  function tinyModel(): Uint8Array {
    const rng = new Xorshift32(17);
    const inF = 48, classes = 3, sIn = Math.fround(0.07), sW = Math.fround(0.01);
    return buildTflite({
      tensors: [
        { name: 'window', shape: [1, inF], scale: [sIn], zeroPoint: [-3] },
        { name: 'w', shape: [classes, inF], scale: [sW], zeroPoint: [0], data: int8Bytes(Array.from({ length: classes * inF }, () => rng.int(-60, 60))) },
        { name: 'b', type: tfl.TensorType.INT32, shape: [classes], scale: [sIn * sW], data: int32Bytes([100, -50, 0]) },
        { name: 'logits', shape: [1, classes], scale: [Math.fround(0.05)], zeroPoint: [0] },
        { name: 'probs', shape: [1, classes], scale: [1 / 256], zeroPoint: [-128] },
      ],
      ops: [
        { builtin: tfl.BuiltinOperator.FULLY_CONNECTED, inputs: [0, 1, 2], outputs: [3] },
        { builtin: tfl.BuiltinOperator.SOFTMAX, inputs: [3], outputs: [4], softmaxBeta: 1 },
      ],
      inputs: [0],
      outputs: [4],
    });
  }

  for (const Dispatch of [ReferenceDispatch, NodeDispatch]) it(`a real plan (${Dispatch === NodeDispatch ? 'C kernels' : 'TypeScript reference kernels'}): ` +
    'an unlabelled window is one inference, a labelled one is one training step on that window', () => {
    const model = importTflite(tinyModel(), 'accel-tiny');
    const { plan, blob } = compilePlan(model, { scheme: { biasLayers: 1, weights: [] }, reorder: true, lr: 2 ** -6, lrBias: 2 ** -6 });
    const load = () => PlanRuntime.load(new Dispatch(new ArrayBuffer(plan.arenaBytes), new ArrayBuffer(plan.flash.length)), blob);
    const rt = load(), shadow = load(); // shadow: the same steps through step()/infer() with explicit inputs
    expect(plan.io.input.bytes).toBe(48);

    const s = readings(64, 33);
    const path = join(out, 'plan-recording.json');
    writeFileSync(path, JSON.stringify(s));
    const capture = new Capture(accelerometerReplay(path), {
      features: new AccelerometerFeatures(), input: plan.io.input, arena: rt.dispatch, size: 16, hop: 8, rateHz: 50,
    });
    const learner = new OnlineLearner(planTrainer(rt), capture);
    const initial = rt.regionsCrc();
    let t = 0;
    const nextWindow = () => {
      while (!capture.poll(t)) t += 20;
      t += 20;
      return learner.onWindow();
    };

    // Unlabelled windows: inference only, the trainable regions do not change.
    for (let w = 0; w < 3; w++) {
      const o = nextWindow();
      expect(o.trained).toBe(null);
      const output = shadow.infer(capture.features);
      expect(Array.from(rt.logits())).toEqual(Array.from(shadow.logits()));
      // The prediction's confidence is the plan's own softmax output.
      expect(o.prediction).toEqual(predict(shadow.logits(), plan.io.logits.scale));
      expect(o.prediction.confidenceQ8).toBe(output[o.prediction.label]! + 128);
    }
    expect(rt.regionsCrc()).toBe(initial);
    expect(learner.inferences).toBe(3);

    // A label: one step on the last window's features, byte for byte the
    // step the shadow takes on them.
    const features = capture.features.slice();
    expect(learner.label(2, 'console').accepted).toBe(true);
    shadow.step(features, 2);
    expect(rt.regionsCrc()).not.toBe(initial);
    expect(rt.regionsCrc()).toBe(shadow.regionsCrc());
    expect(learner.steps).toBe(1);

    // The next windows are inferences again; a second label for the same window is refused.
    const after = rt.regionsCrc();
    nextWindow();
    nextWindow();
    expect(rt.regionsCrc()).toBe(after);
    expect(learner.label(0, 'console').accepted).toBe(true);
    expect(learner.label(1, 'console').message).toBe(`label 1 not used: window ${capture.windows} already has a label`);
    expect(learner.label(3, 'console').message).toBe('label 3 rejected: the head has 3 classes (labels 0 to 2)');
    expect(learner.steps).toBe(2);
  });
});
