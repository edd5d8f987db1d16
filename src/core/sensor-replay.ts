// Replayed sensors: recorded accelerometer readings or a set of images
// behind the same ECMA-419 sensor class interface the device's drivers
// have (sensor.ts SensorClass), so the capture and the app run unchanged on
// a host. Platform-free (the XS host replays too); reading the files is
// src/node/sensor-files.ts.

import type { ImageSet } from './idx.js';
import type { Acceleration, Frame, SensorClass, SensorClassOptions } from './sensor.js';

// Samples by index, without holding them all as objects.
export interface ReplaySource<S> {
  readonly length: number;
  get(index: number): S;
}

export function arraySource<S>(samples: readonly S[]): ReplaySource<S> {
  return { length: samples.length, get: (i) => samples[i]! };
}

export interface ReplayOptions<S> extends SensorClassOptions {
  source: ReplaySource<S>;
  loop?: boolean; // start again at the end (default: the end gives no data)
}

export class ReplaySensor<S> implements SensorClass<S> {
  position = 0; // the next sample's index
  configured: object = {};
  private closed = false;

  constructor(readonly o: ReplayOptions<S>) {
    if (o.source.length < 1) throw new RangeError('replay: the recording has no samples');
  }

  configure(options: object): void {
    this.check('configure');
    this.configured = { ...this.configured, ...options };
  }

  sample(): S | undefined {
    this.check('sample');
    if (this.position >= this.o.source.length) {
      if (!this.o.loop) return undefined;
      this.position = 0;
    }
    return this.o.source.get(this.position++);
  }

  close(): void {
    this.closed = true;
  }

  // The pushed mode of a driver with a data-ready interrupt: calls
  // onSample (which should poll the capture). False at the end.
  tick(): boolean {
    if (this.closed || (!this.o.loop && this.position >= this.o.source.length)) return false;
    this.o.onSample?.();
    return true;
  }

  private check(what: string): void {
    if (this.closed) throw new Error(`replay: ${what}() after close()`);
  }
}

export interface ImageFrameOptions {
  width?: number; // of the stored images (default: the side of a square image)
  height?: number;
  // Centre each image on a size x size frame of `background` (default: the
  // image's own size), for a model whose input is larger than the images.
  size?: number;
  background?: number;
}

// The images of `set` at `indices` as grayscale frames.
export function imageFrames(set: ImageSet, indices: readonly number[], o: ImageFrameOptions = {}): ReplaySource<Frame> {
  const side = Math.round(Math.sqrt(set.pixels));
  const w = o.width ?? side, h = o.height ?? side;
  if (w * h !== set.pixels) throw new RangeError(`images have ${set.pixels} pixels, not ${w}x${h}: give width and height`);
  const W = o.size ?? w, H = o.size ?? h;
  if (W < w || H < h) throw new RangeError(`frame size ${W}x${H} is smaller than the ${w}x${h} images`);
  for (const i of indices) if (!(i >= 0 && i < set.count)) throw new RangeError(`image index ${i} is outside the set (${set.count} images)`);
  const x0 = (W - w) >> 1, y0 = (H - h) >> 1;
  return {
    length: indices.length,
    get(k) {
      const img = set.image(indices[k]!);
      if (W === w && H === h) return { width: w, height: h, pixels: img.slice() };
      const pixels = new Uint8Array(W * H).fill(o.background ?? 0);
      for (let y = 0; y < h; y++) pixels.set(img.subarray(y * w, (y + 1) * w), (y + y0) * W + x0);
      return { width: W, height: H, pixels };
    },
  };
}

// A recording of accelerometer readings (m/s^2), as text:
//   JSON: an array of {"x", "y", "z"} objects or of [x, y, z] triples;
//   CSV: one reading a line, a header naming the columns x, y and z (others,
//   e.g. a time column, are ignored), or no header and exactly x,y,z.
//   Blank lines and lines starting with # are skipped; nan, inf and -inf
//   are read as such (a recording may hold a fault).
export function parseAccelerometerRecording(text: string, what = 'recording'): Acceleration[] {
  const fail = (msg: string): never => {
    throw new Error(`${what}: ${msg}`);
  };
  const body = text.trim();
  if (body.startsWith('[')) {
    let data: unknown;
    try {
      data = JSON.parse(body);
    } catch (e) {
      return fail(`not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(data)) return fail('JSON is not an array');
    return data.map((r: unknown, i) => {
      const v = Array.isArray(r) ? r : r && typeof r === 'object' ? [(r as Record<string, unknown>).x, (r as Record<string, unknown>).y, (r as Record<string, unknown>).z] : [];
      if (v.length !== 3 || v.some((n) => typeof n !== 'number')) fail(`reading ${i} is not {x, y, z} or [x, y, z] numbers`);
      return { x: v[0] as number, y: v[1] as number, z: v[2] as number };
    });
  }
  const num = (tok: string, line: number): number => {
    const t = tok.trim().toLowerCase();
    if (t === 'nan') return NaN;
    if (t === 'inf' || t === '+inf' || t === 'infinity') return Infinity;
    if (t === '-inf' || t === '-infinity') return -Infinity;
    const v = t === '' ? NaN : Number(t);
    return Number.isNaN(v) ? fail(`line ${line}: '${tok.trim()}' is not a number`) : v;
  };
  const lines = text.split(/\r?\n/);
  let cols: [number, number, number] | null = null;
  const out: Acceleration[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const cells = line.split(',');
    if (cols === null) {
      if (/[a-z]/i.test(line.replace(/nan|inf(inity)?|e[+-]?\d/gi, ''))) {
        const names = cells.map((c) => c.trim().toLowerCase());
        const at = (['x', 'y', 'z'] as const).map((a) => names.indexOf(a));
        if (at.some((k) => k < 0)) fail(`line ${i + 1}: the header needs columns named x, y and z, it has ${names.join(', ')}`);
        cols = at as [number, number, number];
        continue;
      }
      if (cells.length !== 3) fail(`line ${i + 1}: without a header a line is x,y,z; it has ${cells.length} columns (add a header naming x, y and z)`);
      cols = [0, 1, 2];
    }
    const need = Math.max(...cols) + 1;
    if (cells.length < need) fail(`line ${i + 1}: ${cells.length} columns, the header names ${need}`);
    out.push({ x: num(cells[cols[0]]!, i + 1), y: num(cells[cols[1]]!, i + 1), z: num(cells[cols[2]]!, i + 1) });
  }
  if (out.length === 0) fail('no readings');
  return out;
}
