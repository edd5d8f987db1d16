// Device adapter: the Moddable SDK's LIS3DH driver
// (embedded:sensor/Accelerometer/LIS3DH, an ECMA-419 sensor class from the
// SDK's modules/drivers/sensors/lis3dh, included by the manifest) on the
// board's default I2C bus, as the core's SensorClass (src/core/sensor.ts).

import LIS3DH from 'embedded:sensor/Accelerometer/LIS3DH';
import type { Acceleration, SensorClass } from '../core/sensor.js';

// The driver's output data rates (CTRL_REG1 ODR codes) in Hz.
const ODR: readonly (readonly [number, number])[] = [[1, 0b0001], [10, 0b0010], [25, 0b0011], [50, 0b0100], [100, 0b0101], [200, 0b0110], [400, 0b0111]];

// The slowest output data rate at least rateHz (the capture polls at
// rateHz; the part must have a new reading each time).
export function lis3dhRateCode(rateHz: number): number {
  for (const [hz, code] of ODR) if (hz >= rateHz) return code;
  throw new RangeError(`LIS3DH: ${rateHz} Hz is above its fastest normal-mode rate, 400 Hz`);
}

// Full scale code and range in m/s^2 (2 g, 4 g, 8 g, 16 g).
export const LIS3DH_RANGE_4G = { code: 1, metersPerSecond2: 4 * 9.80665 } as const;

export interface Lis3dhWiring {
  address: number; // 0x18 (SDO low) or 0x19
  rateHz: number;
  onError?: (error?: unknown) => void;
}

// Opens the sensor on device.I2C.default (the board's I2C pins and port, as
// the SDK's provider for the board names them) through SMBus. Throws when
// the part does not answer (the driver checks WHO_AM_I).
export function openLis3dh(w: Lis3dhWiring): SensorClass<Acceleration> {
  const sensor = new LIS3DH({
    sensor: { ...device.I2C.default, io: device.io.SMBus, address: w.address },
    ...(w.onError ? { onError: w.onError } : {}),
  });
  sensor.configure({ rate: lis3dhRateCode(w.rateHz), range: LIS3DH_RANGE_4G.code, enable: 0b111, lowPower: false });
  return {
    configure: (options) => sensor.configure(options),
    // {} (no axis) or a partial reading is checked by the capture as no data.
    sample: () => sensor.sample() as Acceleration,
    close: () => sensor.close(),
  };
}
