// Instructions of one training step of the 128 KB plan (MobileNetV2-w0.35
// at 128x128, 10 classes, the reference's 99 KB scheme, row-tiled forward,
// sliced weights, one-row input gradients; host-tests/plan-mbv2-128.test.ts)
// on the bare-metal images (QEMU, deterministic counts):
//   - per plan step as the image runs it (xst_plan_run: one STEP record),
//     training and inference, on Cortex-M4F (DSP and portable) and RV32IMC;
//   - per kernel on Cortex-M4F (DSP): the same step replayed as one CALL
//     record per call, summed by kernel and split at the loss into the
//     forward and the backward with its fused updates;
//   - sparse against full, per model (MobileNetV2-w0.35-128 with the 99 KB
//     scheme, person_detect and micro_speech with bench/train-memory.ts's
//     hand schemes): one training step of (c), the scheme sparse + reordered
//     with the memory options that fit it in 128 KB (row-tiled forward,
//     trained weight slices, one-row input-gradient scratch), against the
//     full update (every weight and bias, reorder: true: each weight update
//     fused where its gradient appears), on Cortex-M4F with the DSP paths.
//     The full update needs 43 KB-1.7 MB of arena, so it runs on the
//     bench-only cortex-m4-big image (the cortex-m4 image's code with a 4 MB
//     arena); (c) runs there too (same counts as on cortex-m4, also given)
//     so the ratio compares one image. The full update is counted twice:
//     plain (whole-tensor scratch, no tiling: the fewest instructions, the
//     headline ratio) and with (c)'s memory options (what they cost it);
//     both with the split into forward and loss + backward + updates.
// `npx tsx bench/train-plan.ts` prints the table and writes
// bench/results/train-plan.json. Needs the images (npm run build:baremetal).
// measureTrainingStep is the same count for any model and options, for the
// other benchmarks (bench/memory.ts).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import type { CompileOptions } from '../src/compiler/train/compile.js';
import { type LowerOptions, compilePlan } from '../src/compiler/train/lower.js';
import type { Graph } from '../src/core/graph.js';
import { importTflite } from '../src/compiler/tflite/import.js';
import type { Plan } from '../src/core/plan-format.js';
import type { SparseUpdateScheme } from '../src/compiler/train/scheme.js';
import { tiledMacs } from '../src/compiler/train/tile.js';
import { FLASH_BASE } from '../src/core/kernels.js';
import { Op, opName } from '../src/core/ops.js';
import { recordPlanTrace, seededSample } from '../src/core/plan-runtime.js';
import { TraceWriter } from '../src/core/trace.js';
import { repoRoot } from '../src/node/addon.js';
import { type BaremetalTarget, runTrace } from '../src/node/qemu.js';
import { MBV2_99KB, handSchemes } from './train-memory.js';

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
  return measurePlanStep(compiled.plan, compiled.blob, seededSample(compiled.plan, 0, 7), target, image);
}

// The same count for a compiled plan and a given sample (bench/transfer).
export async function measurePlanStep(plan: Plan, blob: Uint8Array, sample: { input: Int8Array; label: number },
  target: BaremetalTarget = 'cortex-m4', image?: string): Promise<StepMeasurement> {
  const trace = recordPlanTrace(blob, [sample]);
  const r = await runTrace(target, trace, { timeoutMs: 30 * 60_000, ...(image ? { image } : {}) });
  const step = r.parsed.steps.find((s) => s.which === 0);
  if (r.exitCode !== 0 || !step) {
    const said = `${r.stdout}${r.stderr}`.split('\n').filter((l) => /error|plan [1-9]/.test(l)).join('; ') || `exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}`;
    return { instructions: null, reason: `the ${target} image cannot run the plan (arena ${plan.arenaBytes} B, blob ${blob.length} B): ${said}`, target, arenaBytes: plan.arenaBytes };
  }
  return { instructions: step.instructions, reason: null, target, arenaBytes: plan.arenaBytes };
}

// Instructions of every call of the first training step (one CALL record
// each, a seeded sample), summed by kernel and split at the loss into the
// forward and the loss + backward with its fused updates.
async function perCall(plan: Plan, sample: { input: Int8Array; label: number }, target: BaremetalTarget) {
  const w = new TraceWriter(plan.flash.length + plan.init.reduce((a, r) => a + r.bytes.length + 16, 0) + (1 << 16));
  w.arena(plan.arenaBytes);
  w.write(FLASH_BASE, plan.flash);
  for (const r of plan.init) w.write(r.offset, r.bytes);
  w.write(plan.io.input.offset, new Uint8Array(sample.input.buffer, sample.input.byteOffset, sample.input.length));
  w.write(plan.io.label, new Uint8Array(Int32Array.of(sample.label).buffer));
  for (const call of plan.train) w.call(call.op, call.args);
  const r = await runTrace(target, w.end(), { timeoutMs: 30 * 60_000 });
  if (r.exitCode !== 0) throw new Error(`per-call replay on ${target}: ${r.stdout}${r.stderr}`);
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
  return { forward, lossBackwardUpdates: backward, forwardCalls: loss, backwardCalls: plan.train.length - loss, kernels };
}

const tflite = (name: string) => (): Graph => importTflite(new Uint8Array(readFileSync(join(repoRoot, 'models', `${name}.tflite`))), name);
const memoryOptions = { sliceWeights: true, rowScratch: true, tile: true } as const;
const lrs = { lr: 2 ** -10, lrBias: 2 ** -10 } as const;

// One model: (c) on the cortex-m4 image and, with the full update, on the
// big one; the full update plain and with (c)'s memory options, each also
// per call; the buffered full update (reorder: false) only as whether it lowers.
async function sparseAgainstFull(name: string, build: () => Graph, sparse: SparseUpdateScheme) {
  const variant = async (o: CompileOptions & LowerOptions, target: BaremetalTarget, calls: boolean) => {
    const m = await measureTrainingStep(build(), o, target);
    const { plan } = compilePlan(build(), o);
    const split = calls && m.instructions !== null ? await perCall(plan, seededSample(plan, 0, 7), target) : null;
    return { ...m, trainCalls: plan.train.length, ...(split ? { split: { forward: split.forward, lossBackwardUpdates: split.lossBackwardUpdates,
      kernels: split.kernels.slice(0, 6).map((k) => ({ phase: k.phase, kernel: k.kernel, calls: k.calls, instructions: k.instructions })) } } : {}) };
  };
  const sparseM4 = await variant({ scheme: sparse, reorder: true, ...memoryOptions, ...lrs }, 'cortex-m4', false);
  const sparseBig = await variant({ scheme: sparse, reorder: true, ...memoryOptions, ...lrs }, 'cortex-m4-big', true);
  const fullPlain = await variant({ scheme: 'full', reorder: true, ...lrs }, 'cortex-m4-big', true);
  const fullMemory = await variant({ scheme: 'full', reorder: true, ...memoryOptions, ...lrs }, 'cortex-m4-big', true);
  let buffered: string | null = null;
  try {
    compilePlan(build(), { scheme: 'full', reorder: false, ...lrs });
  } catch (e) {
    buffered = (e as Error).message.replace(/\. Choose a scheme.*$/, '');
  }
  const ratio = (a: StepMeasurement, b: StepMeasurement) =>
    a.instructions !== null && b.instructions !== null ? Math.round((a.instructions / b.instructions) * 100) / 100 : null;
  // No step costs less than its forward: full / forward bounds full / (c)
  // for any scheme with that forward ((c)'s tiled one, or the full plan's
  // untiled one).
  const bound = (fwd: number | undefined) =>
    fullPlain.instructions !== null && fwd ? Math.round((fullPlain.instructions / fwd) * 100) / 100 : null;
  return {
    model: name, scheme: sparse, memoryOptions,
    fullOverForward: { sparseForward: bound(sparseBig.split?.forward), plainForward: bound(fullPlain.split?.forward) },
    sparseReordered: { cortexM4: sparseM4, cortexM4Big: sparseBig },
    fullUpdate: { plain: fullPlain, withMemoryOptions: fullMemory, bufferedLowers: buffered === null, ...(buffered ? { bufferedMissing: buffered } : {}) },
    fullOverSparse: { plain: ratio(fullPlain, sparseBig), withMemoryOptions: ratio(fullMemory, sparseBig) },
  };
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
  const { forward, lossBackwardUpdates: backward, forwardCalls, backwardCalls, kernels } = await perCall(plan, samples[0]!, 'cortex-m4');
  console.log(`  cortex-m4 per call: forward ${M(forward)} (${forwardCalls} calls), loss + backward + updates ${M(backward)} ` +
    `(${backwardCalls} calls); sum ${M(forward + backward)} vs the STEP record's ${M(steps['cortex-m4']!.train[0]!)}`);
  for (const k of kernels) console.log(`    ${k.phase.padEnd(14)} ${k.kernel.padEnd(42)} ${String(k.calls).padStart(4)} calls ${M(k.instructions).padStart(9)}`);

  // Sparse (c) against the full update, per model.
  const models: [string, () => Graph, SparseUpdateScheme][] = [
    ['mbv2-w0.35-128', model, MBV2_99KB],
    ['person_detect', tflite('person_detect'), handSchemes.person_detect!.scheme],
    ['micro_speech', tflite('micro_speech_quantized'), handSchemes.micro_speech_quantized!.scheme],
  ];
  const vs: Awaited<ReturnType<typeof sparseAgainstFull>>[] = [];
  console.log('\nOne training step on Cortex-M4F (DSP), instructions: (c) sparse + reordered against the full update (reorder: true)');
  console.log(`  ${'model'.padEnd(15)} ${'(c) on m4'.padStart(10)} ${'(c) on big'.padStart(10)} ${'full'.padStart(10)} ${'full/(c)'.padStart(8)}   ` +
    `${'full, (c) options'.padStart(17)} ${'/(c)'.padStart(6)}   arenas (c) / full / full with options`);
  const n = (m: StepMeasurement) => (m.instructions === null ? 'n/a' : M(m.instructions));
  for (const [name, build, sparse] of models) {
    const v = await sparseAgainstFull(name, build, sparse);
    vs.push(v);
    const f = v.fullUpdate;
    console.log(`  ${name.padEnd(15)} ${n(v.sparseReordered.cortexM4).padStart(10)} ${n(v.sparseReordered.cortexM4Big).padStart(10)} ${n(f.plain).padStart(10)} ` +
      `${`${v.fullOverSparse.plain ?? 'n/a'}x`.padStart(8)}   ${n(f.withMemoryOptions).padStart(17)} ${`${v.fullOverSparse.withMemoryOptions ?? 'n/a'}x`.padStart(6)}   ` +
      `${v.sparseReordered.cortexM4.arenaBytes} / ${f.plain.arenaBytes} / ${f.withMemoryOptions.arenaBytes} B`);
    for (const [what, m] of [['(c)', v.sparseReordered.cortexM4Big], ['full', f.plain], ['full, (c) options', f.withMemoryOptions]] as const) {
      if (m.instructions === null) console.log(`    ${what}: no count: ${m.reason}`);
      else if (m.split) {
        console.log(`    ${what.padEnd(18)} forward ${M(m.split.forward)}, loss + backward + updates ${M(m.split.lossBackwardUpdates)}; most: ` +
          m.split.kernels.slice(0, 3).map((k) => `${k.kernel} ${M(k.instructions)}`).join(', '));
      }
    }
    console.log(`    bound: the full step is ${v.fullOverForward.sparseForward}x (c)'s forward alone, ${v.fullOverForward.plainForward}x its own ` +
      '(untiled) forward: no sparse step costs less than its forward');
    if (!f.bufferedLowers) console.log(`    full update without reordering does not lower: ${f.bufferedMissing?.replace(/ \(update weights.*$/, '')}`);
  }
  const goal = vs.map((v) => ({ model: v.model, fullOverSparse: v.fullOverSparse.plain, met: v.fullOverSparse.plain === null ? null : v.fullOverSparse.plain >= 20 }));
  console.log(`  goal, the sparse step at least 20x fewer instructions than the full update: ` +
    goal.map((x) => `${x.model} ${x.fullOverSparse}x ${x.met ? 'met' : 'NOT met'}`).join('; '));

  const out = {
    model: 'MobileNetV2-w0.35, 128x128, 10 classes, seed 1', scheme, options,
    arenaBytes: plan.arenaBytes, blobBytes: blob.length, flashBytes: plan.flash.length,
    trainCalls: plan.train.length, inferCalls: plan.infer.length, tiledForwardMacs: macs.macs, untiledForwardMacs: macs.untiledMacs,
    instructionsPerStep: steps, cortexM4PerCall: { forward, lossBackwardUpdates: backward, kernels },
    sparseAgainstFull: {
      what: 'instructions of one training step (a seeded sample) on Cortex-M4F with the DSP paths (QEMU -icount): (c) sparse + reordered ' +
        'with memoryOptions against the full update (reorder: true), plain and with memoryOptions; full/(c) on the cortex-m4-big image ' +
        '(the cortex-m4 code with a 4 MB arena), where both run',
      goal: { what: 'sparse step at least 20x fewer instructions than the full update (plain)', perModel: goal },
      models: vs,
    },
  };
  mkdirSync(join(repoRoot, 'bench', 'results'), { recursive: true });
  writeFileSync(join(repoRoot, 'bench', 'results', 'train-plan.json'), `${JSON.stringify(out, null, 1)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
