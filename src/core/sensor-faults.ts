// Fakes for the faults a deployed sensor meets, behind the ECMA-419 sensor
// class interface (sensor.ts SensorClass), and a fake digital input for the
// button. Platform-free: host tests and the XS host use them alike.

import type { Acceleration, SensorClass } from './sensor.js';

export type InjectedFault = 'bus-error' | 'no-data' | 'stuck' | 'out-of-range';

// From sample() call number `after` (0-based, counted over every call), the
// next `count` calls fail this way; afterwards the sensor recovers.
export interface FaultWindow {
  kind: InjectedFault;
  after: number;
  count: number;
}

export interface FaultySensorOptions<S> {
  faults: readonly FaultWindow[];
  // How an out-of-range reading looks (needed when a fault is out-of-range).
  outOfRange?: (sample: S) => S;
}

// An accelerometer reading that no configured range allows.
export const saturatedAcceleration = (s: Acceleration): Acceleration => ({ ...s, x: Number.POSITIVE_INFINITY });

// Wraps a sensor and injects faults. Every call still takes one sample of
// the wrapped sensor (time passes for a replay while the bus is down):
//   bus-error     sample() throws, as an SMBus read on a dead bus does;
//   no-data       sample() returns undefined;
//   stuck         sample() returns the last good reading again;
//   out-of-range  sample() returns outOfRange(reading).
export class FaultySensor<S> implements SensorClass<S> {
  calls = 0;
  private lastGood: S | undefined = undefined;

  constructor(readonly inner: SensorClass<S>, readonly o: FaultySensorOptions<S>) {
    for (const f of o.faults) {
      if (!(Number.isInteger(f.after) && f.after >= 0 && Number.isInteger(f.count) && f.count >= 0)) {
        throw new RangeError(`fault ${f.kind}: after ${f.after} and count ${f.count} must be whole numbers >= 0`);
      }
      if (f.kind === 'out-of-range' && !o.outOfRange) throw new RangeError('an out-of-range fault needs the outOfRange option');
    }
  }

  // The fault of call number `call`, if any.
  faultAt(call: number): InjectedFault | null {
    for (const f of this.o.faults) if (call >= f.after && call < f.after + f.count) return f.kind;
    return null;
  }

  configure(options: object): void {
    this.inner.configure(options);
  }

  sample(): S | undefined {
    const fault = this.faultAt(this.calls++);
    const s = this.inner.sample();
    switch (fault) {
      case 'bus-error':
        throw new Error('I2C bus error (injected)');
      case 'no-data':
        return undefined;
      case 'stuck':
        if (this.lastGood === undefined) this.lastGood = s;
        return this.lastGood;
      case 'out-of-range':
        return s === undefined ? undefined : this.o.outOfRange!(s);
      default:
        if (s !== undefined) this.lastGood = s;
        return s;
    }
  }

  close(): void {
    this.inner.close();
  }
}

// embedded:io/digital as an input the test drives: set(level) changes the
// pin and calls onReadable on the edges it was constructed for (Rising 1,
// Falling 2, as Moddable's Digital.Rising/Falling; default both).
export class FakeDigital {
  static readonly Rising = 1;
  static readonly Falling = 2;
  private level: 0 | 1;
  private closed = false;

  constructor(readonly o: { level?: 0 | 1; edge?: number; onReadable?: (this: FakeDigital) => void }) {
    this.level = o.level ?? 1;
  }

  read(): 0 | 1 {
    if (this.closed) throw new Error('digital: read() after close()');
    return this.level;
  }

  set(level: 0 | 1): void {
    if (level === this.level) return;
    this.level = level;
    const edge = level ? FakeDigital.Rising : FakeDigital.Falling;
    if (!this.closed && ((this.o.edge ?? 3) & edge)) this.o.onReadable?.call(this);
  }

  close(): void {
    this.closed = true;
  }
}
