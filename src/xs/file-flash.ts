// XS-on-Linux host adapter: a flash partition kept in a file, for running
// the checkpoint code on the XS engine. The partition lives in RAM
// (MemoryFlash, NOR semantics) and the whole file is replaced after each
// erase or write (written beside it, then renamed over it: replaceFile); fine
// for the few sectors of a host partition. On a board the device's
// own Flash (Moddable's flash module) is used instead, with no file.

import { FlashError, MemoryFlash } from '../core/flash.js';
import { fileSize, readFile, replaceFile } from './host.js';

export class HostFileFlash extends MemoryFlash {
  // Changes not yet in the file (only with writeThrough false).
  dirty = false;

  // Opens path as a partition of byteLength bytes, creating it erased
  // (all 0xFF) when the file does not exist. writeThrough false: erases and
  // writes stay in RAM until sync() (the main job syncs after each
  // checkpoint, so the file goes from one complete checkpoint to the next
  // instead of being rewritten for every 256-byte chunk of a save). The file
  // is replaced by a rename, so a kill at any moment leaves the previous
  // file or the new one whole: no checkpoint is lost.
  constructor(readonly path: string, byteLength: number, blockSize = 4096, readonly writeThrough = true) {
    const size = fileSize(path);
    if (size >= 0 && size !== byteLength) throw new FlashError(`flash file ${path} is ${size} bytes, the partition is ${byteLength}`);
    super(byteLength, blockSize, size >= 0 ? readFile(path) : undefined);
    if (size < 0) replaceFile(path, this.bytes);
  }

  override erase(sector: number): void {
    super.erase(sector);
    this.changed();
  }

  override write(offset: number, byteLength: number, buffer: ArrayBuffer | ArrayBufferView): void {
    super.write(offset, byteLength, buffer);
    this.changed();
  }

  // Writes the partition to its file if anything changed since.
  sync(): void {
    if (!this.dirty) return;
    replaceFile(this.path, this.bytes);
    this.dirty = false;
  }

  private changed(): void {
    this.dirty = true;
    if (this.writeThrough) this.sync();
  }
}
