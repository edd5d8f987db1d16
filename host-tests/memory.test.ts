// The main job's memory report (scripts/memory-report.ts over src/xs/app.ts
// --memory and src/node/memory.ts) on a small MNIST preparation: its fields
// agree with the plan and with each other. Not timed.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { decodePlan } from '../src/core/plan-format.js';
import { type AppMemory, type BoardFile, type HeapCount, type MemoryReport, HOST_SLOT_BYTES, DEVICE_SLOT_BYTES, memoryReport } from '../src/node/memory.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const xst = path.join(root, 'out', 'xs', 'xst-xs');
const work = mkdtempSync(path.join(tmpdir(), 'xstrain-memory-test-'));
const out = path.join(work, 'out');
const data = path.join(out, 'mnist');
const plan = path.join(out, 'person_detect-10.xstp');

let measured: AppMemory;
let baseline: HeapCount;
let report: MemoryReport;

function app(steps: number): AppMemory {
  const r = spawnSync(xst, ['out/ts/xs/app.js', '--data', data, '--plan', plan, '--flash', path.join(work, 'flash.bin'),
    '--steps', String(steps), '--every', '1000000', '--test', '1', '--fresh', '--memory'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`app --memory failed: ${r.stderr}${r.stdout}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { memory: AppMemory }).memory;
}

beforeAll(() => {
  for (const f of [xst, path.join(root, 'out/ts/xs/app.js'), path.join(root, 'out/ts/xs/heap-baseline.js')]) {
    if (!existsSync(f)) throw new Error(`${path.relative(root, f)} is missing: build the XS host and the TypeScript first`);
  }
  const p = spawnSync('npx', ['tsx', 'scripts/prepare-app.ts', '--data', 'mnist', '--train-images', '40', '--test-images', '10', '--out', out],
    { cwd: root, encoding: 'utf8', timeout: 180_000 });
  if (p.status !== 0) throw new Error(`prepare failed: ${p.stderr}${p.stdout}`);
  const r = spawnSync('npx', ['tsx', 'scripts/memory-report.ts', '--data', data, '--plan', plan, '--steps', '20', '--json'],
    { cwd: root, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`memory-report failed: ${r.stderr}${r.stdout}`);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { measured: AppMemory; baseline: HeapCount; report: MemoryReport };
  ({ measured, baseline, report } = j);
}, 400_000);

describe('memory report (main job on the XS host)', () => {
  it('the arena and the blob are the plan\'s; no copy of its flash section', () => {
    const blob = new Uint8Array(readFileSync(plan));
    const p = decodePlan(blob);
    expect(report.arenaBytes).toBe(p.arenaBytes);
    expect(measured.arenaBytes).toBe(p.arenaBytes);
    expect(measured.planBlobBytes).toBe(blob.length);
    // The plan runs in C from the blob (bound): the host Dispatch keeps no
    // copy of the flash section, and the decoded plan holds no op list.
    expect(p.flash.length).toBeGreaterThan(0);
    expect(measured.flashSectionBytes).toBe(0);
    expect(report.parts.some((part) => /copy of the plan's flash section/.test(part.what))).toBe(false);
    for (const b of report.boards) expect(b.arena).toBe(p.arenaBytes);
  });

  it('the heap grows stage by stage and every part is positive', () => {
    const order = ['modules', 'blob', 'decoded', 'started', 'steps'] as const;
    expect(baseline.chunks).toBeGreaterThan(0);
    expect(baseline.slots).toBeGreaterThan(0);
    let prev = baseline;
    for (const k of order) {
      const s = measured.stages[k];
      expect(s.chunks, k).toBeGreaterThanOrEqual(prev.chunks);
      expect(s.slots, k).toBeGreaterThanOrEqual(prev.slots);
      prev = s;
    }
    for (const part of report.parts) expect(part.hostBytes, part.what).toBeGreaterThan(0);
    expect(report.deviceXsHeap).toBeGreaterThan(0);
    expect(measured.heapInUse).toBeGreaterThan(0);
    expect(measured.stackBytes).toBeGreaterThan(0);
  });

  it('the parts add up to the heap after the steps, on the host and on a device', () => {
    const s = measured.stages.steps;
    const host = report.parts.reduce((a, p) => a + p.hostBytes, 0);
    expect(host).toBe(s.chunks + s.slots * HOST_SLOT_BYTES);
    expect(report.hostHeapBytes).toBe(host);
    expect(report.parts.reduce((a, p) => a + p.chunks, 0)).toBe(s.chunks);
    expect(report.parts.reduce((a, p) => a + p.slots, 0)).toBe(s.slots);
    for (const p of report.parts) expect(p.deviceBytes).toBe(p.chunks + p.slots * DEVICE_SLOT_BYTES);
    const ram = report.parts.filter((p) => p.where === 'ram').reduce((a, p) => a + p.deviceBytes, 0);
    expect(report.deviceXsHeap).toBe(ram);
    // the buffers a device keeps out of the XS heap are named parts
    const bytesOf = (w: string) => report.parts.find((p) => p.what.startsWith(w))!.chunks;
    expect(bytesOf('plan blob')).toBe(measured.planBlobBytes);
    expect(bytesOf('arena')).toBe(measured.arenaBytes);
    expect(bytesOf('checkpoint partition')).toBe(measured.checkpointPartitionBytes);
  });

  it('each board\'s total is its other items + the run\'s arena, XS heap and C stack', () => {
    const files = readdirSync(path.join(root, 'boards')).filter((f) => f.endsWith('.json'));
    expect(report.boards.map((b) => `${b.board}.json`).sort()).toEqual(files.sort());
    for (const b of report.boards) {
      const f = JSON.parse(readFileSync(path.join(root, 'boards', `${b.board}.json`), 'utf8')) as BoardFile & { platform: string };
      const manifest = JSON.parse(readFileSync(path.join(root, 'manifest.json'), 'utf8')) as { platforms: Record<string, { creation: { stack: number } }> };
      expect(b.ramBytes).toBe(f.ramBytes);
      expect(b.regionBytes).toBe(f.memory.regionBytes);
      expect(b.boardArena).toBe(f.arenaBytes);
      // the board's own budget: its items (arena, XS, task stack, others) make its region or less
      expect(b.others + b.boardArena + b.boardXs + (b.cStackReserve ?? 0)).toBeLessThanOrEqual(f.memory.regionBytes);
      expect(b.boardXs).toBeGreaterThan(0);
      expect(b.xsHeap).toBe(report.deviceXsHeap);
      expect(b.cStack).toBe(measured.stackBytes);
      expect(b.total).toBe(b.others + b.arena + b.xsHeap + b.xsStack + b.cStack);
      // The XS stack the run needs (the smallest it completes with) is
      // within the board's creation.stack.
      expect(report.xsStackSlots).toBeGreaterThan(64);
      expect(b.xsStack).toBe(report.xsStackSlots! * 16);
      expect(b.boardXsStackSlots).toBe(manifest.platforms[f.platform].creation.stack);
      expect(report.xsStackSlots!, b.board).toBeLessThanOrEqual(b.boardXsStackSlots!);
      expect(b.free).toBe(b.regionBytes - b.total);
      expect(b.fitsRam).toBe(b.total <= b.regionBytes);
      expect(b.fitsXs).toBe(b.xsHeap <= b.boardXs);
      expect(b.fitsArena).toBe(b.arena <= b.boardArena);
      // The main job's firmware fits each board: arena, XS heap and the
      // board's other RAM (the plan's ops run in C from the blob; when they
      // were decoded in JavaScript the XS heap fit no board).
      // ... and its two checkpoints fit the board's checkpoint partition.
      const k = (JSON.parse(readFileSync(path.join(root, 'boards', `${b.board}.json`), 'utf8')) as { checkpoints: { partitionBytes: number } }).checkpoints;
      expect(measured.checkpointPartitionBytes).toBeLessThanOrEqual(k.partitionBytes);
      expect(b.fitsArena && b.fitsXs && b.fitsRam, `${b.board}: arena ${b.arena}/${b.boardArena}, XS ${b.xsHeap}/${b.boardXs}, total ${b.total}/${b.regionBytes}`).toBe(true);
    }
  });

  it('the C stack is measured: none without steps, some with one', () => {
    expect(app(0).stackBytes).toBe(0);
    expect(app(1).stackBytes).toBeGreaterThan(1024);
  });

  it('stages out of order are an error, not a report', () => {
    const bad = { ...measured, stages: { ...measured.stages, decoded: { chunks: measured.stages.blob.chunks - 1, slots: measured.stages.blob.slots } } };
    expect(() => memoryReport(bad, baseline, {})).toThrow(/negative/);
  });
});
