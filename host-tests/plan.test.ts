// Training plans (src/core/plan-format.ts, src/compiler/train/lower.ts,
// src/core/plan-runtime.ts, native/core/plan.c):
//  - the blob round-trips through encode/decode;
//  - a plan compiled for each shared model (micro_speech, person_detect, a
//    seeded MobileNetV2-w0.35 at 32x32) trains in Node (C addon), on the XS
//    engine, on the Cortex-M4F images (DSP and portable) and on RV32 with
//    the same trainable-region CRC, p(label) and inference output;
//  - the plan learns (the loss on a repeated sample falls), its inference
//    equals the forward runner's output, the TypeScript reference kernels
//    and a hand-written step (mlp.ts style) give the same bytes;
//  - bad blobs are clear TypeScript errors and nonzero C statuses, on Node,
//    on XS and on the RV32 image; a scheme that needs a missing kernel is
//    refused naming it;
//  - fuzzing: host-tests/plan-fuzz.test.ts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import { importTflite } from '../src/compiler/tflite/import.js';
import type { SparseUpdateScheme } from '../src/compiler/train/scheme.js';
import { SchemeFitter } from '../src/compiler/train/budget.js';
import { type CompiledPlan, compilePlan, LoweringError } from '../src/compiler/train/lower.js';
import type { Optimizer } from '../src/compiler/train/train-graph.js';
import { ArenaLayout } from '../src/core/arena.js';
import { crc32 } from '../src/core/crc32.js';
import type { Graph } from '../src/core/graph.js';
import { Kernels } from '../src/core/kernels.js';
import { updateFactors } from '../src/core/mlp.js';
import { Op, statusNames } from '../src/core/ops.js';
import { type Plan, PlanError, decodePlan, encodePlan, resealPlan } from '../src/core/plan-format.js';
import { PlanRuntime, lossOfMetric, recordPlanTrace, seededSample } from '../src/core/plan-runtime.js';
import { log2eScaleQ16, quantizeMultiplier } from '../src/core/quant.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { TraceWriter } from '../src/core/trace.js';
import { Xorshift32 } from '../src/core/rng.js';
import { ForwardRunner } from '../src/core/runner.js';
import { NodeDispatch, repoRoot, validatePlanC } from '../src/node/addon.js';
import { runTrace } from '../src/node/qemu.js';
import { expectPlanReplay } from './support/plan-replay.js';

const LR = 2 ** -10;
const STEPS = 3;
const SEED = 7;
const out = join(repoRoot, 'out', 'plan-test');
mkdirSync(out, { recursive: true });

const tflite = (name: string): Graph => importTflite(new Uint8Array(readFileSync(join(repoRoot, 'models', `${name}.tflite`))), name);
const mbv2 = (): Graph => buildMobileNetV2({ width: 0.35, resolution: 32, classes: 2, seed: 1 });

interface Case {
  name: string;
  model: () => Graph;
  scheme: SparseUpdateScheme | 'full';
  reorder: boolean;
  optimizer: Optimizer;
}

// Schemes the existing kernels cover (no `modelled` op): fused updates with
// reorder (FC and pointwise convs; conv and depthwise with SGD or LQM: the
// full update of micro_speech, whose depthwise layer on one input channel
// then runs as a depthwise kernel on its own weights; MBV2's 3x3 stride-2
// stem and stride-1 and -2 depthwise layers with LQM), conv2d weights
// through backward_weight + sgd/lqm update without it; biases anywhere.
const cases: Case[] = [
  { name: 'micro_speech, 2 bias layers + classifier, reordered, SGD', model: () => tflite('micro_speech_quantized'),
    scheme: { biasLayers: 2, weights: [] }, reorder: true, optimizer: 'sgd' },
  { name: 'micro_speech, 2 bias layers + classifier, gradient buffers, SGD', model: () => tflite('micro_speech_quantized'),
    scheme: { biasLayers: 2, weights: [] }, reorder: false, optimizer: 'sgd' },
  { name: 'micro_speech, 2 bias layers + classifier, gradient buffers, LQM', model: () => tflite('micro_speech_quantized'),
    scheme: { biasLayers: 2, weights: [] }, reorder: false, optimizer: 'lqm' },
  { name: 'micro_speech, full update (every weight and bias), reordered, SGD', model: () => tflite('micro_speech_quantized'),
    scheme: 'full', reorder: true, optimizer: 'sgd' },
  { name: 'person_detect, 4 bias layers + pointwise conv 26 + classifier, reordered, SGD', model: () => tflite('person_detect'),
    scheme: { biasLayers: 4, weights: [{ layer: 26 }] }, reorder: true, optimizer: 'sgd' },
  { name: 'MobileNetV2-w0.35-32, 8 bias layers (a residual fork) + convs 48, 50 + classifier, reordered, SGD', model: mbv2,
    scheme: { biasLayers: 8, weights: [{ layer: 50 }, { layer: 48 }] }, reorder: true, optimizer: 'sgd' },
  { name: 'MobileNetV2-w0.35-32, 4 bias layers + conv 50 + classifier, reordered, LQM', model: mbv2,
    scheme: { biasLayers: 4, weights: [{ layer: 50 }] }, reorder: true, optimizer: 'lqm' },
  { name: 'MobileNetV2-w0.35-32, 4 bias layers + 3x3 stem 0, depthwise 40 (stride 2) and 49, conv 50 + classifier, reordered, LQM',
    model: mbv2, scheme: { biasLayers: 4, weights: [{ layer: 0 }, { layer: 40 }, { layer: 49 }, { layer: 50 }] }, reorder: true,
    optimizer: 'lqm' },
];

function compile(c: Case): CompiledPlan {
  return compilePlan(c.model(), { scheme: c.scheme, reorder: c.reorder, optimizer: c.optimizer, lr: LR, lrBias: LR });
}

function nodeRuntime(plan: Plan, blob: Uint8Array, Dispatch: typeof NodeDispatch | typeof ReferenceDispatch = NodeDispatch): PlanRuntime {
  return PlanRuntime.load(new Dispatch(new ArrayBuffer(plan.arenaBytes), new ArrayBuffer(plan.flash.length)), blob);
}

interface Run {
  crc: number;
  metrics: (number | null)[];
  output: number[];
}

function runNode(plan: Plan, blob: Uint8Array): Run {
  const rt = nodeRuntime(plan, blob);
  const metrics: (number | null)[] = [];
  for (let i = 0; i < STEPS; i++) {
    const s = seededSample(plan, i, SEED);
    metrics.push(rt.step(s.input, s.label));
  }
  const crc = rt.regionsCrc();
  return { crc, metrics, output: Array.from(rt.infer(seededSample(plan, 0, SEED).input)) };
}

const xsBinary = join(repoRoot, 'out', 'xs', 'xst-xs');
const xsMain = join(repoRoot, 'out', 'ts', 'xs', 'main.js');

function runXs(blob: Uint8Array, file: string, ...extra: string[]): ReturnType<typeof spawnSync> & { stdout: string; stderr: string } {
  if (!existsSync(xsBinary) || !existsSync(xsMain)) expect.fail('XS host or compiled TS missing: run npm run setup');
  const path = join(out, file);
  writeFileSync(path, blob);
  return spawnSync(xsBinary, [xsMain, 'plan', path, ...extra], { encoding: 'utf8', timeout: 60_000 }) as never;
}

describe('plan blob format', () => {
  const c = compile(cases[0]!);

  it('round-trips: decode(encode(plan)) is the plan, encode(decode(blob)) the same bytes', () => {
    const decoded = decodePlan(c.blob);
    expect(decoded.arenaBytes).toBe(c.plan.arenaBytes);
    expect(decoded.io).toEqual(c.plan.io);
    expect(decoded.regions).toEqual(c.plan.regions);
    expect(Array.from(decoded.flash)).toEqual(Array.from(c.plan.flash));
    expect(decoded.init.map((r) => [r.offset, Array.from(r.bytes)])).toEqual(c.plan.init.map((r) => [r.offset, Array.from(r.bytes)]));
    for (const which of ['train', 'infer'] as const) {
      expect(decoded[which].map((o) => [o.op, Array.from(o.args)])).toEqual(c.plan[which].map((o) => [o.op, Array.from(o.args)]));
    }
    expect(encodePlan(decoded)).toEqual(c.blob);
    // Bytes past the header's length are ignored (a plan in a larger flash partition).
    const padded = new Uint8Array(c.blob.length + 64);
    padded.set(c.blob);
    expect(decodePlan(padded).train.length).toBe(c.plan.train.length);
    expect(validatePlanC(padded, c.plan.arenaBytes)).toEqual([0, -1, -1]);
  });

  it('header: magic, version, length, CRC; 16-aligned sections; the C validator accepts it', () => {
    const v = new DataView(c.blob.buffer, c.blob.byteOffset);
    expect(String.fromCharCode(...c.blob.subarray(0, 4))).toBe('XSTP');
    expect(v.getUint32(4, true)).toBe(1);
    expect(v.getUint32(8, true)).toBe(c.blob.length);
    expect(v.getUint32(12, true)).toBe(crc32(c.blob.subarray(16)));
    for (let i = 0; i < v.getUint32(20, true); i++) expect(v.getUint32(32 + 12 * i + 4, true) % 16).toBe(0);
    expect(validatePlanC(c.blob, c.plan.arenaBytes)).toEqual([0, -1, -1]);
  });
});

describe.each(cases)('$name', (c) => {
  const compiled = compile(c);
  const { plan, blob } = compiled;
  const node = runNode(plan, blob);
  const samples = Array.from({ length: STEPS }, (_, i) => seededSample(plan, i, SEED));

  it('uses only existing kernels, and its inference equals the forward runner on the untrained model', () => {
    expect(compiled.compiled.graph.ops.filter((o) => o.modelled)).toEqual([]);
    const model = c.model();
    const runner = new ForwardRunner(model);
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(runner.arenaBytes), new ArrayBuffer(runner.flashBytes)));
    runner.load(k);
    const rt = nodeRuntime(plan, blob);
    for (let i = 0; i < 2; i++) {
      const x = seededSample(plan, i, SEED).input;
      expect(Array.from(rt.infer(x))).toEqual(Array.from(runner.run(k, x)));
    }
  });

  it('learns: the loss on a repeated sample falls', () => {
    const rt = nodeRuntime(plan, blob);
    const { input } = seededSample(plan, 0, SEED + 1);
    // the class the untrained model finds least likely: something to learn
    const y = Array.from(rt.infer(input));
    const label = y.indexOf(Math.min(...y));
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) losses.push(lossOfMetric(rt.step(input, label)!));
    expect(losses[7]!, `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(losses[0]! * 0.9);
    expect(Math.max(...losses.slice(1)), `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThanOrEqual(losses[0]!);
  });

  it('the TypeScript reference kernels give the same bytes after every step', () => {
    const a = nodeRuntime(plan, blob), b = nodeRuntime(plan, blob, ReferenceDispatch);
    for (const s of samples) {
      expect(b.step(s.input, s.label)).toBe(a.step(s.input, s.label));
      expect(b.regionsCrc()).toBe(a.regionsCrc());
    }
    expect(a.regionsCrc()).toBe(node.crc);
  });

  for (const mode of ['bound', 'per-op'] as const) {
    it(`XS engine (${mode === 'bound' ? 'the ops run in C from the blob' : 'one xsmc call per op'}): same CRC, p(label) and inference output`, () => {
      const r = runXs(blob, 'case.xstp', String(STEPS), String(SEED), ...(mode === 'per-op' ? ['per-op'] : []));
      expect(r.status, r.stderr).toBe(0);
      const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
      expect(JSON.parse(line!)).toEqual({ crc: node.crc.toString(16).padStart(8, '0'), metrics: node.metrics, output: node.output, target: 'xs' });
    });
  }

  for (const target of ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const) {
    it(`${target} image (C executor, xst_plan_run): same CRC and inference output`, async () => {
      const trace = recordPlanTrace(blob, samples, samples[0]!.input);
      expectPlanReplay(await runTrace(target, trace), plan.arenaBytes, samples.length, node);
    }, 120_000);
  }
});

// An independent step: micro_speech with only the classifier training,
// orchestrated by hand as src/core/mlp.ts does (the forward runner for the
// frozen feature layer, then the classifier forward, loss, fused weight
// SGD, bias gradient and SGD on tensors laid out here), against the plan.
describe('a hand-written step equals the plan step (micro_speech, classifier only)', () => {
  it('same p(label), weights and bias after each of 4 steps', () => {
    const model = tflite('micro_speech_quantized');
    const seed = 3;
    const { plan, blob } = compilePlan(model, { scheme: { biasLayers: 1, weights: [] }, reorder: true, lr: LR, lrBias: LR / 4, seed });
    const rt = nodeRuntime(plan, blob);
    const wRegion = plan.regions.find((r) => r.kind === 'weights')!, bRegion = plan.regions.find((r) => r.kind === 'bias')!;

    const fc = model.ops.find((o) => o.kind === 'fully_connected')!;
    const [xT, wT, bT, yT] = [fc.inputs[0]!, fc.inputs[1]!, fc.inputs[2]!, fc.outputs[0]!].map((i) => model.tensors[i]!);
    const [O, I] = [wT!.shape[0]!, wT!.shape[1]!];
    const sIn = xT!.quant!.scale[0]!, sOut = yT!.quant!.scale[0]!;
    const sW = Array.from({ length: O }, (_, c) => wT!.quant!.scale[wT!.quant!.scale.length === 1 ? 0 : c]!);
    const runner = new ForwardRunner(model);
    const L = new ArenaLayout(64 * 1024);
    const t = {
      w: L.alloc('w', 'int8', [O, I]), b: L.alloc('b', 'int32', [O]), logits: L.alloc('logits', 'int8', [1, O]),
      mult: L.alloc('mult', 'int32', [O]), shift: L.alloc('shift', 'int32', [O]), lrW: L.alloc('lrW', 'int32', [O]),
      lrWShift: L.alloc('lrWShift', 'int32', [O]), lrB: L.alloc('lrB', 'int32', [O]), lrBShift: L.alloc('lrBShift', 'int32', [O]),
      label: L.cell('label'), g: L.alloc('g', 'int8', [1, O]), gExp: L.cell('gExp'), p: L.cell('p'), gb: L.alloc('gb', 'int32', [O]),
      rng: L.cell('rng'),
    };
    // The hand tensors live above the runner's activations.
    const base = Math.ceil(runner.arenaBytes / 16) * 16;
    const at = <T extends { offset: number }>(x: T): T => ({ ...x, offset: x.offset + base });
    const h = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, at(v)])) as typeof t;
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(base + L.used), new ArrayBuffer(runner.flashBytes)));
    runner.load(k);
    k.write(h.w, wT!.data!);
    k.write(h.b, bT!.data!);
    const fwd = sW.map((s) => quantizeMultiplier((sIn * s) / sOut));
    k.writeInt32(h.mult, fwd.map((m) => m.multiplier));
    k.writeInt32(h.shift, fwd.map((m) => m.shift));
    const f = sW.map((s) => updateFactors(LR, LR / 4, sIn, s, true));
    const lw = f.map((x) => quantizeMultiplier(x.weight, -62, 62)), lb = f.map((x) => quantizeMultiplier(x.bias, -62, 62));
    k.writeInt32(h.lrW, lw.map((m) => m.multiplier));
    k.writeInt32(h.lrWShift, lw.map((m) => m.shift));
    k.writeInt32(h.lrB, lb.map((m) => m.multiplier));
    k.writeInt32(h.lrBShift, lb.map((m) => m.shift));
    k.writeInt32(h.rng, [(seed ^ 0x5bd1e995) | 0 || 1]);
    const features = { ...runner.tensors[fc.inputs[0]!]!, shape: [1, I] };
    const block = { ocBegin: 0, ocEnd: O, icBegin: 0, icEnd: I };
    const inputOffset = -xT!.quant!.zeroPoint[0]!;

    const rng = new Xorshift32(11);
    for (let step = 0; step < 4; step++) {
      const s = seededSample(plan, step, 11);
      const label = rng.below(O);
      runner.writeInput(k, s.input);
      for (const st of runner.steps) { // the frozen feature layer (the runner's arena reuses its output after the FC)
        if (st.kind === 'fully_connected') break;
        st.run(k);
      }
      k.fcForward({
        rows: 1, inFeatures: I, outFeatures: O, inputOffset, outputOffset: yT!.quant!.zeroPoint[0]!, actMin: -128, actMax: 127,
        input: features, weights: h.w, bias: h.b, output: h.logits, mask: null, multiplier: h.mult, shift: h.shift,
      });
      k.writeInt32(h.label, [label]);
      k.softmaxXentBackward({ classes: O, logits: h.logits, log2eScaleQ16: log2eScaleQ16(sOut), label: h.label, grad: h.g, gradExp: h.gExp, pLabelQ16: h.p });
      k.fcBackwardWeightSgd({
        rows: 1, inFeatures: I, outFeatures: O, ...block, inputOffset, gradOut: h.g, gradOutExp: h.gExp, input: features,
        lrMultiplier: h.lrW, lrShift: h.lrWShift, weights: h.w, rng: h.rng,
      });
      k.fcBackwardBias({ rows: 1, inFeatures: I, outFeatures: O, ocBegin: 0, ocEnd: O, gradOut: h.g, gradBias: h.gb });
      k.sgdS32Update({ outFeatures: O, ocBegin: 0, ocEnd: O, grad: h.gb, gradExp: h.gExp, lrMultiplier: h.lrB, lrShift: h.lrBShift, bias: h.b, rng: h.rng });

      const p = rt.step(s.input, label);
      expect(p).toBe(k.readInt32(h.p)[0]);
      expect(Array.from(rt.dispatch.read(wRegion.offset, wRegion.bytes))).toEqual(Array.from(k.read(h.w)));
      expect(Array.from(rt.dispatch.read(bRegion.offset, bRegion.bytes))).toEqual(Array.from(k.read(h.b)));
    }
    // and the weights did move
    expect(Array.from(k.read(h.w))).not.toEqual(Array.from(wT!.data!));
  });
});

describe('fused LQM updates of conv and depthwise weights', () => {
  it('LQM on 3x3 and depthwise weights lowers to the fused ops 39-40 with state sized as op 25 packs it', () => {
    const c = compile(cases.at(-1)!);
    const calls = (op: number) => c.plan.train.filter((x) => x.op === op);
    // the stem (3x3, stride 2) and depthwise layers 40 (stride 2) and 49; conv 50 (pointwise) through op 25
    expect(calls(Op.Conv2dBackwardWeightLqm).map((x) => [x.args[7], x.args[9], x.args[6]])).toEqual([[3, 2, 16]]);
    expect(calls(Op.DepthwiseConv2dBackwardWeightLqm).map((x) => [x.args[3], x.args[9]])).toEqual([[336, 1], [192, 2]]);
    expect(calls(Op.FcBackwardWeightLqm)).toHaveLength(2); // conv 50 and the classifier
    const state = c.compiled.graph.tensors.filter((t) => t.role === 'optimizer_state').map((t) => [t.name, t.bytes]);
    expect(state).toEqual(expect.arrayContaining([['stem.weights.lqm_state', Math.ceil((5 * 16 * 3 * 3 * 3) / 8)],
      ['block13.depthwise.weights.lqm_state', Math.ceil((5 * 3 * 3 * 192) / 8)], ['block16.depthwise.weights.lqm_state', Math.ceil((5 * 3 * 3 * 336) / 8)]]));
    expect(calls(Op.Conv2dBackwardWeightLqm)[0]!.args[27]).toBe(Math.ceil((5 * 16 * 3 * 3 * 3) / 8));
  });
});

describe('bad plans are refused before anything runs', () => {
  const { plan, blob } = compile(cases[0]!);
  const copy = () => blob.slice();
  const expectBoth = (b: Uint8Array, status: number, message: RegExp, arena = plan.arenaBytes) => {
    let err: unknown = null;
    try {
      PlanRuntime.load(new NodeDispatch(new ArrayBuffer(plan.arenaBytes), new ArrayBuffer(plan.flash.length)), b, { arenaCapacity: arena });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlanError);
    expect((err as PlanError).message).toMatch(message);
    expect((err as PlanError).status).toBe(status);
    expect(validatePlanC(b, arena)[0]).toBe(status);
  };

  it('truncated blob', () => expectBoth(blob.subarray(0, blob.length - 100), 12, /header says \d+ bytes but \d+ were given \(truncated/));
  it('a blob shorter than the header', () => expectBoth(blob.subarray(0, 20), 12, /shorter than the 32-byte header/));
  it('not a plan', () => {
    const b = copy();
    b[0] = 0x7f;
    expectBoth(b, 10, /not "XSTP": not a plan/);
  });
  it('wrong CRC', () => {
    const b = copy();
    b[b.length - 5]! ^= 0x10;
    expectBoth(b, 13, /CRC mismatch: the header says [0-9a-f]{8}, the bytes give [0-9a-f]{8}/);
  });
  it('wrong version', () => {
    const b = copy();
    new DataView(b.buffer).setUint32(4, 2, true);
    expectBoth(b, 11, /format version 2; this runtime reads version 1/);
  });
  it('arena too small', () => expectBoth(blob, 15, /needs an arena of \d+ bytes, the arena has \d+/, plan.arenaBytes - 16));

  it('an op whose output lies outside the arena: C names the op; the reference kernels refuse it at that op', () => {
    const bad = structuredClone(plan);
    const i = bad.train.findIndex((o) => o.op === Op.Conv2dForward);
    bad.train[i]!.args[20] = bad.arenaBytes + 16; // the output tensor's offset
    const b = encodePlan(bad); // the format is fine: only the binding is wrong
    expect(validatePlanC(b, bad.arenaBytes)).toEqual([5, 4, i]);
    expectBoth(b, 5, new RegExp(`plan rejected at TRAIN record ${i}: tensor outside the arena \\(status 5\\) \\(conv2d_s8_forward\\)`));
    const ref = nodeRuntime(bad, b, ReferenceDispatch); // no C validator: the op itself refuses
    const s = seededSample(bad, 0, 1);
    expect(() => ref.step(s.input, s.label)).toThrow(new RegExp(`plan TRAIN op ${i} \\(conv2d_s8_forward\\)`));
  });

  it('an INIT record past the arena and a missing section: format errors with the place', () => {
    const bad = structuredClone(plan);
    bad.init[0]!.offset = bad.arenaBytes - 2;
    expect(() => encodePlan(bad)).toThrow(/INIT record 0 writes \[\d+, \d+\) outside the \d+-byte arena/);
    const b = copy();
    const v = new DataView(b.buffer);
    v.setUint32(32, 9, true); // section table entry 0: an unknown kind
    resealPlan(b);
    expectBoth(b, 14, /section table entry 0 has unknown kind 9/);
    expect(validatePlanC(b, plan.arenaBytes)).toEqual([14, 0, 0]);
  });

  it('on XS: the C validator rejects the op, the plan mode exits nonzero naming it', () => {
    const bad = structuredClone(plan);
    const i = bad.train.findIndex((o) => o.op === Op.Conv2dForward);
    bad.train[i]!.args[20] = bad.arenaBytes + 16;
    const r = runXs(encodePlan(bad), 'bad.xstp', '1', '1');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`plan rejected at TRAIN record ${i}: tensor outside the arena`));
  });

  it('on the RV32 image: a corrupted plan exits 7 before any step', async () => {
    const b = copy();
    b[b.length - 5]! ^= 0x10;
    const r = await runTrace('rv32', new TraceWriter().plan(b).planStep('train').planCrc().end());
    expect(r.exitCode).toBe(7);
    expect(r.parsed.plans).toEqual([{ status: 13, section: 0, index: -1, arenaBytes: 0 }]);
    expect(r.parsed.errors).toEqual([`plan rejected: ${statusNames[13]}`]); // the C's status names are the TypeScript list
    expect(r.parsed.steps).toEqual([]);
  }, 60_000);

  it('a scheme that needs a missing kernel is refused, naming it', () => {
    // Without reordering a depthwise weight update has no kernel (lqm_s8_update takes [out][in] weights);
    // reordered, the fused LQM kernel takes it (ops 39-40), as SGD's does.
    const lqm = { scheme: { biasLayers: 0, weights: [{ layer: 49 }] }, reorder: false, optimizer: 'lqm', lr: LR, lrBias: LR } as const;
    expect(() => compilePlan(mbv2(), lqm)).toThrow(LoweringError);
    expect(() => compilePlan(mbv2(), lqm)).toThrow(/needs a kernel that does not exist yet: lqm_s8_update \(update weights L49 \(depthwise_conv2d\)\)/);
    expect(() => compilePlan(mbv2(), { ...lqm, reorder: true })).not.toThrow();
    expect(() => compilePlan(mbv2(), { scheme: { biasLayers: 0, weights: [{ layer: 49 }, { layer: 50, ratio: 0.5 }] }, reorder: false, lr: LR, lrBias: LR }))
      .toThrow(/conv2d_s8_backward_weight \(backward_weight L50 .*ic 0:\d+\]\); sgd_s8_update \(update weights L49 \(depthwise_conv2d\)\)/);
  });
});

describe('backboneLrFactor: the layers before the classifier learn at lr x factor', () => {
  it('one SGD step: the classifier moves as without it, the earlier biases by about the factor', () => {
    const model = tflite('micro_speech_quantized');
    const o = { scheme: { biasLayers: 2, weights: [] }, reorder: true, optimizer: 'sgd' as const, lr: 2 ** -2, lrBias: 2 ** -2 };
    const deltas = (factor: number) => {
      const c = compilePlan(model, { ...o, backboneLrFactor: factor });
      const rt = nodeRuntime(c.plan, c.blob);
      const before = rt.plan.regions.map((r) => rt.dispatch.read(r.offset, r.bytes).slice());
      const s = seededSample(c.plan, 0, SEED);
      rt.step(s.input, s.label);
      return rt.plan.regions.map((r, k) => {
        const a = new Int8Array(before[k]!.buffer), b = new Int8Array(rt.dispatch.read(r.offset, r.bytes).slice().buffer);
        if (r.kind === 'bias') {
          const a32 = new Int32Array(before[k]!.buffer), b32 = new Int32Array(b.buffer);
          return { kind: r.kind, delta: Array.from(b32, (v, i) => v - a32[i]!) };
        }
        return { kind: r.kind, delta: Array.from(b, (v, i) => v - a[i]!) };
      });
    };
    const full = deltas(1), slow = deltas(2 ** -4);
    const size = (d: number[]) => d.reduce((x, v) => x + Math.abs(v), 0);
    // The classifier's weights and bias: the only weights region, and the
    // last bias region; its update is the same (the gradient it gets is
    // computed before any update, from the same forward).
    const weights = full.map((r, k) => (r.kind === 'weights' ? k : -1)).filter((k) => k >= 0);
    const biases = full.map((r, k) => (r.kind === 'bias' ? k : -1)).filter((k) => k >= 0);
    expect(weights.length).toBe(1);
    expect(biases.length).toBe(2);
    for (const k of [weights[0]!, biases.at(-1)!]) {
      expect(size(full[k]!.delta), `region ${k}`).toBeGreaterThan(0);
      expect(slow[k]!.delta, `region ${k}`).toEqual(full[k]!.delta);
    }
    // The earlier layers' biases move about 16x less (rounded steps).
    let moved = 0;
    for (const k of biases.slice(0, -1)) {
      const a = size(full[k]!.delta), b = size(slow[k]!.delta);
      if (a > 0) moved++;
      expect(b, `bias region ${k}`).toBeLessThanOrEqual(a / 8 + full[k]!.delta.length);
    }
    expect(moved).toBeGreaterThan(0);
    expect(() => compilePlan(model, { ...o, backboneLrFactor: 0 })).toThrow(/backboneLrFactor 0 is not a positive number/);
  });
});

describe('the greedy scheme (SchemeFitter.choose)', () => {
  it('adds the whole weights of spatial and depthwise layers with what the budget leaves, and only when they fit', () => {
    const model = tflite('micro_speech_quantized');
    const choose = (budget: number) => new SchemeFitter(model, { budget, budgetSource: 'test', head: 'keep', optimizer: 'lqm' }).choose();
    const roomy = choose(96 * 1024);
    // micro_speech: a 10x8 conv (layer 0) and the classifier.
    expect(roomy).toEqual({ biasLayers: 2, weights: [{ layer: 0 }] });
    const fitter = new SchemeFitter(model, { budget: 96 * 1024, budgetSource: 'test', head: 'keep', optimizer: 'lqm' });
    const withConv = fitter.fit(roomy).arenaBytes, without = fitter.fit({ biasLayers: 2, weights: [] }).arenaBytes;
    expect(withConv).toBeGreaterThan(without);
    // One byte short of the conv's weights: the rest of the scheme, without them.
    expect(choose(withConv - 1)).toEqual({ biasLayers: 2, weights: [] });
    expect(choose(withConv)).toEqual(roomy);
    // person_detect on the Moddable Two's arena: the pointwise slices fill
    // it; no depthwise layer is left room (the main job's scheme).
    const pd = new SchemeFitter(tflite('person_detect'), { budget: 98304, budgetSource: 'test', head: { classes: 10, seed: 1 }, optimizer: 'lqm' }).choose();
    expect(pd).toEqual({ biasLayers: 6, weights: [{ layer: 26, ratio: 0.5 }, { layer: 24, ratio: 0.25 }, { layer: 22, ratio: 0.25 }] });
  });
});
