// Device adapter: the board's button (device.pin.button) as an
// embedded:io/digital input with the pull-up, both edges delivered to the
// core's Button (src/core/labels.ts), which debounces and counts presses.

import Digital from 'embedded:io/digital';
import type { Button } from '../core/labels.js';

export interface ButtonPin {
  close(): void;
}

export function openButton(button: Button): ButtonPin {
  const pin = device.pin.button as number | undefined;
  if (pin === undefined) throw new Error('this board names no button pin (device.pin.button)');
  return new device.io.Digital({
    pin,
    mode: Digital.InputPullUp,
    edge: Digital.Rising | Digital.Falling,
    onReadable(this: Digital) {
      button.readable(this);
    },
  });
}
