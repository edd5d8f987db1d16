// Split weights and row-scratch input gradients (ops 33-35:
// native/core/fully_connected_split_s8.c, depthwise_conv2d_rows_s8.c), what
// lets a partially updated layer keep only its updated input channels in
// the arena and the backward run with one row of scratch:
//  - fully_connected_s8_forward_split on [w_lo | w_hi] is bit-identical to
//    fully_connected_s8_forward on the joined weights (outputs and masks),
//    C and the TypeScript reference, split from 1 to in (no w_hi);
//  - fully_connected_s8_backward_input_rows is bit-identical to
//    fully_connected_s8_backward_input (gradient and exponent) with a scratch
//    of in*4 + out*2 bytes, split or not;
//  - depthwise_conv2d_s8_backward_input_rows is bit-identical to
//    depthwise_conv2d_s8_backward_input with a scratch of one input row, on
//    strides 1-3, kernels 1-7, multipliers 1-4, SAME and VALID, batch 2;
//  - the kernels refuse a split outside [1, in] and a missing w_hi;
//  - the three replay bit-identically on the Cortex-M4F (DSP and portable)
//    and RV32IMC images.
import { describe, expect, it } from 'vitest';
import { ArenaLayout, type Tensor } from '../src/core/arena.js';
import {
  depthwiseConv2dBackwardInputRowsScratchBytes, depthwiseConv2dBackwardInputScratchBytes, fcBackwardInputRowsScratchBytes,
  fcBackwardInputScratchBytes, KernelArgumentError, Kernels,
} from '../src/core/kernels.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import type { DwDims } from '../src/core/reference/depthwise_conv2d.js';
import { Xorshift32 } from '../src/core/rng.js';
import { NodeDispatch } from '../src/node/addon.js';
import { dwDims, kernelShape, sizes } from './support/depthwise_conv2d.js';
import { type Expected, Placer, Tee } from './support/dsp-replay.js';
import { Pair, randInt8 } from './support/pair.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { TraceWriter } from '../src/core/trace.js';
import { runTrace } from '../src/node/qemu.js';

// One C arena with random bytes everywhere.
function arena(rng: Xorshift32, bytes: number): { k: Kernels; layout: ArenaLayout; set(t: Tensor, v: ArrayLike<number>): void } {
  const buf = new ArrayBuffer(bytes);
  const b = new Uint8Array(buf);
  for (let i = 0; i < b.length; i++) b[i] = rng.next() & 0xff;
  const k = new Kernels(new NodeDispatch(buf));
  const set = (t: Tensor, v: ArrayLike<number>) => {
    if (t.dtype === 'int32') k.writeInt32(t, v);
    else if (t.dtype === 'int16') k.writeInt16(t, v);
    else k.write(t, Uint8Array.from(v, (x) => x & 0xff));
  };
  return { k, layout: new ArenaLayout(bytes), set };
}

// Columns [0, s) and [s, in) of an (out x in) row-major matrix.
function splitRows(w: Int8Array, O: number, I: number, s: number): [Int8Array, Int8Array] {
  const lo = new Int8Array(O * s), hi = new Int8Array(O * (I - s));
  for (let c = 0; c < O; c++) {
    lo.set(w.subarray(c * I, c * I + s), c * s);
    hi.set(w.subarray(c * I + s, (c + 1) * I), c * (I - s));
  }
  return [lo, hi];
}

const same = (a: Uint8Array, b: Uint8Array) => a.findIndex((x, i) => x !== b[i]);

function fcCases(rng: Xorshift32, n: number): { R: number; I: number; O: number; S: number }[] {
  // MBV2-w0.35-128's two partially updated expansions (4x4 pixels): 56 -> 336 at 7 and at 28 of 56 channels.
  const out = [{ R: 16, I: 56, O: 336, S: 7 }, { R: 16, I: 56, O: 336, S: 28 }, { R: 3, I: 1, O: 4, S: 1 }, { R: 5, I: 9, O: 3, S: 9 }];
  for (let i = 0; i < n; i++) {
    const I = rng.int(1, 70);
    out.push({ R: rng.int(1, 12), I, O: rng.int(1, 40), S: rng.int(1, I) });
  }
  return out;
}

describe('fully-connected with split weights (ops 33-34)', () => {
  it('fully_connected_s8_forward_split = fully_connected_s8_forward on the joined weights (outputs, masks), C and reference', () => {
    const rng = new Xorshift32(3301);
    fcCases(rng, 60).forEach(({ R, I, O, S }, trial) => {
      const a = arena(rng, 1 << 18);
      const t = {
        input: a.layout.alloc('in', 'int8', [R, I]), weights: a.layout.alloc('w', 'int8', [O, I]),
        wLo: a.layout.alloc('w_lo', 'int8', [O, S]), wHi: a.layout.alloc('w_hi', 'int8', [O, Math.max(1, I - S)]),
        bias: a.layout.alloc('bias', 'int32', [O]), multiplier: a.layout.alloc('mult', 'int32', [O]), shift: a.layout.alloc('shift', 'int32', [O]),
        out1: a.layout.alloc('out1', 'int8', [R, O]), out2: a.layout.alloc('out2', 'int8', [R, O]),
        mask1: a.layout.alloc('mask1', 'uint8', [Math.ceil((R * O) / 8)]), mask2: a.layout.alloc('mask2', 'uint8', [Math.ceil((R * O) / 8)]),
      };
      const w = Int8Array.from(randInt8(rng, O * I, -127, 127));
      const [lo, hi] = splitRows(w, O, I, S);
      a.set(t.input, randInt8(rng, R * I));
      a.set(t.weights, w);
      a.set(t.wLo, lo);
      if (S < I) a.set(t.wHi, hi);
      a.set(t.bias, Array.from({ length: O }, () => rng.int(-30000, 30000)));
      const q = Array.from({ length: O }, () => quantizeMultiplier((1 + rng.below(999)) / 1000 * 2 ** -rng.int(4, 12)));
      a.set(t.multiplier, q.map((x) => x.multiplier));
      a.set(t.shift, q.map((x) => x.shift));
      const zp = rng.int(-128, 127);
      const [actMin, actMax] = [[-128, 127], [zp, 127], [zp, Math.min(127, zp + 40)]][trial % 3]!;
      const common = { rows: R, inFeatures: I, outFeatures: O, inputOffset: rng.int(-127, 128), outputOffset: zp, actMin, actMax,
        input: t.input, bias: trial % 4 ? t.bias : null, multiplier: t.multiplier, shift: t.shift };
      const wHi = S < I ? { ...t.wHi, shape: [O, I - S], bytes: O * (I - S) } : null;
      a.k.fcForward({ ...common, weights: t.weights, output: t.out1, mask: t.mask1 });
      a.k.fcForwardSplit({ ...common, split: S, wLo: t.wLo, wHi, output: t.out2, mask: t.mask2 });
      const what = `rows ${R} in ${I} out ${O} split ${S}`;
      expect(same(a.k.read(t.out1), a.k.read(t.out2)), `${what}: output`).toBe(-1);
      // Bits past R*O in the last byte are not the kernels' (they keep whatever was there).
      const bits = (m: Uint8Array) => Array.from({ length: R * O }, (_, i) => (m[i >> 3]! >> (i & 7)) & 1);
      expect(bits(a.k.read(t.mask2)), `${what}: mask`).toEqual(bits(a.k.read(t.mask1)));
      // C vs the reference on one call
      const p = new Pair(rng, 1 << 17);
      const u = {
        input: p.alloc('in', 'int8', [R, I]), wLo: p.alloc('w_lo', 'int8', [O, S]), wHi: S < I ? p.alloc('w_hi', 'int8', [O, I - S]) : null,
        bias: p.alloc('bias', 'int32', [O]), multiplier: p.alloc('mult', 'int32', [O]), shift: p.alloc('shift', 'int32', [O]),
        output: p.alloc('out', 'int8', [R, O]), mask: p.alloc('mask', 'uint8', [Math.ceil((R * O) / 8)]),
      };
      p.set(u.input, a.k.read(t.input));
      p.set(u.wLo, lo);
      if (u.wHi) p.set(u.wHi, hi);
      p.set(u.bias, a.k.readInt32(t.bias));
      p.set(u.multiplier, q.map((x) => x.multiplier));
      p.set(u.shift, q.map((x) => x.shift));
      p.both((k) => k.fcForwardSplit({ ...common, ...u, split: S, bias: common.bias ? u.bias : null }));
      expect(p.differences(), what).toEqual([]);
    });
  });

  it('fully_connected_s8_backward_input_rows = fully_connected_s8_backward_input (gradient, exponent) with one row of scratch', () => {
    const rng = new Xorshift32(3401);
    fcCases(rng, 60).forEach(({ R, I, O, S }, trial) => {
      const a = arena(rng, 1 << 18);
      const t = {
        gradOut: a.layout.alloc('g', 'int8', [R, O]), gradOutExp: a.layout.alloc('ge', 'int32', [1]),
        wscaleMantissa: a.layout.alloc('ws', 'int16', [O]), weights: a.layout.alloc('w', 'int8', [O, I]),
        wLo: a.layout.alloc('w_lo', 'int8', [O, S]), wHi: a.layout.alloc('w_hi', 'int8', [O, Math.max(1, I - S)]),
        gradIn1: a.layout.alloc('gi1', 'int8', [R, I]), gradIn2: a.layout.alloc('gi2', 'int8', [R, I]),
        exp1: a.layout.alloc('e1', 'int32', [1]), exp2: a.layout.alloc('e2', 'int32', [1]),
        scratch1: a.layout.alloc('s1', 'uint8', [fcBackwardInputScratchBytes({ rows: R, inFeatures: I, outFeatures: O })]),
        scratch2: a.layout.alloc('s2', 'uint8', [fcBackwardInputRowsScratchBytes({ rows: R, inFeatures: I, outFeatures: O })]),
      };
      const w = Int8Array.from(randInt8(rng, O * I, -127, 127));
      const [lo, hi] = splitRows(w, O, I, S);
      const small = trial % 3 === 1;
      a.set(t.gradOut, randInt8(rng, R * O, small ? -2 : -128, small ? 2 : 127).map((v) => (trial % 11 === 5 ? 0 : v)));
      a.set(t.gradOutExp, [rng.int(-20, 0)]);
      a.set(t.wscaleMantissa, Array.from({ length: O }, () => rng.int(0, 32767)));
      a.set(t.weights, w);
      a.set(t.wLo, lo);
      if (S < I) a.set(t.wHi, hi);
      const shape = { rows: R, inFeatures: I, outFeatures: O, wscaleMantissa: t.wscaleMantissa, wscaleExp: rng.int(-10, 2), gradOut: t.gradOut, gradOutExp: t.gradOutExp };
      a.k.fcBackwardInput({ ...shape, weights: t.weights, gradIn: t.gradIn1, gradInExp: t.exp1, scratch: t.scratch1 });
      const wHi = S < I ? { ...t.wHi, shape: [O, I - S], bytes: O * (I - S) } : null;
      a.k.fcBackwardInputRows({ ...shape, split: S, wLo: t.wLo, wHi, gradIn: t.gradIn2, gradInExp: t.exp2, scratch: t.scratch2 });
      const what = `rows ${R} in ${I} out ${O} split ${S}`;
      expect(same(a.k.read(t.gradIn1), a.k.read(t.gradIn2)), `${what}: gradient`).toBe(-1);
      expect(a.k.readInt32(t.exp2)[0], `${what}: exponent`).toBe(a.k.readInt32(t.exp1)[0]);
      expect(t.scratch2.bytes).toBe(I * 4 + O * 2);
    });
  });

  it('refuses a split outside [1, in] and a missing w_hi, naming them', () => {
    const a = arena(new Xorshift32(3501), 1 << 14);
    const t = {
      input: a.layout.alloc('in', 'int8', [2, 8]), wLo: a.layout.alloc('w_lo', 'int8', [3, 4]),
      multiplier: a.layout.alloc('mult', 'int32', [3]), shift: a.layout.alloc('shift', 'int32', [3]), output: a.layout.alloc('out', 'int8', [2, 3]),
    };
    const args = { rows: 2, inFeatures: 8, outFeatures: 3, inputOffset: 0, outputOffset: 0, actMin: -128, actMax: 127, bias: null, mask: null, ...t };
    expect(() => a.k.fcForwardSplit({ ...args, split: 4, wHi: null })).toThrow(KernelArgumentError);
    expect(() => a.k.fcForwardSplit({ ...args, split: 4, wHi: null })).toThrow('split 4 < in_features 8 needs the w_hi tensor');
    expect(() => a.k.fcForwardSplit({ ...args, split: 9, wHi: null })).toThrow('split is 9, expected an integer in [1, 8]');
    // The C core's own check (dims error) when the TypeScript checks are bypassed.
    expect(() => a.k.dispatch.call(33, Int32Array.of(2, 8, 3, 4, 0, 0, -128, 127, t.input.offset, t.wLo.offset, -1, -1,
      t.output.offset, -1, t.multiplier.offset, t.shift.offset))).toThrow('bad dimensions');
  });
});

describe('depthwise input gradient with one row of scratch (op 35)', () => {
  const geometries: DwDims[] = [
    dwDims(1, 8, 8, 192, 1, 3, 3, 1, 1, 'same'), // MBV2-w0.35-128 block 12's depthwise
    dwDims(1, 8, 8, 144, 1, 3, 3, 2, 2, 'same'), // a stride-2 block at that size
    dwDims(2, 7, 5, 3, 2, 5, 3, 2, 1, 'same'),
    dwDims(1, 11, 9, 5, 1, 3, 3, 3, 3, 'valid'),
    dwDims(1, 1, 1, 3, 3, 3, 3, 2, 2, 'same'),
    dwDims(1, 49, 40, 1, 8, 10, 8, 2, 2, 'same'), // micro_speech
    dwDims(1, 4, 5, 3, 2, 4, 5, 1, 1, 'valid'),
    dwDims(1, 6, 6, 4, 1, 7, 7, 1, 1, 'same'),
  ];

  it('depthwise_conv2d_s8_backward_input_rows = depthwise_conv2d_s8_backward_input (gradient, exponent); C and reference', () => {
    const rng = new Xorshift32(3601);
    const all = [...geometries];
    for (let i = 0; i < 60; i++) {
      const inH = rng.int(1, 10), inW = rng.int(1, 10), kH = rng.int(1, 7), kW = rng.int(1, 7);
      const valid = rng.below(2) === 1 && inH >= kH && inW >= kW;
      all.push(dwDims(rng.int(1, 2), inH, inW, rng.int(1, 9), rng.int(1, 4), kH, kW, rng.int(1, 3), rng.int(1, 3), valid ? 'valid' : 'same'));
    }
    all.forEach((d, trial) => {
      const s = kernelShape(d);
      const { oc, outN, wN, inN } = sizes(d);
      const a = arena(rng, 1 << 20);
      const t = {
        wscaleMantissa: a.layout.alloc('ws', 'int16', [oc]), gradOut: a.layout.alloc('g', 'int8', [outN]),
        gradOutExp: a.layout.alloc('ge', 'int32', [1]), weights: a.layout.alloc('w', 'int8', [wN]),
        gradIn1: a.layout.alloc('gi1', 'int8', [inN]), gradIn2: a.layout.alloc('gi2', 'int8', [inN]),
        exp1: a.layout.alloc('e1', 'int32', [1]), exp2: a.layout.alloc('e2', 'int32', [1]),
        scratch1: a.layout.alloc('s1', 'uint8', [depthwiseConv2dBackwardInputScratchBytes(s)]),
        scratch2: a.layout.alloc('s2', 'uint8', [depthwiseConv2dBackwardInputRowsScratchBytes(s)]),
      };
      const small = trial % 3 === 1;
      a.set(t.gradOut, randInt8(rng, outN, small ? -2 : -128, small ? 2 : 127).map((v) => (trial % 13 === 7 ? 0 : v)));
      a.set(t.gradOutExp, [rng.int(-20, 0)]);
      a.set(t.wscaleMantissa, Array.from({ length: oc }, () => rng.int(0, 32767)));
      a.set(t.weights, randInt8(rng, wN, -127, 127));
      const common = { ...s, wscaleMantissa: t.wscaleMantissa, wscaleExp: rng.int(-10, 2), gradOut: t.gradOut, gradOutExp: t.gradOutExp, weights: t.weights };
      const shaped = (x: Tensor) => ({ ...x, shape: [d.batch, d.inH, d.inW, d.inC] });
      a.k.depthwiseConv2dBackwardInput({ ...common, gradIn: shaped(t.gradIn1), gradInExp: t.exp1, scratch: t.scratch1 });
      a.k.depthwiseConv2dBackwardInputRows({ ...common, gradIn: shaped(t.gradIn2), gradInExp: t.exp2, scratch: t.scratch2 });
      const what = JSON.stringify(d);
      expect(same(a.k.read(t.gradIn1), a.k.read(t.gradIn2)), `${what}: gradient`).toBe(-1);
      expect(a.k.readInt32(t.exp2)[0], `${what}: exponent`).toBe(a.k.readInt32(t.exp1)[0]);
      if (trial < 12) {
        const p = new Pair(rng, 1 << 19);
        const u = {
          wscaleMantissa: p.alloc('ws', 'int16', [oc]), gradOut: p.alloc('g', 'int8', [d.batch, d.outH, d.outW, oc]),
          gradOutExp: p.alloc('ge', 'int32', [1]), weights: p.alloc('w', 'int8', [1, d.kH, d.kW, oc]),
          gradIn: p.alloc('gi', 'int8', [d.batch, d.inH, d.inW, d.inC]), gradInExp: p.alloc('e', 'int32', [1]),
          scratch: p.alloc('s', 'uint8', [depthwiseConv2dBackwardInputRowsScratchBytes(s)]),
        };
        p.set(u.wscaleMantissa, new Int16Array(a.k.read(t.wscaleMantissa).buffer.slice(0)));
        p.set(u.gradOut, a.k.read(t.gradOut));
        p.set(u.gradOutExp, a.k.readInt32(t.gradOutExp));
        p.set(u.weights, a.k.read(t.weights));
        p.both((k) => k.depthwiseConv2dBackwardInputRows({ ...s, ...u, wscaleExp: common.wscaleExp }));
        expect(p.differences([u.scratch]), what).toEqual([]);
      }
    });
  });
});

// The same three kernels on the bare-metal images: one recorded trace of
// random calls (int8 tensors at every byte alignment), replayed on the
// Cortex-M4F DSP and portable images and on RV32IMC; every output equals
// the TypeScript reference's bytes.
describe('ops 33-35 on Cortex-M4F and RV32 = TypeScript reference', () => {
  const ARENA = 160 * 1024;
  const rng = new Xorshift32(3701);
  const trace = new TraceWriter(1 << 20);
  const expected: Expected[] = [];
  let calls = 0;
  for (let n = 0; n < 24; n++) {
    const R = rng.int(1, 20), I = rng.int(1, 80), O = rng.int(1, 60), S = rng.int(1, I);
    const d = dwDims(1, rng.int(1, 9), rng.int(1, 9), rng.int(1, 24), rng.int(1, 2), 3, 3, rng.int(1, 2), rng.int(1, 2), 'same');
    const s = kernelShape(d), z = sizes(d);
    const placer = new Placer();
    const place = placer.place.bind(placer);
    const t = {
      input: place('in', 'int8', R * I, rng.int(0, 3)), wLo: place('w_lo', 'int8', O * S, rng.int(0, 3)),
      wHi: place('w_hi', 'int8', Math.max(1, O * (I - S)), rng.int(0, 3)), bias: place('bias', 'int32', O),
      mult: place('mult', 'int32', O), shift: place('shift', 'int32', O), out: place('out', 'int8', R * O, rng.int(0, 3)),
      mask: place('mask', 'uint8', Math.ceil((R * O) / 8)), gradOut: place('g', 'int8', R * O, rng.int(0, 3)),
      ws: place('ws', 'int16', Math.max(O, z.oc)), gradIn: place('gi', 'int8', R * I, rng.int(0, 3)), cells: place('cells', 'int32', 4),
      scratch: place('scratch', 'uint8', fcBackwardInputRowsScratchBytes({ rows: R, inFeatures: I, outFeatures: O })),
      dwOut: place('dw_g', 'int8', z.outN, rng.int(0, 3)), dwW: place('dw_w', 'int8', z.wN, rng.int(0, 3)),
      dwIn: place('dw_gi', 'int8', z.inN, rng.int(0, 3)), dwScratch: place('dw_scratch', 'uint8', depthwiseConv2dBackwardInputRowsScratchBytes(s)),
    };
    if (placer.top > ARENA) throw new Error(`case ${n} too large`);
    const cell = (k: number): Tensor => ({ name: `cell${k}`, dtype: 'int32', shape: [1], offset: t.cells.offset + 4 * k, bytes: 4 });
    const ref = new ReferenceDispatch(new ArrayBuffer(ARENA));
    trace.arena(ARENA);
    const k = new Kernels(new Tee(ref, trace));
    k.write(t.input, Uint8Array.from(randInt8(rng, R * I), (v) => v & 0xff));
    k.write(t.wLo, Uint8Array.from(randInt8(rng, O * S, -127, 127), (v) => v & 0xff));
    if (S < I) k.write(t.wHi, Uint8Array.from(randInt8(rng, O * (I - S), -127, 127), (v) => v & 0xff));
    k.writeInt32(t.bias, Array.from({ length: O }, () => rng.int(-30000, 30000)));
    const q = Array.from({ length: O }, () => quantizeMultiplier((1 + rng.below(999)) / 1000 * 2 ** -rng.int(4, 12)));
    k.writeInt32(t.mult, q.map((x) => x.multiplier));
    k.writeInt32(t.shift, q.map((x) => x.shift));
    k.write(t.mask, new Uint8Array(t.mask.bytes));
    k.write(t.gradOut, Uint8Array.from(randInt8(rng, R * O), (v) => v & 0xff));
    k.writeInt16(t.ws, Array.from({ length: t.ws.bytes / 2 }, () => rng.int(0, 32767)));
    k.writeInt32(cell(0), [rng.int(-20, 0)]);
    k.write(t.dwOut, Uint8Array.from(randInt8(rng, z.outN), (v) => v & 0xff));
    k.write(t.dwW, Uint8Array.from(randInt8(rng, z.wN, -127, 127), (v) => v & 0xff));
    const what = `case ${n}: fc ${R}x${I}->${O} split ${S}, depthwise ${JSON.stringify(d)}`;
    const readBack = (x: Tensor, name: string) => {
      trace.read(x.offset, x.bytes);
      expected.push({ offset: x.offset, bytes: ref.read(x.offset, x.bytes), what: `${what}, ${name}` });
    };
    const wHi = S < I ? { ...t.wHi, bytes: O * (I - S), shape: [O * (I - S)] } : null;
    const zp = rng.int(-128, 127);
    k.fcForwardSplit({
      rows: R, inFeatures: I, outFeatures: O, split: S, inputOffset: rng.int(-127, 128), outputOffset: zp, actMin: zp, actMax: 127,
      input: t.input, wLo: t.wLo, wHi, bias: t.bias, output: t.out, mask: t.mask, multiplier: t.mult, shift: t.shift,
    });
    readBack(t.out, 'forward split output');
    readBack(t.mask, 'forward split mask');
    const ws = { ...t.ws, bytes: O * 2, shape: [O] };
    k.fcBackwardInputRows({
      rows: R, inFeatures: I, outFeatures: O, split: S, wscaleMantissa: ws, wscaleExp: rng.int(-10, 2), gradOut: t.gradOut,
      gradOutExp: cell(0), wLo: t.wLo, wHi, gradIn: t.gradIn, gradInExp: cell(1), scratch: t.scratch,
    });
    readBack(t.gradIn, 'fc input gradient');
    readBack(cell(1), 'fc input gradient exponent');
    k.depthwiseConv2dBackwardInputRows({
      ...s, wscaleMantissa: { ...t.ws, bytes: z.oc * 2, shape: [z.oc] }, wscaleExp: rng.int(-10, 2), gradOut: t.dwOut, gradOutExp: cell(0),
      weights: t.dwW, gradIn: t.dwIn, gradInExp: cell(2), scratch: t.dwScratch,
    });
    readBack(t.dwIn, 'depthwise input gradient');
    readBack(cell(2), 'depthwise input gradient exponent');
    calls += 3;
  }
  const bytes = trace.end();
  for (const target of ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const) {
    it(`${target}: 24 random cases bit-identical`, async () => {
      const r = await runTrace(target, bytes);
      expect(r.parsed.errors).toEqual([]);
      expect(r.exitCode).toBe(0);
      expect(r.parsed.calls).toHaveLength(calls);
      expect(r.parsed.calls.filter((c) => c.status !== 0)).toEqual([]);
      expect(r.parsed.reads).toHaveLength(expected.length);
      r.parsed.reads.forEach((got, j) => {
        expect(got.offset, expected[j]!.what).toBe(expected[j]!.offset);
        expect(Array.from(got.bytes), expected[j]!.what).toEqual(Array.from(expected[j]!.bytes));
      });
    }, 180_000);
  }
});
