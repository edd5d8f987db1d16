// Sensor capture: samples from an ECMA-419 sensor class -> a ring buffer ->
// windows (size, hop) -> int8 features written straight into the plan's
// input tensor in the arena, with the input's quantisation.
// Platform-free: nothing here imports a Moddable or Node module, reads a
// clock or sets a timer. The caller passes the time (ms) to poll() and
// decides when to call it: on a device a Moddable Timer.repeat at the
// capture's period or the sensor's onSample callback; on a host a loop over
// a replayed recording (src/node/sensor-replay.ts) or the fakes in
// sensor-fakes.ts.
//
// Faults (a sensor on a loose wire, a locked bus, a saturated part) never
// throw out of poll(): they become the capture's status, which the app
// reads to pause learning while it keeps running:
//   ok        samples arrive and are valid;
//   retrying  the last `retries` polls or fewer failed (sample() threw:
//             bus error; returned nothing: no data; a value was not finite
//             or beyond the range: out of range);
//   failed    more than `retries` polls in a row failed, or the sensor
//             returned the same reading `stuckAfter` times (stuck). While
//             failed the capture probes the sensor every `probeMs` instead
//             of every poll, and returns to ok on the first good sample.
// Any fault empties the ring: a window never spans a gap, so the first
// window after a recovery comes `size` good samples later.

import type { PlanTensor } from './plan-format.js';

// ---- the ECMA-419 sensor class, as far as the app depends on it --------------

// An instance of a sensor class (ECMA-419 "Sensor Class Pattern"): configure
// changes how it samples (the LIS3DH driver of the Moddable SDK takes
// {rate, range, enable, lowPower}), sample() returns the current reading or
// throws when the bus fails, close() releases it (afterwards every other
// method throws).
export interface SensorClass<S> {
  configure(options: object): void;
  sample(): S | undefined;
  close(): void;
}

// The constructor's options object: `sensor` names the bus the driver talks
// over (for the LIS3DH: {...device.I2C.default, io: device.io.SMBus});
// onError is called on a non-recoverable error; onSample, where the driver
// supports it, when a new sample is ready (the app then calls poll()).
export interface SensorClassOptions {
  sensor?: object;
  onError?: (error?: unknown) => void;
  onSample?: () => void;
}

export type SensorConstructor<S, O extends SensorClassOptions = SensorClassOptions> = new (options: O) => SensorClass<S>;

// An accelerometer sample as the SDK's LIS3DH driver returns it: m/s^2 per
// axis (raw int16 * full scale / 2^15 * 9.80665). With no axis enabled that
// driver returns {}: a sample without x, y and z counts as no data.
export interface Acceleration {
  x: number;
  y: number;
  z: number;
}

export const STANDARD_GRAVITY = 9.80665; // m/s^2 per g

// A camera frame (or a replayed image): grayscale bytes, row-major.
export interface Frame {
  width: number;
  height: number;
  pixels: Uint8Array;
}

// ---- feature paths -------------------------------------------------------------

// The plan's input as the capture needs it (PlanIo.input).
export type InputTensor = PlanTensor & { shape: readonly number[] };

export type FaultKind = 'bus-error' | 'no-data' | 'out-of-range' | 'stuck' | 'closed';

export interface SampleFault {
  kind: FaultKind;
  message: string;
}

export type Ring = Float64Array | Uint8Array;

// How one kind of sample is checked, kept and turned into int8 features.
// A window is `size` samples of `values` numbers each; the ring holds them
// oldest first from slot `first` (wrapping).
export interface FeaturePath<S> {
  readonly values: number; // numbers per sample in the ring
  inputBytes(size: number): number; // int8 features of one window
  ring(size: number): Ring;
  check(sample: S): SampleFault | null; // null: the sample is usable
  same(sample: S, ring: Ring, slot: number): boolean; // equal to the sample kept at slot
  store(sample: S, ring: Ring, slot: number): void;
  quantize(ring: Ring, first: number, size: number, input: InputTensor, out: Int8Array): void;
}

// int8 of a real value at (scale, zero point): round half away from zero
// (TFLite's input quantisation), then saturate.
export function quantizeReal(real: number, scale: number, zeroPoint: number): number {
  const r = real / scale;
  const q = (r < 0 ? -Math.round(-r) : Math.round(r)) + zeroPoint;
  return q < -128 ? -128 : q > 127 ? 127 : q;
}

export interface AccelerometerFeatureOptions {
  // Largest |reading| in m/s^2 that is believed (default 16 g, the widest
  // full scale of the LIS3DH: set it to the range the sensor is configured
  // for to catch a saturated axis). Beyond it, or not finite: out of range.
  range?: number;
  // 'interleaved' (x0 y0 z0 x1 ...: an input of shape [.., N, 3]) or
  // 'planar' (x0 .. xN-1 y0 .. z0 ..: shape [.., 3, N]). Default interleaved.
  layout?: 'interleaved' | 'planar';
  // 'center' subtracts each axis's mean over the window (removes gravity
  // and a slow tilt); default 'none'.
  normalize?: 'none' | 'center';
  // The feature is (reading - mean) * gain in the input's real units;
  // default 1 (m/s^2). 1 / STANDARD_GRAVITY gives g.
  gain?: number;
}

const AXES = ['x', 'y', 'z'] as const;

// Accelerometer windows: 3 axes x N samples.
export class AccelerometerFeatures implements FeaturePath<Acceleration> {
  readonly values = 3;
  readonly range: number;
  readonly layout: 'interleaved' | 'planar';
  readonly normalize: 'none' | 'center';
  readonly gain: number;
  private readonly mean = new Float64Array(3);

  constructor(o: AccelerometerFeatureOptions = {}) {
    this.range = o.range ?? 16 * STANDARD_GRAVITY;
    this.layout = o.layout ?? 'interleaved';
    this.normalize = o.normalize ?? 'none';
    this.gain = o.gain ?? 1;
    if (!(this.range > 0)) throw new RangeError(`accelerometer range ${this.range} m/s^2 must be positive`);
    if (!(this.gain > 0) || !Number.isFinite(this.gain)) throw new RangeError(`accelerometer gain ${this.gain} must be positive and finite`);
  }

  inputBytes(size: number): number {
    return 3 * size;
  }

  ring(size: number): Float64Array {
    return new Float64Array(3 * size);
  }

  check(s: Acceleration): SampleFault | null {
    for (const a of AXES) {
      const v = (s as Partial<Acceleration>)[a];
      if (typeof v !== 'number') return { kind: 'no-data', message: `the sample has no ${a} reading` };
      if (!Number.isFinite(v)) return { kind: 'out-of-range', message: `${a} = ${v}` };
      if (Math.abs(v) > this.range) return { kind: 'out-of-range', message: `${a} = ${v} m/s^2 is beyond the range +-${this.range}` };
    }
    return null;
  }

  same(s: Acceleration, ring: Ring, slot: number): boolean {
    return ring[3 * slot] === s.x && ring[3 * slot + 1] === s.y && ring[3 * slot + 2] === s.z;
  }

  store(s: Acceleration, ring: Ring, slot: number): void {
    ring[3 * slot] = s.x;
    ring[3 * slot + 1] = s.y;
    ring[3 * slot + 2] = s.z;
  }

  quantize(ring: Ring, first: number, size: number, input: InputTensor, out: Int8Array): void {
    const mean = this.mean.fill(0);
    if (this.normalize === 'center') {
      for (let i = 0; i < size; i++) {
        const at = 3 * ((first + i) % size);
        for (let a = 0; a < 3; a++) mean[a] += ring[at + a]!;
      }
      for (let a = 0; a < 3; a++) mean[a] /= size;
    }
    const planar = this.layout === 'planar';
    for (let i = 0; i < size; i++) {
      const at = 3 * ((first + i) % size);
      for (let a = 0; a < 3; a++) {
        const real = (ring[at + a]! - mean[a]!) * this.gain;
        out[planar ? a * size + i : 3 * i + a] = quantizeReal(real, input.scale, input.zeroPoint);
      }
    }
  }
}

export interface FrameFeatureOptions {
  width: number;
  height: number;
  // The pixel's real value as the model was trained on it:
  // real = byte * byteScale + byteOffset (1/255 and 0 for [0, 1] images;
  // 1/128 and -1 for [-1, 1)). Required, as for uint8 calibration files.
  byteScale: number;
  byteOffset: number;
}

// Image windows: one frame already at the input's size (grayscale, one
// byte a pixel). The byte -> int8 mapping is a 256-entry table made once.
export class FrameFeatures implements FeaturePath<Frame> {
  readonly values: number;
  private table: Int8Array | null = null;
  private tableFor: InputTensor | null = null;

  constructor(readonly o: FrameFeatureOptions) {
    if (!(o.width > 0 && o.height > 0) || !Number.isInteger(o.width) || !Number.isInteger(o.height)) {
      throw new RangeError(`frame size ${o.width}x${o.height} must be positive integers`);
    }
    if (!Number.isFinite(o.byteScale) || o.byteScale === 0 || !Number.isFinite(o.byteOffset)) {
      throw new RangeError(`frame byte mapping (byteScale ${o.byteScale}, byteOffset ${o.byteOffset}) must be finite, byteScale nonzero`);
    }
    this.values = o.width * o.height;
  }

  inputBytes(size: number): number {
    return this.values * size;
  }

  ring(size: number): Uint8Array {
    return new Uint8Array(this.values * size);
  }

  check(f: Frame): SampleFault | null {
    if (!f || !(f.pixels instanceof Uint8Array)) return { kind: 'no-data', message: 'the sample has no pixels' };
    if (f.width !== this.o.width || f.height !== this.o.height || f.pixels.length !== this.values) {
      return { kind: 'out-of-range', message: `frame ${f.width}x${f.height} (${f.pixels.length} bytes), the input needs ${this.o.width}x${this.o.height}` };
    }
    return null;
  }

  same(f: Frame, ring: Ring, slot: number): boolean {
    const at = slot * this.values;
    for (let i = 0; i < this.values; i++) if (ring[at + i] !== f.pixels[i]) return false;
    return true;
  }

  store(f: Frame, ring: Ring, slot: number): void {
    (ring as Uint8Array).set(f.pixels, slot * this.values);
  }

  // The int8 feature of each byte value under the input's quantisation.
  byteTable(input: InputTensor): Int8Array {
    if (this.table && this.tableFor === input) return this.table;
    const t = new Int8Array(256);
    for (let b = 0; b < 256; b++) t[b] = quantizeReal(b * this.o.byteScale + this.o.byteOffset, input.scale, input.zeroPoint);
    this.table = t;
    this.tableFor = input;
    return t;
  }

  quantize(ring: Ring, first: number, size: number, input: InputTensor, out: Int8Array): void {
    const t = this.byteTable(input), n = this.values;
    for (let i = 0; i < size; i++) {
      const from = ((first + i) % size) * n, to = i * n;
      for (let p = 0; p < n; p++) out[to + p] = t[ring[from + p]!]!;
    }
  }
}

// ---- the capture -----------------------------------------------------------------

export type CaptureState = 'ok' | 'retrying' | 'failed';

export interface CaptureStatus {
  state: CaptureState;
  fault: FaultKind | null; // the last fault while not ok
  message: string; // what a user reads: "ok", or the fault and what the capture does about it
  failedPolls: number; // polls in a row that gave no usable sample
  since: number; // poll time (ms) the state began
}

// Where the features go: the arena's write (Dispatch.write) and the plan's
// input tensor (PlanRuntime.plan.io.input).
export interface ArenaWriter {
  write(offset: number, bytes: Uint8Array): void;
}

export interface CaptureOptions<S> {
  features: FeaturePath<S>;
  input: InputTensor;
  arena: ArenaWriter;
  size: number; // samples a window
  hop: number; // samples between window starts (hop < size: windows overlap)
  // Sampling rate; poll() takes a sample only when one is due (at most one
  // per call). 0: every poll() samples (the sensor's onSample sets the pace).
  rateHz?: number;
  retries?: number; // failed polls in a row that stay "retrying" (default 3)
  stuckAfter?: number; // identical readings in a row that mean stuck (default 16; 0: never)
  probeMs?: number; // while failed, the interval between probes (default 1000)
  onStatus?: (status: CaptureStatus) => void; // called on every change of state or fault
}

export class Capture<S> {
  readonly size: number;
  readonly hop: number;
  readonly periodMs: number;
  readonly retries: number;
  readonly stuckAfter: number;
  readonly probeMs: number;
  // The last window's int8 features, exactly the bytes written to the input.
  readonly features: Int8Array;
  private readonly featureBytes: Uint8Array;
  private readonly ring: Ring;
  private readonly path: FeaturePath<S>;
  private head = 0; // next slot to write
  private filled = 0; // samples in the ring since it was last emptied
  private sinceWindow: number; // samples since the last window (hop after the ring is emptied: the next full ring is a window)
  private repeats = 0; // identical readings in a row (stuck detection)
  private hasLast = false; // the slot before head holds the previous reading
  private nextDue: number | null = null;
  private lastProbe = -Infinity;
  private windowFresh = false;
  private closed = false;
  samples = 0; // usable samples taken
  windows = 0; // windows produced
  private current: CaptureStatus = { state: 'ok', fault: null, message: 'ok', failedPolls: 0, since: 0 };

  constructor(readonly sensor: SensorClass<S>, readonly o: CaptureOptions<S>) {
    const { size, hop } = o;
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`window size ${size} must be a positive integer`);
    if (!Number.isInteger(hop) || hop < 1) throw new RangeError(`window hop ${hop} must be a positive integer`);
    const bytes = o.features.inputBytes(size);
    if (bytes !== o.input.bytes) {
      throw new RangeError(`a window of ${size} sample(s) gives ${bytes} int8 features; the plan's input is int8[${o.input.shape.join('x')}] = ` +
        `${o.input.bytes} bytes: make the window match the model's input`);
    }
    if (!(o.input.scale > 0) || !Number.isFinite(o.input.scale)) throw new RangeError(`the plan's input scale ${o.input.scale} must be positive and finite`);
    const rate = o.rateHz ?? 0;
    if (!(rate >= 0) || !Number.isFinite(rate)) throw new RangeError(`sample rate ${rate} Hz must be finite and >= 0`);
    this.size = size;
    this.hop = hop;
    this.periodMs = rate > 0 ? 1000 / rate : 0;
    this.retries = o.retries ?? 3;
    this.stuckAfter = o.stuckAfter ?? 16;
    this.probeMs = o.probeMs ?? 1000;
    this.path = o.features;
    this.ring = o.features.ring(size);
    this.features = new Int8Array(bytes);
    this.featureBytes = new Uint8Array(this.features.buffer);
    this.sinceWindow = hop;
  }

  get status(): CaptureStatus {
    return this.current;
  }

  // True while the last window is valid data: produced, and no fault since.
  get hasWindow(): boolean {
    return this.windowFresh;
  }

  // Milliseconds until the next sample is due (0: now); for a Timer.
  dueIn(now: number): number {
    return this.nextDue === null ? 0 : Math.max(0, this.nextDue - now);
  }

  // Takes at most one sample when one is due; true when it completed a
  // window (its features are then in the arena's input and in `features`).
  poll(now: number): boolean {
    if (this.closed) return false;
    if (this.periodMs > 0) {
      if (this.nextDue !== null && now < this.nextDue) return false;
      // Keep the grid; after a stall of more than a period, restart it.
      this.nextDue = this.nextDue === null || now - this.nextDue >= this.periodMs ? now + this.periodMs : this.nextDue + this.periodMs;
    }
    if (this.current.state === 'failed' && now - this.lastProbe < this.probeMs) return false;
    this.lastProbe = now;

    let sample: S | undefined;
    try {
      sample = this.sensor.sample();
    } catch (e) {
      this.fail(now, { kind: 'bus-error', message: `sample() threw: ${e instanceof Error ? e.message : String(e)}` });
      return false;
    }
    if (sample === undefined || sample === null) {
      this.fail(now, { kind: 'no-data', message: 'sample() returned nothing' });
      return false;
    }
    const fault = this.path.check(sample);
    if (fault) {
      this.fail(now, fault);
      return false;
    }
    const prev = (this.head + this.size - 1) % this.size;
    if (this.hasLast && this.path.same(sample, this.ring, prev)) this.repeats++;
    else this.repeats = 1;
    // (With stuckAfter > size the first readings of a stuck run can still
    // make a window before the run is long enough to be called stuck.)
    if (this.stuckAfter > 0 && this.repeats >= this.stuckAfter) {
      this.emptyRing();
      this.hasLast = true; // keep the stuck reading to compare against
      this.setState(now, 'failed', { kind: 'stuck', message: `${this.repeats} identical readings in a row` }, 0);
      return false;
    }
    this.path.store(sample, this.ring, this.head);
    this.head = (this.head + 1) % this.size;
    this.hasLast = true;
    this.samples++;
    if (this.current.state !== 'ok') this.setState(now, 'ok', null, 0);
    if (this.filled < this.size) this.filled++;
    this.sinceWindow++;
    if (this.filled < this.size || this.sinceWindow < this.hop) return false;
    this.sinceWindow = 0;
    this.windows++;
    this.path.quantize(this.ring, this.head, this.size, this.o.input, this.features);
    this.writeInput();
    this.windowFresh = true;
    return true;
  }

  // Writes the last window's features into the arena's input again (a
  // step or an inference may reuse the input's bytes once it has read them).
  writeInput(): void {
    this.o.arena.write(this.o.input.offset, this.featureBytes);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.windowFresh = false;
    this.setState(this.current.since, 'failed', { kind: 'closed', message: 'the capture was closed' }, this.current.failedPolls);
    this.sensor.close();
  }

  private emptyRing(): void {
    this.filled = 0;
    this.sinceWindow = this.hop;
    this.windowFresh = false;
  }

  private fail(now: number, fault: SampleFault): void {
    this.emptyRing();
    this.hasLast = false;
    this.repeats = 0;
    const failed = this.current.failedPolls + 1;
    this.setState(now, failed > this.retries ? 'failed' : 'retrying', fault, failed);
  }

  private setState(now: number, state: CaptureState, fault: SampleFault | null, failedPolls: number): void {
    const before = this.current;
    const changed = before.state !== state || before.fault !== (fault?.kind ?? null);
    let message = 'ok';
    if (fault && state === 'retrying') message = `${fault.kind}: ${fault.message}; retrying (${failedPolls} of ${this.retries})`;
    if (fault && state === 'failed') {
      message = fault.kind === 'closed' ? fault.message
        : fault.kind === 'stuck' ? `stuck: ${fault.message}; learning paused until the readings change`
        : `${fault.kind}: ${fault.message}; failed after ${failedPolls} polls, probing every ${this.probeMs} ms; learning paused`;
    }
    this.current = { state, fault: fault?.kind ?? null, message, failedPolls, since: changed ? now : before.since };
    if (changed) this.o.onStatus?.(this.current);
  }
}
