// The Moddable SDK's LIS3DH accelerometer (modules/drivers/sensors/lis3dh,
// an ECMA-419 sensor class; the SDK ships no typings for it).
declare module 'embedded:sensor/Accelerometer/LIS3DH' {
  import type SMBus from 'embedded:io/smbus';
  import type Digital from 'embedded:io/digital';
  import type { I2COptions } from 'embedded:io/i2c';

  export interface LIS3DHOptions {
    // The bus: the SMBus class and its options (address 0x18 by default,
    // 0x19 with SDO high; hz 400 kHz by default).
    sensor: Partial<I2COptions> & { io: typeof SMBus };
    // Optional interrupt pin for movement alerts.
    alert?: { io: typeof Digital; pin: number };
    onAlert?: () => void;
    onError?: (error?: unknown) => void;
  }

  export interface LIS3DHConfiguration {
    // Output data rate as the CTRL_REG1 ODR code (LIS3DH.DataRate...: 1 Hz
    // 0b0001, 10 Hz 0b0010, 25 Hz 0b0011, 50 Hz 0b0100, 100 Hz 0b0101,
    // 200 Hz 0b0110, 400 Hz 0b0111); the driver starts at 400 Hz.
    rate?: number;
    // Full scale as the CTRL_REG4 FS code: 2 g 0, 4 g 1, 8 g 2, 16 g 3
    // (the driver starts at 4 g).
    range?: number;
    enable?: number; // axis bits: x 1, y 2, z 4
    lowPower?: boolean;
    alert?: { mode?: number; threshold?: number; duration?: number };
  }

  // m/s^2 per axis; {} with no axis enabled.
  export interface LIS3DHSample {
    x?: number;
    y?: number;
    z?: number;
  }

  class LIS3DH {
    constructor(options: LIS3DHOptions);
    configure(options: LIS3DHConfiguration): void;
    sample(): LIS3DHSample;
    status(): number;
    close(): void;
  }
  export default LIS3DH;
}
