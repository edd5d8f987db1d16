// The main job's memory against each board's RAM (README, "The main job",
// "Memory"). Runs the app on the XS host with --memory on prepared data
// (scripts/prepare-app.ts first) and the built-ins alone, then prints where
// each part of the host's XS heap would be on a device and, per board, the
// run's arena, XS heap and C stack against the board's RAM.
//   npx tsx scripts/memory-report.ts [--data DIR] [--plan FILE] [--steps N] [--json]
// --data default out/app/fashion-mnist, --plan out/app/person_detect-10.xstp,
// --steps 100 (fewer than the checkpoint interval: the C stack is a step's,
// not a checkpoint's host file I/O). The checkpoint file is a temporary one.
// Then the XS stack: the smallest that a 30-step run completes with.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { option } from '../src/node/app-data.js';
import { type AppMemory, type BoardFile, type HeapCount, formatMemoryReport, memoryReport } from '../src/node/memory.js';

function lastJson(what: string, r: ReturnType<typeof spawnSync>): Record<string, unknown> {
  if (r.error) throw new Error(`cannot run out/xs/xst-xs (build it: bash native/xs/build.sh): ${r.error.message}`);
  const out = String(r.stdout);
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${out}${String(r.stderr)}`);
  return JSON.parse(out.trim().split('\n').pop() ?? '') as Record<string, unknown>;
}

function main(args: string[]): void {
  const data = option(args, 'data', 'out/app/fashion-mnist');
  const plan = option(args, 'plan', 'out/app/person_detect-10.xstp');
  const steps = option(args, 'steps', '100');
  const tmp = mkdtempSync(join(tmpdir(), 'xstrain-memory-'));
  try {
    const base = lastJson('heap-baseline.js', spawnSync('out/xs/xst-xs', ['out/ts/xs/heap-baseline.js'], { encoding: 'utf8' }));
    const app = lastJson('app.js --memory', spawnSync('out/xs/xst-xs', ['out/ts/xs/app.js', '--data', data, '--plan', plan,
      '--flash', join(tmp, 'flash.bin'), '--steps', steps, '--every', '1000000', '--test', '1', '--report', '1000000', '--fresh', '--memory'],
    { encoding: 'utf8', timeout: 600_000 }));
    const boards: Record<string, BoardFile> = {};
    for (const f of readdirSync('boards').filter((f) => f.endsWith('.json')).sort()) {
      boards[f.replace(/\.json$/, '')] = JSON.parse(readFileSync(join('boards', f), 'utf8')) as BoardFile;
    }
    // The XS stack: the smallest creation.stack (slots) with which a short
    // run (boot, checkpoints, holdout scoring, steps) completes, by
    // bisection (XST_XS_STACK_SLOTS; a smaller stack is a fatal "stack
    // overflow"). The host loads modules unpreloaded, so it may need more
    // than a device: an upper bound.
    const runs = (slots: number) => spawnSync('out/xs/xst-xs', ['out/ts/xs/app.js', '--data', data, '--plan', plan,
      '--flash', join(tmp, 'stack.bin'), '--steps', '30', '--every', '10', '--test', '5', '--report', '1000000', '--fresh'],
    { encoding: 'utf8', timeout: 600_000, env: { ...process.env, XST_XS_STACK_SLOTS: String(slots) } }).status === 0;
    let lo = 64, hi = 16384; // lo fails, hi runs
    if (runs(lo) || !runs(hi)) throw new Error('XS stack bisection: the run does not fail at 64 slots and pass at 16,384');
    while (hi - lo > 8) {
      const mid = (lo + hi) >> 1;
      if (runs(mid)) hi = mid;
      else lo = mid;
    }
    const manifest = JSON.parse(readFileSync('manifest.json', 'utf8')) as { platforms: Record<string, { creation?: { stack?: number } }> };
    const stackSlots: Record<string, number> = {};
    for (const [name, b] of Object.entries(boards)) {
      const slots = manifest.platforms[(b as BoardFile & { platform: string }).platform]?.creation?.stack;
      if (slots !== undefined) stackSlots[name] = slots;
    }
    const report = memoryReport(app.memory as AppMemory, base.heapBaseline as HeapCount, boards, hi, stackSlots);
    if (args.includes('--json')) console.log(JSON.stringify({ measured: app.memory, baseline: base.heapBaseline, report }));
    else console.log(formatMemoryReport(report));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

try {
  main(process.argv.slice(2));
} catch (e) {
  console.error(`memory-report: ${(e as Error).message}`);
  process.exit(1);
}
