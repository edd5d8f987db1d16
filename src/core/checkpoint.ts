// Checkpoints of the training state in flash: two slots, a generation
// counter and a CRC, so that power lost at any byte of a write leaves the
// previous checkpoint readable, and boot takes the newest valid one.
// Platform-free: runs unchanged on XS (the Flash is Moddable's flash module
// on a board, flash.ts).
//
// What a checkpoint keeps: the arena ranges the plan lists in its REGIONS
// section (plan-format.ts: trainable weights and biases, optimizer state,
// the rng cell), in plan order — everything a training step changes and the
// next step reads, so training resumes exactly where it stopped. The plan
// format needs no change for it.
//
// Layout, version 1. Slot s (0 or 1) is sectorsPerSlot whole sectors from
// sector firstSector + s * sectorsPerSlot, so erasing one slot never touches
// the other. Integers little-endian.
//   header (32 bytes, at the slot's first byte)
//     0  "XSTC"         magic
//     4  u32 version    1
//     8  u32 generation one more (mod 2^32) than the checkpoint it follows
//     12 u32 length     payload bytes (the plan's regions, concatenated)
//     16 u32 plan       the plan's identity: the CRC its header carries
//                       (planIdentity): a checkpoint of another plan is refused
//     20 u32 step       training steps taken when it was saved
//     24 u32 holdout    holdout accuracy when saved, in 1/65536 (65536 =
//                       100%); 0xFFFFFFFF: not measured (rollback.ts)
//     28 u32 crc        CRC-32 (IEEE, crc32.ts) of header bytes [0, 28),
//                       then the payload
//   payload at byte 32, padded with 0xFF to a multiple of 4 (nRF52 flash
//   programs 32-bit words).
//
// Write order (save): erase the slot that does not hold the newest valid
// checkpoint, write the payload, write the header last. Until the header's
// last byte is down the slot fails its check (erased, not "XSTC", or a CRC
// that does not match), so an interrupted save leaves the newest checkpoint
// the one before; host-tests/checkpoint.test.ts cuts the power at every
// byte of a save, erase included, and checks exactly that.
//
// Boot reads both headers, bounds-checks the length against the slot, checks
// the CRC, then the plan and the length against this plan, takes the newest
// valid (generations compared modulo 2^32, so the counter may wrap) and
// copies it into the arena; a slot that fails says which check and why, and
// with no valid slot the arena keeps the plan's initial weights and boot
// says so. Flash is read and written in chunks of at most 256 bytes: a
// checkpoint never needs a RAM copy of itself.

import { crc32 } from './crc32.js';
import { type Flash, flashSectors } from './flash.js';
import type { PlanRuntime } from './plan-runtime.js';

export const CHECKPOINT_VERSION = 1;
export const CHECKPOINT_HEADER_BYTES = 32;
const MAGIC = [0x58, 0x53, 0x54, 0x43]; // "XSTC"
const NOT_MEASURED = 0xffffffff;
const Q16 = 65536;
const CHUNK = 256;

export class CheckpointError extends Error {}

export interface ArenaRange {
  offset: number;
  bytes: number;
}

// What a checkpoint saves and restores: arena ranges, and access to them.
export interface CheckpointState {
  readonly regions: readonly ArenaRange[];
  read(offset: number, length: number): Uint8Array;
  write(offset: number, bytes: Uint8Array): void;
}

// A plan runtime's training state: its plan's REGIONS in its Dispatch's arena.
export function planCheckpointState(rt: PlanRuntime): CheckpointState {
  return {
    regions: rt.plan.regions,
    read: (offset, length) => rt.dispatch.read(offset, length),
    write: (offset, bytes) => rt.dispatch.write(offset, bytes),
  };
}

// A plan blob's identity: the CRC-32 its header carries (of bytes [16,
// length): every section, the regions' layout included), which loading the
// plan has checked; cheap on a device, where the blob stays in flash.
export function planIdentity(blob: Uint8Array): number {
  if (blob.length < 16) throw new CheckpointError(`plan identity: a plan blob has at least 16 bytes, this one ${blob.length}`);
  return new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getUint32(12, true);
}

export interface CheckpointInfo {
  slot: number;
  generation: number;
  step: number;
  holdout: number | null; // holdout accuracy when saved, in 1/65536
}

// valid: usable; empty: no header (erased, or a save that stopped before
// its header); corrupt: fails a check of its own (magic, version, length,
// CRC); foreign: intact but saved by another plan.
export type SlotStatus = 'valid' | 'empty' | 'corrupt' | 'foreign';

export interface SlotReport {
  slot: number;
  status: SlotStatus;
  info: CheckpointInfo | null; // when valid
  message: string;
}

export interface BootResult {
  restored: CheckpointInfo | null;
  slots: SlotReport[];
  messages: string[]; // what boot found and did, one line each
}

// a is a later generation than b (serial-number order modulo 2^32: the
// counter may wrap; the two slots are never 2^31 generations apart).
export function isNewerGeneration(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x80000000;
}

function hex8(v: number): string {
  return '0x' + (v >>> 0).toString(16).padStart(8, '0');
}

const ceil4 = (n: number) => Math.ceil(n / 4) * 4;

// Walks the regions in payload order: gather copies the next n payload
// bytes out of the state, scatter writes the next bytes into it.
class RegionCursor {
  private index = 0;
  private at = 0;

  constructor(private readonly state: CheckpointState) {}

  private step(n: number, each: (offset: number, from: number, m: number) => void): void {
    let done = 0;
    while (done < n) {
      const r = this.state.regions[this.index]!;
      const m = Math.min(n - done, r.bytes - this.at);
      if (m > 0) each(r.offset + this.at, done, m);
      done += m;
      this.at += m;
      if (this.at === r.bytes) {
        this.index++;
        this.at = 0;
      }
    }
  }

  gather(into: Uint8Array, n: number): void {
    this.step(n, (offset, from, m) => into.set(this.state.read(offset, m), from));
  }

  scatter(from: Uint8Array): void {
    this.step(from.length, (offset, at, m) => this.state.write(offset, from.subarray(at, at + m)));
  }
}

// The flash the two slots of a payload need, in bytes.
export function checkpointFlashBytes(payloadBytes: number, blockSize: number): number {
  return 2 * Math.ceil((CHECKPOINT_HEADER_BYTES + ceil4(payloadBytes)) / blockSize) * blockSize;
}

export class CheckpointStore {
  readonly payloadBytes: number;
  readonly sectorsPerSlot: number;
  private latest: CheckpointInfo | null = null;
  private known = false; // latest reflects the flash

  // The two slots use sectors [firstSector, firstSector + 2 * sectorsPerSlot)
  // of flash (endSector: the first sector after them).
  constructor(readonly flash: Flash, readonly state: CheckpointState, readonly planId: number, readonly firstSector = 0) {
    this.payloadBytes = state.regions.reduce((a, r) => a + r.bytes, 0);
    this.sectorsPerSlot = checkpointFlashBytes(this.payloadBytes, flash.blockSize) / flash.blockSize / 2;
    const need = 2 * this.sectorsPerSlot, have = flashSectors(flash) - firstSector;
    if (!Number.isInteger(firstSector) || firstSector < 0 || need > have) {
      throw new CheckpointError(`checkpoints of ${this.payloadBytes} bytes of training state need 2 slots of ${this.sectorsPerSlot} ` +
        `${flash.blockSize}-byte sectors (${need * flash.blockSize} bytes) from sector ${firstSector}; the flash partition has ` +
        `${flashSectors(flash)} sectors (${flash.byteLength} bytes): give the checkpoints a larger partition`);
    }
  }

  get endSector(): number {
    return this.firstSector + 2 * this.sectorsPerSlot;
  }

  slotOffset(slot: number): number {
    return (this.firstSector + slot * this.sectorsPerSlot) * this.flash.blockSize;
  }

  // The newest valid checkpoint as the last scan, boot or save left it.
  newest(): CheckpointInfo | null {
    if (!this.known) this.scan();
    return this.latest;
  }

  // Reads and checks both slots; writes nothing.
  scan(): SlotReport[] {
    const slots = [this.check(0), this.check(1)];
    this.latest = null;
    for (const s of slots) {
      if (s.info && (!this.latest || isNewerGeneration(s.info.generation, this.latest.generation))) this.latest = s.info;
    }
    this.known = true;
    return slots;
  }

  // Boot: copies the newest valid checkpoint into the state; with none the
  // state is left as it is (the plan's initial weights after a load).
  boot(): BootResult {
    const slots = this.scan();
    const messages = slots.filter((s) => s.status === 'corrupt' || s.status === 'foreign').map((s) => s.message);
    const best = this.latest;
    if (!best) {
      const why = slots.every((s) => s.status === 'empty') ? 'the checkpoint slots are empty' : 'neither slot holds a valid checkpoint';
      messages.push(`no checkpoint restored (${why}): starting from the plan's initial weights`);
      return { restored: null, slots, messages };
    }
    this.copyIn(best.slot);
    const other = slots[1 - best.slot]!;
    const kept = other.info ? `; slot ${other.slot} keeps generation ${other.info.generation} (step ${other.info.step})` : '';
    messages.push(`restored checkpoint generation ${best.generation} (step ${best.step}) from slot ${best.slot}${kept}`);
    return { restored: best, slots, messages };
  }

  // Copies a slot's payload into the state, after checking the slot.
  restore(slot: number): CheckpointInfo {
    const report = this.check(slot);
    if (!report.info) throw new CheckpointError(`cannot restore: ${report.message}`);
    this.copyIn(slot);
    return report.info;
  }

  // Copies a checked slot's payload into the state, checking the CRC again
  // over the bytes as they are copied.
  private copyIn(slot: number): void {
    const base = this.slotOffset(slot) + CHECKPOINT_HEADER_BYTES;
    const header = new Uint8Array(this.flash.read(this.slotOffset(slot), CHECKPOINT_HEADER_BYTES));
    let crc = crc32(header.subarray(0, 28));
    const cursor = new RegionCursor(this.state);
    for (let at = 0; at < this.payloadBytes; at += CHUNK) {
      const chunk = new Uint8Array(this.flash.read(base + at, Math.min(CHUNK, this.payloadBytes - at)));
      crc = crc32(chunk, crc);
      cursor.scatter(chunk);
    }
    if (crc !== new DataView(header.buffer).getUint32(28, true)) {
      throw new CheckpointError(`checkpoint slot ${slot} changed while it was restored (CRC ${hex8(crc)}): the training state is not usable, reload the plan`);
    }
  }

  // Saves the state as the next generation, in the slot that does not hold
  // the newest valid checkpoint. step: training steps so far; holdout: the
  // holdout accuracy in [0, 1], if measured. An error (power loss, a flash
  // error) leaves the newest valid checkpoint as it was.
  save(step: number, holdout: number | null = null): CheckpointInfo {
    if (!Number.isInteger(step) || step < 0 || step > 0xffffffff) throw new CheckpointError(`checkpoint: step ${step} is not a u32`);
    if (holdout !== null && !(holdout >= 0 && holdout <= 1)) throw new CheckpointError(`checkpoint: holdout accuracy ${holdout} is not in [0, 1]`);
    const prev = this.newest();
    const slot = prev ? 1 - prev.slot : 0;
    const info: CheckpointInfo = {
      slot,
      generation: prev ? (prev.generation + 1) >>> 0 : 1,
      step,
      holdout: holdout === null ? null : Math.round(holdout * Q16),
    };
    this.known = false; // until the save is done and read back
    const { flash } = this, base = this.slotOffset(slot);
    for (let s = 0; s < this.sectorsPerSlot; s++) flash.erase(this.firstSector + slot * this.sectorsPerSlot + s);
    const header = new Uint8Array(CHECKPOINT_HEADER_BYTES);
    const h = new DataView(header.buffer);
    header.set(MAGIC);
    h.setUint32(4, CHECKPOINT_VERSION, true);
    h.setUint32(8, info.generation, true);
    h.setUint32(12, this.payloadBytes, true);
    h.setUint32(16, this.planId >>> 0, true);
    h.setUint32(20, step, true);
    h.setUint32(24, info.holdout === null ? NOT_MEASURED : info.holdout, true);
    let crc = crc32(header.subarray(0, 28));
    const cursor = new RegionCursor(this.state), chunk = new Uint8Array(CHUNK);
    for (let at = 0; at < this.payloadBytes; at += CHUNK) {
      const n = Math.min(CHUNK, this.payloadBytes - at), padded = ceil4(n);
      cursor.gather(chunk, n);
      crc = crc32(chunk.subarray(0, n), crc);
      chunk.fill(0xff, n, padded);
      flash.write(base + CHECKPOINT_HEADER_BYTES + at, padded, chunk.buffer);
    }
    h.setUint32(28, crc, true);
    flash.write(base, CHECKPOINT_HEADER_BYTES, header.buffer);
    const back = this.check(slot);
    if (!back.info || back.info.generation !== info.generation) {
      this.scan();
      throw new CheckpointError(`checkpoint slot ${slot} did not read back after writing (${back.message}); the newest valid checkpoint is ` +
        (this.latest ? `generation ${this.latest.generation} in slot ${this.latest.slot}` : 'none'));
    }
    this.latest = back.info;
    this.known = true;
    return back.info;
  }

  // Reads and checks one slot. Every field is untrusted until the CRC holds.
  private check(slot: number): SlotReport {
    const name = `checkpoint slot ${slot}`;
    const bad = (status: SlotStatus, why: string): SlotReport => ({ slot, status, info: null, message: `${name}: ${why}: ignored` });
    const base = this.slotOffset(slot);
    const header = new Uint8Array(this.flash.read(base, CHECKPOINT_HEADER_BYTES));
    const h = new DataView(header.buffer), u32 = (at: number) => h.getUint32(at, true);
    if (header.every((b) => b === 0xff)) return { slot, status: 'empty', info: null, message: `${name}: empty (erased, or a save that did not finish)` };
    if (MAGIC.some((m, i) => header[i] !== m)) return bad('corrupt', `not a checkpoint (starts with ${hex8(h.getUint32(0, false))}, not "XSTC")`);
    if (u32(4) !== CHECKPOINT_VERSION) {
      return bad('corrupt', `checkpoint format version ${u32(4)}, this firmware reads version ${CHECKPOINT_VERSION}`);
    }
    const length = u32(12), room = this.sectorsPerSlot * this.flash.blockSize - CHECKPOINT_HEADER_BYTES;
    if (length > room) return bad('corrupt', `the header says ${length} bytes of payload, more than the slot's ${room} (corrupt header)`);
    let crc = crc32(header.subarray(0, 28));
    for (let at = 0; at < length; at += CHUNK) crc = crc32(new Uint8Array(this.flash.read(base + CHECKPOINT_HEADER_BYTES + at, Math.min(CHUNK, length - at))), crc);
    if (crc !== u32(28)) {
      return bad('corrupt', `CRC mismatch: the header says ${hex8(u32(28))}, the bytes give ${hex8(crc)} (corrupted, or a save that did not finish)`);
    }
    if (u32(16) !== this.planId >>> 0) return bad('foreign', `saved by another plan (plan ${hex8(u32(16))}, this plan is ${hex8(this.planId)})`);
    if (length !== this.payloadBytes) return bad('foreign', `holds ${length} bytes of training state, this plan has ${this.payloadBytes}`);
    const holdout = u32(24);
    if (holdout !== NOT_MEASURED && holdout > Q16) return bad('corrupt', `holdout accuracy field ${holdout} is above ${Q16} (100%)`);
    const info = { slot, generation: u32(8), step: u32(20), holdout: holdout === NOT_MEASURED ? null : holdout };
    return { slot, status: 'valid', info, message: `${name}: generation ${info.generation}, step ${info.step}` };
  }
}
