// Device adapter: label commands typed on a serial line (embedded:io/serial
// on the board's default serial port, device.Serial.default) to the core's
// OnlineLearner.command. A line ends at CR or LF; replies go back on the
// same port. Boards whose provider names no serial port, or whose port is
// taken (a debug build's xsbug connection), get no console: commands then
// come only from the button, and every message still goes to trace().

import Serial from 'embedded:io/serial';
import { LineAssembler } from './lines.js';

export interface LineConsole {
  write(line: string): void;
  close(): void;
}

// The console, or null (with the reason traced) when there is none.
export function openConsole(onLine: (line: string) => void, baud = 115200): LineConsole | null {
  const wiring = device.Serial?.default;
  if (!wiring) {
    trace('xstrain: this board has no default serial port: label commands come from the button only\n');
    return null;
  }
  let port: Serial;
  const write = (line: string): void => {
    for (let i = 0; i < line.length; i++) port.write(line.charCodeAt(i) & 0x7f);
    port.write(13);
    port.write(10);
  };
  const lines = new LineAssembler(onLine, (message) => write(message));
  try {
    // device.io.Serial, not wiring.io: the SDK's typings of the provider do
    // not declare io on its default options.
    port = new device.io.Serial({
      ...wiring,
      baud,
      format: 'number',
      onReadable(this: Serial, count: number) {
        for (let i = 0; i < count; i++) {
          const b = this.read();
          if (typeof b !== 'number') break;
          lines.push(b);
        }
      },
    } as ConstructorParameters<typeof Serial>[0]);
  } catch (e) {
    trace(`xstrain: serial console not opened (${e instanceof Error ? e.message : String(e)}): label commands come from the button only\n`);
    return null;
  }
  return { write, close: () => port.close() };
}
