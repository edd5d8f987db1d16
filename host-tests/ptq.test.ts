// Post-training quantisation (src/compiler/quantize), float .tflite import and
// the .tflite writer. No float .tflite is bundled, so the float models are
// made here: the bundled int8 models dequantised (weights * scale), written
// with writeTflite and read back with importFloatTflite, and the seeded
// float MobileNetV2 of the architecture builder.
//  - write then import gives the same graph (int8 and float32);
//  - hello_world re-quantised from 500 seeded x: its int8 output against the
//    float forward and sin(x) on 200 held-out x, and its scales against the
//    ones TFLite's converter chose;
//  - person_detect re-quantised from 32 seeded images: top-1 agreement with
//    the float forward and with the original int8 model on 64 held-out
//    images, and the probability error;
//  - the quantisation follows TFLite's int8 spec (weight scales max|w|/127
//    per channel, biases at s_in*s_w, activation ranges that cover what
//    calibration saw, ReLU6/pool/reshape/softmax rules);
//  - errors that say what to do; the calibration-directory loader.
// Measured figures go to out/model-figures/ptq-*.json.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as flatbuffers from 'flatbuffers';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFloatMobileNetV2, buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import { NETWORK_QUANTIZE_OPTIONS } from '../src/compiler/arch/inverted-residual.js';
import { importModel } from '../src/compiler/import-model.js';
import { calibrate } from '../src/compiler/quantize/calibrate.js';
import { dequantizeGraph } from '../src/compiler/quantize/dequantize.js';
import { QuantizeError } from '../src/compiler/quantize/errors.js';
import { constantValues, FloatForward } from '../src/compiler/quantize/float-forward.js';
import { quantizeGraph, quantizeWithRanges } from '../src/compiler/quantize/quantize.js';
import * as tfl from '../src/compiler/tflite/generated/tflite_subset_generated.js';
import { importAnyTflite, importFloatTflite, importTflite, TfliteImportError } from '../src/compiler/tflite/import.js';
import { writeTflite } from '../src/compiler/tflite/write.js';
import type { Graph, GraphTensor } from '../src/core/graph.js';
import { Xorshift32 } from '../src/core/rng.js';
import { ForwardRunner } from '../src/core/runner.js';
import { repoRoot } from '../src/node/addon.js';
import { CalibrationError, loadCalibrationDir } from '../src/node/calibration.js';
import { kernelsFor, recordFigures } from './support/model-check.js';
import { buildTflite, int8Bytes, int32Bytes, type ModelSpec } from './support/tflite-builder.js';

const bundled = (m: string) => new Uint8Array(readFileSync(join(repoRoot, 'models', `${m}.tflite`)));
const f32 = Math.fround;

// A float32 .tflite made from a bundled int8 model, and the int8 original.
function floatModel(m: string): { int8: Graph; float: Graph; bytes: Uint8Array } {
  const int8 = importTflite(bundled(m), m);
  const bytes = writeTflite(dequantizeGraph(int8, `${m}-float`));
  return { int8, float: importFloatTflite(bytes, `${m}-float`), bytes };
}

const inputOf = (g: Graph) => g.tensors[g.inputs[0]!]!;
const outputOf = (g: Graph) => g.tensors[g.outputs[0]!]!;
const quantizeInput = (g: Graph, x: ArrayLike<number>) => {
  const q = inputOf(g).quant!;
  return Int8Array.from({ length: x.length }, (_, i) => Math.max(-128, Math.min(127, Math.round(x[i]! / q.scale[0]!) + q.zeroPoint[0]!)));
};
const dequantizeOutput = (g: Graph, y: Int8Array) => {
  const q = outputOf(g).quant!;
  return Array.from(y, (v) => (v - q.zeroPoint[0]!) * q.scale[0]!);
};

// Runs an int8 graph on the C kernels: real input in, real output out.
function int8Model(g: Graph): (x: ArrayLike<number>) => number[] {
  const runner = new ForwardRunner(g);
  const k = kernelsFor(runner, 'c');
  return (x) => dequantizeOutput(g, runner.run(k, quantizeInput(g, x)));
}

const argmax = (a: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
};

// Seeded smooth grayscale images in [-1, 1]: a random grid (2 to 12 cells a
// side) upsampled bilinearly, plus uniform noise of amplitude 0.1: more like
// camera frames than white noise, whose activations no real input produces.
function smoothImage(rng: Xorshift32, size: number, grid: number): Float32Array {
  const u = () => rng.next() / 2 ** 31 - 1;
  const g = Array.from({ length: (grid + 1) * (grid + 1) }, u);
  const at = (y: number, x: number) => g[y * (grid + 1) + x]!;
  const out = new Float32Array(size * size);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const gy = (y / size) * grid, gx = (x / size) * grid;
      const iy = Math.floor(gy), ix = Math.floor(gx), fy = gy - iy, fx = gx - ix;
      const v = at(iy, ix) * (1 - fy) * (1 - fx) + at(iy, ix + 1) * (1 - fy) * fx + at(iy + 1, ix) * fy * (1 - fx) + at(iy + 1, ix + 1) * fy * fx;
      out[y * size + x] = Math.max(-1, Math.min(1, v + 0.1 * u()));
    }
  return out;
}

function expectQuantizeError(f: () => unknown, ...parts: string[]): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(QuantizeError);
    for (const p of parts) expect((e as Error).message).toContain(p);
    return;
  }
  throw new Error('no error');
}

describe('the .tflite writer', () => {
  it('write then import gives the same graph: the three bundled int8 models', () => {
    for (const m of ['person_detect', 'micro_speech_quantized', 'hello_world_int8']) {
      const g = importTflite(bundled(m), m);
      const bytes = writeTflite(g);
      expect(importTflite(bytes, m), m).toEqual(g);
      expect(writeTflite(importTflite(bytes, m)), m).toEqual(bytes); // and the bytes are stable
    }
  });

  it('write then import gives the same graph: float32 graphs (dequantised models, the seeded MobileNetV2)', () => {
    for (const m of ['person_detect', 'micro_speech_quantized', 'hello_world_int8']) {
      const f = dequantizeGraph(importTflite(bundled(m), m));
      expect(f.tensors.filter((t) => t.data === null).every((t) => t.dtype === 'float32' && t.quant === null)).toBe(true);
      expect(importFloatTflite(writeTflite(f), f.name), m).toEqual(f);
      expect(importAnyTflite(writeTflite(f), f.name).precision).toBe('float32');
    }
    const { graph } = buildFloatMobileNetV2({ width: 0.35, resolution: 32, classes: 2, seed: 3, calibrationImages: 2 });
    expect(importFloatTflite(writeTflite(graph), graph.name)).toEqual(graph);
  });

  it('the constant data of a written file is 16-byte aligned, as TFLite expects', () => {
    const g = importTflite(bundled('hello_world_int8'), 'hw');
    const bytes = writeTflite(g);
    const model = tfl.Model.getRootAsModel(new flatbuffers.ByteBuffer(bytes));
    for (let i = 0; i < model.buffersLength(); i++) {
      const d = model.buffers(i)!.dataArray();
      if (d && d.length) expect(d.byteOffset % 16, `buffer ${i}`).toBe(0);
    }
  });
});

describe('the float reference forward', () => {
  it('on a dequantised model equals the int8 model\'s float oracle (same op semantics, float32 storage)', () => {
    const { int8, float } = floatModel('hello_world_int8');
    const a = new FloatForward(int8), b = new FloatForward(float);
    for (let i = 0; i < 20; i++) {
      const x = [(2 * Math.PI * i) / 19];
      expect(Math.abs(a.output(x)[0]! - b.output(x)[0]!)).toBeLessThan(1e-5);
    }
  });
});

describe('hello_world: a float32 model quantised from 500 seeded x', () => {
  const { int8, float } = floatModel('hello_world_int8');
  const rng = new Xorshift32(20260601);
  // Seeded uniform x on [0, 2π], the model's domain. The set must be dense
  // enough to see the output's narrow dip to -1.11 near x = 4.7: with the
  // first 64 of these x the output's range stops at -0.99 and held-out x in
  // the dip saturate (measured: 15 output LSB worst instead of 6); 256 or
  // more find it.
  const calibration = Array.from({ length: 500 }, () => Float32Array.of(f32((rng.next() / 2 ** 32) * 2 * Math.PI)));
  const q = quantizeGraph(float, calibration);

  it('is calibrate + quantizeWithRanges, and the int8 graph round-trips through the writer', () => {
    expect(quantizeWithRanges(float, calibrate(float, calibration))).toEqual(q);
    expect(importTflite(writeTflite(q), q.name)).toEqual(q);
    expect(importModel(writeTflite(float), q.name, { calibration }).graph).toEqual(q);
  });

  it('lands on the scales TFLite\'s converter chose (within 2%), zero points within 1', () => {
    const acts = (g: Graph) => g.tensors.filter((t) => t.data === null);
    acts(q).forEach((t, i) => {
      const o = acts(int8)[i]!;
      expect(t.name).toBe(o.name);
      expect(Math.abs(t.quant!.scale[0]! / o.quant!.scale[0]! - 1), t.name).toBeLessThan(0.02); // measured 0.3-0.6%
      expect(Math.abs(t.quant!.zeroPoint[0]! - o.quant!.zeroPoint[0]!), t.name).toBeLessThanOrEqual(1); // measured 0, 0, 0, 1
    });
  });

  // The model fits sin only to ~0.11; what quantisation must keep is the
  // float model's output. Measured on 200 held-out x (cell midpoints of
  // [0, 2π]): worst |int8 - float| 4.5 output LSB (0.037, RMS 0.014), the
  // converter's own int8 model 5.7 LSB (0.047); asserted 8 LSB.
  it('its int8 output stays within 8 output LSB of the float forward, as close as the converter\'s int8 model', () => {
    const runQ = int8Model(q), runO = int8Model(int8), runU = int8Model(quantizeGraph(float, calibration.slice(0, 64)));
    const ref = new FloatForward(float);
    const lsb = outputOf(q).quant!.scale[0]!, lsbO = outputOf(int8).quant!.scale[0]!;
    let worst = 0, worstO = 0, worstU = 0, worstSin = 0, floatSin = 0, sq = 0;
    const N = 200;
    for (let i = 0; i < N; i++) {
      const x = (2 * Math.PI * (i + 0.5)) / N;
      const f = ref.output([x])[0]!, y = runQ([x])[0]!, yO = runO([x])[0]!;
      worst = Math.max(worst, Math.abs(y - f));
      worstU = Math.max(worstU, Math.abs(runU([x])[0]! - f));
      worstO = Math.max(worstO, Math.abs(yO - f));
      worstSin = Math.max(worstSin, Math.abs(y - Math.sin(x)));
      floatSin = Math.max(floatSin, Math.abs(f - Math.sin(x)));
      sq += (y - f) ** 2;
    }
    recordFigures('ptq-hello_world', {
      worstVsFloatLsb: worst / lsb, worstVsFloat: worst, rmsVsFloat: Math.sqrt(sq / N), converterWorstVsFloatLsb: worstO / lsbO,
      first64SamplesWorstVsFloatLsb: worstU / lsb,
      int8VsSin: worstSin, floatVsSin: floatSin,
    });
    expect(worst).toBeLessThanOrEqual(8 * lsb);
    expect(worst).toBeLessThan(1.25 * worstO); // measured 0.79x
    expect(worstSin).toBeLessThan(floatSin + 8 * lsb);
    expect(worstU).toBeGreaterThan(2 * worst); // the sparse set saturates in the dip (measured 14.3 LSB)
  });
});

describe('person_detect: a float32 model quantised from 32 seeded images', () => {
  const { int8, float } = floatModel('person_detect');
  const rng = new Xorshift32(7);
  const calibration = Array.from({ length: 32 }, (_, i) => smoothImage(rng, 96, 2 + (i % 6) * 2));
  const heldOut = Array.from({ length: 64 }, (_, i) => smoothImage(rng, 96, 2 + (i % 6) * 2));
  const ranges = calibrate(float, calibration);
  const q = quantizeWithRanges(float, ranges);
  const ref = new FloatForward(float);
  const floatOut = heldOut.map((x) => Array.from(ref.output(x)));

  function agreement(g: Graph) {
    const run = int8Model(g), runO = int8Model(int8);
    let vsFloat = 0, vsOriginal = 0, originalVsFloat = 0, err = 0, worst = 0, errO = 0;
    heldOut.forEach((x, i) => {
      const p = run(x), pO = runO(x), f = floatOut[i]!;
      vsFloat += +(argmax(p) === argmax(f));
      vsOriginal += +(argmax(p) === argmax(pO));
      originalVsFloat += +(argmax(pO) === argmax(f));
      err += Math.abs(p[1]! - f[1]!);
      errO += Math.abs(pO[1]! - f[1]!);
      worst = Math.max(worst, Math.abs(p[1]! - f[1]!));
    });
    const n = heldOut.length;
    return { vsFloat: vsFloat / n, vsOriginal: vsOriginal / n, originalVsFloat: originalVsFloat / n, meanErr: err / n, worstErr: worst, originalMeanErr: errO / n };
  }

  it('the held-out images are not one class (agreement would say nothing)', () => {
    const persons = floatOut.filter((p) => argmax(p) === 1).length;
    expect(persons).toBeGreaterThanOrEqual(10); // measured 17 of 64
    expect(heldOut.length - persons).toBeGreaterThanOrEqual(10);
  });

  // Measured: top-1 agreement 64/64 with the float forward and with the
  // converter's int8 model; mean |p_int8 - p_float| (person) 0.0073, worst
  // 0.032; the converter's int8 model: 0.0077 mean.
  it('agrees with the float forward and with the original int8 model on 64 held-out images', () => {
    const r = agreement(q);
    recordFigures('ptq-person_detect-minmax', r);
    expect(r.vsFloat).toBeGreaterThanOrEqual(0.95);
    expect(r.vsOriginal).toBeGreaterThanOrEqual(0.95);
    expect(r.meanErr).toBeLessThan(0.015);
    expect(r.meanErr).toBeLessThan(2 * r.originalMeanErr);
    expect(r.worstErr).toBeLessThan(0.08);
  });

  // 'average' ranges clip what the average sample does not reach: on
  // held-out data like the calibration data that costs accuracy (measured:
  // 63/64 top-1, mean error 0.050). Recorded so the documentation can quote it.
  it('the average-of-extremes ranges are narrower and less accurate here than min/max', () => {
    const avg = quantizeGraph(float, calibration, { method: 'average' });
    const r = agreement(avg);
    recordFigures('ptq-person_detect-average', r);
    expect(r.vsFloat).toBeGreaterThanOrEqual(0.9);
    expect(r.meanErr).toBeLessThan(0.1);
    const wider = avg.tensors.filter((t, i) => t.data === null && t.quant!.scale[0]! > q.tensors[i]!.quant!.scale[0]! * 1.0001);
    expect(wider.map((t) => t.name)).toEqual([]);
  });

  it('follows TFLite\'s int8 spec: per-channel weights at max|w|/127, biases at s_in*s_w, ranges that cover calibration', () => {
    expect(q.tensors.map((t) => t.name)).toEqual(float.tensors.map((t) => t.name)); // nothing dropped, same order
    for (const op of q.ops) {
      const y = q.tensors[op.outputs[0]!]!, x = q.tensors[op.inputs[0]!]!;
      const yq = y.quant!;
      expect(Number.isInteger(yq.zeroPoint[0]) && yq.zeroPoint[0]! >= -128 && yq.zeroPoint[0]! <= 127).toBe(true);
      if (op.kind === 'conv2d' || op.kind === 'depthwise_conv2d' || op.kind === 'fully_connected') {
        const w = q.tensors[op.inputs[1]!]!, b = q.tensors[op.inputs[2]!]!;
        const wf = constantValues(float.tensors[op.inputs[1]!]!), bf = constantValues(float.tensors[op.inputs[2]!]!);
        const dw = op.kind === 'depthwise_conv2d';
        const C = dw ? w.shape[3]! : w.shape[0]!, inner = dw ? 1 : wf.length / C;
        const maxAbs = new Float64Array(C);
        wf.forEach((v, i) => { const c = Math.floor(i / inner) % C; maxAbs[c] = Math.max(maxAbs[c]!, Math.abs(v)); });
        expect(w.quant!.axis).toBe(dw ? 3 : 0);
        expect(w.quant!.zeroPoint.every((z) => z === 0)).toBe(true);
        expect(w.quant!.scale).toEqual(Array.from(maxAbs, (m) => f32((m || 1) / 127)));
        const wq = constantValues(w);
        wq.forEach((v, i) => {
          const c = Math.floor(i / inner) % C;
          expect(Math.abs(v - wf[i]! / w.quant!.scale[c]!)).toBeLessThanOrEqual(0.5 + 1e-9);
        });
        const sIn = x.quant!.scale[0]!;
        expect(b.dtype).toBe('int32');
        expect(b.quant!.scale).toEqual(w.quant!.scale.map((s) => f32(sIn * s)));
        expect(Array.from(constantValues(b))).toEqual(Array.from(bf, (v, c) => Math.round(v / (sIn * w.quant!.scale[c]!))));
      }
      if (op.kind === 'average_pool2d' || op.kind === 'reshape') expect(yq).toEqual(x.quant);
      if (op.kind === 'softmax') expect([yq.scale[0], yq.zeroPoint[0]]).toEqual([1 / 256, -128]);
      if ('activation' in op && op.activation === 'relu6') {
        expect(yq.zeroPoint[0]).toBe(-128); // 0 is the lowest code
        expect((127 - yq.zeroPoint[0]!) * yq.scale[0]!).toBeLessThanOrEqual(6 * (1 + 1e-6));
      }
    }
    // Every calibrated tensor's range is representable, up to half a step
    // for the zero point's rounding; 0 is exactly a code.
    const softmaxOutputs = new Set(q.ops.filter((op) => op.kind === 'softmax').map((op) => op.outputs[0]!));
    ranges.forEach((r, t) => {
      if (!r || softmaxOutputs.has(t)) return; // fixed at 1/256, -128
      const { scale: [s], zeroPoint: [zp] } = q.tensors[t]!.quant!;
      expect((-128 - zp!) * s!, q.tensors[t]!.name).toBeLessThanOrEqual(r.lo + s! / 2);
      expect((127 - zp!) * s!, q.tensors[t]!.name).toBeGreaterThanOrEqual(Math.min(r.hi, 6) - s! / 2);
    });
  });
});

describe('the seeded MobileNetV2 goes through the same quantiser', () => {
  it('buildMobileNetV2 is its float graph quantised with its calibration images', () => {
    const o = { width: 0.35, resolution: 32, classes: 2, seed: 3 };
    const { graph, calibration } = buildFloatMobileNetV2(o);
    expect(quantizeGraph(graph, calibration, NETWORK_QUANTIZE_OPTIONS)).toEqual(buildMobileNetV2(o));
  });

  // With the defaults (calibrated input, no margin) on the builder's own
  // calibration images, evaluated on other seeded images.
  it('quantised with default options, its logits track the float forward', () => {
    const o = { width: 0.35, resolution: 32, classes: 4, seed: 5 };
    const { graph, calibration } = buildFloatMobileNetV2(o);
    const q = quantizeGraph(graph, calibration);
    const rng = new Xorshift32(11);
    const run = int8Model(q), ref = new FloatForward(graph);
    let errSq = 0, spreadSq = 0, agree = 0;
    const floats: number[][] = [];
    const N = 8;
    for (let i = 0; i < N; i++) {
      const x = Float32Array.from({ length: 32 * 32 * 3 }, () => ((rng.next() & 0xff) - 128) / 128);
      const f = Array.from(ref.output(x)), y = run(x);
      floats.push(f);
      f.forEach((v, k) => { errSq += (y[k]! - v) ** 2; });
      agree += +(argmax(f) === argmax(y));
    }
    const all = floats.flat(), mean = all.reduce((a, b) => a + b, 0) / all.length;
    for (const v of all) spreadSq += (v - mean) ** 2;
    const relRms = Math.sqrt(errSq / spreadSq);
    recordFigures('ptq-mbv2-w0.35-32', { relRms, top1Agree: agree / N });
    expect(relRms).toBeLessThan(0.35); // measured 0.26; buildMobileNetV2's own bound at 32x32
  });
});

describe('errors that say what to do', () => {
  const { float, int8 } = floatModel('hello_world_int8');
  const sample = [Float32Array.of(1)];

  it('an int8 graph, an empty calibration set, a sample of the wrong size, a non-finite sample, an unknown method', () => {
    expectQuantizeError(() => quantizeGraph(int8, sample), 'is int8: this is not a float32 model', 'used as it is');
    expectQuantizeError(() => quantizeGraph(float, []), 'no calibration samples', 'each 1 values', 'float32[1x1]');
    expectQuantizeError(() => quantizeGraph(float, [Float32Array.of(1), Float32Array.of(1, 2, 3)]),
      'calibration sample 1 has 3 values; the model input "serving_default_dense_input:0" is float32[1x1] = 1 values');
    expectQuantizeError(() => quantizeGraph(float, [Float32Array.of(NaN)]), 'calibration sample 0 has NaN at element 0');
    expectQuantizeError(() => quantizeGraph(float, sample, { method: 'median' as 'minmax' }), 'unknown range method "median"');
    expectQuantizeError(() => quantizeGraph(float, sample, { inputQuant: { scale: 0.1, zeroPoint: 300 } }), 'zero point an integer in [-128, 127]');
  });

  it('a float graph with a NaN weight, an int8 tensor, a constant operand or a broadcasting ADD', () => {
    const nan = structuredClone(float);
    const wd = nan.tensors[nan.ops[0]!.inputs[1]!]!.data!;
    new DataView(wd.buffer, wd.byteOffset, wd.byteLength).setFloat32(0, NaN, true);
    expectQuantizeError(() => quantizeGraph(nan, sample), 'weights', 'holds NaN at element 0', 'fix the model\'s weights');
    const mixed = structuredClone(float);
    mixed.tensors[mixed.ops[0]!.outputs[0]!]!.dtype = 'int8';
    expectQuantizeError(() => quantizeGraph(mixed, sample), 'is int8[1x16] in a float32 model');
    const f = (name: string, shape: number[], data: Uint8Array | null = null): GraphTensor => ({ name, dtype: 'float32', shape, quant: null, data });
    const add = (b: GraphTensor): Graph => ({
      name: 'add', tensors: [f('a', [1, 4]), b, f('y', [1, 4])], inputs: [0], outputs: [2],
      ops: [{ index: 0, kind: 'add', inputs: [0, 1], outputs: [2], activation: 'none' }],
    });
    expectQuantizeError(() => quantizeGraph(add(f('c', [1, 4], new Uint8Array(16))), [new Float32Array(4)]), 'input "c" is a constant');
    const bad: Graph = {
      name: 'bc', tensors: [f('a', [1, 4]), f('m', [1, 1]), f('y', [1, 4])], inputs: [0], outputs: [2],
      ops: [
        { index: 0, kind: 'mean', inputs: [0, 3], outputs: [1], keepDims: true },
        { index: 1, kind: 'add', inputs: [0, 1], outputs: [2], activation: 'none' },
      ],
    };
    bad.tensors.push({ name: 'axes', dtype: 'int32', shape: [1], quant: null, data: int32Bytes([1]) });
    expectQuantizeError(() => quantizeGraph(bad, [new Float32Array(4)]), 'operator 1 (ADD) broadcasts [1,4] + [1,1]');
  });

  it('importTflite on a float model says it can be quantised; importModel without calibration says what to give', () => {
    const bytes = writeTflite(float);
    expect(() => importTflite(bytes, 'hw')).toThrow(TfliteImportError);
    expect(() => importTflite(bytes, 'hw')).toThrow('is float32[1x1]; xstrain needs a fully int8 model: for a float32 model, give calibration samples');
    expectQuantizeError(() => importModel(bytes, 'hw'), 'hw: this is a float32 model', 'give calibration samples (a few hundred real inputs of 1 values each)', 'TFLiteConverter');
    expect(importModel(bundled('hello_world_int8'), int8.name)).toEqual({ graph: int8, float: null });
  });

  it('a float model with an unsupported op names it; a float16 model says to export float32', () => {
    const spec: ModelSpec = {
      tensors: [
        { name: 'x', type: tfl.TensorType.FLOAT32, shape: [1, 4] },
        { name: 'y', type: tfl.TensorType.FLOAT32, shape: [1, 4] },
      ],
      ops: [{ builtin: tfl.BuiltinOperator.LOGISTIC, inputs: [0], outputs: [1] }],
      inputs: [0], outputs: [1],
    };
    expect(() => importFloatTflite(buildTflite(spec), 'f')).toThrow('f: operator 0 (LOGISTIC, builtin 14) is not supported; xstrain supports CONV_2D');
    spec.tensors[0]!.type = tfl.TensorType.FLOAT16;
    expect(() => importFloatTflite(buildTflite(spec), 'f')).toThrow('has type FLOAT16 (a float16-quantised model: export it without optimizations, as float32)');
  });
});

describe('the float interface of an int8 model (QUANTIZE on the input, DEQUANTIZE on the output)', () => {
  // x float32 -> QUANTIZE -> xq int8 -> FULLY_CONNECTED -> yq int8 -> DEQUANTIZE -> y float32
  const spec = (): ModelSpec => ({
    tensors: [
      { name: 'x', type: tfl.TensorType.FLOAT32, shape: [1, 4] },
      { name: 'xq', shape: [1, 4], scale: [0.05], zeroPoint: [-3] },
      { name: 'w', shape: [2, 4], scale: [0.01], zeroPoint: [0], data: int8Bytes([1, 2, 3, 4, -1, -2, -3, -4]) },
      { name: 'b', type: tfl.TensorType.INT32, shape: [2], scale: [0.0005], data: int32Bytes([10, -10]) },
      { name: 'yq', shape: [1, 2], scale: [0.1], zeroPoint: [2] },
      { name: 'y', type: tfl.TensorType.FLOAT32, shape: [1, 2] },
    ],
    ops: [
      { builtin: tfl.BuiltinOperator.QUANTIZE, inputs: [0], outputs: [1] },
      { builtin: tfl.BuiltinOperator.FULLY_CONNECTED, inputs: [1, 2, 3], outputs: [4] },
      { builtin: tfl.BuiltinOperator.DEQUANTIZE, inputs: [4], outputs: [5] },
    ],
    inputs: [0], outputs: [5],
  });

  it('is dropped: the int8 tensors become the input and output, and the runner takes the graph', () => {
    const g = importTflite(buildTflite(spec()), 'fi');
    expect(g.tensors.map((t) => t.name)).toEqual(['xq', 'w', 'b', 'yq']);
    expect([g.inputs, g.outputs, g.ops.map((o) => [o.index, o.kind])]).toEqual([[0], [3], [[1, 'fully_connected']]]);
    const runner = new ForwardRunner(g);
    expect(runner.run(kernelsFor(runner, 'c'), Int8Array.of(10, 20, 30, 40))).toHaveLength(2);
  });

  it('anywhere else it is refused, saying how to convert', () => {
    const inner = spec();
    inner.inputs = [1];
    inner.ops[0] = { builtin: tfl.BuiltinOperator.QUANTIZE, inputs: [4], outputs: [0] };
    inner.ops.reverse();
    expect(() => importTflite(buildTflite(inner), 'fi')).toThrow(/operator \d \(QUANTIZE\) converts "yq" \(int8\) to "x" \(float32\); xstrain accepts QUANTIZE only from a float32 graph input/);
    const constant = spec();
    constant.ops[2] = { builtin: tfl.BuiltinOperator.DEQUANTIZE, inputs: [2], outputs: [5] };
    expect(() => importTflite(buildTflite(constant), 'fi')).toThrow('operator 2 (DEQUANTIZE) dequantises the constant "w" (a float16 or dynamic-range quantised model)');
  });
});

describe('loadCalibrationDir', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const dir = (files: Record<string, Uint8Array>): string => {
    const d = mkdtempSync(join(tmpdir(), 'xstrain-cal-'));
    dirs.push(d);
    for (const [name, bytes] of Object.entries(files)) writeFileSync(join(d, name), bytes);
    return d;
  };
  // NumPy's .npy v1: magic, version, header length, a dict padded to 64 bytes.
  const npy = (descr: string, shape: number[], data: ArrayBufferView, fortran = false): Uint8Array => {
    let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
    header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
    const out = new Uint8Array(10 + header.length + data.byteLength);
    out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
    for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
    return out;
  };
  const input = { name: 'x', shape: [1, 2, 2, 1] };
  const bytesOf = (a: Float32Array | Float64Array) => new Uint8Array(a.buffer);

  it('reads .npy (float32 batches, float64, uint8) and raw .bin files in name order, skipping dotfiles', () => {
    const d = dir({
      'a.npy': npy('<f4', [2, 2, 2, 1], Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8)),
      'b.npy': npy('<f8', [4], Float64Array.of(0.5, -0.5, 0.25, 0)),
      'c.bin': bytesOf(Float32Array.of(-1, -2, -3, -4)),
      'd.raw': Uint8Array.of(0, 255, 128, 64),
      'e.npy': npy('|u1', [1, 2, 2, 1], Uint8Array.of(255, 0, 0, 255)),
      '.DS_Store': Uint8Array.of(1, 2, 3),
    });
    const s = loadCalibrationDir(d, input, { byteScale: 1 / 255 });
    expect(s.map((x) => Array.from(x))).toEqual([
      [1, 2, 3, 4], [5, 6, 7, 8], [0.5, -0.5, 0.25, 0], [-1, -2, -3, -4],
      [0, 1, f32(128 / 255), f32(64 / 255)], [1, 0, 0, 1],
    ]);
    // and quantisation takes them
    const g = dequantizeGraph(importTflite(bundled('hello_world_int8'), 'hw'));
    const scalars = dir({ 'a.npy': npy('<f4', [3, 1], Float32Array.of(0, 3, 6)), 'b.bin': bytesOf(Float32Array.of(1.5)) });
    const samples = loadCalibrationDir(scalars, inputOf(g));
    expect(samples.map((x) => x[0])).toEqual([0, 3, 6, 1.5]);
    expect(inputOf(quantizeGraph(g, samples)).quant!.scale).toEqual([f32(6 / 255)]);
  });

  it('says what is wrong: uint8 without a byte scale, sizes, formats, an empty directory', () => {
    const fails = (files: Record<string, Uint8Array>, msg: string | RegExp, opts = {}) =>
      expect(() => loadCalibrationDir(dir(files), input, opts)).toThrow(msg);
    fails({ 'a.bin': Uint8Array.of(1, 2, 3, 4) }, 'holds uint8 values; say how a byte maps to the model\'s real input');
    fails({ 'a.bin': new Uint8Array(12) }, 'has 12 bytes; the model input "x" [1x2x2x1] has 4 values, so a raw sample is 16 bytes (float32) or 4 bytes (uint8)');
    fails({ 'a.npy': npy('<f4', [3], Float32Array.of(1, 2, 3)) }, 'has shape (3) = 3 values, not a multiple of the input\'s');
    fails({ 'a.npy': npy('<i4', [4], Int32Array.of(1, 2, 3, 4)) }, 'dtype \'<i4\' is not supported');
    fails({ 'a.npy': npy('<f4', [2, 2], Float32Array.of(1, 2, 3, 4), true) }, 'Fortran order');
    fails({ 'a.npy': Uint8Array.of(1, 2, 3) }, 'not a NumPy .npy file');
    fails({ 'a.npy': npy('<f4', [4], Float32Array.of(1, 2, 3)) }, 'needs 16 data bytes, the file has 12');
    fails({ 'a.png': Uint8Array.of(1) }, /a\.png: the calibration directory holds \.npy .* and \.bin\/\.raw/);
    fails({ 'a.npy': npy('<f8', [4], Float64Array.of(1, 2, 1e300, 4)) }, 'sample 0 has Infinity at element 2');
    fails({}, 'holds no samples');
    const sub = dir({});
    mkdirSync(join(sub, 'nested'));
    expect(() => loadCalibrationDir(sub, input)).toThrow('is not a file');
    expect(() => loadCalibrationDir(join(sub, 'missing'), input)).toThrow(CalibrationError);
  });
});
