// The headline plan: MobileNetV2-w0.35 at 128x128, 10 classes, the
// reference's "99 KB" sparse scheme, compiled with the options that plan it
// to 128,052 B of arena (row-tiled forward, sliced weights, one-row input
// gradients: host-tests/train-graph.test.ts), lowered to a plan blob and run:
//  - every op is a kernel call (tiled ops as the calls of every band, the
//    split forward, the rows input gradients, channel_slice_s8); the C
//    validator accepts the blob in an arena of exactly the planned size
//    (<= 128 KB) and the frozen weights in flash;
//  - its inference (the tiled forward without masks) equals the forward
//    runner's output on the untrained model (with a big arena), and its
//    training step reaches the loss with those logits (same p(label));
//  - the loss on a repeated sample falls;
//  - the tiled plan trains bit-identically to the same step untiled
//    (whole-tensor forward, which needs more arena) and to the untiled step
//    without the one-row kernels: same p(label), same trainable regions;
//  - Node, the XS engine and the Cortex-M4F (DSP, portable) and RV32IMC
//    images give the same CRC of the trainable regions, p(label) and
//    inference output after two steps.
// Instruction counts per step on the images: bench/train-plan.ts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import { type CompiledPlan, compilePlan } from '../src/compiler/train/lower.js';
import type { SparseUpdateScheme } from '../src/compiler/train/scheme.js';
import { Kernels } from '../src/core/kernels.js';
import { Op } from '../src/core/ops.js';
import type { Plan } from '../src/core/plan-format.js';
import { PlanRuntime, lossOfMetric, recordPlanTrace, seededSample } from '../src/core/plan-runtime.js';
import { log2eScaleQ16 } from '../src/core/quant.js';
import * as ref from '../src/core/reference/kernels.js';
import { ForwardRunner } from '../src/core/runner.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { runTrace } from '../src/node/qemu.js';
import { expectPlanReplay } from './support/plan-replay.js';

const LR = 2 ** -10;
const STEPS = 2;
const SEED = 7;
const FLASH_STORE = 640 * 1024; // the bare-metal images' read-only region (native/baremetal/driver.c)

const model = () => buildMobileNetV2({ width: 0.35, resolution: 128, classes: 10, seed: 1 });
const idx = [27, 30, 33, 36, 39, 42, 45, 48], ratio = [1, 1, 1, 1, 1, 0.125, 0.5, 1];
const scheme: SparseUpdateScheme = { biasLayers: 26, weights: idx.map((layer, k) => ({ layer, ratio: ratio[k]! })) };
const headline = { scheme, reorder: true, sliceWeights: true, rowScratch: true, tile: true, lr: LR, lrBias: LR } as const;

const runtime = (plan: Plan, blob: Uint8Array): PlanRuntime =>
  PlanRuntime.load(new NodeDispatch(new ArrayBuffer(plan.arenaBytes), new ArrayBuffer(plan.flash.length)), blob);

function train(c: CompiledPlan): { crc: number; metrics: (number | null)[]; output: number[] } {
  const rt = runtime(c.plan, c.blob);
  const metrics: (number | null)[] = [];
  for (let i = 0; i < STEPS; i++) {
    const s = seededSample(c.plan, i, SEED);
    metrics.push(rt.step(s.input, s.label));
  }
  return { crc: rt.regionsCrc(), metrics, output: Array.from(rt.infer(seededSample(c.plan, 0, SEED).input)) };
}

describe('MobileNetV2-w0.35-128, 99 KB scheme: the 128 KB plan runs', () => {
  const c = compilePlan(model(), headline);
  const { plan, blob } = c;
  const node = train(c);
  const samples = Array.from({ length: STEPS }, (_, i) => seededSample(plan, i, SEED));

  it('lowers every op to kernel calls and fits: <= 128 KB of arena, the blob in the images\' flash', () => {
    const ops = c.compiled.graph.ops;
    expect(ops.filter((o) => o.modelled)).toEqual([]);
    expect(ops.filter((o) => o.kernel === 'tiled_forward_s8').length).toBeGreaterThan(3);
    const used = new Set(plan.train.map((o) => o.op));
    for (const op of [Op.FcForwardSplit, Op.FcBackwardInputRows, Op.DepthwiseConv2dBackwardInputRows, Op.ChannelSlice]) expect(used.has(op), `op ${op}`).toBe(true);
    // a band is one call: more forward calls than forward ops
    expect(plan.train.filter((o) => o.op === Op.Conv2dForward || o.op === Op.DepthwiseConv2dForward).length)
      .toBeGreaterThan(ops.filter((o) => o.phase === 'forward').length);
    expect(plan.arenaBytes).toBe(Math.ceil(c.compiled.plan.report.arenaBytes / 16) * 16); // nothing past the training arena
    expect(plan.arenaBytes).toBeLessThanOrEqual(128 * 1024);
    expect(blob.length).toBeLessThanOrEqual(FLASH_STORE);
    // loading in an arena of exactly that size runs the C validator over every call
    expect(() => runtime(plan, blob)).not.toThrow();
  });

  it('its inference (the tiled forward) equals the forward runner on the untrained model', () => {
    const g = model();
    const runner = new ForwardRunner(g, { arenaCapacity: 1 << 21, flashCapacity: 1 << 21 });
    expect(runner.arenaBytes).toBeGreaterThan(plan.arenaBytes); // the untiled forward alone needs more
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(runner.arenaBytes), new ArrayBuffer(runner.flashBytes)));
    runner.load(k);
    const rt = runtime(plan, blob);
    const logitsScale = c.compiled.graph.model.tensors[c.compiled.graph.logits]!.quant!.scale[0]!;
    for (let i = 0; i < 2; i++) {
      const x = seededSample(plan, i, SEED).input;
      const want = Array.from(runner.run(k, x));
      expect(Array.from(rt.infer(x))).toEqual(want);
      // and the training step's forward (with masks) reaches the loss with those logits: the same p(label)
      const label = i + 3;
      const p = ref.softmaxXentBackward(10, Int8Array.from(want), log2eScaleQ16(logitsScale), label, new Int8Array(10));
      expect(rt.step(x, label)).toBe(p);
      rt.reset();
    }
  });

  it('learns: the loss on a repeated sample falls at every step', () => {
    const rt = runtime(plan, blob);
    const { input } = seededSample(plan, 0, SEED + 1);
    const y = Array.from(rt.infer(input));
    const label = y.indexOf(Math.min(...y));
    const losses = Array.from({ length: 4 }, () => lossOfMetric(rt.step(input, label)!));
    const text = `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`;
    for (let i = 1; i < losses.length; i++) expect(losses[i]!, text).toBeLessThan(losses[i - 1]!);
    expect(losses[3]!, text).toBeLessThan(losses[0]! * 0.9);
  });

  it('trains bit-identically to the untiled step, with and without the one-row input gradients', () => {
    const untiled = compilePlan(model(), { ...headline, tile: false });
    const wholeScratch = compilePlan(model(), { ...headline, tile: false, rowScratch: false });
    expect(untiled.plan.arenaBytes).toBeGreaterThan(plan.arenaBytes);
    expect(wholeScratch.plan.arenaBytes).toBeGreaterThanOrEqual(untiled.plan.arenaBytes); // untiled, the forward is the peak
    expect(train(untiled)).toEqual(node);
    expect(train(wholeScratch)).toEqual(node);
  });

  it('XS engine: same CRC, p(label) and inference output', () => {
    const xs = join(repoRoot, 'out', 'xs', 'xst-xs'), main = join(repoRoot, 'out', 'ts', 'xs', 'main.js');
    if (!existsSync(xs) || !existsSync(main)) expect.fail('XS host or compiled TS missing: run npm run build:xs and npm run build:ts');
    const dir = join(repoRoot, 'out', 'plan-test');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'mbv2-128.xstp'), blob);
    const r = spawnSync(xs, [main, 'plan', join(dir, 'mbv2-128.xstp'), String(STEPS), String(SEED)], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    expect(JSON.parse(line!)).toEqual({ crc: node.crc.toString(16).padStart(8, '0'), metrics: node.metrics, output: node.output, target: 'xs' });
  });

  const trace = recordPlanTrace(blob, samples, samples[0]!.input);
  for (const target of ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const) {
    it(`${target} image (xst_plan_run, the frozen weights in its flash): same CRC and inference output`, async () => {
      expectPlanReplay(await runTrace(target, trace), plan.arenaBytes, samples.length, node);
    }, 120_000);
  }
});
