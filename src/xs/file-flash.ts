// XS-on-Linux host adapter: a flash partition kept in a file, for running
// the checkpoint code on the XS engine. The partition lives in RAM
// (MemoryFlash, NOR semantics) and the whole file is rewritten after each
// erase or write through the host's xs_host_write (it has no positioned
// write); fine for the few sectors of a host test. On a board the device's
// own Flash (Moddable's flash module) is used instead, with no file.

import { FlashError, MemoryFlash } from '../core/flash.js';
import { fileSize, readFile, writeFile } from './host.js';

export class HostFileFlash extends MemoryFlash {
  // Opens path as a partition of byteLength bytes, creating it erased
  // (all 0xFF) when the file does not exist.
  constructor(readonly path: string, byteLength: number, blockSize = 4096) {
    const size = fileSize(path);
    if (size >= 0 && size !== byteLength) throw new FlashError(`flash file ${path} is ${size} bytes, the partition is ${byteLength}`);
    super(byteLength, blockSize, size >= 0 ? readFile(path) : undefined);
    if (size < 0) writeFile(path, this.bytes);
  }

  override erase(sector: number): void {
    super.erase(sector);
    writeFile(this.path, this.bytes);
  }

  override write(offset: number, byteLength: number, buffer: ArrayBuffer | ArrayBufferView): void {
    super.write(offset, byteLength, buffer);
    writeFile(this.path, this.bytes);
  }
}
