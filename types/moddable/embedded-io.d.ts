// ECMA-419 IO classes as the Moddable SDK implements them (embedded:io/*).
// Only the classes the device code uses: digital, I2C, SMBus, serial.

declare module 'embedded:io/_common' {
  export type PinSpecifier = number;
  export type PortSpecifier = number | string;
}

declare module 'embedded:io/digital' {
  import type { PinSpecifier } from 'embedded:io/_common';

  type Edge = number;

  class Digital {
    static readonly Input: number;
    static readonly InputPullUp: number;
    static readonly InputPullDown: number;
    static readonly InputPullUpDown: number;
    static readonly Output: number;
    static readonly OutputOpenDrain: number;
    static readonly Rising: Edge;
    static readonly Falling: Edge;

    constructor(options: {
      pin: PinSpecifier;
      mode: number;
      edge?: Edge;
      onReadable?: (this: Digital) => void;
      format?: 'number';
      target?: unknown;
    });
    read(): 0 | 1;
    write(value: 0 | 1): void;
    close(): void;
  }
  export default Digital;
}

declare module 'embedded:io/i2c' {
  import type { PinSpecifier, PortSpecifier } from 'embedded:io/_common';

  export interface I2COptions {
    data: PinSpecifier;
    clock: PinSpecifier;
    hz: number;
    address: number;
    port?: PortSpecifier;
    format?: 'buffer';
    target?: unknown;
  }

  class I2C {
    constructor(options: I2COptions);
    read(byteLength: number, stop?: boolean): ArrayBuffer;
    read(buffer: ByteBuffer, stop?: boolean): number;
    write(buffer: ByteBuffer, stop?: boolean): void;
    close(): void;
  }
  export default I2C;
}

declare module 'embedded:io/smbus' {
  import I2C, { type I2COptions } from 'embedded:io/i2c';

  class SMBus extends I2C {
    constructor(options: I2COptions & { stop?: boolean });
    readUint8(register: number): number;
    writeUint8(register: number, value: number): void;
    readUint16(register: number, bigEndian?: boolean): number;
    writeUint16(register: number, value: number, bigEndian?: boolean): void;
    readBuffer(register: number, byteLength: number): ArrayBuffer;
    readBuffer(register: number, buffer: ByteBuffer): void;
    writeBuffer(register: number, buffer: ByteBuffer): void;
  }
  export default SMBus;
}

declare module 'embedded:io/serial' {
  import type { PinSpecifier, PortSpecifier } from 'embedded:io/_common';

  export interface SerialOptions {
    baud: number;
    port: PortSpecifier;
    receive?: PinSpecifier;
    transmit?: PinSpecifier;
    onReadable?: (this: Serial, bytes: number) => void;
    onWritable?: (this: Serial, bytes: number) => void;
    format?: 'number' | 'buffer';
    target?: unknown;
  }

  class Serial {
    constructor(options: SerialOptions);
    // format "number": one byte (undefined when none is waiting).
    read(): number | ArrayBuffer | undefined;
    read(byteLength: number): ArrayBuffer | undefined;
    write(value: number | ByteBuffer): void;
    close(): void;
    format: 'number' | 'buffer';
  }
  export default Serial;
}
