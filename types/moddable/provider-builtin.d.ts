// The board's IO provider (embedded:provider/builtin, also the global
// `device`): the IO classes and each board's default wiring, from the SDK's
// build/devices/<platform>/targets/<board>/host/provider.js.
declare module 'embedded:provider/builtin' {
  import type Digital from 'embedded:io/digital';
  import type I2C from 'embedded:io/i2c';
  import type { I2COptions } from 'embedded:io/i2c';
  import type SMBus from 'embedded:io/smbus';
  import type Serial from 'embedded:io/serial';
  import type { SerialOptions } from 'embedded:io/serial';
  import type { PinSpecifier } from 'embedded:io/_common';

  const device: {
    io: {
      Digital: typeof Digital;
      I2C: typeof I2C;
      SMBus: typeof SMBus;
      Serial: typeof Serial;
    };
    // The board's bus wiring (pins, port), without hz and address.
    I2C: { default: Partial<I2COptions> & { io: typeof I2C } };
    Serial?: { default: Partial<SerialOptions> & { io: typeof Serial } };
    pin: { [name: string]: PinSpecifier };
  };
  export default device;
}

