// conv2d against float64 math on the dequantised tensors (oracles the
// kernels did not produce): the forward within 1 LSB, the backward kernels
// against the float64 gradients of the dequantised forward, and central
// finite differences of a float64 forward. Writes the measured gradient
// figures to out/gradient-format/conv2d.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ArenaLayout, type Tensor } from '../src/core/arena.js';
import { convGeometry, type Padding } from '../src/core/conv-geometry.js';
import { conv2dBackwardInputScratchBytes, Kernels, type ConvShape } from '../src/core/kernels.js';
import { quantizeMultiplier, weightScaleMantissa } from '../src/core/quant.js';
import { Xorshift32 } from '../src/core/rng.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { randInt8 } from './support/pair.js';

// ---- float64 convolution on real tensors (NHWC / OHWI, dilation 1) ----------

const inIdx = (s: ConvShape, b: number, y: number, x: number, i: number) => ((b * s.inH + y) * s.inW + x) * s.inC + i;
const outIdx = (s: ConvShape, b: number, y: number, x: number, c: number) => ((b * s.outH + y) * s.outW + x) * s.outC + c;
const wIdx = (s: ConvShape, c: number, ky: number, kx: number, i: number) => ((c * s.kH + ky) * s.kW + kx) * s.inC + i;

// Visits every (output element, tap, input channel) whose tap lies inside the image.
function eachTap(s: ConvShape, f: (o: number, xi: number, wi: number, c: number) => void): void {
  for (let b = 0; b < s.batch; b++)
    for (let oy = 0; oy < s.outH; oy++)
      for (let ox = 0; ox < s.outW; ox++)
        for (let ky = 0; ky < s.kH; ky++)
          for (let kx = 0; kx < s.kW; kx++) {
            const y = oy * s.strideH - s.padH + ky, x = ox * s.strideW - s.padW + kx;
            if (y < 0 || y >= s.inH || x < 0 || x >= s.inW) continue;
            for (let c = 0; c < s.outC; c++)
              for (let i = 0; i < s.inC; i++) f(outIdx(s, b, oy, ox, c), inIdx(s, b, y, x, i), wIdx(s, c, ky, kx, i), c);
          }
}

function convF64(s: ConvShape, x: Float64Array, w: Float64Array, bias: Float64Array): Float64Array {
  const y = new Float64Array(s.batch * s.outH * s.outW * s.outC);
  for (let o = 0; o < y.length; o++) y[o] = bias[o % s.outC]!;
  eachTap(s, (o, xi, wi) => (y[o] += x[xi]! * w[wi]!));
  return y;
}

// Gradients of L = sum(G * conv(x, w, b)).
function convGradF64(s: ConvShape, x: Float64Array, w: Float64Array, G: Float64Array) {
  const dx = new Float64Array(x.length), dw = new Float64Array(w.length), db = new Float64Array(s.outC);
  eachTap(s, (o, xi, wi) => {
    dx[xi] += w[wi]! * G[o]!;
    dw[wi] += x[xi]! * G[o]!;
  });
  for (let o = 0; o < G.length; o++) db[o % s.outC] += G[o]!;
  return { dx, dw, db };
}

const roundHalfAway = (v: number) => Math.sign(v) * Math.round(Math.abs(v));
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};
const norm = (a: ArrayLike<number>) => Math.sqrt(dot(a, a));
function compare(kernel: ArrayLike<number>, exact: ArrayLike<number>) {
  const diff = Array.from(kernel, (v, i) => v - exact[i]!);
  return { cos: dot(kernel, exact) / (norm(kernel) * norm(exact)), rel: norm(diff) / norm(exact) };
}

// ---- one quantised layer in a C arena ----------------------------------------

interface Case {
  s: ConvShape;
  sIn: number;
  zpIn: number;
  sW: number[];
  xq: number[];
  wq: number[];
  bq: number[];
}

function randomShape(rng: Xorshift32, small: boolean): ConvShape {
  const inH = rng.int(small ? 2 : 3, small ? 4 : 10), inW = rng.int(small ? 2 : 3, small ? 4 : 10);
  const kH = rng.int(1, Math.min(4, inH)), kW = rng.int(1, Math.min(4, inW));
  const strideH = rng.int(1, 3), strideW = rng.int(1, 3);
  const padding: Padding = rng.below(2) ? 'same' : 'valid';
  const g = convGeometry(inH, inW, kH, kW, strideH, strideW, padding);
  return { batch: small ? 1 : rng.int(1, 2), inH, inW, inC: rng.int(1, small ? 3 : 8), outC: rng.int(1, small ? 3 : 12),
    kH, kW, strideH, strideW, ...g };
}

function randomCase(rng: Xorshift32, s: ConvShape): Case {
  const nW = s.outC * s.kH * s.kW * s.inC;
  return {
    s,
    sIn: (1 + rng.below(100)) / 1000,
    zpIn: rng.int(-100, 100),
    sW: Array.from({ length: s.outC }, () => ((1 + rng.below(1000)) / 1000) * 0.02),
    xq: randInt8(rng, s.batch * s.inH * s.inW * s.inC),
    wq: randInt8(rng, nW, -127, 127),
    bq: Array.from({ length: s.outC }, () => rng.int(-3000, 3000)),
  };
}

const real = (c: Case) => ({
  x: Float64Array.from(c.xq, (q) => c.sIn * (q - c.zpIn)),
  w: Float64Array.from(c.wq, (q, j) => c.sW[Math.floor(j / (c.s.kH * c.s.kW * c.s.inC))]! * q),
  b: Float64Array.from(c.bq, (q, ch) => c.sIn * c.sW[ch]! * q),
});

function layout(s: ConvShape) {
  const L = new ArenaLayout(1 << 20);
  const t = {
    input: L.alloc('x', 'int8', [s.batch, s.inH, s.inW, s.inC]),
    weights: L.alloc('w', 'int8', [s.outC, s.kH, s.kW, s.inC]),
    bias: L.alloc('b', 'int32', [s.outC]),
    output: L.alloc('y', 'int8', [s.batch, s.outH, s.outW, s.outC]),
    multiplier: L.alloc('mult', 'int32', [s.outC]),
    shift: L.alloc('shift', 'int32', [s.outC]),
    wscale: L.alloc('wscale', 'int16', [s.outC]),
    gradOut: L.alloc('gy', 'int8', [s.batch, s.outH, s.outW, s.outC]),
    gradOutExp: L.cell('gy_exp'),
    gradIn: L.alloc('gx', 'int8', [s.batch, s.inH, s.inW, s.inC]),
    gradInExp: L.cell('gx_exp'),
    scratch: L.alloc('scratch', 'uint8', [conv2dBackwardInputScratchBytes(s)]),
    gradW: L.alloc('gw', 'int32', [s.outC, s.kH, s.kW, s.inC]),
    gradB: L.alloc('gb', 'int32', [s.outC]),
  };
  const k = new Kernels(new NodeDispatch(new ArrayBuffer(L.used + 64)));
  const put = (tensor: Tensor, v: number[]) =>
    tensor.dtype === 'int32' ? k.writeInt32(tensor, v) : tensor.dtype === 'int16' ? k.writeInt16(tensor, v)
      : k.write(tensor, Uint8Array.from(v, (q) => q & 0xff));
  return { k, t, put };
}

const SHAPES = (seed: number, n: number, small = false) => {
  const rng = new Xorshift32(seed);
  const list: { s: ConvShape; rng: Xorshift32 }[] = [];
  // person_detect-like layers at small scale first: 3x3/2 stem, a 3x3 SAME, a pointwise (FC path)
  const fixed: ConvShape[] = small ? [] : [
    { batch: 1, inH: 16, inW: 16, inC: 1, outC: 8, kH: 3, kW: 3, strideH: 2, strideW: 2, ...convGeometry(16, 16, 3, 3, 2, 2, 'same') },
    { batch: 1, inH: 8, inW: 8, inC: 8, outC: 8, kH: 3, kW: 3, strideH: 1, strideW: 1, ...convGeometry(8, 8, 3, 3, 1, 1, 'same') },
    { batch: 1, inH: 8, inW: 8, inC: 8, outC: 16, kH: 1, kW: 1, strideH: 1, strideW: 1, ...convGeometry(8, 8, 1, 1, 1, 1, 'same') },
  ];
  for (const s of fixed) list.push({ s, rng });
  while (list.length < n) list.push({ s: randomShape(rng, small), rng });
  return list;
};

// Measured figures, written once all tests of this file ran.
const figures: Record<string, number | string> = { kernel: 'conv2d_s8_backward_input' };

describe('conv2d against float64 math on the dequantised tensors', () => {
  afterAll(() => {
    const dir = join(repoRoot, 'out', 'gradient-format');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'conv2d.json'), JSON.stringify(figures, null, 2) + '\n');
  });

  it('forward is within 1 LSB of round(float conv / s_out) + zp_out, clamped', () => {
    let worst = 0, cases = 0, exact = 0, total = 0;
    for (const { s, rng } of SHAPES(2024, 40)) {
      const c = randomCase(rng, s);
      const r = real(c);
      const yReal = convF64(s, r.x, r.w, r.b);
      // Output scale from the data, so most outputs land inside int8.
      let maxAbs = 0;
      for (const v of yReal) maxAbs = Math.max(maxAbs, Math.abs(v));
      const sOut = (maxAbs || 1) / 100, zpOut = rng.int(-20, 20);
      const act = [[-128, 127], [zpOut, 127], [zpOut, Math.min(127, zpOut + 60)]][cases % 3]!;
      const { k, t, put } = layout(s);
      put(t.input, c.xq);
      put(t.weights, c.wq);
      put(t.bias, c.bq);
      const qm = c.sW.map((sw) => quantizeMultiplier((c.sIn * sw) / sOut));
      put(t.multiplier, qm.map((q) => q.multiplier));
      put(t.shift, qm.map((q) => q.shift));
      k.conv2dForward({ ...s, inputOffset: -c.zpIn, outputOffset: zpOut, actMin: act[0]!, actMax: act[1]!, input: t.input,
        weights: t.weights, bias: t.bias, output: t.output, mask: null, multiplier: t.multiplier, shift: t.shift });
      const yq = k.readInt8(t.output);
      for (let o = 0; o < yq.length; o++) {
        const want = Math.min(act[1]!, Math.max(act[0]!, roundHalfAway(yReal[o]! / sOut) + zpOut));
        worst = Math.max(worst, Math.abs(yq[o]! - want));
        if (yq[o] === want) exact++;
        total++;
      }
      cases++;
    }
    figures.forwardCases = cases;
    figures.forwardWorstLsb = worst;
    figures.forwardExactFraction = exact / total;
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('backward kernels match the float64 gradients (cosine, relative error) and the figures are recorded', () => {
    const gx: { cos: number; rel: number }[] = [];
    let worstW = 0, worstB = 0;
    for (const { s, rng } of SHAPES(4048, 60)) {
      const c = randomCase(rng, s);
      const r = real(c);
      const nOut = s.batch * s.outH * s.outW * s.outC;
      // An upstream gradient as the layers above would hand it down: int8
      // block-floating with a random exponent, some zeros (ReLU).
      const gq: number[] = randInt8(rng, nOut).map((v) => (rng.below(4) ? v : 0));
      if (!gq.some((v) => v !== 0)) gq[0] = 77;
      const gExp = rng.int(-14, -4);
      const G = Float64Array.from(gq, (q) => q * 2 ** gExp);
      const exact = convGradF64(s, r.x, r.w, G);

      const { k, t, put } = layout(s);
      put(t.input, c.xq);
      put(t.weights, c.wq);
      put(t.gradOut, gq);
      put(t.gradOutExp, [gExp]);
      const ws = weightScaleMantissa(c.sW);
      put(t.wscale, [...ws.mantissa]);
      k.conv2dBackwardInput({ ...s, wscaleMantissa: t.wscale, wscaleExp: ws.exp, gradOut: t.gradOut,
        gradOutExp: t.gradOutExp, weights: t.weights, gradIn: t.gradIn, gradInExp: t.gradInExp, scratch: t.scratch });
      k.conv2dBackwardWeight({ ...s, ocBegin: 0, ocEnd: s.outC, icBegin: 0, icEnd: s.inC, inputOffset: -c.zpIn,
        gradOut: t.gradOut, input: t.input, gradWeights: t.gradW });
      k.conv2dBackwardBias({ ...s, ocBegin: 0, ocEnd: s.outC, gradOut: t.gradOut, gradBias: t.gradB });

      const e = k.readInt32(t.gradInExp)[0]!;
      const dx = Array.from(k.readInt8(t.gradIn), (q) => q * 2 ** e);
      if (norm(exact.dx) > 0) gx.push(compare(dx, exact.dx));
      const dw = Array.from(k.readInt32(t.gradW), (q) => q * 2 ** gExp * c.sIn);
      const db = Array.from(k.readInt32(t.gradB), (q) => q * 2 ** gExp);
      if (norm(exact.dw) > 0) worstW = Math.max(worstW, compare(dw, exact.dw).rel);
      if (norm(exact.db) > 0) worstB = Math.max(worstB, compare(db, exact.db).rel);
    }
    const worstCosine = Math.min(...gx.map((v) => v.cos));
    const worstRelErr = Math.max(...gx.map((v) => v.rel));
    const meanRelErr = gx.reduce((a, v) => a + v.rel, 0) / gx.length;
    Object.assign(figures, { cases: gx.length, worstCosine, worstRelErr, meanRelErr,
      weightGradientWorstRelErr: worstW, biasGradientWorstRelErr: worstB });
    // dL/dx is int8 block-floating: one exponent for the tensor, the largest
    // magnitude in [64,127], so elements carry 6-7 bits; per-channel weight
    // scales enter as Q15 mantissas relative to the largest. Expect cos >= 0.999
    // and ||err||/||exact|| <= 3%.
    expect(worstCosine).toBeGreaterThanOrEqual(0.999);
    expect(worstRelErr).toBeLessThanOrEqual(0.03);
    // Weight and bias gradients are exact int32 sums: only float64 rounding remains.
    expect(worstW).toBeLessThanOrEqual(1e-12);
    expect(worstB).toBeLessThanOrEqual(1e-12);
  });

  it('central finite differences of a float64 forward agree with the kernel gradients', () => {
    // L = sum(G * conv(x, w, b)) in float64, no quantisation; perturb one real
    // input or weight by +-h. L is linear in each, so the difference quotient
    // is exact up to float rounding (1e-9 relative); the kernel's dL/dx is int8
    // block-floating, so it may differ by the format's resolution: within 2
    // LSB (2 * 2^grad_in_exp, the largest element being 64..127 LSB) plus the
    // Q15 weight-scale mantissa error; dL/dW is exact (1e-9 relative).
    let checks = 0, worstLsb = 0;
    for (const { s, rng } of SHAPES(8088, 12, true)) {
      const c = randomCase(rng, s);
      const r = real(c);
      const nOut = s.batch * s.outH * s.outW * s.outC;
      const gq = randInt8(rng, nOut);
      const gExp = -6;
      const G = Float64Array.from(gq, (q) => q * 2 ** gExp);
      const loss = (x: Float64Array, w: Float64Array) => dot(G, convF64(s, x, w, r.b));
      const { k, t, put } = layout(s);
      put(t.input, c.xq);
      put(t.weights, c.wq);
      put(t.gradOut, gq);
      put(t.gradOutExp, [gExp]);
      const ws = weightScaleMantissa(c.sW);
      put(t.wscale, [...ws.mantissa]);
      k.conv2dBackwardInput({ ...s, wscaleMantissa: t.wscale, wscaleExp: ws.exp, gradOut: t.gradOut,
        gradOutExp: t.gradOutExp, weights: t.weights, gradIn: t.gradIn, gradInExp: t.gradInExp, scratch: t.scratch });
      k.conv2dBackwardWeight({ ...s, ocBegin: 0, ocEnd: s.outC, icBegin: 0, icEnd: s.inC, inputOffset: -c.zpIn,
        gradOut: t.gradOut, input: t.input, gradWeights: t.gradW });
      const e = k.readInt32(t.gradInExp)[0]!;
      const gIn = k.readInt8(t.gradIn), gW = k.readInt32(t.gradW);
      const h = 1e-3;
      for (let j = 0; j < r.x.length; j++) {
        const xp = Float64Array.from(r.x), xm = Float64Array.from(r.x);
        xp[j] += h;
        xm[j] -= h;
        const fd = (loss(xp, r.w) - loss(xm, r.w)) / (2 * h);
        const lsb = Math.abs(fd - gIn[j]! * 2 ** e) / 2 ** e;
        worstLsb = Math.max(worstLsb, lsb);
        expect(lsb, `dL/dx[${j}] ${JSON.stringify(s)}`).toBeLessThanOrEqual(2);
        checks++;
      }
      for (let j = 0; j < r.w.length; j++) {
        const wp = Float64Array.from(r.w), wm = Float64Array.from(r.w);
        wp[j] += h;
        wm[j] -= h;
        const fd = (loss(r.x, wp) - loss(r.x, wm)) / (2 * h);
        const kern = gW[j]! * 2 ** gExp * c.sIn;
        expect(Math.abs(fd - kern), `dL/dw[${j}]`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(kern)) + 1e-9);
        checks++;
      }
    }
    figures.finiteDifferenceChecks = checks;
    figures.finiteDifferenceWorstLsb = worstLsb;
    expect(checks).toBeGreaterThan(100);
  });
});
