// Depthwise conv2d int8 (native/core/depthwise_conv2d_s8.c), each part
// against an oracle it did not produce:
//  1. C vs the TypeScript reference, bit for bit, nothing written outside
//     the outputs (random arenas), on random and edge-case geometries;
//  2. forward vs float64 convolution of the dequantised tensors (<= 1 LSB);
//  3. gradients vs float64 gradients of the dequantised forward, and central
//     finite differences of a float64 forward; figures written to
//     out/gradient-format/depthwise_conv2d.json;
//  4. bad input: KernelArgumentError naming the tensor, C status codes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ArenaLayout } from '../src/core/arena.js';
import { depthwiseConv2dBackwardInputScratchBytes, KernelArgumentError, Kernels } from '../src/core/kernels.js';
import { Op } from '../src/core/ops.js';
import { quantizeMultiplier, weightScaleMantissa } from '../src/core/quant.js';
import type { DwDims } from '../src/core/reference/depthwise_conv2d.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { cosine, dwDims, floatForward, floatGradients, kernelShape, relErr, sizes } from './support/depthwise_conv2d.js';
import { Pair, randInt8 } from './support/pair.js';

// Named geometries: batch, in_h, in_w, in_c, mult, k_h, k_w, stride_h, stride_w, padding.
const EDGE: [string, DwDims][] = [
  ['1x1 image, 3x3 SAME', dwDims(1, 1, 1, 3, 1, 3, 3, 1, 1, 'same')],
  ['1x1 image, 3x3 SAME, mult 3', dwDims(2, 1, 1, 2, 3, 3, 3, 2, 2, 'same')],
  ['kernel larger than the input, SAME', dwDims(1, 2, 3, 5, 2, 5, 4, 1, 1, 'same')],
  ['kernel larger than the input, SAME, stride 2', dwDims(2, 2, 3, 3, 1, 5, 4, 2, 2, 'same')],
  ['stride 3 VALID, odd sizes', dwDims(1, 11, 9, 5, 1, 3, 3, 3, 3, 'valid')],
  ['stride 3 SAME, mult 2', dwDims(1, 10, 7, 7, 2, 3, 2, 3, 3, 'same')],
  ['33 channels (accumulator block boundary)', dwDims(1, 5, 6, 33, 1, 3, 3, 1, 1, 'same')],
  ['70 channels, stride 2', dwDims(1, 4, 4, 70, 1, 3, 3, 2, 2, 'same')],
  ['1x3 kernel, strides 1x2, VALID, batch 2', dwDims(2, 1, 9, 4, 2, 1, 3, 1, 2, 'valid')],
  ['full-image kernel, VALID (1x1 output)', dwDims(1, 4, 5, 3, 2, 4, 5, 1, 1, 'valid')],
  ['micro_speech (49x40x1, 10x8, stride 2, mult 8, SAME)', dwDims(1, 49, 40, 1, 8, 10, 8, 2, 2, 'same')],
  ['person_detect-like 3x3 stride 1', dwDims(1, 12, 12, 8, 1, 3, 3, 1, 1, 'same')],
  ['person_detect-like 3x3 stride 2', dwDims(1, 12, 12, 8, 1, 3, 3, 2, 2, 'same')],
  ['person_detect-like 3x3 stride 2, odd image', dwDims(1, 11, 11, 6, 1, 3, 3, 2, 2, 'same')],
];

function randomDims(rng: Xorshift32): DwDims {
  const inH = rng.int(1, 9), inW = rng.int(1, 9), kH = rng.int(1, 5), kW = rng.int(1, 5);
  const valid = rng.below(2) === 1 && inH >= kH && inW >= kW;
  return dwDims(rng.int(1, 2), inH, inW, rng.int(1, 9), rng.int(1, 4), kH, kW, rng.int(1, 3), rng.int(1, 3),
    valid ? 'valid' : 'same');
}

function cases(rng: Xorshift32, random: number): [string, DwDims][] {
  const out = [...EDGE];
  for (let i = 0; i < random; i++) {
    const d = randomDims(rng);
    out.push([`random ${i} ${JSON.stringify(d)}`, d]);
  }
  return out;
}

describe('depthwise conv2d: C kernels are bit-identical to the TypeScript reference', () => {
  it('depthwise_conv2d_s8_forward (bias or not, mask or not, no clamp / ReLU / ReLU6)', () => {
    const rng = new Xorshift32(1401);
    let trial = 0;
    for (const [name, d] of cases(rng, 50)) {
      for (let rep = 0; rep < 3; rep++, trial++) {
        const p = new Pair(rng, 1 << 18);
        const { oc, inN, outN, wN } = sizes(d);
        const t = {
          input: p.alloc('in', 'int8', [d.batch, d.inH, d.inW, d.inC]),
          weights: p.alloc('w', 'int8', [1, d.kH, d.kW, oc]),
          bias: p.alloc('bias', 'int32', [oc]),
          output: p.alloc('out', 'int8', [d.batch, d.outH, d.outW, oc]),
          mask: p.alloc('mask', 'uint8', [Math.ceil(outN / 8)]),
          multiplier: p.alloc('mult', 'int32', [oc]),
          shift: p.alloc('shift', 'int32', [oc]),
        };
        p.set(t.input, randInt8(rng, inN));
        p.set(t.weights, randInt8(rng, wN, -127, 127));
        p.set(t.bias, Array.from({ length: oc }, () => rng.int(0, 40000) - 20000));
        const q = Array.from({ length: oc }, () => quantizeMultiplier((1 + rng.below(999)) / 1000 * 2 ** -rng.int(4, 12)));
        p.set(t.multiplier, q.map((x) => x.multiplier));
        p.set(t.shift, q.map((x) => x.shift));
        const zpOut = rng.int(-128, 127);
        const act = [[-128, 127], [zpOut, 127], [zpOut, Math.min(127, zpOut + 40)]][trial % 3]!;
        const useBias = trial % 4 !== 0, useMask = trial % 5 !== 0;
        const inputOffset = rng.int(-127, 128);
        p.both((k) =>
          k.depthwiseConv2dForward({
            ...kernelShape(d), inputOffset, outputOffset: zpOut, actMin: act[0]!, actMax: act[1]!, ...t,
            bias: useBias ? t.bias : null, mask: useMask ? t.mask : null,
          }),
        );
        expect(p.differences(), `${name} rep ${rep}`).toEqual([]);
      }
    }
  });

  it('depthwise_conv2d_s8_backward_input (per-channel weight scales, normalised exponent)', () => {
    const rng = new Xorshift32(1501);
    let trial = 0;
    for (const [name, d] of cases(rng, 50)) {
      for (let rep = 0; rep < 3; rep++, trial++) {
        const p = new Pair(rng, 1 << 18);
        const { oc, outN, wN } = sizes(d);
        const s = kernelShape(d);
        const t = {
          wscaleMantissa: p.alloc('wscale', 'int16', [oc]),
          gradOut: p.alloc('grad_out', 'int8', [d.batch, d.outH, d.outW, oc]),
          gradOutExp: p.alloc('grad_out_exp', 'int32', [1]),
          weights: p.alloc('w', 'int8', [1, d.kH, d.kW, oc]),
          gradIn: p.alloc('grad_in', 'int8', [d.batch, d.inH, d.inW, d.inC]),
          gradInExp: p.alloc('grad_in_exp', 'int32', [1]),
          scratch: p.alloc('scratch', 'uint8', [depthwiseConv2dBackwardInputScratchBytes(s)]),
        };
        p.set(t.wscaleMantissa, Array.from({ length: oc }, () => rng.int(0, 32767)));
        // Small gradients sometimes (the normalisation shifts left), all-zero once.
        const small = rep === 1, zero = rep === 2 && trial % 7 === 0;
        p.set(t.gradOut, randInt8(rng, outN, small ? -2 : -128, small ? 2 : 127).map((v) => (zero ? 0 : v)));
        p.set(t.gradOutExp, [rng.int(-20, 0)]);
        p.set(t.weights, randInt8(rng, wN, -127, 127));
        const wscaleExp = rng.int(-10, 2);
        p.both((k) => k.depthwiseConv2dBackwardInput({ ...s, wscaleExp, ...t }));
        expect(p.differences([t.scratch]), `${name} rep ${rep}`).toEqual([]);
      }
    }
  });

  it('depthwise_conv2d_s8_backward_bias and _backward_weight on output-channel blocks (sparse update)', () => {
    const rng = new Xorshift32(1601);
    for (const [name, d] of cases(rng, 60)) {
      for (let rep = 0; rep < 3; rep++) {
        const p = new Pair(rng, 1 << 18);
        const { oc, inN, outN } = sizes(d);
        const ocBegin = rep === 0 ? 0 : rng.int(0, oc - 1);
        const ocEnd = rep === 0 ? oc : rng.int(ocBegin + 1, oc);
        const noc = ocEnd - ocBegin;
        const gradOut = p.alloc('grad_out', 'int8', [d.batch, d.outH, d.outW, oc]);
        const input = p.alloc('in', 'int8', [d.batch, d.inH, d.inW, d.inC]);
        const gradBias = p.alloc('grad_bias', 'int32', [noc]);
        const gradWeights = p.alloc('grad_w', 'int32', [d.kH, d.kW, noc]);
        p.set(gradOut, randInt8(rng, outN));
        p.set(input, randInt8(rng, inN));
        const inputOffset = rng.int(-127, 128);
        const s = kernelShape(d);
        p.both((k) => {
          k.depthwiseConv2dBackwardBias({ ...s, ocBegin, ocEnd, gradOut, gradBias });
          k.depthwiseConv2dBackwardWeight({ ...s, ocBegin, ocEnd, inputOffset, gradOut, input, gradWeights });
        });
        expect(p.differences(), `${name} rep ${rep}`).toEqual([]);
      }
    }
  });

  it('the extreme sums stay exact: 255x256 kernel (65280 taps), 65535 output pixels', () => {
    // Forward: every product at its extreme, |acc| = 255*128*65280 < 2^31.
    // Weight gradient: 65535 pixels of 128*255 (one tap, one channel).
    const rng = new Xorshift32(1701);
    const p = new Pair(rng, 1 << 19);
    const d = dwDims(1, 255, 256, 1, 1, 255, 256, 1, 1, 'valid');
    const { inN, wN } = sizes(d);
    const input = p.alloc('in', 'int8', [inN]), weights = p.alloc('w', 'int8', [wN]);
    const output = p.alloc('out', 'int8', [1]), multiplier = p.alloc('mult', 'int32', [1]), shift = p.alloc('shift', 'int32', [1]);
    p.set(input, new Array<number>(inN).fill(127));
    p.set(weights, new Array<number>(wN).fill(-128));
    p.set(multiplier, [1 << 30]);
    p.set(shift, [-24]);
    p.both((k) => k.depthwiseConv2dForward({
      ...kernelShape(d), inputOffset: 128, outputOffset: 0, actMin: -128, actMax: 127, input, weights, bias: null,
      output, mask: null, multiplier, shift,
    }));
    expect(p.differences()).toEqual([]);
    // -255*128*65280 / 2^25 = -63.5 -> -64 (ties away from zero)
    expect([...p.c.readInt8(output)]).toEqual([-64]);

    const p2 = new Pair(rng, 1 << 19);
    const d2 = dwDims(1, 255, 257, 1, 1, 1, 1, 1, 1, 'valid'); // 65535 output pixels
    const n = sizes(d2).outN;
    const gradOut = p2.alloc('grad_out', 'int8', [n]), x = p2.alloc('in', 'int8', [n]);
    const gradWeights = p2.alloc('grad_w', 'int32', [1]), gradBias = p2.alloc('grad_bias', 'int32', [1]);
    p2.set(gradOut, new Array<number>(n).fill(-128));
    p2.set(x, new Array<number>(n).fill(127));
    p2.both((k) => {
      k.depthwiseConv2dBackwardWeight({ ...kernelShape(d2), ocBegin: 0, ocEnd: 1, inputOffset: 128, gradOut, input: x, gradWeights });
      k.depthwiseConv2dBackwardBias({ ...kernelShape(d2), ocBegin: 0, ocEnd: 1, gradOut, gradBias });
    });
    expect(p2.differences()).toEqual([]);
    expect(p2.c.readInt32(gradWeights)[0]).toBe(-128 * 255 * 65535);
    expect(p2.c.readInt32(gradBias)[0]).toBe(-128 * 65535);
  });
});

// A quantised layer with known real values: x = s_in*(q - zp_in),
// w[.][oc] = s_w[oc]*q_w, bias = s_in*s_w[oc]*q_b.
function quantLayer(rng: Xorshift32, d: DwDims) {
  const { oc, inN, wN } = sizes(d);
  const sIn = (0.5 + rng.below(1000) / 1000) * 0.02;
  const zpIn = rng.int(-128, 127);
  const sW = Array.from({ length: oc }, () => (0.1 + rng.below(1000) / 1000) * 0.01);
  const qx = randInt8(rng, inN);
  const qw = randInt8(rng, wN, -127, 127);
  const qb = Array.from({ length: oc }, () => rng.int(-3000, 3000));
  const x = qx.map((q) => sIn * (q - zpIn));
  const w = qw.map((q, k) => sW[k % oc]! * q);
  const b = qb.map((q, c) => sIn * sW[c]! * q);
  return { sIn, zpIn, sW, qx, qw, qb, x, w, b };
}

function cKernels(bytes: number): { k: Kernels; L: ArenaLayout } {
  return { k: new Kernels(new NodeDispatch(new ArrayBuffer(bytes))), L: new ArenaLayout(bytes) };
}

describe('depthwise conv2d: forward against float64 on the dequantised tensors', () => {
  it('is within 1 LSB of round(float) for every output (no clamp, ReLU, ReLU6)', () => {
    const rng = new Xorshift32(1801);
    let worst = 0, outputs = 0;
    for (const [name, d] of cases(rng, 30)) {
      for (let rep = 0; rep < 3; rep++) {
        const { oc, outN } = sizes(d);
        const l = quantLayer(rng, d);
        const y = floatForward(d, l.x, l.w, l.b);
        let ymax = 0;
        for (const v of y) ymax = Math.max(ymax, Math.abs(v));
        const sOut = Math.max(ymax, 1e-6) / (80 + rng.below(60)); // some outputs saturate
        const zpOut = rng.int(-20, 20);
        const act = [[-128, 127], [zpOut, 127], [zpOut, Math.min(127, zpOut + Math.round(6 / sOut))]][rep]!;
        const q = Array.from({ length: oc }, (_, c) => quantizeMultiplier((l.sIn * l.sW[c]!) / sOut));
        const { k, L } = cKernels(1 << 18);
        const t = {
          input: L.alloc('in', 'int8', [sizes(d).inN]),
          weights: L.alloc('w', 'int8', [sizes(d).wN]),
          bias: L.alloc('bias', 'int32', [oc]),
          output: L.alloc('out', 'int8', [outN]),
          mask: L.alloc('mask', 'uint8', [Math.ceil(outN / 8)]),
          multiplier: L.alloc('mult', 'int32', [oc]),
          shift: L.alloc('shift', 'int32', [oc]),
        };
        k.write(t.input, Uint8Array.from(l.qx, (v) => v & 0xff));
        k.write(t.weights, Uint8Array.from(l.qw, (v) => v & 0xff));
        k.writeInt32(t.bias, l.qb);
        k.writeInt32(t.multiplier, q.map((m) => m.multiplier));
        k.writeInt32(t.shift, q.map((m) => m.shift));
        k.depthwiseConv2dForward({
          ...kernelShape(d), inputOffset: -l.zpIn, outputOffset: zpOut, actMin: act[0]!, actMax: act[1]!, ...t,
        });
        const got = k.readInt8(t.output), mask = k.read(t.mask);
        for (let i = 0; i < outN; i++) {
          const want = Math.min(act[1]!, Math.max(act[0]!, Math.round(y[i]! / sOut) + zpOut));
          worst = Math.max(worst, Math.abs(got[i]! - want));
          // The mask bit says whether the clamp let the value through.
          const v = Math.round(y[i]! / sOut) + zpOut;
          if (Math.abs(v - act[0]!) > 1 && Math.abs(v - act[1]!) > 1) {
            expect((mask[i >> 3]! >> (i & 7)) & 1, `${name} mask ${i}`).toBe(v > act[0]! && v < act[1]! ? 1 : 0);
          }
        }
        outputs += outN;
        expect(worst, name).toBeLessThanOrEqual(1);
      }
    }
    expect(outputs).toBeGreaterThan(10000);
  });
});

describe('depthwise conv2d: gradients against float64', () => {
  // Runs the three backward kernels in C for real upstream gradient
  // g = grad_out * 2^e and returns them as real numbers.
  function kernelGradients(d: DwDims, l: ReturnType<typeof quantLayer>, gq: number[], e: number,
    blk: { ocBegin: number; ocEnd: number }) {
    const { oc, inN, outN, wN } = sizes(d);
    const s = kernelShape(d);
    const ws = weightScaleMantissa(l.sW);
    const { k, L } = cKernels(1 << 18);
    const noc = blk.ocEnd - blk.ocBegin;
    const t = {
      wscaleMantissa: L.alloc('wscale', 'int16', [oc]),
      gradOut: L.alloc('grad_out', 'int8', [outN]),
      gradOutExp: L.cell('grad_out_exp'),
      weights: L.alloc('w', 'int8', [wN]),
      gradIn: L.alloc('grad_in', 'int8', [inN]),
      gradInExp: L.cell('grad_in_exp'),
      scratch: L.alloc('scratch', 'uint8', [depthwiseConv2dBackwardInputScratchBytes(s)]),
    };
    const input = L.alloc('in', 'int8', [inN]);
    const gradWeights = L.alloc('grad_w', 'int32', [d.kH * d.kW * noc]);
    const gradBias = L.alloc('grad_bias', 'int32', [noc]);
    k.writeInt16(t.wscaleMantissa, ws.mantissa);
    k.write(t.gradOut, Uint8Array.from(gq, (v) => v & 0xff));
    k.writeInt32(t.gradOutExp, [e]);
    k.write(t.weights, Uint8Array.from(l.qw, (v) => v & 0xff));
    k.write(input, Uint8Array.from(l.qx, (v) => v & 0xff));
    k.depthwiseConv2dBackwardInput({ ...s, wscaleExp: ws.exp, ...t });
    k.depthwiseConv2dBackwardWeight({ ...s, ...blk, inputOffset: -l.zpIn, gradOut: t.gradOut, input, gradWeights });
    k.depthwiseConv2dBackwardBias({ ...s, ...blk, gradOut: t.gradOut, gradBias });
    const ein = k.readInt32(t.gradInExp)[0]!;
    return {
      dx: Array.from(k.readInt8(t.gradIn), (v) => v * 2 ** ein),
      lsb: 2 ** ein,
      dw: Array.from(k.readInt32(gradWeights), (v) => v * 2 ** e * l.sIn),
      db: Array.from(k.readInt32(gradBias), (v) => v * 2 ** e),
    };
  }

  // The int8 block-floating input gradient keeps the largest element in
  // [64, 127]: ~7 bits per element relative to the tensor's maximum, so
  // expect cos >= 0.999 and ||err|| / ||ref|| <= 3%. Weight and bias
  // gradients are exact int32 sums: float rounding only (1e-12).
  const COS_MIN = 0.999, REL_MAX = 0.03, EXACT = 1e-12;

  it('dL/dx, dL/dW (output-channel block) and dL/db match float64 gradients', () => {
    const rng = new Xorshift32(1901);
    let worstCosine = 1, worstRelErr = 0, sumRelErr = 0, n = 0, worstCase = '';
    const perCase: { name: string; cosine: number; relErr: number }[] = [];
    for (const [name, d] of cases(rng, 40)) {
      for (let rep = 0; rep < 2; rep++) {
        const { oc, outN } = sizes(d);
        const l = quantLayer(rng, d);
        // Upstream gradient as an int8 activation gradient; half the trials
        // sparse, as after a ReLU mask.
        const gq = randInt8(rng, outN, -127, 127).map((v) => (rep === 1 && rng.below(2) ? 0 : v));
        const e = rng.int(-16, -4);
        const ocBegin = rng.int(0, oc - 1), ocEnd = rng.int(ocBegin + 1, oc);
        const got = kernelGradients(d, l, gq, e, { ocBegin, ocEnd });
        const want = floatGradients(d, l.x, l.w, gq.map((v) => v * 2 ** e));
        const c = cosine(got.dx, want.dx), r = relErr(got.dx, want.dx);
        perCase.push({ name: `${name} rep ${rep}`, cosine: c, relErr: r });
        worstCosine = Math.min(worstCosine, c);
        if (r > worstRelErr) [worstRelErr, worstCase] = [r, `${name} rep ${rep}`];
        sumRelErr += r;
        n++;
        expect(c, `${name} cosine`).toBeGreaterThanOrEqual(COS_MIN);
        expect(r, `${name} rel err`).toBeLessThanOrEqual(REL_MAX);
        // Weight gradient block [ky][kx][oc - ocBegin] and bias over [ocBegin, ocEnd).
        const noc = ocEnd - ocBegin;
        const wantDw: number[] = [], wantDb: number[] = [];
        for (let tap = 0; tap < d.kH * d.kW; tap++) for (let c2 = ocBegin; c2 < ocEnd; c2++) wantDw.push(want.dw[tap * oc + c2]!);
        for (let c2 = ocBegin; c2 < ocEnd; c2++) wantDb.push(want.db[c2]!);
        expect(got.dw.length).toBe(d.kH * d.kW * noc);
        expect(relErr(got.dw, wantDw), `${name} dW`).toBeLessThanOrEqual(EXACT);
        expect(relErr(got.db, wantDb), `${name} db`).toBeLessThanOrEqual(EXACT);
      }
    }
    const dir = join(repoRoot, 'out', 'gradient-format');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'depthwise_conv2d.json'), JSON.stringify({
      kernel: 'depthwise_conv2d_s8_backward_input', cases: n, worstCosine, worstRelErr, meanRelErr: sumRelErr / n,
      worstRelErrCase: worstCase,
      thresholds: { cosine: COS_MIN, relErr: REL_MAX },
      microSpeech: perCase.filter((p) => p.name.startsWith('micro_speech')),
    }, null, 2) + '\n');
  });

  it('agree with central finite differences of a float64 forward', () => {
    // L = sum(g * conv(x, w) + b): perturb one real input / weight / bias by
    // +-h. The input gradient is int8 block floating point: within 1.5 LSB of
    // its format (0.5 from the final rounding, the rest from the 16-bit
    // pre-scale and the Q15 weight-scale mantissa). Weight and bias
    // gradients are exact: 1e-6 relative (float64 differencing noise).
    const rng = new Xorshift32(2001);
    for (const d of [dwDims(1, 5, 5, 3, 2, 3, 3, 2, 2, 'same'), dwDims(2, 6, 4, 2, 1, 3, 2, 1, 1, 'valid'),
      dwDims(1, 9, 8, 1, 8, 5, 4, 2, 2, 'same')]) {
      const { oc, inN, outN, wN } = sizes(d);
      const l = quantLayer(rng, d);
      const gq = randInt8(rng, outN, -127, 127);
      const e = -10;
      const g = gq.map((v) => v * 2 ** e);
      const got = kernelGradients(d, l, gq, e, { ocBegin: 0, ocEnd: oc });
      const loss = (x: number[], w: number[], b: number[]) => {
        const y = floatForward(d, x, w, b);
        let s = 0;
        for (let i = 0; i < outN; i++) s += g[i]! * y[i]!;
        return s;
      };
      const h = 1e-3;
      const fd = (f: (delta: number) => number) => (f(h) - f(-h)) / (2 * h);
      for (let trial = 0; trial < 12; trial++) {
        const i = rng.below(inN), j = rng.below(wN), c = rng.below(oc);
        const dx = fd((dl) => loss(l.x.map((v, k) => (k === i ? v + dl : v)), l.w, l.b));
        expect(Math.abs(dx - got.dx[i]!), `dx[${i}]`).toBeLessThanOrEqual(1.5 * got.lsb);
        const dw = fd((dl) => loss(l.x, l.w.map((v, k) => (k === j ? v + dl : v)), l.b));
        expect(Math.abs(dw - got.dw[j]!), `dw[${j}]`).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(dw)));
        const db = fd((dl) => loss(l.x, l.w, l.b.map((v, k) => (k === c ? v + dl : v))));
        expect(Math.abs(db - got.db[c]!), `db[${c}]`).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(db)));
      }
    }
  });
});

describe('depthwise conv2d: bad input', () => {
  const d = dwDims(1, 6, 6, 3, 2, 3, 3, 1, 1, 'same'); // out 6x6x6
  function setup() {
    const L = new ArenaLayout(8192);
    return {
      L,
      t: {
        input: L.alloc('dw1.input', 'int8', [1, 6, 6, 3]),
        weights: L.alloc('dw1.weights', 'int8', [1, 3, 3, 5]), // one channel short
        bias: L.alloc('dw1.bias', 'int32', [6]),
        output: L.alloc('dw1.output', 'int8', [1, 6, 6, 6]),
        multiplier: L.alloc('dw1.multiplier', 'int32', [6]),
        shift: L.alloc('dw1.shift', 'int32', [6]),
      },
    };
  }
  const fwd = { inputOffset: 0, outputOffset: 0, actMin: -128, actMax: 127, mask: null };

  for (const make of [(b: ArrayBuffer) => new NodeDispatch(b), (b: ArrayBuffer) => new ReferenceDispatch(b)]) {
    const name = make(new ArrayBuffer(8)).name;
    it(`wrong shapes and geometry throw KernelArgumentError naming the tensor or dimension (${name})`, () => {
      const { L, t } = setup();
      const k = new Kernels(make(new ArrayBuffer(8192)));
      const call = () => k.depthwiseConv2dForward({ ...kernelShape(d), ...fwd, ...t });
      expect(call).toThrow(KernelArgumentError);
      expect(call).toThrow(
        'depthwise_conv2d_s8_forward: weights tensor "dw1.weights" is int8[1x3x3x5] (45 bytes), expected int8[1x3x3x6] (54 bytes)',
      );
      const weights = L.alloc('dw1.weights6', 'int8', [1, 3, 3, 6]);
      expect(() => k.depthwiseConv2dForward({ ...kernelShape(d), ...fwd, ...t, weights, padH: 3 })).toThrow(
        'depthwise_conv2d_s8_forward: pad_h is 3, expected an integer in [0, 2]',
      );
      expect(() => k.depthwiseConv2dForward({ ...kernelShape(d), ...fwd, ...t, weights, outW: 8 })).toThrow(
        'the last output window along w starts at 6',
      );
      expect(() => k.depthwiseConv2dForward({ ...kernelShape(d), ...fwd, ...t, weights, depthMultiplier: 0 })).toThrow(
        'depth_multiplier is 0',
      );
      const gradOut = L.alloc('dw1.grad_out', 'int8', [1, 6, 6, 6]);
      const gw = L.alloc('dw1.grad_w', 'int32', [3, 3, 3]);
      const wargs = { ...kernelShape(d), inputOffset: 0, gradOut, input: t.input, gradWeights: gw };
      expect(() => k.depthwiseConv2dBackwardWeight({ ...wargs, ocBegin: 2, ocEnd: 4 })).toThrow(
        'grad_weights tensor "dw1.grad_w" is int32[3x3x3] (108 bytes), expected int32[3x3x2] (72 bytes)',
      );
      expect(() => k.depthwiseConv2dBackwardWeight({ ...wargs, ocBegin: 4, ocEnd: 7 })).toThrow(
        'output-channel range [4, 7) is not inside [0, 6)',
      );
      expect(() => k.depthwiseConv2dBackwardBias({ ...kernelShape(d), ocBegin: 0, ocEnd: 6, gradOut, gradBias: t.bias })).not.toThrow();
      const scratch = L.alloc('dw1.scratch', 'uint8', [100]);
      expect(() => k.depthwiseConv2dBackwardInput({
        ...kernelShape(d), wscaleMantissa: L.alloc('ws', 'int16', [6]), wscaleExp: 0, gradOut,
        gradOutExp: L.cell('ge'), weights, gradIn: L.alloc('gi', 'int8', [108]), gradInExp: L.cell('gie'), scratch,
      })).toThrow('scratch tensor "dw1.scratch" has 100 bytes, needs 444 (4-aligned)');
    });
  }

  it('the C dispatcher returns a status, never crashes, for bad dims, params, ranges and offsets', () => {
    const c = new NodeDispatch(new ArrayBuffer(4096));
    // A valid forward: in 1x6x6x3 @0, w 3x3x6 @128, bias -1, out 216 @256, mask -1, mult @512, shift @544.
    const dims = [1, 6, 6, 3, 6, 6, 2, 3, 3, 1, 1, 1, 1];
    const fwdArgs = (over: Record<number, number> = {}) => {
      const a = [...dims, 0, 0, -128, 127, 0, 128, -1, 256, -1, 512, 544];
      for (const [i, v] of Object.entries(over)) a[Number(i)] = v;
      return Int32Array.from(a);
    };
    expect(() => c.call(Op.DepthwiseConv2dForward, fwdArgs())).not.toThrow();
    const status = (op: typeof Op[keyof typeof Op], a: Int32Array) => {
      try {
        c.call(op, a);
        return 'ok';
      } catch (e) {
        return (e as Error).message.replace(/^.*\(status (\d+)\)$/, '$1');
      }
    };
    expect(status(Op.DepthwiseConv2dForward, fwdArgs({ 0: 0 }))).toBe('3'); // batch 0
    expect(status(Op.DepthwiseConv2dForward, fwdArgs({ 11: 3 }))).toBe('3'); // pad_h >= k_h
    expect(status(Op.DepthwiseConv2dForward, fwdArgs({ 11: -1 }))).toBe('3'); // negative pad
    expect(status(Op.DepthwiseConv2dForward, fwdArgs({ 4: 1 << 24 }))).toBe('5'); // output past the arena
    expect(status(Op.DepthwiseConv2dForward, fwdArgs({ 1: 2, 2: 2, 4: 6 }))).toBe('3'); // window past the image
    expect(status(Op.DepthwiseConv2dForward, fwdArgs({ 13: 200 }))).toBe('7'); // input_offset
    expect(status(Op.DepthwiseConv2dForward, fwdArgs({ 15: 10, 16: 5 }))).toBe('7'); // act_min > act_max
    expect(status(Op.DepthwiseConv2dForward, fwdArgs({ 17: 4000 }))).toBe('5'); // input past the end
    expect(status(Op.DepthwiseConv2dForward, fwdArgs({ 19: 2 }))).toBe('6'); // misaligned bias
    expect(status(Op.DepthwiseConv2dForward, fwdArgs({ 20: 100 }))).toBe('8'); // out overlaps input/w
    // A shift out of range in the arena.
    c.write(544, new Uint8Array([40, 0, 0, 0]));
    expect(status(Op.DepthwiseConv2dForward, fwdArgs())).toBe('7');
    // Bias / weight gradient: channel range and the exact-sum pixel limit.
    const bias = (ob: number, oe: number) => Int32Array.from([...dims, ob, oe, 256, 1024]);
    expect(status(Op.DepthwiseConv2dBackwardBias, bias(0, 6))).toBe('ok');
    expect(status(Op.DepthwiseConv2dBackwardBias, bias(3, 3))).toBe('4');
    expect(status(Op.DepthwiseConv2dBackwardBias, bias(0, 7))).toBe('4');
    const weight = (ob: number, oe: number, off: number) => Int32Array.from([...dims, ob, oe, off, 256, 0, 1024]);
    expect(status(Op.DepthwiseConv2dBackwardWeight, weight(1, 6, 0))).toBe('ok');
    expect(status(Op.DepthwiseConv2dBackwardWeight, weight(-1, 6, 0))).toBe('4');
    expect(status(Op.DepthwiseConv2dBackwardWeight, weight(1, 6, -128))).toBe('7');
    const big = new NodeDispatch(new ArrayBuffer(1 << 18));
    // 65536 output pixels of one channel: the weight gradient could overflow int32.
    const bigDims = [1, 256, 256, 1, 256, 256, 1, 1, 1, 1, 1, 0, 0];
    // A 256x257 kernel (65792 taps): the forward sum could overflow int32.
    expect(() => big.call(Op.DepthwiseConv2dForward, Int32Array.from([1, 256, 257, 1, 1, 1, 1, 256, 257, 1, 1, 0, 0,
      0, 0, -128, 127, 0, 65792, -1, 131584, -1, 131588, 131592]))).toThrow('bad dimensions (status 3)');
    expect(() => big.call(Op.DepthwiseConv2dBackwardWeight, Int32Array.from([...bigDims, 0, 1, 0, 0, 65536, 131072])))
      .toThrow('bad dimensions (status 3)');
    // Input gradient: scratch too small for the arena, exponent out of range.
    const bi = (over: Record<number, number> = {}) => {
      const a = [...dims, 1024, 0, 256, 1040, 128, 0, 1044, 1200];
      for (const [i, v] of Object.entries(over)) a[Number(i)] = v;
      return Int32Array.from(a);
    };
    expect(status(Op.DepthwiseConv2dBackwardInput, bi())).toBe('ok');
    expect(status(Op.DepthwiseConv2dBackwardInput, bi({ 20: 3800 }))).toBe('5');
    expect(status(Op.DepthwiseConv2dBackwardInput, bi({ 14: 65 }))).toBe('7');
  });
});
