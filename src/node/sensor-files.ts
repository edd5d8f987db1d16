// Node adapter: replayed sensors from files: an accelerometer recording
// (JSON or CSV, src/core/sensor-replay.ts) and MNIST digits as camera
// frames. They implement the ECMA-419 sensor class interface the device's
// drivers have, so the capture and the app run on them unchanged.

import { readFileSync } from 'node:fs';
import type { Acceleration, Frame } from '../core/sensor.js';
import { type ImageFrameOptions, ReplaySensor, arraySource, imageFrames, parseAccelerometerRecording } from '../core/sensor-replay.js';
import { loadMnist } from './mnist.js';

export function loadAccelerometerRecording(path: string): Acceleration[] {
  return parseAccelerometerRecording(readFileSync(path, 'utf8'), path);
}

export function accelerometerReplay(path: string, o: { loop?: boolean; onSample?: () => void } = {}): ReplaySensor<Acceleration> {
  return new ReplaySensor({ source: arraySource(loadAccelerometerRecording(path)), ...o });
}

// MNIST images at `indices` of a split as 28x28 frames (or centred on
// size x size), replayed in that order.
export function mnistFrameReplay(split: 'train' | 'test', indices: readonly number[],
  o: ImageFrameOptions & { loop?: boolean; onSample?: () => void } = {}): ReplaySensor<Frame> {
  const { loop, onSample, ...frames } = o;
  return new ReplaySensor({ source: imageFrames(loadMnist(split), indices, frames), loop, onSample });
}
