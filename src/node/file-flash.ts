// Node adapter: a flash partition kept in a file, with the NOR semantics of
// src/core/flash.ts (erase sets a sector to 0xFF, a write stores old & new),
// so checkpoints written on the host behave as on a board. Reads and writes
// go to the file at their offset (positioned I/O; the file is the whole
// partition).

import { closeSync, existsSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { type Flash, FlashError, checkFlashRange, checkFlashSector, flashWriteBytes } from '../core/flash.js';

export class FileFlash implements Flash {
  private fd: number | null;

  // Opens path as a partition of byteLength bytes in blockSize sectors,
  // creating it erased (all 0xFF) when it does not exist.
  constructor(readonly path: string, readonly byteLength: number, readonly blockSize = 4096) {
    if (!Number.isInteger(blockSize) || blockSize < 16 || blockSize % 4 || byteLength < blockSize || byteLength % blockSize) {
      throw new FlashError(`flash file ${path}: ${byteLength} bytes is not a whole number of ${blockSize}-byte sectors`);
    }
    const fresh = !existsSync(path);
    const fd = openSync(path, fresh ? 'w+' : 'r+');
    this.fd = fd;
    if (fresh) {
      const erased = new Uint8Array(blockSize).fill(0xff);
      for (let at = 0; at < byteLength; at += blockSize) writeSync(fd, erased, 0, blockSize, at);
    } else if (fstatSync(fd).size !== byteLength) {
      const size = fstatSync(fd).size;
      this.close();
      throw new FlashError(`flash file ${path} is ${size} bytes, the partition is ${byteLength}: remove it or give its size`);
    }
  }

  private handle(): number {
    if (this.fd === null) throw new FlashError(`flash file ${this.path} is closed`);
    return this.fd;
  }

  erase(sector: number): void {
    checkFlashSector(this, sector);
    writeSync(this.handle(), new Uint8Array(this.blockSize).fill(0xff), 0, this.blockSize, sector * this.blockSize);
  }

  read(offset: number, byteLength: number): ArrayBuffer {
    checkFlashRange(this, 'read', offset, byteLength);
    const out = new Uint8Array(byteLength);
    const n = readSync(this.handle(), out, 0, byteLength, offset);
    if (n !== byteLength) throw new FlashError(`flash file ${this.path}: read ${n} of ${byteLength} bytes at ${offset}`);
    return out.buffer;
  }

  write(offset: number, byteLength: number, buffer: ArrayBuffer | ArrayBufferView): void {
    const data = flashWriteBytes(this, offset, byteLength, buffer);
    const cells = new Uint8Array(this.read(offset, byteLength));
    for (let i = 0; i < byteLength; i++) cells[i] = cells[i]! & data[i]!;
    writeSync(this.handle(), cells, 0, byteLength, offset);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
