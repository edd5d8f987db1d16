// The architecture builder (src/compiler/arch): MobileNetV2-w0.35 at 128x128,
// the network of the paper's memory figures, and MCUNet-5fps.
//  - the conv table is the published architecture in the reference code's
//    order (written out below from the (t, c, n, s) table, not from the
//    builder), with the reference config's parameter counts;
//  - the seeded int8 graph validates, runs on the C kernels, and its logits
//    agree with a float64 forward of its own dequantised weights; no layer
//    saturates;
//  - a small configuration runs layer by layer within 1 LSB of float64.
import { describe, expect, it } from 'vitest';
import { buildMcunet5fps, mcunet5fpsSpec } from '../src/compiler/arch/mcunet.js';
import {
  ArchError, buildMobileNetV2, makeDivisible, mobileNetV2Layers, networkLayers,
} from '../src/compiler/arch/mobilenetv2.js';
import { validateGraph } from '../src/compiler/tflite/validate.js';
import type { Graph } from '../src/core/graph.js';
import { Xorshift32 } from '../src/core/rng.js';
import { ForwardRunner } from '../src/core/runner.js';
import { dequantize, floatOp } from './support/float-graph.js';
import { checkLayers, kernelsFor, recordFigures } from './support/model-check.js';

// MobileNetV2 (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2)
// (6,96,3,1) (6,160,3,2) (6,320,1,1), stem 32, width 0.35; channels by
// _make_divisible(c * 0.35, 8): 32 -> 16, 16 -> 8, 24 -> 8, 32 -> 16,
// 64 -> 24, 96 -> 32, 160 -> 56, 320 -> 112. Per block: expansion conv (not
// in block 0, t = 1), depthwise 3x3 with the block's stride, projection.
// Rows: [role, in channels, out channels, kernel, stride, input size].
// These are the 51 convolutions of tiny-training's mbv2-w0.35 config
// (algorithm/assets/mcu_models/mbv2-w0.35.pkl), which has no 1280 conv.
type Row = [string, number, number, number, number, number];
const MBV2_W035_128: Row[] = [
  ['stem', 3, 16, 3, 2, 128],
  ['depthwise', 16, 16, 3, 1, 64], ['project', 16, 8, 1, 1, 64], // block 0: t = 1, c = 8
  ['expand', 8, 48, 1, 1, 64], ['depthwise', 48, 48, 3, 2, 64], ['project', 48, 8, 1, 1, 32], // 1: c = 8, s = 2
  ['expand', 8, 48, 1, 1, 32], ['depthwise', 48, 48, 3, 1, 32], ['project', 48, 8, 1, 1, 32], // 2
  ['expand', 8, 48, 1, 1, 32], ['depthwise', 48, 48, 3, 2, 32], ['project', 48, 16, 1, 1, 16], // 3: c = 16, s = 2
  ['expand', 16, 96, 1, 1, 16], ['depthwise', 96, 96, 3, 1, 16], ['project', 96, 16, 1, 1, 16], // 4
  ['expand', 16, 96, 1, 1, 16], ['depthwise', 96, 96, 3, 1, 16], ['project', 96, 16, 1, 1, 16], // 5
  ['expand', 16, 96, 1, 1, 16], ['depthwise', 96, 96, 3, 2, 16], ['project', 96, 24, 1, 1, 8], // 6: c = 24, s = 2
  ['expand', 24, 144, 1, 1, 8], ['depthwise', 144, 144, 3, 1, 8], ['project', 144, 24, 1, 1, 8], // 7
  ['expand', 24, 144, 1, 1, 8], ['depthwise', 144, 144, 3, 1, 8], ['project', 144, 24, 1, 1, 8], // 8
  ['expand', 24, 144, 1, 1, 8], ['depthwise', 144, 144, 3, 1, 8], ['project', 144, 24, 1, 1, 8], // 9
  ['expand', 24, 144, 1, 1, 8], ['depthwise', 144, 144, 3, 1, 8], ['project', 144, 32, 1, 1, 8], // 10: c = 32, s = 1
  ['expand', 32, 192, 1, 1, 8], ['depthwise', 192, 192, 3, 1, 8], ['project', 192, 32, 1, 1, 8], // 11
  ['expand', 32, 192, 1, 1, 8], ['depthwise', 192, 192, 3, 1, 8], ['project', 192, 32, 1, 1, 8], // 12
  ['expand', 32, 192, 1, 1, 8], ['depthwise', 192, 192, 3, 2, 8], ['project', 192, 56, 1, 1, 4], // 13: c = 56, s = 2
  ['expand', 56, 336, 1, 1, 4], ['depthwise', 336, 336, 3, 1, 4], ['project', 336, 56, 1, 1, 4], // 14
  ['expand', 56, 336, 1, 1, 4], ['depthwise', 336, 336, 3, 1, 4], ['project', 336, 56, 1, 1, 4], // 15
  ['expand', 56, 336, 1, 1, 4], ['depthwise', 336, 336, 3, 1, 4], ['project', 336, 112, 1, 1, 4], // 16: c = 112
];
// Blocks with stride 1, in = out and t > 1 add their input.
const RESIDUAL_BLOCKS = [2, 4, 5, 7, 8, 9, 11, 12, 14, 15];

const mbv2 = { width: 0.35, resolution: 128, classes: 10 };

describe('MobileNetV2 layer table', () => {
  const L = mobileNetV2Layers(mbv2);

  it('has the 51 convolutions of the published architecture, in forward order from 0', () => {
    expect(L.convs.map((c) => c.index)).toEqual(MBV2_W035_128.map((_, i) => i));
    L.convs.forEach((c, i) => {
      const [role, inC, outC, k, s, h] = MBV2_W035_128[i]!;
      expect([c.role, c.inC, c.outC, c.kernel, c.stride, c.inH, c.inW, c.outH], `conv ${i} (${c.name})`)
        .toEqual([role, inC, outC, k, s, h, h, h / s]);
      expect(c.kind).toBe(role === 'depthwise' ? 'depthwise_conv2d' : 'conv2d');
      expect(c.activation, c.name).toBe(role === 'project' ? 'none' : 'relu6');
      expect(c.residual, c.name).toBe(role === 'project' && RESIDUAL_BLOCKS.includes(c.block));
    });
    expect(L.classifier).toMatchObject({ inFeatures: 112, outFeatures: 10 });
  });

  it('has the reference config\'s parameter counts, MACs and activation sizes', () => {
    const convWeights = L.convs.reduce((a, c) => a + c.weightCount, 0), convBiases = L.convs.reduce((a, c) => a + c.biasCount, 0);
    expect([convWeights, convBiases]).toEqual([238_688, 5_760]); // summed over the mbv2-w0.35 config's 51 convs
    expect(L.classifier.weightCount + L.classifier.biasCount).toBe(112 * 10 + 10);
    expect(L.params).toBe(245_578);
    expect(L.macs).toBe(16_648_032);
    expect(L.largestActivation).toEqual({ name: 'block1.expand', bytes: 64 * 64 * 48 });
    expect(L.convs[3]).toMatchObject({ inputBytes: 64 * 64 * 8, outputBytes: 64 * 64 * 48, weightCount: 48 * 8, macs: 64 * 64 * 48 * 8 });
    expect(L.convs[4]).toMatchObject({ inputBytes: 64 * 64 * 48, outputBytes: 32 * 32 * 48, weightCount: 9 * 48, macs: 32 * 32 * 48 * 9 });
  });

  it('names the layers of the reference 99 KB scheme: weights of 27, 30, ..., 48 are the expansion convs of blocks 9-16', () => {
    const idx = [27, 30, 33, 36, 39, 42, 45, 48], ratio = [1, 1, 1, 1, 1, 0.125, 0.5, 1];
    const picked = idx.map((i) => L.convs[i]!);
    expect(picked.map((c) => [c.role, c.block])).toEqual(idx.map((_, k) => ['expand', 9 + k]));
    // Channels the scheme keeps: int(in_channels * ratio), as its prepare step computes.
    expect(picked.map((c, k) => Math.floor(c.inC * ratio[k]!))).toEqual([24, 24, 32, 32, 32, 7, 28, 56]);
    // Biases of the last 25 convolutions: 26 (block 8's projection) to 50.
    expect(L.convs.slice(-25).map((c) => c.index)).toEqual(Array.from({ length: 25 }, (_, i) => 26 + i));
  });

  it('the torchvision variant (feature mix to 1280) has torchvision\'s parameter count at width 1.0', () => {
    const w1 = mobileNetV2Layers({ width: 1, resolution: 224, classes: 1000, featureMix: true });
    expect(w1.convs.length).toBe(52);
    expect(w1.convs[51]).toMatchObject({ role: 'feature_mix', inC: 320, outC: 1280, kernel: 1, outH: 7 });
    // torchvision's 3,504,872 counts a batch norm (2 per channel) instead of a bias per conv.
    const convChannels = w1.convs.reduce((a, c) => a + c.biasCount, 0);
    expect(w1.params + convChannels).toBe(3_504_872);
    const mix = mobileNetV2Layers({ ...mbv2, featureMix: true });
    expect(mix.convs[51]).toMatchObject({ role: 'feature_mix', inC: 112, outC: 1280 }); // not scaled below 1280
    expect(mix.params).toBe(245_578 - 1_130 + 112 * 1280 + 1280 + 1280 * 10 + 10);
  });

  it('rounds channels as _make_divisible, takes per-block kernels and expansions, and refuses bad options', () => {
    expect([32, 16, 24, 64, 96, 160, 320].map((c) => makeDivisible(c * 0.35))).toEqual([16, 8, 8, 24, 32, 56, 112]);
    expect([11.2, 5.6, 8.4, 8.9, 25].map((v) => makeDivisible(v))).toEqual([16, 8, 8, 16, 24]);
    const custom = mobileNetV2Layers({ ...mbv2, kernels: Array(17).fill(5), expands: [1, ...Array(16).fill(4)] });
    expect(custom.convs[4]).toMatchObject({ role: 'depthwise', kernel: 5, inC: 32 });
    // At width 0.1 block 0 maps 8 channels to 8 with stride 1; t = 1, so no residual (as the reference).
    expect(mobileNetV2Layers({ ...mbv2, width: 0.1 }).convs[2]).toMatchObject({ role: 'project', inC: 8, outC: 8, residual: false });
    expect(() => mobileNetV2Layers({ ...mbv2, kernels: [3, 5] })).toThrow(ArchError);
    expect(() => mobileNetV2Layers({ ...mbv2, kernels: [3, 5] })).toThrow('kernels has 2 entries; give one per block (17)');
    expect(() => mobileNetV2Layers({ ...mbv2, kernels: Array(17).fill(4) })).toThrow('block 0 has kernel size 4; it must be odd');
    expect(() => mobileNetV2Layers({ ...mbv2, width: 0 })).toThrow('width multiplier 0 must be positive');
    expect(() => mobileNetV2Layers({ ...mbv2, classes: 0 })).toThrow('classes 0 must be a positive integer');
  });
});

describe('MCUNet-5fps layer table', () => {
  it('has the 42 convolutions of the reference config; its 99 KB scheme names expansion convs', () => {
    const L = networkLayers(mcunet5fpsSpec({ classes: 10 }));
    expect(L.convs.length).toBe(42);
    const convParams = L.convs.reduce((a, c) => a + c.weightCount + c.biasCount, 0);
    expect(convParams).toBe(469_224); // mcunet-5fps.pkl: 463,216 weights + 6,008 biases
    expect(L.convs.filter((c) => c.role === 'depthwise').map((c) => c.kernel)).toEqual([3, 3, 3, 7, 3, 3, 7, 5, 3, 3, 7, 5, 5, 3]);
    expect([21, 24, 27, 30, 36, 39].map((i) => L.convs[i]!.role)).toEqual(Array(6).fill('expand'));
    expect(L.convs.at(-1)).toMatchObject({ role: 'project', inC: 576, outC: 160, outH: 4 });
    expect(L.classifier.inFeatures).toBe(160);
  });
});

// ---- the seeded int8 graph --------------------------------------------------------

function seededInputs(bytes: number, count: number, seed: number): Int8Array[] {
  const rng = new Xorshift32(seed);
  return Array.from({ length: count }, () => Int8Array.from({ length: bytes }, () => (rng.next() & 0xff) - 128));
}

const argmax = (a: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
};

// Runs the graph on the C kernels step by step (counting saturated outputs
// of every op) and in float64 on the dequantised weights with no rounding
// between layers; returns the worst logit error and the error's RMS over the
// RMS spread of the float logits (all inputs and classes).
function compareWithFloat(graph: Graph, runner: ForwardRunner, inputs: Int8Array[]) {
  const k = kernelsFor(runner, 'c');
  const out = graph.tensors[graph.outputs[0]!]!;
  let worst = 0, errSq = 0, agree = 0, decided = 0;
  const floats: number[] = [];
  const saturated: string[] = [];
  for (const input of inputs) {
    runner.writeInput(k, input);
    runner.steps.forEach((step, s) => {
      step.run(k);
      const y = k.readInt8(runner.tensors[graph.ops[s]!.outputs[0]!]!);
      const distinct = new Set(y).size;
      const high = y.filter((v) => v === 127).length / y.length, low = y.filter((v) => v === -128).length / y.length;
      // ReLU6 maps negatives to -128: up to ~half of an output may sit there, never nearly all.
      if ((distinct < 8 && y.length > 8) || high > 0.02 || low > 0.8) saturated.push(`op ${s} (${graph.ops[s]!.kind}): ${distinct} values, ${high} at 127, ${low} at -128`);
    });
    const q = dequantize(out, k.readInt8(runner.output));
    const values = new Map<number, Float64Array>([[graph.inputs[0]!, dequantize(graph.tensors[graph.inputs[0]!]!, input)]]);
    for (const op of graph.ops) values.set(op.outputs[0]!, floatOp(graph, op, (t) => values.get(t)!));
    const f = values.get(graph.outputs[0]!)!;
    floats.push(...f);
    let err = 0;
    f.forEach((v, i) => {
      err = Math.max(err, Math.abs(q[i]! - v));
      errSq += (q[i]! - v) ** 2;
    });
    worst = Math.max(worst, err);
    // Argmax must agree unless the float top two are within the error.
    const sorted = Array.from(f).sort((a, b) => b - a);
    if (sorted[0]! - sorted[1]! > 2 * err) {
      decided++;
      if (argmax(q) === argmax(f)) agree++;
    }
  }
  const mean = floats.reduce((a, b) => a + b, 0) / floats.length;
  const spreadSq = floats.reduce((a, v) => a + (v - mean) ** 2, 0);
  return { worst, worstLsb: worst / out.quant!.scale[0]!, relRms: Math.sqrt(errSq / spreadSq), agree, decided, saturated };
}

describe('MobileNetV2-w0.35-128 int8 graph', () => {
  const graph = buildMobileNetV2({ ...mbv2, seed: 1 });
  const L = mobileNetV2Layers(mbv2);

  it('is a valid int8 graph whose convs are the layer table, with TFLite\'s quantisation', () => {
    validateGraph(graph);
    const convOps = graph.ops.filter((op) => op.kind === 'conv2d' || op.kind === 'depthwise_conv2d');
    expect(convOps.length).toBe(51);
    convOps.forEach((op, i) => {
      const l = L.convs[i]!;
      const [x, w, b] = op.inputs.map((t) => graph.tensors[t]!) as [typeof graph.tensors[0], typeof graph.tensors[0], typeof graph.tensors[0]];
      const y = graph.tensors[op.outputs[0]!]!;
      expect([op.kind, w.name, op.strideH, op.activation], l.name).toEqual([l.kind, `${l.name}.weights`, l.stride, l.activation]);
      expect(w.shape).toEqual(l.kind === 'conv2d' ? [l.outC, l.kernel, l.kernel, l.inC] : [1, l.kernel, l.kernel, l.outC]);
      expect([x.shape, y.shape]).toEqual([[1, l.inH, l.inW, l.inC], [1, l.outH, l.outW, l.outC]]);
      // Per-channel symmetric weights scaled by max |w|: each channel reaches +-127.
      const q = w.quant!, data = new Int8Array(w.data!.buffer, w.data!.byteOffset, w.data!.length);
      expect([q.scale.length, q.axis, q.zeroPoint.every((z) => z === 0)]).toEqual([l.outC, l.kind === 'conv2d' ? 0 : 3, true]);
      const inner = l.kind === 'conv2d' ? l.kernel * l.kernel * l.inC : 1;
      const maxAbs = new Array<number>(l.outC).fill(0);
      data.forEach((v, j) => { const c = Math.floor(j / inner) % l.outC; maxAbs[c] = Math.max(maxAbs[c]!, Math.abs(v)); });
      expect(maxAbs.every((m) => m === 127), l.name).toBe(true);
      expect(b.quant!.scale).toEqual(q.scale.map((s) => Math.fround(x.quant!.scale[0]! * s)));
      expect(b.dtype).toBe('int32');
      if (l.activation === 'relu6') expect(y.quant!.zeroPoint[0], l.name).toBe(-128);
    });
    expect(graph.ops.filter((op) => op.kind === 'add').length).toBe(RESIDUAL_BLOCKS.length);
    expect(graph.ops.slice(-3).map((op) => op.kind)).toEqual(['average_pool2d', 'reshape', 'fully_connected']);
    expect(graph.tensors[graph.outputs[0]!]!.shape).toEqual([1, 10]);
  });

  it('needs more than the runner\'s default 200 KB arena, and runs in a larger one', () => {
    expect(() => new ForwardRunner(graph)).toThrow(/needs \d+ bytes of arena for its activations, the arena has 204800/);
    const runner = new ForwardRunner(graph, { arenaCapacity: 512 * 1024, flashCapacity: 640 * 1024 });
    // block1.expand's output (192 KB) and its input (32 KB) are live together.
    expect(runner.arenaBytes).toBeGreaterThanOrEqual(64 * 64 * (48 + 8));
    expect(runner.arenaBytes).toBeLessThan(256 * 1024);
    expect(runner.macs).toBe(L.macs);
  });

  it('its int8 logits agree with float64 on its dequantised weights, and no layer saturates', () => {
    const runner = new ForwardRunner(graph, { arenaCapacity: 512 * 1024, flashCapacity: 640 * 1024 });
    const r = compareWithFloat(graph, runner, seededInputs(runner.input.bytes, 3, 2024));
    recordFigures('mbv2-w0.35-128-vs-float64', { worstLogitError: r.worst, worstLsb: r.worstLsb, relRms: r.relRms, argmaxAgree: r.agree, argmaxDecided: r.decided });
    expect(r.saturated).toEqual([]);
    expect(r.relRms).toBeLessThan(0.2); // measured ~0.1: 51 int8 layers of a random network
    expect(r.agree).toBe(r.decided);
    expect(r.decided).toBeGreaterThanOrEqual(2);
  });

  it('is deterministic in its seed', () => {
    const again = buildMobileNetV2({ ...mbv2, seed: 1 });
    expect(again.tensors.map((t) => t.data)).toEqual(graph.tensors.map((t) => t.data));
    expect(again.tensors.map((t) => t.quant)).toEqual(graph.tensors.map((t) => t.quant));
    const other = buildMobileNetV2({ ...mbv2, seed: 2, calibrationImages: 2 });
    expect(other.tensors[1]!.data).not.toEqual(graph.tensors[1]!.data);
  });
});

describe('small configurations', () => {
  it('MobileNetV2-w0.35 at 32x32, 2 classes: every layer within 1 LSB of float64, C equals the TypeScript reference', () => {
    const graph = buildMobileNetV2({ width: 0.35, resolution: 32, classes: 2, seed: 3 });
    validateGraph(graph);
    const runner = new ForwardRunner(graph); // default arena: 15 KB of activations
    expect(runner.arenaBytes).toBeLessThan(20 * 1024);
    const inputs = seededInputs(runner.input.bytes, 2, 7);
    const { outputs, off } = checkLayers(graph, runner, inputs.map((x) => new Uint8Array(x.buffer)));
    expect(off / outputs).toBeLessThan(0.05);
    const r = compareWithFloat(graph, runner, seededInputs(runner.input.bytes, 4, 8));
    recordFigures('mbv2-w0.35-32-vs-float64', { worstLogitError: r.worst, worstLsb: r.worstLsb, relRms: r.relRms });
    expect(r.saturated).toEqual([]);
    expect(r.relRms).toBeLessThan(0.35); // measured ~0.2: the last blocks see 1x1 maps
  });

  it('MCUNet-5fps at 64x64 builds and runs', () => {
    const graph = buildMcunet5fps({ classes: 5, resolution: 64, seed: 4 });
    validateGraph(graph);
    const runner = new ForwardRunner(graph, { arenaCapacity: 512 * 1024, flashCapacity: 1024 * 1024 });
    const r = compareWithFloat(graph, runner, seededInputs(runner.input.bytes, 2, 9));
    recordFigures('mcunet-5fps-64-vs-float64', { worstLogitError: r.worst, worstLsb: r.worstLsb, relRms: r.relRms });
    expect(r.saturated).toEqual([]);
    expect(r.relRms).toBeLessThan(0.3);
  });
});
