// The rollback guard: continuous adaptation can go wrong (a run of bad
// labels, a sensor fault), so before each checkpoint the model is scored on
// a small labelled holdout set, and when its accuracy has fallen by more
// than a margin since the newest checkpoint, that checkpoint is restored
// instead of a new one being written. The holdout lives in flash too
// (format below) or comes from the caller. Platform-free: runs on XS.
//
// Holdout format, version 1 (little-endian), from the first byte of its
// sector: "XSTH", u32 version 1, u32 count, u32 input bytes, then count
// records {u32 label, input bytes padded with 0 to 4}, then u32 CRC-32 of
// everything before it.

import type { CheckpointInfo, CheckpointStore } from './checkpoint.js';
import { crc32 } from './crc32.js';
import { type Flash, flashSectors } from './flash.js';
import type { PlanRuntime } from './plan-runtime.js';

export const HOLDOUT_VERSION = 1;
const MAGIC = [0x58, 0x53, 0x54, 0x48]; // "XSTH"
const Q16 = 65536;

export class HoldoutError extends Error {}

export interface HoldoutSample {
  input: Int8Array;
  label: number;
}

export function encodeHoldout(samples: readonly HoldoutSample[]): Uint8Array {
  if (samples.length === 0) throw new HoldoutError('holdout: no samples');
  const inputBytes = samples[0]!.input.length, record = 4 + Math.ceil(inputBytes / 4) * 4;
  const out = new Uint8Array(16 + samples.length * record + 4);
  const v = new DataView(out.buffer);
  out.set(MAGIC);
  v.setUint32(4, HOLDOUT_VERSION, true);
  v.setUint32(8, samples.length, true);
  v.setUint32(12, inputBytes, true);
  samples.forEach((s, i) => {
    if (s.input.length !== inputBytes) throw new HoldoutError(`holdout sample ${i} has ${s.input.length} input bytes, sample 0 has ${inputBytes}`);
    if (!Number.isInteger(s.label) || s.label < 0) throw new HoldoutError(`holdout sample ${i} has label ${s.label}`);
    v.setUint32(16 + i * record, s.label, true);
    out.set(new Uint8Array(s.input.buffer, s.input.byteOffset, inputBytes), 20 + i * record);
  });
  v.setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

// Erases the sectors the holdout needs from firstSector and writes it.
export function writeHoldout(flash: Flash, firstSector: number, samples: readonly HoldoutSample[]): void {
  const blob = encodeHoldout(samples), padded = Math.ceil(blob.length / 4) * 4;
  const sectors = Math.ceil(padded / flash.blockSize);
  if (firstSector < 0 || firstSector + sectors > flashSectors(flash)) {
    throw new HoldoutError(`holdout of ${blob.length} bytes needs ${sectors} sectors from sector ${firstSector}, the partition has ${flashSectors(flash)}`);
  }
  for (let s = 0; s < sectors; s++) flash.erase(firstSector + s);
  const data = new Uint8Array(padded).fill(0xff);
  data.set(blob);
  flash.write(firstSector * flash.blockSize, padded, data.buffer);
}

// Reads and checks the holdout at firstSector. inputBytes and classes: the
// plan's, so a holdout for another model is refused.
export function readHoldout(flash: Flash, firstSector: number, inputBytes: number, classes: number): HoldoutSample[] {
  const base = firstSector * flash.blockSize;
  if (base + 16 > flash.byteLength) throw new HoldoutError(`holdout: sector ${firstSector} is outside the flash partition`);
  const head = new DataView(flash.read(base, 16)), u32 = (at: number) => head.getUint32(at, true);
  if (MAGIC.some((m, i) => head.getUint8(i) !== m)) throw new HoldoutError(`holdout at sector ${firstSector}: not a holdout set (no "XSTH")`);
  if (u32(4) !== HOLDOUT_VERSION) throw new HoldoutError(`holdout: format version ${u32(4)}, this firmware reads version ${HOLDOUT_VERSION}`);
  const count = u32(8), record = 4 + Math.ceil(inputBytes / 4) * 4, total = 16 + count * record + 4;
  if (u32(12) !== inputBytes) throw new HoldoutError(`holdout: samples of ${u32(12)} bytes, the plan's input is ${inputBytes} bytes`);
  if (count === 0 || base + total > flash.byteLength) throw new HoldoutError(`holdout: ${count} samples do not fit the flash partition`);
  const blob = new Uint8Array(flash.read(base, total)), v = new DataView(blob.buffer);
  const crc = crc32(blob.subarray(0, total - 4));
  if (crc !== v.getUint32(total - 4, true)) throw new HoldoutError('holdout: CRC mismatch (corrupted holdout set)');
  const samples: HoldoutSample[] = [];
  for (let i = 0; i < count; i++) {
    const label = v.getUint32(16 + i * record, true);
    if (label >= classes) throw new HoldoutError(`holdout sample ${i} has label ${label}, the plan has ${classes} classes`);
    samples.push({ input: new Int8Array(blob.buffer, 20 + i * record, inputBytes), label });
  }
  return samples;
}

// The fraction of samples whose inference output's largest value (first on
// ties) is the label: the holdout's score (and any labelled set's,
// bench/scheme-search.ts).
export function holdoutAccuracy(rt: PlanRuntime, samples: readonly HoldoutSample[]): number {
  let correct = 0;
  for (const s of samples) {
    const y = rt.infer(s.input);
    let best = 0;
    for (let k = 1; k < y.length; k++) if (y[k]! > y[best]!) best = k;
    if (best === s.label) correct++;
  }
  return correct / samples.length;
}

export interface GuardResult {
  action: 'saved' | 'rolled back';
  accuracy: number; // measured now, in [0, 1]
  checkpoint: CheckpointInfo; // the one written, or the one restored
  message: string;
}

const pct = (q16: number) => `${((100 * q16) / Q16).toFixed(1)}%`;

export class RollbackGuard {
  // accuracy: scores the current model on the holdout, in [0, 1]; margin:
  // the largest drop (in accuracy, e.g. 0.05) that is still saved.
  constructor(readonly store: CheckpointStore, readonly accuracy: () => number, readonly margin: number) {
    if (!(margin >= 0 && margin <= 1)) throw new HoldoutError(`rollback guard: margin ${margin} is not in [0, 1]`);
  }

  // At a checkpoint: save the state with its holdout accuracy, or, if the
  // accuracy fell by more than the margin below the newest checkpoint's,
  // restore that checkpoint (the steps since are undone) and write nothing.
  checkpoint(step: number): GuardResult {
    const accuracy = this.accuracy();
    const now = Math.round(accuracy * Q16), last = this.store.newest();
    if (last && last.holdout !== null && last.holdout - now > Math.round(this.margin * Q16)) {
      const back = this.store.restore(last.slot);
      return {
        action: 'rolled back', accuracy, checkpoint: back,
        message: `holdout accuracy ${pct(now)} at step ${step} is more than ${pct(Math.round(this.margin * Q16))} below the ` +
          `${pct(last.holdout)} of checkpoint generation ${last.generation} (step ${last.step}): restored it`,
      };
    }
    const saved = this.store.save(step, accuracy);
    const since = last && last.holdout !== null ? ` (checkpoint generation ${last.generation}: ${pct(last.holdout)})` : '';
    return { action: 'saved', accuracy, checkpoint: saved, message: `holdout accuracy ${pct(now)}${since}: saved generation ${saved.generation} at step ${step}` };
  }
}
