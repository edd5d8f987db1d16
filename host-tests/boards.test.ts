// boards/*.json against themselves, the manifest and the checkpoint code:
// every board names its RAM budget item by item and the arena plus the
// reserves fit it; the manifest's per-board section carries the same arena,
// XS sizes, partition and sensor address; the checkpoint partition holds two
// slots of the largest payload the board file claims, and no more.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CheckpointState, CheckpointStore, checkpointFlashBytes } from '../src/core/checkpoint.js';
import { MemoryFlash } from '../src/core/flash.js';
import { LineAssembler, MAX_LINE } from '../src/moddable/lines.js';

const root = join(import.meta.dirname, '..');
const readJson = (path: string) => JSON.parse(readFileSync(join(root, path), 'utf8'));

interface Item {
  what: string;
  bytes: number;
  source: string;
  static?: boolean;
  holds?: { what: string; bytes: number; source: string }[];
}

interface Board {
  name: string;
  platform: string;
  ramBytes: number;
  flashBytes: number;
  arenaBytes: number;
  memory: { regionBytes: number; region: string; staticLimitBytes?: number; items: Item[]; how: string };
  checkpoints: { partition: string; partitionBytes: number; blockSize: number; firstSector: number; maxPayloadBytes: number; created: string; how: string };
  sensors: { accelerometer: { part: string; driver: string; bus: string; data: number; clock: number; address: number; onBoard: boolean } };
  button: { pin: number; mode: string; pressedLevel: 0 | 1 };
  console: { port: number; receive: number; transmit: number; baud: number };
}

const boards = readdirSync(join(root, 'boards')).filter((f) => f.endsWith('.json')).map((f) => ({ file: f.slice(0, -5), b: readJson(`boards/${f}`) as Board }));
const manifest = readJson('manifest.json');
const sum = (xs: readonly { bytes: number }[]) => xs.reduce((a, x) => a + x.bytes, 0);

describe('boards', () => {
  it('the three boards of the firmware issue are there', () => {
    expect(boards.map((x) => x.b.platform).sort()).toEqual(['esp32/esp32c3', 'esp32/moddable_two', 'nrf52/moddable_four']);
  });

  for (const { file, b } of boards) {
    describe(file, () => {
      const section = manifest.platforms[b.platform];

      it('has its fields, with whole byte counts', () => {
        for (const k of ['ramBytes', 'flashBytes', 'arenaBytes'] as const) expect(Number.isInteger(b[k]) && b[k] > 0, k).toBe(true);
        expect(b.arenaBytes % 16).toBe(0);
        expect(b.arenaBytes).toBeLessThanOrEqual(256 * 1024); // DESIGN.md: at most 256 KB
        expect(b.memory.how.length).toBeGreaterThan(40);
        for (const item of b.memory.items) {
          expect(Number.isInteger(item.bytes) && item.bytes > 0, item.what).toBe(true);
          expect(item.source.length, item.what).toBeGreaterThan(10);
        }
      });

      it('the arena and every reserve fit the RAM', () => {
        const m = b.memory;
        expect(m.regionBytes).toBeLessThanOrEqual(b.ramBytes);
        expect(sum(m.items)).toBeLessThanOrEqual(m.regionBytes);
        const arena = m.items.filter((i) => i.what.startsWith('arena'));
        expect(arena.map((i) => i.bytes)).toEqual([b.arenaBytes]);
        for (const i of m.items) if (i.holds) expect(sum(i.holds), i.what).toBe(i.bytes);
        if (m.staticLimitBytes !== undefined) {
          expect(sum(m.items.filter((i) => i.static))).toBeLessThanOrEqual(m.staticLimitBytes);
          expect(arena[0]!.static).toBe(true);
        }
      });

      it("the manifest's section for the board carries the same figures", () => {
        expect(section, `manifest.json platforms["${b.platform}"]`).toBeDefined();
        expect(section.defines.xstrain.arena_bytes).toBe(b.arenaBytes);
        const c = section.config.xstrain;
        expect(c.board).toBe(file);
        expect(c.lis3dh_address).toBe(b.sensors.accelerometer.address);
        expect(c.checkpoint_partition).toBe(b.checkpoints.partition);
        const xs = b.memory.items.flatMap((i) => [i, ...(i.holds ?? [])]).find((i) => i.what.startsWith('XS heap'))!;
        expect(xs).toBeDefined();
        const cr = section.creation;
        if (cr?.static) expect(cr.static).toBe(xs.bytes);
        else if (cr) expect(cr.chunk.initial + 16 * cr.heap.initial + 16 * cr.stack).toBe(xs.bytes); // 16-byte slots on 32-bit XS
        if (b.platform.startsWith('esp32/')) expect(section.defines.file.partition).toBe(`#${b.checkpoints.partition}`);
        if (b.platform.startsWith('esp32/')) {
          // The partition table the build uses: the checkpoint partition is
          // there with the board file's size; app partitions 64 KB-aligned;
          // nothing overlaps or runs past the board's flash.
          const csv = readFileSync(join(root, section.build.PARTITIONS_FILE), 'utf8');
          const rows = csv.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
            .map((l) => l.split(',').map((x) => x.trim()));
          const parts = rows.map(([name, type, subtype, offset, size]) => ({ name, type, subtype, offset: Number(offset), size: Number(size) }));
          for (const p of parts) expect(Number.isInteger(p.offset) && Number.isInteger(p.size) && p.size > 0, p.name).toBe(true);
          const store = parts.find((p) => p.name === b.checkpoints.partition)!;
          expect(store).toMatchObject({ type: 'data', size: b.checkpoints.partitionBytes });
          for (const p of parts) if (p.type === 'app') expect(p.offset % 0x10000, p.name).toBe(0);
          const sorted = [...parts].sort((x, y) => x.offset - y.offset);
          for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.offset).toBeGreaterThanOrEqual(sorted[i - 1]!.offset + sorted[i - 1]!.size);
          expect(sorted.at(-1)!.offset + sorted.at(-1)!.size).toBeLessThanOrEqual(b.flashBytes);
        }
        if (b.platform.startsWith('nrf52/')) {
          expect(section.defines.file.lfs.partition.size).toBe(b.checkpoints.partitionBytes); // MODDEF_FILE_LFS_PARTITION_SIZE
          const heap = b.memory.items.find((i) => i.what.startsWith('FreeRTOS heap'))!;
          expect(Number(section.build.NRF52_HEAP_SIZE)).toBe(heap.bytes);
          expect(b.checkpoints.partition).toBe('storage'); // the nRF52 flash module's names: storage, xs, ble-peers, running
        }
      });

      it('the checkpoint partition holds two slots of maxPayloadBytes, and no more', () => {
        const k = b.checkpoints;
        expect(checkpointFlashBytes(k.maxPayloadBytes, k.blockSize)).toBeLessThanOrEqual(k.partitionBytes - k.firstSector * k.blockSize);
        expect(checkpointFlashBytes(k.maxPayloadBytes + 4, k.blockSize)).toBeGreaterThan(k.partitionBytes - k.firstSector * k.blockSize);
        const state = (bytes: number): CheckpointState => ({
          regions: [{ offset: 0, bytes }],
          read: (_o, n) => new Uint8Array(n),
          write: () => {},
        });
        const flash = new MemoryFlash(k.partitionBytes, k.blockSize);
        const store = new CheckpointStore(flash, state(k.maxPayloadBytes), 1, k.firstSector);
        expect(store.save(1).generation).toBe(1);
        expect(store.save(2).slot).toBe(1);
        expect(() => new CheckpointStore(flash, state(k.maxPayloadBytes + 4), 1, k.firstSector)).toThrow(/give the checkpoints a larger partition/);
      });

      it('names its sensor wiring, button and console', () => {
        const a = b.sensors.accelerometer;
        expect(a.driver).toBe('embedded:sensor/Accelerometer/LIS3DH');
        expect(a.bus).toBe('i2c');
        expect([0x18, 0x19]).toContain(a.address);
        for (const pin of [a.data, a.clock, b.button.pin, b.console.receive, b.console.transmit]) expect(Number.isInteger(pin) && pin >= 0).toBe(true);
        expect(b.button.pressedLevel).toBe(0);
        expect(b.console.baud).toBe(115200);
      });
    });
  }
});

describe('manifest.json', () => {
  it("includes the SDK's LIS3DH sensor class, flash module and ECMA-419 IO by reference", () => {
    expect(manifest.include).toEqual(expect.arrayContaining([
      '$(MODDABLE)/modules/drivers/sensors/lis3dh/manifest.json',
      '$(MODDABLE)/modules/files/flash/manifest.json',
      '$(MODDABLE)/modules/io/manifest.json',
    ]));
  });

  it('lists every C file of the core, and the glue', () => {
    const listed = new Set(manifest.modules['*'] as string[]);
    for (const f of readdirSync(join(root, 'native/core')).filter((n) => n.endsWith('.c'))) expect(listed.has(`./native/core/${f.slice(0, -2)}`), f).toBe(true);
    expect(listed.has('./native/xs/xst_xs')).toBe(true);
    expect(listed.has('./native/xs/xst_arena')).toBe(true);
  });

  it('maps every folder of the core and the main module', () => {
    for (const d of readdirSync(join(root, 'src/core'), { withFileTypes: true }).filter((e) => e.isDirectory())) {
      expect(manifest.modules[`core/${d.name}/*`], d.name).toBe(`./src/core/${d.name}/*`);
    }
    expect(manifest.creation.main).toBe('moddable/main');
    expect(manifest.modules['moddable/*']).toBe('./src/moddable/*');
  });

  it('stops a build for a board it has no settings for', () => {
    expect(manifest.platforms.esp32.error).toMatch(/esp32\/moddable_two/);
    expect(manifest.platforms.nrf52.error).toMatch(/nrf52\/moddable_four/);
  });

  it('no file outside src/moddable imports a Moddable module', () => {
    const moddable = /from '(timer|flash|Resource|mc\/config|embedded:[^']*)'/;
    for (const dir of ['src/core', 'src/core/optim', 'src/core/reference', 'src/xs']) {
      for (const f of readdirSync(join(root, dir)).filter((n) => n.endsWith('.ts'))) {
        expect(readFileSync(join(root, dir, f), 'utf8'), `${dir}/${f}`).not.toMatch(moddable);
      }
    }
  });
});

describe('the device console lines', () => {
  it('ends a line at CR or LF, drops control bytes, and refuses an overlong line', () => {
    const lines: string[] = [], errors: string[] = [];
    const a = new LineAssembler((l) => lines.push(l), (e) => errors.push(e));
    for (const c of 'label 2\r\n\nbutton\t 1\n') a.push(c.charCodeAt(0));
    for (let i = 0; i < MAX_LINE + 5; i++) a.push(65);
    a.push(10);
    for (const c of 'status\n') a.push(c.charCodeAt(0));
    expect(lines).toEqual(['label 2', 'button 1', 'status']);
    expect(errors).toEqual([`line longer than ${MAX_LINE} characters ignored`]);
  });
});
