// Instructions of one training step of the 128 KB plan (MobileNetV2-w0.35
// at 128x128, 10 classes, the reference's 99 KB scheme, row-tiled forward,
// sliced weights, one-row input gradients; host-tests/plan-mbv2-128.test.ts)
// on the bare-metal images (QEMU, deterministic counts):
//   - per plan step as the image runs it (xst_plan_run: one STEP record),
//     training and inference, on Cortex-M4F (DSP and portable) and RV32IMC;
//   - per kernel on Cortex-M4F (DSP): the same step replayed as one CALL
//     record per call, summed by kernel and split at the loss into the
//     forward and the backward with its fused updates;
//   - the full update: whether it lowers, and what it would need.
// `npx tsx bench/train-plan.ts` prints the table and writes
// bench/results/train-plan.json. Needs the images (npm run build:baremetal).
// measureTrainingStep is the same count for any model and options, for the
// other benchmarks (bench/memory.ts).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import { type CompileOptions, compileTraining } from '../src/compiler/train/compile.js';
import { type LowerOptions, compilePlan } from '../src/compiler/train/lower.js';
import type { Graph } from '../src/core/graph.js';
import type { SparseUpdateScheme } from '../src/compiler/train/scheme.js';
import { tiledMacs } from '../src/compiler/train/tile.js';
import { FLASH_BASE } from '../src/core/kernels.js';
import { Op, opName } from '../src/core/ops.js';
import { recordPlanTrace, seededSample } from '../src/core/plan-runtime.js';
import { TraceWriter } from '../src/core/trace.js';
import { repoRoot } from '../src/node/addon.js';
import { type BaremetalTarget, runTrace } from '../src/node/qemu.js';

const model = () => buildMobileNetV2({ width: 0.35, resolution: 128, classes: 10, seed: 1 });
const idx = [27, 30, 33, 36, 39, 42, 45, 48], ratio = [1, 1, 1, 1, 1, 0.125, 0.5, 1];
const scheme: SparseUpdateScheme = { biasLayers: 26, weights: idx.map((layer, k) => ({ layer, ratio: ratio[k]! })) };
const options = { reorder: true, sliceWeights: true, rowScratch: true, tile: true, lr: 2 ** -10, lrBias: 2 ** -10 } as const;
const M = (n: number) => `${(n / 1e6).toFixed(1)} M`;

export interface StepMeasurement {
  instructions: number | null; // one training step (the first, on a seeded sample)
  reason: string | null; // why there is no count
  target: BaremetalTarget;
  arenaBytes: number | null; // the plan's
}

// Instructions of one training step of the plan compiled from model with o,
// on a bare-metal image (default: the target's, npm run build:baremetal).
// A plan that does not lower (a kernel missing) or that the image cannot
// hold (arena, flash) is null with the reason.
export async function measureTrainingStep(model: Graph, o: CompileOptions & LowerOptions,
  target: BaremetalTarget = 'cortex-m4', image?: string): Promise<StepMeasurement> {
  let compiled;
  try {
    compiled = compilePlan(model, o);
  } catch (e) {
    return { instructions: null, reason: (e as Error).message, target, arenaBytes: null };
  }
  const { plan, blob } = compiled;
  const trace = recordPlanTrace(blob, [seededSample(plan, 0, 7)]);
  const r = await runTrace(target, trace, { timeoutMs: 30 * 60_000, ...(image ? { image } : {}) });
  const step = r.parsed.steps.find((s) => s.which === 0);
  if (r.exitCode !== 0 || !step) {
    const said = `${r.stdout}${r.stderr}`.split('\n').filter((l) => /error|plan [1-9]/.test(l)).join('; ') || `exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}`;
    return { instructions: null, reason: `the ${target} image cannot run the plan (arena ${plan.arenaBytes} B, blob ${blob.length} B): ${said}`, target, arenaBytes: plan.arenaBytes };
  }
  return { instructions: step.instructions, reason: null, target, arenaBytes: plan.arenaBytes };
}

async function main(): Promise<void> {
  const c = compilePlan(model(), { scheme, ...options });
  const { plan, blob } = c;
  const samples = [0, 1].map((i) => seededSample(plan, i, 7));
  const macs = tiledMacs(c.compiled.graph);
  console.log(`MBV2-w0.35-128, 99 KB scheme: arena ${plan.arenaBytes} B, blob ${blob.length} B (flash section ${plan.flash.length} B), ` +
    `${plan.train.length} calls per training step, ${plan.infer.length} per inference; tiled forward ops ${macs.ops}, ` +
    `their MACs ${M(macs.macs)} (untiled ${M(macs.untiledMacs)})`);

  // Per plan step, on each image.
  const trace = recordPlanTrace(blob, samples, samples[0]!.input);
  const steps: Record<string, { train: number[]; infer: number; ms: number }> = {};
  for (const target of ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const) {
    const t0 = Date.now();
    const r = await runTrace(target, trace);
    if (r.exitCode !== 0) throw new Error(`${target}: ${r.stdout}${r.stderr}`);
    const ms = Date.now() - t0;
    steps[target] = { train: r.parsed.steps.filter((s) => s.which === 0).map((s) => s.instructions), infer: r.parsed.steps.at(-1)!.instructions, ms };
    console.log(`  ${target.padEnd(19)} training step ${M(steps[target]!.train[0]!)}, ${M(steps[target]!.train[1]!)} instructions; ` +
      `inference ${M(steps[target]!.infer)}  (QEMU run ${ms} ms)`);
  }

  // Per kernel, Cortex-M4F DSP: the first training step as CALL records.
  const w = new TraceWriter(blob.length + (1 << 16));
  w.arena(plan.arenaBytes);
  w.write(FLASH_BASE, plan.flash);
  for (const r of plan.init) w.write(r.offset, r.bytes);
  const s = samples[0]!;
  w.write(plan.io.input.offset, new Uint8Array(s.input.buffer, s.input.byteOffset, s.input.length));
  w.write(plan.io.label, new Uint8Array(Int32Array.of(s.label).buffer));
  for (const call of plan.train) w.call(call.op, call.args);
  const r = await runTrace('cortex-m4', w.end());
  if (r.exitCode !== 0) throw new Error(`per-call replay: ${r.stdout}${r.stderr}`);
  const loss = plan.train.findIndex((o) => o.op === Op.SoftmaxXentBackward);
  const byKernel = new Map<string, { calls: number; instructions: number; phase: string }>();
  let forward = 0, backward = 0;
  r.parsed.calls.forEach((call, i) => {
    const phase = i < loss ? 'forward' : 'loss+backward';
    if (i < loss) forward += call.instructions;
    else backward += call.instructions;
    const key = `${phase} ${opName[plan.train[i]!.op]}`;
    const e = byKernel.get(key) ?? { calls: 0, instructions: 0, phase };
    e.calls++;
    e.instructions += call.instructions;
    byKernel.set(key, e);
  });
  const kernels = [...byKernel.entries()].map(([k, v]) => ({ kernel: k.slice(v.phase.length + 1), ...v })).sort((a, b) => b.instructions - a.instructions);
  console.log(`  cortex-m4 per call: forward ${M(forward)} (${loss} calls), loss + backward + updates ${M(backward)} ` +
    `(${plan.train.length - loss} calls); sum ${M(forward + backward)} vs the STEP record's ${M(steps['cortex-m4']!.train[0]!)}`);
  for (const k of kernels) console.log(`    ${k.phase.padEnd(14)} ${k.kernel.padEnd(42)} ${String(k.calls).padStart(4)} calls ${M(k.instructions).padStart(9)}`);

  // The full update: the training graph it needs, whether it lowers.
  const full = [true, false].map((reorder) => {
    const t = compileTraining(model(), { scheme: 'full', reorder, sliceWeights: true, rowScratch: true, tile: true });
    const missing = [...new Set(t.graph.ops.filter((o) => o.modelled).map((o) => o.kernel))];
    const count = (k: string) => t.graph.ops.filter((o) => o.modelled && o.kernel === k).length;
    let lowered = true;
    try {
      compilePlan(model(), { scheme: 'full', ...options, reorder });
    } catch {
      lowered = false;
    }
    console.log(`  full update, reorder ${reorder}: arena ${t.plan.report.arenaBytes} B; ${lowered ? 'lowers' : 'does not lower'}` +
      `${missing.length ? `: missing ${missing.map((k) => `${k} (${count(k)} layers)`).join(', ')}` : ''}`);
    return { reorder, arenaBytes: t.plan.report.arenaBytes, lowered, missing: missing.map((k) => ({ kernel: k, layers: count(k) })) };
  });

  const out = {
    model: 'MobileNetV2-w0.35, 128x128, 10 classes, seed 1', scheme, options,
    arenaBytes: plan.arenaBytes, blobBytes: blob.length, flashBytes: plan.flash.length,
    trainCalls: plan.train.length, inferCalls: plan.infer.length, tiledForwardMacs: macs.macs, untiledForwardMacs: macs.untiledMacs,
    instructionsPerStep: steps, cortexM4PerCall: { forward, lossBackwardUpdates: backward, kernels }, fullUpdate: full,
  };
  mkdirSync(join(repoRoot, 'bench', 'results'), { recursive: true });
  writeFileSync(join(repoRoot, 'bench', 'results', 'train-plan.json'), `${JSON.stringify(out, null, 1)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
