// A flash partition that loses power on cue: the host's model of what an
// interrupted checkpoint write leaves behind. Platform-free (used by the
// host tests; runs on XS too).
//
// Every byte an erase resets and every byte a write programs costs one unit
// of a budget (failAfter(units)). When the budget runs out inside an
// operation, that operation stops part-way — the bytes done so far stay
// done, the rest keep their old value — and PowerLoss is thrown; until
// powerOn() every further erase or write throws PowerLoss too (reads still
// work: they are what the next boot sees). Options make the interruption
// harsher:
//   eraseOrder 'down': an erase resets a sector from its last byte back
//     (default 'up': from its first), so a torn erase can leave a header
//     intact over a half-erased payload;
//   tornByte: the byte in progress when power goes is half done (a write
//     has cleared only the low four of the bits it was clearing; an erase
//     has set only the low four bits).
// `misprograms` counts write bytes that asked to set a bit an erase had not
// set (NOR cannot: old & new is stored): code that writes a checkpoint
// correctly never does.

import { FlashError, MemoryFlash, checkFlashSector, flashWriteBytes } from './flash.js';

export class PowerLoss extends FlashError {}

export interface PowerFailOptions {
  eraseOrder?: 'up' | 'down';
  tornByte?: boolean;
}

export class PowerFailFlash extends MemoryFlash {
  units = 0; // units spent since the last failAfter / powerOn
  misprograms = 0;
  private budget = Infinity;
  private powered = true;

  constructor(byteLength: number, blockSize = 4096, bytes?: Uint8Array, readonly options: PowerFailOptions = {}) {
    super(byteLength, blockSize, bytes);
  }

  // Power goes after `units` more bytes erased or written (Infinity: never).
  failAfter(units: number): void {
    this.budget = units;
    this.units = 0;
  }

  powerOn(): void {
    this.powered = true;
    this.budget = Infinity;
    this.units = 0;
  }

  get isPowered(): boolean {
    return this.powered;
  }

  // How many of n units the budget allows; cuts the power when it runs out.
  private spend(n: number): number {
    if (!this.powered) throw new PowerLoss('flash: no power');
    const done = Math.min(n, this.budget - this.units);
    this.units += done;
    if (done < n) this.powered = false;
    return done;
  }

  private lost(what: string, done: number, n: number): never {
    throw new PowerLoss(`flash: power lost during ${what} after ${done} of ${n} bytes`);
  }

  override erase(sector: number): void {
    checkFlashSector(this, sector);
    const n = this.blockSize, base = sector * n, done = this.spend(n);
    const down = this.options.eraseOrder === 'down';
    const at = (i: number) => (down ? base + n - 1 - i : base + i);
    for (let i = 0; i < done; i++) this.bytes[at(i)] = 0xff;
    if (done === n) return;
    if (this.options.tornByte) this.bytes[at(done)] |= 0x0f;
    this.lost(`erase of sector ${sector}`, done, n);
  }

  override write(offset: number, byteLength: number, buffer: ArrayBuffer | ArrayBufferView): void {
    const data = flashWriteBytes(this, offset, byteLength, buffer);
    const done = this.spend(byteLength);
    for (let i = 0; i < done; i++) {
      const old = this.bytes[offset + i]!, v = data[i]!;
      if ((old & v) !== v) this.misprograms++;
      this.bytes[offset + i] = old & v;
    }
    if (done === byteLength) return;
    if (this.options.tornByte) this.bytes[offset + done] &= data[done]! | 0xf0;
    this.lost(`write of ${byteLength} bytes at ${offset}`, done, byteLength);
  }
}
