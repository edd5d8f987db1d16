// Fully connected, softmax cross-entropy and the ReLU mask against float64
// math on the dequantised tensors (oracles the kernels did not produce): the
// forward within 1 LSB, the backward kernels against the float64 gradients of
// the dequantised forward, central finite differences of a float64 forward,
// the logits gradient against float64 softmax minus one-hot, and the mask
// against the float64 derivative of the fused clamp. Writes the measured
// figures to out/gradient-format/{fully_connected,softmax_xent}.json.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ArenaLayout, type Tensor } from '../src/core/arena.js';
import { fcBackwardInputScratchBytes, Kernels, type ChannelBlock, type FcShape } from '../src/core/kernels.js';
import { log2eScaleQ16, quantizeMultiplier, weightScaleMantissa } from '../src/core/quant.js';
import { Xorshift32 } from '../src/core/rng.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { GradientRecord, relErr } from './support/gradient-report.js';
import { randInt8 } from './support/pair.js';

// ---- float64 fully connected on real tensors ((rows,in) x (out,in)^T) -------

function fcF64(s: FcShape, x: Float64Array, w: Float64Array, b: Float64Array): Float64Array {
  const { rows: R, inFeatures: I, outFeatures: O } = s;
  const y = new Float64Array(R * O);
  for (let r = 0; r < R; r++)
    for (let c = 0; c < O; c++) {
      let acc = b[c]!;
      for (let i = 0; i < I; i++) acc += x[r * I + i]! * w[c * I + i]!;
      y[r * O + c] = acc;
    }
  return y;
}

// Gradients of L = sum(G * fc(x, w, b)).
function fcGradF64(s: FcShape, x: Float64Array, w: Float64Array, G: Float64Array) {
  const { rows: R, inFeatures: I, outFeatures: O } = s;
  const dx = new Float64Array(R * I), dw = new Float64Array(O * I), db = new Float64Array(O);
  for (let r = 0; r < R; r++)
    for (let c = 0; c < O; c++) {
      const g = G[r * O + c]!;
      db[c] = db[c]! + g;
      for (let i = 0; i < I; i++) {
        dx[r * I + i] = dx[r * I + i]! + w[c * I + i]! * g;
        dw[c * I + i] = dw[c * I + i]! + x[r * I + i]! * g;
      }
    }
  return { dx, dw, db };
}

const roundHalfAway = (v: number) => Math.sign(v) * Math.round(Math.abs(v));
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};
const norm = (a: ArrayLike<number>) => Math.sqrt(dot(a, a));
const maxAbsOf = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};

// ---- one quantised layer in a C arena ----------------------------------------

interface Case {
  s: FcShape;
  sIn: number;
  zpIn: number;
  sW: number[];
  xq: number[];
  wq: number[];
  bq: number[];
}

function randomShape(rng: Xorshift32, small: boolean): FcShape {
  return small
    ? { rows: rng.int(1, 2), inFeatures: rng.int(1, 8), outFeatures: rng.int(1, 6) }
    : { rows: rng.int(1, 3), inFeatures: rng.int(1, 300), outFeatures: rng.int(1, 64) };
}

function randomCase(rng: Xorshift32, s: FcShape): Case {
  return {
    s,
    sIn: (1 + rng.below(100)) / 1000,
    zpIn: rng.int(-100, 100),
    sW: Array.from({ length: s.outFeatures }, () => ((1 + rng.below(1000)) / 1000) * 0.02),
    xq: randInt8(rng, s.rows * s.inFeatures),
    wq: randInt8(rng, s.outFeatures * s.inFeatures, -127, 127),
    bq: Array.from({ length: s.outFeatures }, () => rng.int(-3000, 3000)),
  };
}

const real = (c: Case) => ({
  x: Float64Array.from(c.xq, (q) => c.sIn * (q - c.zpIn)),
  w: Float64Array.from(c.wq, (q, j) => c.sW[Math.floor(j / c.s.inFeatures)]! * q),
  b: Float64Array.from(c.bq, (q, ch) => c.sIn * c.sW[ch]! * q),
});

function layout(s: FcShape, blk: ChannelBlock = { ocBegin: 0, ocEnd: s.outFeatures, icBegin: 0, icEnd: s.inFeatures }) {
  const { rows: R, inFeatures: I, outFeatures: O } = s;
  const L = new ArenaLayout(1 << 20);
  const t = {
    input: L.alloc('x', 'int8', [R, I]),
    weights: L.alloc('w', 'int8', [O, I]),
    bias: L.alloc('b', 'int32', [O]),
    output: L.alloc('y', 'int8', [R, O]),
    mask: L.alloc('mask', 'uint8', [Math.ceil((R * O) / 8)]),
    multiplier: L.alloc('mult', 'int32', [O]),
    shift: L.alloc('shift', 'int32', [O]),
    wscale: L.alloc('wscale', 'int16', [O]),
    gradOut: L.alloc('gy', 'int8', [R, O]),
    gradOutExp: L.cell('gy_exp'),
    gradIn: L.alloc('gx', 'int8', [R, I]),
    gradInExp: L.cell('gx_exp'),
    scratch: L.alloc('scratch', 'uint8', [fcBackwardInputScratchBytes(s)]),
    gradW: L.alloc('gw', 'int32', [blk.ocEnd - blk.ocBegin, blk.icEnd - blk.icBegin]),
    gradB: L.alloc('gb', 'int32', [blk.ocEnd - blk.ocBegin]),
  };
  const k = new Kernels(new NodeDispatch(new ArrayBuffer(L.used + 64)));
  const put = (tensor: Tensor, v: ArrayLike<number>) =>
    tensor.dtype === 'int32' ? k.writeInt32(tensor, v) : tensor.dtype === 'int16' ? k.writeInt16(tensor, v)
      : k.write(tensor, Uint8Array.from(v, (q) => q & 0xff));
  return { k, t, put };
}

// Loads the layer and runs the forward; returns the int8 output and the mask.
function forward(c: Case, sOut: number, zpOut: number, actMin: number, actMax: number) {
  const { k, t, put } = layout(c.s);
  put(t.input, c.xq);
  put(t.weights, c.wq);
  put(t.bias, c.bq);
  const qm = c.sW.map((sw) => quantizeMultiplier((c.sIn * sw) / sOut));
  put(t.multiplier, qm.map((q) => q.multiplier));
  put(t.shift, qm.map((q) => q.shift));
  k.fcForward({ ...c.s, inputOffset: -c.zpIn, outputOffset: zpOut, actMin, actMax, input: t.input, weights: t.weights,
    bias: t.bias, output: t.output, mask: t.mask, multiplier: t.multiplier, shift: t.shift });
  return { k, t, put, yq: k.readInt8(t.output) };
}

// The MNIST MLP's layers (784 -> 100 -> 10) first, then random layers.
const MNIST: FcShape[] = [
  { rows: 1, inFeatures: 784, outFeatures: 100 },
  { rows: 1, inFeatures: 100, outFeatures: 10 },
  { rows: 3, inFeatures: 784, outFeatures: 100 },
  { rows: 3, inFeatures: 100, outFeatures: 10 },
];
const SHAPES = (seed: number, n: number, small = false) => {
  const rng = new Xorshift32(seed);
  const list: { s: FcShape; rng: Xorshift32 }[] = [];
  if (!small) for (const s of MNIST) list.push({ s, rng });
  while (list.length < n) list.push({ s: randomShape(rng, small), rng });
  return list;
};

// Clamp range of a fused activation in the output's int8 domain.
function activationRange(act: 'none' | 'relu' | 'relu6', sOut: number, zpOut: number): [number, number] {
  if (act === 'none') return [-128, 127];
  if (act === 'relu') return [zpOut, 127];
  return [zpOut, Math.min(127, zpOut + Math.round(6 / sOut))];
}

// Writes a GradientRecord and adds further measured figures to its file.
function writeRecord(rec: GradientRecord, extra: Record<string, number | string>): void {
  rec.write();
  const file = join(repoRoot, 'out', 'gradient-format', `${rec.family}.json`);
  const base = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...base, ...extra }, null, 2) + '\n');
}

const fcRec = new GradientRecord('fully_connected', 'fully_connected_s8_backward_input');
const fcFigures: Record<string, number | string> = {};
const xentRec = new GradientRecord('softmax_xent', 'softmax_xent_s8_backward');
const xentFigures: Record<string, number | string> = {};

describe('fully connected against float64 math on the dequantised tensors', () => {
  afterAll(() => writeRecord(fcRec, fcFigures));

  it('forward is within 1 LSB of round(float fc / s_out) + zp_out, clamped (none, ReLU, ReLU6)', () => {
    let worst = 0, cases = 0, exact = 0, total = 0;
    for (const { s, rng } of SHAPES(2025, 44)) {
      const c = randomCase(rng, s);
      const r = real(c);
      const yReal = fcF64(s, r.x, r.w, r.b);
      // Output scale from the data, so most outputs land inside int8.
      const sOut = (maxAbsOf(yReal) || 1) / 100, zpOut = rng.int(-20, 20);
      const act = (['none', 'relu', 'relu6'] as const)[cases % 3]!;
      const [actMin, actMax] = activationRange(act, sOut, zpOut);
      const { yq } = forward(c, sOut, zpOut, actMin, actMax);
      for (let o = 0; o < yq.length; o++) {
        const want = Math.min(actMax, Math.max(actMin, roundHalfAway(yReal[o]! / sOut) + zpOut));
        worst = Math.max(worst, Math.abs(yq[o]! - want));
        if (yq[o] === want) exact++;
        total++;
      }
      cases++;
    }
    Object.assign(fcFigures, { forwardCases: cases, forwardWorstLsb: worst, forwardExactFraction: exact / total });
    // Requantisation: Q31 multiplier (relative error 2^-31) and TFLite's double
    // rounding (rounding-doubling high multiply, then rounding shift) can land
    // one LSB away from the correctly rounded float at a tie.
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('backward kernels match the float64 gradients (cosine, relative error) and the figures are recorded', () => {
    let worstW = 0, worstB = 0, cases = 0;
    const mnist: string[] = [];
    for (const { s, rng } of SHAPES(4049, 64)) {
      const c = randomCase(rng, s);
      const r = real(c);
      const { rows: R, inFeatures: I, outFeatures: O } = s;
      // An upstream gradient as the layer above would hand it down: int8
      // block-floating with a random exponent, some zeros (ReLU).
      const gq = randInt8(rng, R * O).map((v) => (rng.below(4) ? v : 0));
      if (!gq.some((v) => v !== 0)) gq[0] = 77;
      const gExp = rng.int(-14, -4);
      const G = Float64Array.from(gq, (q) => q * 2 ** gExp);
      const exact = fcGradF64(s, r.x, r.w, G);
      // A random (oc, ic) block, as the sparse update asks for.
      const ocBegin = rng.int(0, O - 1), icBegin = rng.int(0, I - 1);
      const blk = { ocBegin, ocEnd: rng.int(ocBegin + 1, O), icBegin, icEnd: rng.int(icBegin + 1, I) };

      const { k, t, put } = layout(s, blk);
      put(t.input, c.xq);
      put(t.weights, c.wq);
      put(t.gradOut, gq);
      put(t.gradOutExp, [gExp]);
      const ws = weightScaleMantissa(c.sW);
      put(t.wscale, ws.mantissa);
      k.fcBackwardInput({ ...s, wscaleMantissa: t.wscale, wscaleExp: ws.exp, gradOut: t.gradOut,
        gradOutExp: t.gradOutExp, weights: t.weights, gradIn: t.gradIn, gradInExp: t.gradInExp, scratch: t.scratch });
      k.fcBackwardWeight({ ...s, ...blk, inputOffset: -c.zpIn, gradOut: t.gradOut, input: t.input, gradWeights: t.gradW });
      k.fcBackwardBias({ ...s, ocBegin: blk.ocBegin, ocEnd: blk.ocEnd, gradOut: t.gradOut, gradBias: t.gradB });

      const e = k.readInt32(t.gradInExp)[0]!;
      const dx = Array.from(k.readInt8(t.gradIn), (q) => q * 2 ** e);
      if (norm(exact.dx) > 0) {
        const m = fcRec.add(dx, exact.dx);
        if (cases < MNIST.length) mnist.push(`${R}x${I}->${O}: cos ${m.cos.toFixed(6)} rel ${m.rel.toFixed(4)}`);
      }
      // Float64 reference restricted to the block.
      const noc = blk.ocEnd - blk.ocBegin, nic = blk.icEnd - blk.icBegin;
      const dwRef = Float64Array.from({ length: noc * nic },
        (_, j) => exact.dw[(blk.ocBegin + Math.floor(j / nic)) * I + blk.icBegin + (j % nic)]!);
      const dbRef = exact.db.slice(blk.ocBegin, blk.ocEnd);
      const dw = Array.from(k.readInt32(t.gradW), (q) => q * 2 ** gExp * c.sIn);
      const db = Array.from(k.readInt32(t.gradB), (q) => q * 2 ** gExp);
      if (norm(dwRef) > 0) worstW = Math.max(worstW, relErr(dw, dwRef));
      else expect(norm(dw)).toBe(0);
      if (norm(dbRef) > 0) worstB = Math.max(worstB, relErr(db, dbRef));
      else expect(norm(db)).toBe(0);
      cases++;
    }
    Object.assign(fcFigures, { weightGradientWorstRelErr: worstW, biasGradientWorstRelErr: worstB,
      mnist: mnist.join('; ') });
    // dL/dx is int8 block-floating: one exponent for the tensor, the largest
    // magnitude in [64,127], so elements carry 6-7 bits; per-channel weight
    // scales enter as Q15 mantissas relative to the largest, and the output
    // gradient is pre-scaled by them into int16 (>= 8 bits dropped). Expect
    // cos >= 0.999 and ||err||/||exact|| <= 3%.
    expect(fcRec.cases).toBeGreaterThanOrEqual(60);
    expect(fcRec.worstCosine).toBeGreaterThanOrEqual(0.999);
    expect(fcRec.worstRelErr).toBeLessThanOrEqual(0.03);
    // Weight and bias gradients are exact int32 sums: only float64 rounding remains.
    expect(worstW).toBeLessThanOrEqual(1e-9);
    expect(worstB).toBeLessThanOrEqual(1e-9);
  });

  it('central finite differences of a float64 forward agree with the kernel gradients', () => {
    // L = sum(G * fc(x, w, b)) in float64, no quantisation; perturb one real
    // input, weight or bias by +-h. L is linear in each, so the difference
    // quotient is exact up to float rounding (1e-9 relative); the kernel's
    // dL/dx is int8 block-floating, so it may differ by the format's
    // resolution: within 2 LSB (2 * 2^grad_in_exp, the largest element being
    // 64..127 LSB), covering the final rounding (0.5 LSB) plus the int16
    // pre-scale and Q15 weight-scale mantissa roundings; dL/dW and dL/db are
    // exact int32 sums (1e-9 relative).
    let checks = 0, worstLsb = 0, worstExact = 0;
    for (const { s, rng } of SHAPES(8089, 16, true)) {
      const c = randomCase(rng, s);
      const r = real(c);
      const gq = randInt8(rng, s.rows * s.outFeatures);
      const gExp = -6;
      const G = Float64Array.from(gq, (q) => q * 2 ** gExp);
      const loss = (x: Float64Array, w: Float64Array, b: Float64Array) => dot(G, fcF64(s, x, w, b));
      const { k, t, put } = layout(s);
      put(t.input, c.xq);
      put(t.weights, c.wq);
      put(t.gradOut, gq);
      put(t.gradOutExp, [gExp]);
      const ws = weightScaleMantissa(c.sW);
      put(t.wscale, ws.mantissa);
      k.fcBackwardInput({ ...s, wscaleMantissa: t.wscale, wscaleExp: ws.exp, gradOut: t.gradOut,
        gradOutExp: t.gradOutExp, weights: t.weights, gradIn: t.gradIn, gradInExp: t.gradInExp, scratch: t.scratch });
      k.fcBackwardWeight({ ...s, ocBegin: 0, ocEnd: s.outFeatures, icBegin: 0, icEnd: s.inFeatures,
        inputOffset: -c.zpIn, gradOut: t.gradOut, input: t.input, gradWeights: t.gradW });
      k.fcBackwardBias({ ...s, ocBegin: 0, ocEnd: s.outFeatures, gradOut: t.gradOut, gradBias: t.gradB });
      const e = k.readInt32(t.gradInExp)[0]!;
      const gIn = k.readInt8(t.gradIn), gW = k.readInt32(t.gradW), gB = k.readInt32(t.gradB);
      const h = 1e-3;
      const fd = (which: 'x' | 'w' | 'b', j: number) => {
        const p = { x: r.x, w: r.w, b: r.b }, m = { x: r.x, w: r.w, b: r.b };
        const v = r[which][j]!;
        p[which] = Float64Array.from(r[which]);
        m[which] = Float64Array.from(r[which]);
        p[which][j] = v + h;
        m[which][j] = v - h;
        return (loss(p.x, p.w, p.b) - loss(m.x, m.w, m.b)) / (2 * h);
      };
      for (let j = 0; j < r.x.length; j++) {
        const lsb = Math.abs(fd('x', j) - gIn[j]! * 2 ** e) / 2 ** e;
        worstLsb = Math.max(worstLsb, lsb);
        expect(lsb, `dL/dx[${j}] ${JSON.stringify(s)}`).toBeLessThanOrEqual(2);
        checks++;
      }
      for (let j = 0; j < r.w.length; j++) {
        const kern = gW[j]! * 2 ** gExp * c.sIn, d = Math.abs(fd('w', j) - kern);
        worstExact = Math.max(worstExact, d / Math.max(1, Math.abs(kern)));
        expect(d, `dL/dw[${j}]`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(kern)));
        checks++;
      }
      for (let j = 0; j < r.b.length; j++) {
        const kern = gB[j]! * 2 ** gExp, d = Math.abs(fd('b', j) - kern);
        worstExact = Math.max(worstExact, d / Math.max(1, Math.abs(kern)));
        expect(d, `dL/db[${j}]`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(kern)));
        checks++;
      }
    }
    Object.assign(fcFigures, { finiteDifferenceChecks: checks, finiteDifferenceWorstLsb: worstLsb,
      finiteDifferenceWeightBiasWorstErr: worstExact });
    expect(checks).toBeGreaterThan(100);
  });

  it('the ReLU/ReLU6 mask gives float64 g * clamp\'(pre-activation) except where it rounds onto the boundary', () => {
    // The fused clamp in real terms is y = clamp(z, lo, hi) with
    // lo = (act_min - zp)*s_out = 0 and hi = (act_max - zp)*s_out (6 for
    // ReLU6, the int8 saturation for ReLU); dL/dz = g where lo < z < hi.
    // The kernel decides on the requantised z, so an element whose z lies
    // within 1 LSB (forward tolerance) of lo or hi may go either way; in
    // practice exactly those with 0 < z < s_out/2 (they quantise to zp, the
    // quantised layer outputs 0 there) and the mirror image below hi. Their
    // share is (density of z at the boundary, per LSB) x 1/2 LSB, a property
    // of the layer's calibration, not of the kernel: with the 1000x spread of
    // per-channel weight scales used above, the small channels crowd zero
    // (2.2% of outputs per LSB there, 2.8% mismatches). Here the weight
    // scales vary 2x, as in a trained layer, and s_out spans the outputs.
    let total = 0, mismatches = 0, boundary = 0, unexplained = 0, cases = 0;
    for (const { s, rng } of SHAPES(1617, 40)) {
      const c = randomCase(rng, s);
      c.sW = c.sW.map((v) => 0.01 + v / 2);
      const r0 = real(c);
      const relu6 = cases % 2 === 1;
      let sOut: number, zpOut: number;
      if (relu6) {
        // Scale the weights (and with them the bias) so z spans about +-8:
        // s_out = 1/8 puts 6 exactly on act_max = zp + 48.
        const f = 8 / (maxAbsOf(fcF64(s, r0.x, r0.w, r0.b)) || 1);
        c.sW = c.sW.map((v) => v * f);
        sOut = 1 / 8;
        zpOut = rng.int(-20, 20);
      } else {
        sOut = (maxAbsOf(fcF64(s, r0.x, r0.w, r0.b)) || 1) / 100;
        zpOut = rng.int(-20, 20);
      }
      const r = real(c);
      const z = fcF64(s, r.x, r.w, r.b);
      const [actMin, actMax] = activationRange(relu6 ? 'relu6' : 'relu', sOut, zpOut);
      const lo = (actMin - zpOut) * sOut, hi = (actMax - zpOut) * sOut;
      const gq = randInt8(rng, z.length).map((v) => v || 1);
      const { k, t, put } = forward(c, sOut, zpOut, actMin, actMax);
      put(t.gradOut, gq);
      k.activationBackward(z.length, t.mask, t.gradOut);
      const got = k.readInt8(t.gradOut);
      for (let o = 0; o < z.length; o++) {
        const want = z[o]! > lo && z[o]! < hi ? gq[o]! : 0;
        const nearEdge = Math.abs(z[o]! - lo) <= sOut || Math.abs(z[o]! - hi) <= sOut;
        if (nearEdge) boundary++;
        if (got[o] !== want) {
          mismatches++;
          if (!nearEdge) unexplained++;
        }
        total++;
      }
      cases++;
    }
    Object.assign(fcFigures, { maskElements: total, maskMismatches: mismatches, maskMismatchFraction: mismatches / total,
      maskWithin1LsbOfBoundary: boundary });
    expect(unexplained).toBe(0);
    expect(mismatches / total).toBeLessThan(0.01);
  });
});

describe('softmax cross-entropy gradient against float64 softmax minus one-hot', () => {
  afterAll(() => writeRecord(xentRec, xentFigures));

  it('grad = round(128 softmax) - 128 onehot within 1/128, p_label within its error budget', () => {
    const rng = new Xorshift32(31337);
    let worstAbs = 0, worstAbsUnclamped = 0, worstP = 0, worstPOverTol = 0, skipped = 0, n = 0;
    for (; n < 300; n++) {
      const classes = n < 2 ? [2, 10][n]! : rng.int(2, 128);
      // Scales from 2^-8 to 1, logits spread from narrow (confident but not
      // saturated) to the whole int8 range.
      const s = 2 ** (-8 + (8 * rng.below(10001)) / 10000);
      const spread = rng.int(4, 128), centre = rng.int(-128, 127);
      const xq = Array.from({ length: classes }, () => Math.max(-128, Math.min(127, centre + rng.int(-spread, spread))));
      const label = rng.below(classes);
      const q16 = log2eScaleQ16(s);

      const L = new ArenaLayout(1024);
      const logits = L.alloc('logits', 'int8', [classes]), grad = L.alloc('grad', 'int8', [classes]);
      const t = { label: L.cell('label'), gradExp: L.cell('grad_exp'), pLabel: L.cell('p_label') };
      const k = new Kernels(new NodeDispatch(new ArrayBuffer(L.used)));
      k.write(logits, Uint8Array.from(xq, (q) => q & 0xff));
      k.writeInt32(t.label, [label]);
      k.softmaxXentBackward({ classes, logits, log2eScaleQ16: q16, label: t.label, grad, gradExp: t.gradExp,
        pLabelQ16: t.pLabel });
      const e = k.readInt32(t.gradExp)[0]!;
      expect(e).toBe(-7);
      const g = Array.from(k.readInt8(grad), (q) => q * 2 ** e);
      const pQ16 = k.readInt32(t.pLabel)[0]!;

      // float64 softmax of the real logits s*(x - zp): the zero point cancels.
      const xmax = Math.max(...xq);
      const ex = xq.map((x) => Math.exp(s * (x - xmax)));
      const sum = ex.reduce((a, v) => a + v, 0);
      const p = ex.map((v) => v / sum);
      const ref = p.map((v, j) => v - (j === label ? 1 : 0));

      for (let j = 0; j < classes; j++) {
        const d = Math.abs(g[j]! - ref[j]!);
        worstAbs = Math.max(worstAbs, d);
        if (g[j]! * 128 !== 127) worstAbsUnclamped = Math.max(worstAbsUnclamped, d);
      }
      // Cosine / relative error are meaningful only when the gradient is
      // several steps of the fixed 2^-7 grid (a confident correct prediction
      // has ||grad|| ~ 0 and any rounding is 100% relative).
      if (norm(ref) >= 0.25) xentRec.add(g, ref);
      else skipped++;

      // p_label error budget: the Q16 exponent factor is off by
      // |q16 - s log2e 2^16| <= 0.5, i.e. by d/2^16 in log2 units on a term d
      // logits below the max; the 2^f table interpolates within 7e-5; each
      // term is floored to Q16 (<= 2^-16 each, the max term being 1); the
      // quotient is rounded (2^-17). So |dp| <= 2 r p + (classes + 1) 2^-16
      // + 2^-17 with r = ln2 * 0.5 * (xmax - xmin) / 2^16 + 7e-5.
      const r = Math.LN2 * 0.5 * (xmax - Math.min(...xq)) / 65536 + 7e-5;
      const tol = 2 * r * p[label]! + (classes + 1) / 65536 + 1 / 131072;
      const dp = Math.abs(pQ16 / 65536 - p[label]!);
      worstP = Math.max(worstP, dp);
      worstPOverTol = Math.max(worstPOverTol, dp / tol);
      expect(dp, `p_label classes ${classes} s ${s}`).toBeLessThanOrEqual(tol);
    }
    Object.assign(xentFigures, { totalCases: n, skippedSmallGradient: skipped, worstAbsErr: worstAbs,
      worstAbsErrLsb: worstAbs * 128, worstAbsErrLsbBelow127: worstAbsUnclamped * 128, pLabelWorstAbsErr: worstP, pLabelWorstFractionOfBudget: worstPOverTol });
    // 1/128: rounding to the 2^-7 grid (1/2 step), the clamp of a non-label
    // 128 to 127 (at most 1 step, and only when 128 p >= 127.5), and the
    // integer exp's error (budget above, well under 1/2 step in practice).
    expect(worstAbs).toBeLessThanOrEqual(1 / 128);
    expect(xentRec.cases).toBeGreaterThan(100);
  });
});
