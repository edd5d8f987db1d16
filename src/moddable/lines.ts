// Serial bytes -> command lines for the device console (console.ts). No
// Moddable import: the host tests run it as it is.

export const MAX_LINE = 80;

// Bytes -> lines; a line longer than MAX_LINE is dropped with a message.
export class LineAssembler {
  private bytes: number[] = [];
  private overflow = false;

  constructor(private readonly onLine: (line: string) => void, private readonly onError: (message: string) => void) {}

  push(byte: number): void {
    if (byte === 10 || byte === 13) {
      if (this.overflow) this.onError(`line longer than ${MAX_LINE} characters ignored`);
      else if (this.bytes.length) this.onLine(String.fromCharCode(...this.bytes));
      this.bytes = [];
      this.overflow = false;
      return;
    }
    if (this.bytes.length >= MAX_LINE) this.overflow = true;
    else if (byte >= 32 && byte < 127) this.bytes.push(byte);
  }
}

