// A flash partition as the checkpoint code sees it: the shape of Moddable's
// `flash` module (modules/files/flash in the Moddable SDK: `new
// Flash(partition)`, `erase(sector)`, `read(offset, byteLength)` returning
// an ArrayBuffer, `write(offset, byteLength, buffer)`, `byteLength`,
// `blockSize`), so on a board the device's Flash object is passed as it is.
// Offsets and sectors are relative to the partition; a sector is blockSize
// bytes (the erase unit: 4096 on the ESP32's SPI flash and the nRF52840).
//
// NOR semantics, which the code writing to a Flash must respect: erase sets
// every byte of a sector to 0xFF; a write can only clear bits (the stored
// byte becomes old & new), so a byte is written once between erases.
// Moddable refuses reads and writes of 0 bytes; so does MemoryFlash. Older
// ports of the module take only an ArrayBuffer as write's buffer (newer ones
// any buffer): the checkpoint code passes ArrayBuffers.
//
// Platform-free: runs unchanged on XS. MemoryFlash keeps a partition in
// RAM; the power-fail simulator (sim-flash.ts) and the file-backed
// adapters (src/node/file-flash.ts, src/xs/file-flash.ts) build on it.

export interface Flash {
  readonly byteLength: number;
  readonly blockSize: number;
  erase(sector: number): void;
  read(offset: number, byteLength: number): ArrayBuffer;
  write(offset: number, byteLength: number, buffer: ArrayBuffer | ArrayBufferView): void;
}

export class FlashError extends Error {}

export function flashSectors(flash: Flash): number {
  return Math.floor(flash.byteLength / flash.blockSize);
}

// The bytes of a write's buffer argument (an ArrayBuffer or any view).
export function bufferBytes(buffer: ArrayBuffer | ArrayBufferView): Uint8Array {
  return buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

// Checks a read or write range as Moddable's flash module does (offset
// inside the partition, length > 0, the range inside the partition).
export function checkFlashRange(flash: Flash, what: string, offset: number, byteLength: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset >= flash.byteLength) {
    throw new FlashError(`flash ${what}: offset ${offset} is outside the ${flash.byteLength}-byte partition`);
  }
  if (!Number.isInteger(byteLength) || byteLength <= 0 || offset + byteLength > flash.byteLength) {
    throw new FlashError(`flash ${what}: ${byteLength} bytes at ${offset} do not fit the ${flash.byteLength}-byte partition (at least 1 byte)`);
  }
}

// Checks a write's range and buffer; returns the bytes to write.
export function flashWriteBytes(flash: Flash, offset: number, byteLength: number, buffer: ArrayBuffer | ArrayBufferView): Uint8Array {
  checkFlashRange(flash, 'write', offset, byteLength);
  const data = bufferBytes(buffer);
  if (data.length < byteLength) throw new FlashError(`flash write: the buffer has ${data.length} bytes, ${byteLength} were asked for`);
  return data;
}

export function checkFlashSector(flash: Flash, sector: number): void {
  const n = flashSectors(flash);
  if (!Number.isInteger(sector) || sector < 0 || sector >= n) {
    throw new FlashError(`flash erase: sector ${sector} is not in [0, ${n}) (${flash.byteLength} bytes of ${flash.blockSize}-byte sectors)`);
  }
}

// A partition in RAM with NOR semantics. `bytes` is the partition itself
// (tests read and corrupt it directly).
export class MemoryFlash implements Flash {
  readonly bytes: Uint8Array;

  constructor(readonly byteLength: number, readonly blockSize = 4096, bytes?: Uint8Array) {
    if (!Number.isInteger(blockSize) || blockSize < 16 || blockSize % 4) throw new FlashError(`flash: block size ${blockSize} is not a multiple of 4 of at least 16`);
    if (!Number.isInteger(byteLength) || byteLength < blockSize || byteLength % blockSize) {
      throw new FlashError(`flash: ${byteLength} bytes is not a whole number (at least 1) of ${blockSize}-byte sectors`);
    }
    if (bytes && bytes.length !== byteLength) throw new FlashError(`flash: the image is ${bytes.length} bytes, the partition ${byteLength}`);
    this.bytes = bytes ?? new Uint8Array(byteLength).fill(0xff);
  }

  erase(sector: number): void {
    checkFlashSector(this, sector);
    this.bytes.fill(0xff, sector * this.blockSize, (sector + 1) * this.blockSize);
  }

  read(offset: number, byteLength: number): ArrayBuffer {
    checkFlashRange(this, 'read', offset, byteLength);
    return this.bytes.slice(offset, offset + byteLength).buffer;
  }

  write(offset: number, byteLength: number, buffer: ArrayBuffer | ArrayBufferView): void {
    const data = flashWriteBytes(this, offset, byteLength, buffer);
    for (let i = 0; i < byteLength; i++) this.bytes[offset + i] = this.bytes[offset + i]! & data[i]!;
  }
}
