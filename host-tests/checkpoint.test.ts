// Checkpoints in flash (src/core/checkpoint.ts), the power-fail flash
// simulator (src/core/sim-flash.ts), the rollback guard and holdout
// (src/core/rollback.ts), the file-backed flash of Node and of the XS host:
//  - power lost at every byte of a save, its erase included (prefix and
//    suffix erases, torn bytes): the next boot restores exactly the old or
//    exactly the new training state, old until some byte and new from then
//    on, never anything else;
//  - a corrupt, foreign or unreadable slot is named with what is wrong and
//    boot falls back to the other slot, or to the plan's initial weights;
//  - generations order modulo 2^32 (the counter wraps);
//  - training resumed from a checkpoint (a new runtime, the flash in a
//    file) ends in the same bytes as training without a stop, on Node and
//    on the XS engine, and each reads the other's flash file;
//  - the rollback guard restores the newest checkpoint when the holdout
//    accuracy falls by more than the margin, and saves otherwise.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importTflite } from '../src/compiler/tflite/import.js';
import { compilePlan } from '../src/compiler/train/lower.js';
import {
  CHECKPOINT_HEADER_BYTES, type CheckpointState, CheckpointError, CheckpointStore, checkpointFlashBytes, isNewerGeneration,
  planCheckpointState, planIdentity,
} from '../src/core/checkpoint.js';
import { crc32 } from '../src/core/crc32.js';
import { FlashError, MemoryFlash } from '../src/core/flash.js';
import { PlanRuntime, seededSample } from '../src/core/plan-runtime.js';
import { type HoldoutSample, HoldoutError, RollbackGuard, encodeHoldout, holdoutAccuracy, readHoldout, writeHoldout } from '../src/core/rollback.js';
import { type PowerFailOptions, PowerFailFlash, PowerLoss } from '../src/core/sim-flash.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { FileFlash } from '../src/node/file-flash.js';

// A real plan: person_detect, the last four layers' biases and the
// classifier (a 1x1 conv, 256 -> 2) updated with LQM, updates reordered.
// Its training state: the REGIONS below (about 4 KB, printed by the first test).
const LR = 2 ** -8, SEED = 5;
const model = importTflite(new Uint8Array(readFileSync(join(repoRoot, 'models', 'person_detect.tflite'))), 'person_detect');
const { plan, blob } = compilePlan(model, { scheme: { biasLayers: 4, weights: [] }, reorder: true, optimizer: 'lqm', lr: LR, lrBias: LR });
const planId = planIdentity(blob);
const payloadBytes = plan.regions.reduce((a, r) => a + r.bytes, 0);
const BLOCK = 4096;
const flashBytes = checkpointFlashBytes(payloadBytes, BLOCK);

const load = () => PlanRuntime.load(new NodeDispatch(new ArrayBuffer(plan.arenaBytes), new ArrayBuffer(plan.flash.length)), blob);

// The training state after 0..4 steps on seeded samples.
const states: Uint8Array[] = [];
{
  const rt = load();
  states.push(rt.regionBytes());
  for (let i = 0; i < 4; i++) {
    const s = seededSample(plan, i, SEED);
    rt.step(s.input, s.label);
    states.push(rt.regionBytes());
  }
}

// The plan's regions in a compact buffer (payload order), as a
// CheckpointState; touching any byte outside the regions throws.
class RegionState implements CheckpointState {
  readonly regions = plan.regions;
  readonly bytes: Uint8Array;
  private readonly at: number[] = [];

  constructor(bytes: Uint8Array) {
    this.bytes = bytes.slice();
    let pos = 0;
    for (const r of this.regions) {
      this.at.push(pos);
      pos += r.bytes;
    }
  }

  private where(offset: number, length: number): number {
    const i = this.regions.findIndex((r) => offset >= r.offset && offset + length <= r.offset + r.bytes);
    if (i < 0 || length <= 0) throw new Error(`state access [${offset}, ${offset + length}) outside the regions`);
    return this.at[i]! + offset - this.regions[i]!.offset;
  }

  read(offset: number, length: number): Uint8Array {
    const p = this.where(offset, length);
    return this.bytes.slice(p, p + length);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.bytes.set(bytes, this.where(offset, bytes.length));
  }
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

// Boots a store over flash into a state that starts as the plan's initial weights.
function boot(flash: MemoryFlash, id = planId) {
  const state = new RegionState(states[0]!);
  const result = new CheckpointStore(flash, state, id).boot();
  return { ...result, bytes: state.bytes };
}

// Saves states[i] at step i into flash.
function save(flash: MemoryFlash, i: number, holdout: number | null = null) {
  return new CheckpointStore(flash, new RegionState(states[i]!), planId).save(i, holdout);
}

// Recomputes a slot's CRC after a test edits its header (length capped to the slot).
function reseal(flash: MemoryFlash, slot: number): void {
  const store = new CheckpointStore(flash, new RegionState(states[0]!), planId);
  const base = store.slotOffset(slot), v = new DataView(flash.bytes.buffer, base);
  const length = Math.min(v.getUint32(12, true), store.sectorsPerSlot * BLOCK - CHECKPOINT_HEADER_BYTES);
  const crc = crc32(flash.bytes.subarray(base + CHECKPOINT_HEADER_BYTES, base + CHECKPOINT_HEADER_BYTES + length),
    crc32(flash.bytes.subarray(base, base + 28)));
  v.setUint32(28, crc, true);
}

describe('checkpoint format and boot', () => {
  it(`the plan's training state is ${payloadBytes} bytes in ${plan.regions.length} regions; two slots of ${flashBytes / 2} bytes`, () => {
    expect(plan.regions.map((r) => r.kind)).toContain('optimizer_state');
    expect(payloadBytes).toBeGreaterThan(2048);
    for (let i = 1; i < states.length; i++) expect(same(states[i]!, states[i - 1]!), `step ${i} changed the state`).toBe(false);
    expect(flashBytes).toBe(2 * Math.ceil((CHECKPOINT_HEADER_BYTES + payloadBytes) / BLOCK) * BLOCK);
  });

  it('empty flash: boot says so and keeps the initial weights', () => {
    const r = boot(new MemoryFlash(flashBytes, BLOCK));
    expect(r.restored).toBeNull();
    expect(r.messages).toEqual(["no checkpoint restored (the checkpoint slots are empty): starting from the plan's initial weights"]);
    expect(same(r.bytes, states[0]!)).toBe(true);
  });

  it('saves alternate between the slots with rising generations; boot takes the newest and says which', () => {
    const flash = new MemoryFlash(flashBytes, BLOCK);
    expect(save(flash, 1)).toEqual({ slot: 0, generation: 1, step: 1, holdout: null });
    expect(save(flash, 2)).toEqual({ slot: 1, generation: 2, step: 2, holdout: null });
    expect(save(flash, 3, 0.5)).toEqual({ slot: 0, generation: 3, step: 3, holdout: 32768 });
    const r = boot(flash);
    expect(r.restored).toEqual({ slot: 0, generation: 3, step: 3, holdout: 32768 });
    expect(r.messages).toEqual(['restored checkpoint generation 3 (step 3) from slot 0; slot 1 keeps generation 2 (step 2)']);
    expect(same(r.bytes, states[3]!)).toBe(true);
    // the header as documented
    const v = new DataView(flash.bytes.buffer);
    expect(String.fromCharCode(...flash.bytes.subarray(0, 4))).toBe('XSTC');
    expect([1, 2, 3, 4, 5, 6].map((k) => v.getUint32(4 * k, true))).toEqual([1, 3, payloadBytes, planId, 3, 32768]);
    expect(v.getUint32(28, true)).toBe(crc32(states[3]!, crc32(flash.bytes.subarray(0, 28))));
    expect(Array.from(flash.bytes.subarray(32, 32 + payloadBytes))).toEqual(Array.from(states[3]!));
  });

  it('the generation counter wraps: 0 follows 0xFFFFFFFF', () => {
    expect(isNewerGeneration(2, 1)).toBe(true);
    expect(isNewerGeneration(1, 2)).toBe(false);
    expect(isNewerGeneration(0, 0xffffffff)).toBe(true);
    expect(isNewerGeneration(0xffffffff, 0)).toBe(false);
    expect(isNewerGeneration(5, 5)).toBe(false);
    const flash = new MemoryFlash(flashBytes, BLOCK);
    save(flash, 1);
    new DataView(flash.bytes.buffer).setUint32(8, 0xfffffffe, true);
    reseal(flash, 0);
    expect(save(flash, 2).generation).toBe(0xffffffff);
    expect(save(flash, 3)).toMatchObject({ slot: 0, generation: 0 });
    const r = boot(flash);
    expect(r.restored).toMatchObject({ slot: 0, generation: 0, step: 3 });
    expect(same(r.bytes, states[3]!)).toBe(true);
    expect(save(flash, 4)).toMatchObject({ slot: 1, generation: 1 });
    expect(boot(flash).restored).toMatchObject({ slot: 1, generation: 1, step: 4 });
  });

  // slot 0: generation 1 (state 1); slot 1: generation 2 (state 2), damaged by edit
  const damaged: [string, (f: MemoryFlash, base: number) => void, RegExp][] = [
    ['a bit flipped in the header (generation)', (f, b) => { f.bytes[b + 8] ^= 0x10; },
      /^checkpoint slot 1: CRC mismatch: the header says 0x[0-9a-f]{8}, the bytes give 0x[0-9a-f]{8} \(corrupted, or a save that did not finish\): ignored$/],
    ['a bit flipped in the payload', (f, b) => { f.bytes[b + CHECKPOINT_HEADER_BYTES + 1000] ^= 0x01; }, /^checkpoint slot 1: CRC mismatch: /],
    ['a bit flipped in the CRC', (f, b) => { f.bytes[b + 29] ^= 0x80; }, /^checkpoint slot 1: CRC mismatch: /],
    ['the magic', (f, b) => { f.bytes[b] = 0x00; }, /^checkpoint slot 1: not a checkpoint \(starts with 0x00535443, not "XSTC"\): ignored$/],
    ['format version 2 (resealed)', (f, b) => { new DataView(f.bytes.buffer).setUint32(b + 4, 2, true); reseal(f, 1); },
      /^checkpoint slot 1: checkpoint format version 2, this firmware reads version 1: ignored$/],
    ['a truncated length', (f, b) => { new DataView(f.bytes.buffer).setUint32(b + 12, payloadBytes - 100, true); }, /^checkpoint slot 1: CRC mismatch: /],
    ['a truncated length (resealed)', (f, b) => { new DataView(f.bytes.buffer).setUint32(b + 12, payloadBytes - 100, true); reseal(f, 1); },
      new RegExp(`^checkpoint slot 1: holds ${payloadBytes - 100} bytes of training state, this plan has ${payloadBytes}: ignored$`)],
    ['a length past the slot', (f, b) => { new DataView(f.bytes.buffer).setUint32(b + 12, 0x7fffffff, true); },
      /^checkpoint slot 1: the header says 2147483647 bytes of payload, more than the slot's \d+ \(corrupt header\): ignored$/],
    ['another plan (resealed)', (f, b) => { new DataView(f.bytes.buffer).setUint32(b + 16, planId ^ 1, true); reseal(f, 1); },
      /^checkpoint slot 1: saved by another plan \(plan 0x[0-9a-f]{8}, this plan is 0x[0-9a-f]{8}\): ignored$/],
    ['a holdout field above 100% (resealed)', (f, b) => { new DataView(f.bytes.buffer).setUint32(b + 24, 65537, true); reseal(f, 1); },
      /^checkpoint slot 1: holdout accuracy field 65537 is above 65536 \(100%\): ignored$/],
    ['a sector of garbage', (f, b) => { for (let i = 0; i < BLOCK; i++) f.bytes[b + i] = (i * 37) & 0xff; }, /^checkpoint slot 1: not a checkpoint /],
  ];
  it.each(damaged)('newest slot damaged (%s): boot names it, restores the other slot', (_, edit, message) => {
    const flash = new MemoryFlash(flashBytes, BLOCK);
    save(flash, 1);
    save(flash, 2);
    edit(flash, new CheckpointStore(flash, new RegionState(states[0]!), planId).slotOffset(1));
    const r = boot(flash);
    expect(r.messages).toHaveLength(2);
    expect(r.messages[0]).toMatch(message);
    expect(r.messages[1]).toBe('restored checkpoint generation 1 (step 1) from slot 0');
    expect(same(r.bytes, states[1]!)).toBe(true);
    // the next save goes over the damaged slot and keeps the good one
    expect(save(flash, 3)).toMatchObject({ slot: 1, generation: 2 });
    expect(same(boot(flash).bytes, states[3]!)).toBe(true);
  });

  it('both slots damaged: boot names both and starts from the initial weights', () => {
    const flash = new MemoryFlash(flashBytes, BLOCK);
    save(flash, 1);
    save(flash, 2);
    const store = new CheckpointStore(flash, new RegionState(states[0]!), planId);
    flash.bytes[store.slotOffset(0) + 40] ^= 4;
    flash.bytes[store.slotOffset(1) + 1] ^= 4;
    const r = boot(flash);
    expect(r.restored).toBeNull();
    expect(r.messages[0]).toMatch(/^checkpoint slot 0: CRC mismatch/);
    expect(r.messages[1]).toMatch(/^checkpoint slot 1: not a checkpoint/);
    expect(r.messages[2]).toBe("no checkpoint restored (neither slot holds a valid checkpoint): starting from the plan's initial weights");
    expect(same(r.bytes, states[0]!)).toBe(true);
    expect(() => store.restore(0)).toThrow(/^cannot restore: checkpoint slot 0: CRC mismatch/);
  });

  it('checkpoints of another plan are refused by that plan', () => {
    const flash = new MemoryFlash(flashBytes, BLOCK);
    save(flash, 1);
    const r = boot(flash, planId ^ 0x100);
    expect(r.restored).toBeNull();
    expect(r.messages[0]).toMatch(/^checkpoint slot 0: saved by another plan/);
  });

  it('a partition too small for two slots is a clear error; flash misuse is refused', () => {
    const small = new MemoryFlash(flashBytes - BLOCK, BLOCK);
    expect(() => new CheckpointStore(small, new RegionState(states[0]!), planId)).toThrow(new CheckpointError(
      `checkpoints of ${payloadBytes} bytes of training state need 2 slots of ${flashBytes / 2 / BLOCK} 4096-byte sectors ` +
      `(${flashBytes} bytes) from sector 0; the flash partition has ${flashBytes / BLOCK - 1} sectors (${flashBytes - BLOCK} bytes): ` +
      'give the checkpoints a larger partition'));
    expect(() => small.erase(99)).toThrow(FlashError);
    expect(() => small.write(small.byteLength - 2, 4, new Uint8Array(4))).toThrow(FlashError);
    expect(() => small.read(0, 0)).toThrow(FlashError);
  });
});

describe('power lost at every byte of a save', () => {
  // Saves states[next] over flash image `before`, cutting the power after k
  // units for every k, then boots; `old`: what boot restores from `before`.
  // block: the sector size (the flash is checkpointFlashBytes for it).
  function sweep(before: Uint8Array, old: { bytes: Uint8Array; generation: number | null }, next: number, options: PowerFailOptions, block = BLOCK) {
    const bytes = checkpointFlashBytes(payloadBytes, block);
    const probe = new PowerFailFlash(bytes, block, before.slice(), options);
    const info = save(probe, next);
    const total = probe.units;
    expect(probe.misprograms, 'a write asked to set bits an erase had not set').toBe(0);
    expect(total).toBe(bytes / 2 + CHECKPOINT_HEADER_BYTES + Math.ceil(payloadBytes / 4) * 4);
    let firstNew = -1;
    const seen = new Set<string>();
    for (let k = 0; k <= total; k++) {
      const flash = new PowerFailFlash(bytes, block, before.slice(), options);
      flash.failAfter(k);
      const store = new CheckpointStore(flash, new RegionState(states[next]!), planId);
      if (k < total) {
        expect(() => store.save(next)).toThrow(PowerLoss);
        expect(flash.isPowered).toBe(false);
      } else {
        store.save(next); // verified by reading back
      }
      flash.powerOn();
      const r = boot(flash);
      for (const s of r.slots) seen.add(s.slot === info.slot ? s.status : `other ${s.status}`);
      if (same(r.bytes, states[next]!)) {
        if (firstNew < 0) firstNew = k;
        expect(r.restored, `k=${k}`).toMatchObject({ generation: info.generation, slot: info.slot });
      } else {
        expect(same(r.bytes, old.bytes), `k=${k}: boot restored neither the old nor the new state`).toBe(true);
        expect(firstNew, `k=${k}: the old state came back after the new one had (at k=${firstNew})`).toBe(-1);
        expect(r.restored?.generation ?? null, `k=${k}`).toBe(old.generation);
      }
    }
    // the new state appears only with the header's last bytes
    expect(firstNew).toBeGreaterThan(total - CHECKPOINT_HEADER_BYTES);
    return { total, seen };
  }

  const blank = new Uint8Array(flashBytes).fill(0xff);
  const twoSaved = (block: number) => {
    const f = new MemoryFlash(checkpointFlashBytes(payloadBytes, block), block);
    save(f, 1);
    save(f, 2);
    return f.bytes.slice();
  };

  it('first save onto erased flash: the initial weights or the new state', () => {
    const { total, seen } = sweep(blank, { bytes: states[0]!, generation: null }, 1, {});
    expect(total).toBeGreaterThan(payloadBytes);
    expect([...seen].sort()).toEqual(['corrupt', 'empty', 'other empty', 'valid']);
  });

  it('third save over the older of two (erase from the first byte): state 2 or state 3', () => {
    const { seen } = sweep(twoSaved(BLOCK), { bytes: states[2]!, generation: 2 }, 3, {});
    expect(seen).toEqual(new Set(['valid', 'corrupt', 'empty', 'other valid']));
  });

  it('the same with 1 KB sectors (4 a slot), erases from the last byte back and torn bytes', () => {
    const { seen } = sweep(twoSaved(1024), { bytes: states[2]!, generation: 2 }, 3, { eraseOrder: 'down', tornByte: true }, 1024);
    expect(seen).toEqual(new Set(['valid', 'corrupt', 'empty', 'other valid']));
  });
});

describe('resumed training equals training without a stop', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xstrain-ckpt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // Runs steps [from, to) on a fresh runtime booted from the flash file.
  function resume(path: string, steps: number) {
    const rt = load();
    const flash = new FileFlash(path, flashBytes, BLOCK);
    try {
      const store = new CheckpointStore(flash, planCheckpointState(rt), planId);
      const r = store.boot();
      const from = r.restored?.step ?? 0;
      const metrics: (number | null)[] = [];
      for (let i = from; i < from + steps; i++) {
        const s = seededSample(plan, i, SEED);
        metrics.push(rt.step(s.input, s.label));
      }
      if (steps > 0) store.save(from + steps);
      return { messages: r.messages, metrics, crc: rt.regionsCrc(), bytes: rt.regionBytes() };
    } finally {
      flash.close();
    }
  }

  it('Node: 2 steps, a checkpoint in a flash file, a new runtime, 2 more steps = 4 steps', () => {
    const path = join(dir, 'node.bin');
    const a = resume(path, 2), b = resume(path, 2);
    expect(a.messages).toEqual(["no checkpoint restored (the checkpoint slots are empty): starting from the plan's initial weights"]);
    expect(b.messages).toEqual(['restored checkpoint generation 1 (step 2) from slot 0']);
    expect(same(b.bytes, states[4]!)).toBe(true);
    const straight = load(), metrics: (number | null)[] = [];
    for (let i = 0; i < 4; i++) {
      const s = seededSample(plan, i, SEED);
      metrics.push(straight.step(s.input, s.label));
    }
    expect([...a.metrics, ...b.metrics]).toEqual(metrics);
    expect(readFileSync(path).length).toBe(flashBytes);
    expect(() => new FileFlash(path, flashBytes * 2, BLOCK)).toThrow(/is \d+ bytes, the partition is/);
  });

  const xsBinary = join(repoRoot, 'out', 'xs', 'xst-xs'), xsMain = join(repoRoot, 'out', 'ts', 'xs', 'main.js');
  const runXs = (planPath: string, flashPath: string, steps: number) => {
    if (!existsSync(xsBinary) || !existsSync(xsMain)) expect.fail('XS host or compiled TS missing: run npm run setup');
    const r = spawnSync(xsBinary, [xsMain, 'checkpoint', planPath, flashPath, String(steps), String(SEED)], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{'))!);
  };

  it('XS engine: the same through its file-backed flash; Node reads the flash XS wrote, and a damaged slot falls back', () => {
    const planPath = join(dir, 'plan.xstp'), flashPath = join(dir, 'xs.bin');
    writeFileSync(planPath, blob);
    const hex = (b: Uint8Array) => crc32(b).toString(16).padStart(8, '0');
    expect(runXs(planPath, flashPath, 2)).toEqual({
      boot: ["no checkpoint restored (the checkpoint slots are empty): starting from the plan's initial weights"],
      from: 0, step: 2, generation: 1, crc: hex(states[2]!),
    });
    expect(runXs(planPath, flashPath, 2)).toEqual({
      boot: ['restored checkpoint generation 1 (step 2) from slot 0'], from: 2, step: 4, generation: 2, crc: hex(states[4]!),
    });
    // Node boots from the file XS wrote
    const fromXs = resume(flashPath, 0);
    expect(fromXs.messages).toEqual(['restored checkpoint generation 2 (step 4) from slot 1; slot 0 keeps generation 1 (step 2)']);
    expect(same(fromXs.bytes, states[4]!)).toBe(true);
    // a payload byte of slot 1 flipped in the file: XS falls back to slot 0 and says so
    const image = readFileSync(flashPath);
    image[flashBytes / 2 + CHECKPOINT_HEADER_BYTES + 7] ^= 0x40;
    writeFileSync(flashPath, image);
    const r = runXs(planPath, flashPath, 0);
    expect(r.boot[0]).toMatch(/^checkpoint slot 1: CRC mismatch: /);
    expect(r.boot[1]).toBe('restored checkpoint generation 1 (step 2) from slot 0');
    expect(r).toMatchObject({ from: 2, step: 2, generation: 2, crc: hex(states[2]!) });
  });
});

describe('rollback guard', () => {
  it('restores the newest checkpoint when the holdout accuracy falls by more than the margin, saves otherwise', () => {
    const flash = new MemoryFlash(flashBytes, BLOCK);
    const state = new RegionState(states[1]!);
    const store = new CheckpointStore(flash, state, planId);
    let accuracy = 0.75;
    const guard = new RollbackGuard(store, () => accuracy, 0.125);
    const g1 = guard.checkpoint(1);
    expect(g1).toMatchObject({ action: 'saved', accuracy: 0.75, checkpoint: { generation: 1, holdout: 49152 } });
    expect(g1.message).toBe('holdout accuracy 75.0%: saved generation 1 at step 1');
    // a drop of exactly the margin is kept
    state.bytes.set(states[2]!);
    accuracy = 0.625;
    const g2 = guard.checkpoint(2);
    expect(g2).toMatchObject({ action: 'saved', checkpoint: { generation: 2, step: 2, holdout: 40960 } });
    expect(g2.message).toBe('holdout accuracy 62.5% (checkpoint generation 1: 75.0%): saved generation 2 at step 2');
    // a larger drop: back to state 2, nothing written
    state.bytes.set(states[3]!);
    accuracy = 0.375;
    const before = flash.bytes.slice();
    const g3 = guard.checkpoint(3);
    expect(g3).toMatchObject({ action: 'rolled back', accuracy: 0.375, checkpoint: { generation: 2, step: 2 } });
    expect(g3.message).toBe('holdout accuracy 37.5% at step 3 is more than 12.5% below the 62.5% of checkpoint generation 2 (step 2): restored it');
    expect(same(state.bytes, states[2]!)).toBe(true);
    expect(same(flash.bytes, before)).toBe(true);
    // a rise is saved; the accuracy a checkpoint recorded survives a reboot
    state.bytes.set(states[4]!);
    accuracy = 1;
    expect(guard.checkpoint(4)).toMatchObject({ action: 'saved', checkpoint: { generation: 3, holdout: 65536 } });
    expect(boot(flash).restored).toEqual({ slot: 0, generation: 3, step: 4, holdout: 65536 });
    expect(() => new RollbackGuard(store, () => 1, 2)).toThrow(HoldoutError);
  });

  it('with a holdout set in flash scored by the plan: damaged weights are rolled back', () => {
    const rt = load();
    // the holdout: seeded inputs labelled with what the model predicts now
    const argmax = (y: Int8Array) => (y[1]! > y[0]! ? 1 : 0);
    const samples: HoldoutSample[] = Array.from({ length: 8 }, (_, i) => {
      const { input } = seededSample(plan, 100 + i, SEED);
      return { input, label: argmax(rt.infer(input)) };
    });
    // in the sectors after the two slots
    const flash = new MemoryFlash(flashBytes + Math.ceil(encodeHoldout(samples).length / BLOCK) * BLOCK, BLOCK);
    const store = new CheckpointStore(flash, planCheckpointState(rt), planId);
    expect(store.endSector).toBe(flashBytes / BLOCK);
    writeHoldout(flash, store.endSector, samples);
    const holdout = readHoldout(flash, store.endSector, plan.io.input.bytes, plan.io.classes);
    expect(holdout.map((s) => s.label)).toEqual(samples.map((s) => s.label));
    const guard = new RollbackGuard(store, () => holdoutAccuracy(rt, holdout), 0.1);
    expect(guard.checkpoint(0)).toMatchObject({ action: 'saved', accuracy: 1 });
    const good = rt.regionBytes();
    // a fault: the classifier's bias pushed to the class sample 0 is not
    const f = 1 - samples[0]!.label, faulty = samples.filter((s) => s.label === f).length / samples.length;
    const bias = plan.regions.filter((r) => r.kind === 'bias' && r.bytes === 8).at(-1)!;
    const push = new Int32Array(2);
    push[f] = 1 << 24;
    push[1 - f] = -(1 << 24);
    rt.dispatch.write(bias.offset, new Uint8Array(push.buffer));
    expect(holdoutAccuracy(rt, holdout)).toBe(faulty);
    expect(faulty).toBeLessThanOrEqual(0.875);
    const g = guard.checkpoint(1);
    expect(g).toMatchObject({ action: 'rolled back', accuracy: faulty, checkpoint: { generation: 1 } });
    expect(same(rt.regionBytes(), good)).toBe(true);
    expect(holdoutAccuracy(rt, holdout)).toBe(1);
    // a corrupt holdout is refused with a reason
    flash.bytes[store.endSector * BLOCK + 30] ^= 1;
    expect(() => readHoldout(flash, store.endSector, plan.io.input.bytes, plan.io.classes)).toThrow('holdout: CRC mismatch (corrupted holdout set)');
    expect(() => readHoldout(flash, 0, plan.io.input.bytes, plan.io.classes)).toThrow(/not a holdout set/);
  });
});
