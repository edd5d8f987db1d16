// Log-quantized momentum (native/core/lqm_s8.c): the rule's invariants, the C
// kernels bit-identical to the TypeScript reference on random shapes, blocks,
// states and windows, the QAS factors, bad input, and the MNIST MLP trained
// with LQM identical in C and in the reference.
import { describe, expect, it } from 'vitest';
import { ArenaLayout } from '../src/core/arena.js';
import { KernelArgumentError, Kernels, lqmStateBytes } from '../src/core/kernels.js';
import { MlpTrainer, defaultLqm, defaultMlpConfig, mlpLayout, trainOnline, updateFactors } from '../src/core/mlp.js';
import { Op } from '../src/core/ops.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { LQM16_MAX, lqm16Master, lqmCode, lqmDecode, lqmEncode, lqmTilde } from '../src/core/reference/lqm.js';
import { Xorshift32, shuffledIndices } from '../src/core/rng.js';
import { NodeDispatch } from '../src/node/addon.js';
import { loadMnist } from '../src/node/mnist.js';
import { Pair, randInt8 } from './support/pair.js';

const TRIALS = 60;

function randParams(rng: Xorshift32) {
  const bits = rng.int(2, 5);
  const emin = -rng.int(0, 24);
  const emax = rng.int(emin, Math.min(6, emin + 2 ** (bits - 1) - 2));
  return { bits, emin, emax, decay: rng.int(0, 2) === 0 ? 0 : rng.int(1, 15) };
}

// Q(m~) as a signed number of momentum units.
function q(mt: number, p: { bits: number; emin: number; emax: number }): number {
  return lqmDecode(lqmEncode(mt, { ...p, decay: 0 }), p.bits);
}

describe('LQM rule invariants (reference; C equals it bit for bit below)', () => {
  const p = defaultLqm; // 5 bits, window [2^-12, 2^2] LSB, decay 3
  const top = 2 ** (p.emax - p.emin);
  const rng = new Xorshift32(7);
  const momenta = [0];
  for (let e = 0; e <= p.emax - p.emin; e++) momenta.push(2 ** e, -(2 ** e));
  const steps = () => {
    const v = [1, 2, 3, 7, 100, 5000, top, 2 ** 29];
    for (let k = 0; k < 40; k++) v.push(1 + rng.below(65536) * rng.int(1, 64));
    return v;
  };

  it('Q(Q(x)) = Q(x), Q rounds down (|Q(x)| <= |x| < 2 |Q(x)| inside the window)', () => {
    for (let k = 0; k < 5000; k++) {
      const x = (rng.int(0, 1) ? -1 : 1) * Math.floor(rng.next() / 2 ** rng.int(0, 31));
      const qx = q(x, p);
      expect(q(qx, p)).toBe(qx);
      expect(Math.abs(qx)).toBeLessThanOrEqual(Math.abs(x));
      if (x !== 0 && Math.abs(x) < top) expect(2 * Math.abs(qx)).toBeGreaterThan(Math.abs(x));
    }
  });

  it('published rule (decay 0): a same-sign gradient never shrinks the momentum', () => {
    for (const m of momenta) for (const t of steps()) {
      if (m === 0) continue;
      const mt = lqmTilde(m, -Math.sign(m) * t, 0);
      expect(Math.abs(q(mt, p))).toBeGreaterThanOrEqual(Math.abs(m));
      expect(Math.sign(q(mt, p))).toBe(Math.sign(m));
    }
  });

  it(`decay ${p.decay}: a same-sign gradient shrinks the momentum by at most one exponent step, and not at all when |eta g| >= ceil(|Q(m)| / 2^d)`, () => {
    for (const m of momenta) for (const t of steps()) {
      if (m === 0) continue;
      const mt = lqmTilde(m, -Math.sign(m) * t, p.decay);
      const qm = q(mt, p);
      expect(Math.sign(qm)).toBe(Math.sign(m));
      expect(2 * Math.abs(qm)).toBeGreaterThanOrEqual(Math.abs(m));
      if (t >= Math.ceil(Math.abs(m) / 2 ** p.decay)) expect(Math.abs(qm)).toBeGreaterThanOrEqual(Math.abs(m));
    }
  });

  for (const d of [0, p.decay]) {
    it(`decay ${d}: a reversal at least halves the momentum (what is left in the old direction is <= |Q(m)|/2)`, () => {
      for (const m of momenta) for (const t of steps()) {
        if (m === 0) continue;
        const qm = q(lqmTilde(m, Math.sign(m) * t, d), p);
        if (Math.sign(qm) === Math.sign(m)) expect(2 * Math.abs(qm)).toBeLessThanOrEqual(Math.abs(m));
      }
    });
  }

  it('zero gradient: decay 0 keeps every momentum (the published failure); decay d halves it, down to 0', () => {
    for (const m of momenta) {
      expect(q(lqmTilde(m, 0, 0), p)).toBe(m);
      if (m !== 0) expect(2 * Math.abs(q(lqmTilde(m, 0, p.decay), p))).toBeLessThanOrEqual(Math.abs(m));
    }
    let m = 2 ** (p.emax - p.emin), n = 0;
    while (m !== 0) {
      m = q(lqmTilde(m, 0, p.decay), p);
      n++;
    }
    expect(n).toBe(p.emax - p.emin + 1);
    expect(lqmCode(0, 15)).toBe(0);
  });
});

describe('LQM: C kernels are bit-identical to the TypeScript reference', () => {
  function setup(rng: Xorshift32, rowsMax: number, inMax = 40) {
    const p = new Pair(rng);
    const s = { rows: rng.int(1, rowsMax), inFeatures: rng.int(1, inMax), outFeatures: rng.int(1, 20) };
    const ocBegin = rng.int(0, s.outFeatures - 1), icBegin = rng.int(0, s.inFeatures - 1);
    const blk = { ocBegin, ocEnd: rng.int(ocBegin + 1, s.outFeatures), icBegin, icEnd: rng.int(icBegin + 1, s.inFeatures) };
    const lq = randParams(rng);
    const { rows: R, inFeatures: I, outFeatures: O } = s;
    const n = lqmStateBytes(lq.bits, O, I);
    const t = {
      gradOut: p.alloc('grad_out', 'int8', [R, O]),
      gradOutExp: p.layout.cell('grad_out_exp'),
      input: p.alloc('in', 'int8', [R, I]),
      lqmShift: p.alloc('lqm_shift', 'int32', [O]),
      state: p.alloc('state', 'uint8', [n]),
      weights: p.alloc('w', 'int8', [O, I]),
      rng: p.layout.cell('rng'),
      grad: p.alloc('grad', 'int32', [(blk.ocEnd - blk.ocBegin) * (blk.icEnd - blk.icBegin)]),
      gradExp: p.layout.cell('grad_exp'),
    };
    p.set(t.gradOut, randInt8(rng, R * O));
    p.set(t.gradOutExp, [rng.int(-12, 0)]);
    p.set(t.input, randInt8(rng, R * I));
    p.set(t.lqmShift, Array.from({ length: O }, () => rng.int(-20, 8)));
    p.set(t.state, Array.from({ length: n }, () => rng.next() & 0xff)); // any bit pattern is a valid state
    p.set(t.weights, randInt8(rng, O * I, -127, 127));
    p.set(t.rng, [(rng.next() | 1) >>> 0]);
    return { p, s, blk, lq, t };
  }

  it('fully_connected_s8_backward_weight_lqm (fused): random shapes, blocks, states, windows, decays', () => {
    const rng = new Xorshift32(2401);
    for (let trial = 0; trial < TRIALS; trial++) {
      const { p, s, blk, lq, t } = setup(rng, 3);
      const inputOffset = rng.int(-127, 128);
      p.both((k) => k.fcBackwardWeightLqm({ ...s, ...blk, ...lq, inputOffset, ...t }));
      expect(p.differences(), `trial ${trial} ${JSON.stringify(lq)}`).toEqual([]);
    }
  });

  // The C fast paths skip elements whose field and step are both zero (zero
  // inputs, whole rows with a zero output gradient, runs of zero state bytes):
  // sparse cases like MNIST's, at every step exponent S from -34 to 34 and
  // rows wide enough for the 8-field runs.
  it('fused, sparse: zero output-gradient rows, zero inputs, mostly-zero state, every step exponent', () => {
    const rng = new Xorshift32(2403);
    for (let trial = 0; trial < 4 * TRIALS; trial++) {
      const { p, s, blk, lq, t } = setup(rng, trial % 3 === 0 ? 2 : 1, 120);
      const inputOffset = rng.int(-127, 128);
      const zeroIn = inputOffset === 128 ? -128 : -inputOffset;
      const { rows: R, inFeatures: I, outFeatures: O } = s;
      // zero, or often large: |g| = |grad_out * (in + offset)| reaches 2^14 .. 2^15
      const farIn = inputOffset > 0 ? 127 : -128;
      p.set(t.gradOut, Array.from({ length: R * O }, () => [0, 0, rng.int(-128, 127), rng.int(0, 1) ? -128 : 127][rng.int(0, 3)]!));
      p.set(t.input, Array.from({ length: R * I }, () => [zeroIn, zeroIn, rng.int(-128, 127), farIn][rng.int(0, 3)]!));
      p.set(t.state, Array.from({ length: t.state.bytes }, () => (rng.int(0, 3) ? 0 : rng.next() & 0xff)));
      // the boundaries of the C kernel's per-row forms of eta*g (rows == 1: |g| < 2^15)
      const edges = [-34, -33, -32, -31, -17, -16, -15, -14, -2, -1, 0, 1, 14, 15, 16, 17, 30, 31, 32];
      p.set(t.lqmShift, Array.from({ length: O }, () => (rng.int(0, 3) ? edges[rng.below(edges.length)]! : rng.int(-34, 34))));
      p.set(t.gradOutExp, [lq.emin]); // S = shift[c]
      p.both((k) => k.fcBackwardWeightLqm({ ...s, ...blk, ...lq, inputOffset, ...t }));
      expect(p.differences(), `trial ${trial} ${JSON.stringify(lq)}`).toEqual([]);
    }
  });

  // Op 26, the int16 master copy: random residuals (any byte pair is a valid
  // master), the dense and the sparse cases of op 25 above.
  it('fully_connected_s8_backward_weight_lqm16 (master copy): random shapes, blocks, states, residuals, windows', () => {
    const rng = new Xorshift32(2404);
    for (let trial = 0; trial < 2 * TRIALS; trial++) {
      const { p, s, blk, lq, t } = setup(rng, 3);
      const residual = p.alloc('residual', 'int8', [s.outFeatures, s.inFeatures]);
      p.set(residual, randInt8(rng, s.outFeatures * s.inFeatures));
      if (trial % 2) p.set(t.weights, randInt8(rng, s.outFeatures * s.inFeatures)); // -128 too
      const inputOffset = rng.int(-127, 128);
      p.both((k) => k.fcBackwardWeightLqm16({ ...s, ...blk, ...lq, inputOffset, ...t, residual }));
      expect(p.differences(), `trial ${trial} ${JSON.stringify(lq)}`).toEqual([]);
    }
  });

  it('fused with the master copy, sparse: zero rows, zero inputs, mostly-zero state, every step exponent', () => {
    const rng = new Xorshift32(2405);
    for (let trial = 0; trial < 2 * TRIALS; trial++) {
      const { p, s, blk, lq, t } = setup(rng, trial % 3 === 0 ? 2 : 1, 120);
      const { rows: R, inFeatures: I, outFeatures: O } = s;
      const residual = p.alloc('residual', 'int8', [O, I]);
      p.set(residual, randInt8(rng, O * I));
      const inputOffset = rng.int(-127, 128);
      const zeroIn = inputOffset === 128 ? -128 : -inputOffset, farIn = inputOffset > 0 ? 127 : -128;
      p.set(t.gradOut, Array.from({ length: R * O }, () => [0, 0, rng.int(-128, 127), rng.int(0, 1) ? -128 : 127][rng.int(0, 3)]!));
      p.set(t.input, Array.from({ length: R * I }, () => [zeroIn, zeroIn, rng.int(-128, 127), farIn][rng.int(0, 3)]!));
      p.set(t.state, Array.from({ length: t.state.bytes }, () => (rng.int(0, 3) ? 0 : rng.next() & 0xff)));
      p.set(t.lqmShift, Array.from({ length: O }, () => rng.int(-34, 34)));
      p.set(t.gradOutExp, [lq.emin]);
      p.both((k) => k.fcBackwardWeightLqm16({ ...s, ...blk, ...lq, inputOffset, ...t, residual }));
      expect(p.differences(), `trial ${trial} ${JSON.stringify(lq)}`).toEqual([]);
    }
  });

  // The master copy changes only the write-back: the momentum state and the
  // random draws are op 25's; with emin = 0 (a step of whole LSBs) and a zero
  // residual the weights are op 25's too and the residual stays 0.
  it('op 26 vs op 25: the same state and rng after every call; emin 0 + zero residual: the same weights', () => {
    const rng = new Xorshift32(2406);
    for (let trial = 0; trial < TRIALS; trial++) {
      const { p, s, blk, lq: lq0, t } = setup(rng, 2);
      const lq = trial % 3 === 0 ? { ...lq0, emin: 0, emax: 0 } : lq0;
      const residual = p.alloc('residual', 'int8', [s.outFeatures, s.inFeatures]);
      p.set(residual, lq.emin === 0 ? new Array(s.outFeatures * s.inFeatures).fill(0) : randInt8(rng, residual.bytes));
      const inputOffset = rng.int(-127, 128);
      const cb = new Uint8Array(p.cBuf), before = cb.slice();
      p.c.fcBackwardWeightLqm({ ...s, ...blk, ...lq, inputOffset, ...t });
      const op25 = cb.slice();
      cb.set(before);
      p.c.fcBackwardWeightLqm16({ ...s, ...blk, ...lq, inputOffset, ...t, residual });
      const same = lq.emin === 0 ? [t.state, t.rng, t.weights] : [t.state, t.rng];
      for (const x of same) {
        expect(cb.subarray(x.offset, x.offset + x.bytes), `trial ${trial} ${x.name}`)
          .toEqual(op25.subarray(x.offset, x.offset + x.bytes));
      }
      if (lq.emin === 0) expect(cb.subarray(residual.offset, residual.offset + residual.bytes).every((v) => v === 0)).toBe(true);
    }
  });

  it('lqm_s8_update (buffered), and fused = backward_weight + lqm_s8_update', () => {
    const rng = new Xorshift32(2402);
    for (let trial = 0; trial < TRIALS; trial++) {
      const { p, s, blk, lq, t } = setup(rng, 2);
      const inputOffset = rng.int(-127, 128);
      // big gradients and tiny ones, as the int32 buffer may hold
      p.set(t.grad, Array.from({ length: t.grad.shape[0]! }, () => (rng.int(0, 3) === 0 ? 0 : rng.int(-40000, 40000))));
      p.both((k) => k.lqmS8Update({ inFeatures: s.inFeatures, outFeatures: s.outFeatures, ...blk, ...lq, ...t }));
      expect(p.differences(), `trial ${trial}`).toEqual([]);
      // C fused on one copy, C unfused on the other: identical.
      const before = new Uint8Array(p.cBuf).slice();
      p.c.fcBackwardWeightLqm({ ...s, ...blk, ...lq, inputOffset, ...t });
      const fused = new Uint8Array(p.cBuf).slice();
      new Uint8Array(p.cBuf).set(before);
      p.c.fcBackwardWeight({ ...s, ...blk, inputOffset, gradOut: t.gradOut, input: t.input, gradWeights: t.grad });
      p.c.lqmS8Update({ inFeatures: s.inFeatures, outFeatures: s.outFeatures, ...blk, ...lq, ...t, gradExp: t.gradOutExp });
      const unfused = new Uint8Array(p.cBuf);
      for (const x of [t.weights, t.state, t.rng]) {
        expect(unfused.subarray(x.offset, x.offset + x.bytes), `trial ${trial} ${x.name}`)
          .toEqual(fused.subarray(x.offset, x.offset + x.bytes));
      }
    }
  });
});

describe('QAS factors', () => {
  it('equal s_W^-2 (weights) and (s_W s_x)^-2 (bias) on the int8-domain gradients, on random scales', () => {
    const rng = new Xorshift32(33);
    for (let k = 0; k < 500; k++) {
      const sIn = (1 + rng.below(1000)) / 1000 * 2 ** -rng.int(0, 10);
      const sW = (1 + rng.below(1000)) / 1000 * 2 ** -rng.int(2, 12);
      const lr = 2 ** -rng.int(0, 14), lrB = 2 ** -rng.int(0, 14);
      const g = rng.int(-30000, 30000), e = -rng.int(0, 12);
      const on = updateFactors(lr, lrB, sIn, sW, true), off = updateFactors(lr, lrB, sIn, sW, false);
      const GW = g * 2 ** e * sIn * sW; // int8-domain weight gradient: dL/dw_real * s_W
      const Gb = g * 2 ** e * sIn * sW; // int32-domain bias gradient: dL/db_real * s_x s_W
      const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
      expect(rel(on.weight * g * 2 ** e, lr * GW * sW ** -2)).toBeLessThan(1e-12);
      expect(rel(on.bias * g * 2 ** e, lrB * Gb * (sW * sIn) ** -2)).toBeLessThan(1e-12);
      expect(rel(off.weight * g * 2 ** e, lr * GW)).toBeLessThan(1e-12);
      expect(rel(off.bias * g * 2 ** e, lrB * Gb)).toBeLessThan(1e-12);
      // folded: Q31 multiplier + shift (SGD) within 2^-30 relative; a shift (LQM) within a factor sqrt(2)
      const m = quantizeMultiplier(on.weight, -62, 62);
      expect(rel(m.multiplier * 2 ** (m.shift - 31), on.weight)).toBeLessThan(2 ** -29);
      expect(Math.abs(on.lqmShift - Math.log2(on.weight))).toBeLessThanOrEqual(0.5);
    }
  });
});

describe('LQM bad input', () => {
  function args() {
    const L = new ArenaLayout(8192);
    const lq = { ...defaultLqm };
    return {
      L, lq,
      a: {
        rows: 1, inFeatures: 8, outFeatures: 4, ocBegin: 0, ocEnd: 4, icBegin: 0, icEnd: 8, inputOffset: 0, ...lq,
        gradOut: L.alloc('g', 'int8', [1, 4]), gradOutExp: L.cell('ge'), input: L.alloc('x', 'int8', [1, 8]),
        lqmShift: L.alloc('fc.lqm_shift', 'int32', [4]), state: L.alloc('fc.lqm_state', 'uint8', [lqmStateBytes(lq.bits, 4, 8)]),
        weights: L.alloc('w', 'int8', [4, 8]), rng: L.cell('rng'),
      },
    };
  }
  for (const make of [(b: ArrayBuffer) => new NodeDispatch(b), (b: ArrayBuffer) => new ReferenceDispatch(b)]) {
    it(`a window, decay, bit width or state size out of range is a KernelArgumentError naming it (${make(new ArrayBuffer(8)).name})`, () => {
      const { a } = args();
      const k = new Kernels(make(new ArrayBuffer(8192)));
      const bad: [Record<string, number>, string][] = [
        [{ bits: 6 }, 'bits is 6'], [{ emin: -25 }, 'emin is -25'], [{ emax: 3 }, 'emax (window of a 5-bit state from emin -12) is 3'],
        [{ decay: 16 }, 'decay is 16'], [{ bits: 4 }, 'emax'],
      ];
      for (const [patch, msg] of bad) {
        expect(() => k.fcBackwardWeightLqm({ ...a, ...patch })).toThrow(KernelArgumentError);
        expect(() => k.fcBackwardWeightLqm({ ...a, ...patch })).toThrow(msg);
      }
      const L2 = new ArenaLayout(8192);
      const small = L2.alloc('fc.lqm_state', 'uint8', [19]);
      expect(() => k.fcBackwardWeightLqm({ ...a, state: small })).toThrow(
        'state tensor "fc.lqm_state" has 19 bytes, expected 20 (5 bits x 4x8 parameters)');
    });
  }

  it('op 26: a residual tensor of the wrong size or type, or overlapping the weights or state, is a KernelArgumentError', () => {
    const { L, a } = args();
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(8192)));
    const residual = L.alloc('fc.lqm_residual', 'int8', [4, 8]);
    const L2 = new ArenaLayout(8192);
    expect(() => k.fcBackwardWeightLqm16({ ...a, residual: L2.alloc('r', 'int8', [4, 7]) })).toThrow(
      'fully_connected_s8_backward_weight_lqm16: residual tensor "r" is int8[4x7] (28 bytes), expected int8[4x8] ' +
        '(32 bytes: one low byte per weight, master = 256 w + residual)');
    expect(() => k.fcBackwardWeightLqm16({ ...a, residual: L2.alloc('u', 'uint8', [32]) })).toThrow(KernelArgumentError);
    const onW = { ...residual, offset: a.weights.offset + 4 };
    expect(() => k.fcBackwardWeightLqm16({ ...a, residual: onW })).toThrow(/overlaps the weights tensor "w"/);
    const onState = { ...residual, offset: a.state.offset - 24 };
    expect(() => k.fcBackwardWeightLqm16({ ...a, residual: onState })).toThrow(/overlaps the state tensor "fc.lqm_state"/);
    k.writeInt32(a.rng, [1]);
    expect(() => k.fcBackwardWeightLqm16({ ...a, residual })).not.toThrow();
    // past the TypeScript checks, C refuses an overlap with any tensor it writes or reads
    const base = [1, 8, 4, 0, 4, 0, 8, 0, a.gradOut.offset, a.gradOutExp.offset, a.input.offset, a.lqmShift.offset,
      5, -12, 2, 3, a.state.offset, 20, a.weights.offset, residual.offset, a.rng.offset];
    expect(() => k.dispatch.call(Op.FcBackwardWeightLqm16, Int32Array.from(base))).not.toThrow();
    for (const bad of [a.weights.offset + 31, a.input.offset, a.rng.offset - 2]) {
      const args16 = Int32Array.from(base);
      args16[19] = bad;
      expect(() => k.dispatch.call(Op.FcBackwardWeightLqm16, args16)).toThrow(/overlaps another tensor/);
    }
  });

  it('past the TypeScript checks: C returns a status (no crash), the reference throws naming the parameter', () => {
    const { a } = args();
    const base = [1, 8, 4, 0, 4, 0, 8, 0, a.gradOut.offset, a.gradOutExp.offset, a.input.offset, a.lqmShift.offset,
      5, -12, 2, 3, a.state.offset, 20, a.weights.offset, a.rng.offset];
    const buf = new ArrayBuffer(8192);
    const c = new NodeDispatch(buf), r = new ReferenceDispatch(new ArrayBuffer(8192));
    const rngCell = new Int32Array(buf, a.rng.offset, 1);
    rngCell[0] = 1;
    r.write(a.rng.offset, new Uint8Array(Int32Array.of(1).buffer));
    const cases: [number, number, RegExp, RegExp][] = [
      [12, 9, /quantisation parameter out of range/, /bits is 9/],
      [14, 11, /quantisation parameter out of range/, /emax is 11/],
      [15, -1, /quantisation parameter out of range/, /decay is -1/],
      [17, 21, /bad dimensions/, /state_bytes is 21, expected 20/],
      [17, -5, /bad dimensions/, /state_bytes is -5/],
    ];
    for (const [idx, v, cMsg, rMsg] of cases) {
      const args = Int32Array.from(base);
      args[idx] = v;
      expect(() => c.call(Op.FcBackwardWeightLqm, args)).toThrow(cMsg);
      expect(() => r.call(Op.FcBackwardWeightLqm, args)).toThrow(rMsg);
    }
    // a per-channel shift out of [-64, 64]
    const shift = Int32Array.of(0, 0, 65, 0);
    c.write(a.lqmShift.offset, new Uint8Array(shift.buffer));
    r.write(a.lqmShift.offset, new Uint8Array(shift.buffer));
    expect(() => c.call(Op.FcBackwardWeightLqm, Int32Array.from(base))).toThrow(/quantisation parameter out of range/);
    expect(() => r.call(Op.FcBackwardWeightLqm, Int32Array.from(base))).toThrow('lqm shift[2] is 65');
  });
});

describe('int16 master copy (op 26): w == round(master / 256), master = 256 w + residual', () => {
  it('after every call: each changed master within +-127 LSB; frac <= 8 exact; frac > 8 rounded without bias', () => {
    const rng = new Xorshift32(2407);
    const O = 16, I = 64, n = O * I;
    for (const emin of [-4, -8, -12, -20]) {
      const p = new Pair(rng);
      const lq = { bits: 5, emin, emax: Math.min(2, emin + 14), decay: 3 };
      const t = {
        gradOut: p.alloc('grad_out', 'int8', [1, O]), gradOutExp: p.layout.cell('grad_out_exp'),
        input: p.alloc('in', 'int8', [1, I]), lqmShift: p.alloc('lqm_shift', 'int32', [O]),
        state: p.alloc('state', 'uint8', [lqmStateBytes(5, O, I)]), weights: p.alloc('w', 'int8', [O, I]),
        residual: p.alloc('residual', 'int8', [O, I]), rng: p.layout.cell('rng'),
      };
      p.set(t.rng, [12345]);
      p.set(t.weights, randInt8(rng, n, -127, 127));
      p.set(t.residual, randInt8(rng, n));
      p.set(t.lqmShift, new Array(O).fill(0));
      p.set(t.gradOutExp, [lq.emin]); // eta*g = g units of 2^emin LSB, exact
      let err = 0, steps = 0;
      for (let call = 0; call < 30; call++) {
        // the state is zeroed each call so that m~ = -eta*g exactly
        p.set(t.state, new Array(t.state.bytes).fill(0));
        const go = randInt8(rng, O), x = randInt8(rng, I);
        p.set(t.gradOut, go);
        p.set(t.input, x);
        const w0 = p.c.readInt8(t.weights).slice(), r0 = p.c.readInt8(t.residual).slice();
        p.both((k) => k.fcBackwardWeightLqm16({ rows: 1, inFeatures: I, outFeatures: O, ocBegin: 0, ocEnd: O, icBegin: 0,
          icEnd: I, inputOffset: 0, ...lq, ...t }));
        expect(p.differences(), `emin ${emin} call ${call}`).toEqual([]);
        const w1 = p.c.readInt8(t.weights), r1 = p.c.readInt8(t.residual);
        for (let k = 0; k < n; k++) {
          const m0 = lqm16Master(w0[k]!, r0[k]!), m1 = lqm16Master(w1[k]!, r1[k]!);
          expect(Math.round(m1 / 256) === w1[k]).toBe(true); // Math.round: ties up, as the kernel
          const mt = -go[Math.floor(k / I)]! * x[k % I]!; // m~ in 2^emin LSB
          if (mt === 0) {
            expect(m1).toBe(m0);
            continue;
          }
          expect(Math.abs(m1)).toBeLessThanOrEqual(LQM16_MAX);
          const exact = m0 + mt * 2 ** (8 + emin); // in 1/256 LSB
          if (Math.abs(exact) >= LQM16_MAX) continue; // saturated
          if (emin >= -8) expect(m1).toBe(exact);
          else {
            expect(Math.abs(m1 - exact)).toBeLessThan(1); // one of the two neighbours
            err += m1 - exact;
            steps++;
          }
        }
      }
      // stochastic rounding: the mean error over thousands of steps is ~0
      if (emin < -8) expect(Math.abs(err / steps), `emin ${emin}: ${steps} steps`).toBeLessThan(0.02);
    }
  });
});

describe('int8 MLP on MNIST trained with LQM', () => {
  it('C kernels and the TypeScript reference agree on every tensor after each of 40 steps (QAS on and off)', () => {
    const train = loadMnist('train');
    const order = shuffledIndices(train.count, 1);
    for (const qas of [true, false]) {
      const cfg = { ...defaultMlpConfig, optimizer: 'lqm' as const, qas, lr: qas ? 2 ** -10 : 2 ** 9 };
      const A = 192 * 1024;
      const cBuf = new ArrayBuffer(A), refBuf = new ArrayBuffer(A);
      const c = new MlpTrainer(new Kernels(new NodeDispatch(cBuf)), cfg);
      const ref = new MlpTrainer(new Kernels(new ReferenceDispatch(refBuf)), cfg);
      c.init();
      ref.init();
      const cb = new Uint8Array(cBuf), rb = new Uint8Array(refBuf);
      const compared = c.layout.tensors.filter((t) => t.name !== 'scratch');
      const state = c.layout.tensors.find((t) => t.name === 'fc1.lqm_state')!;
      for (let step = 0; step < 40; step++) {
        trainOnline(c, train, order, step, 1);
        trainOnline(ref, train, order, step, 1);
        for (const t of compared) {
          const a = cb.subarray(t.offset, t.offset + t.bytes), b = rb.subarray(t.offset, t.offset + t.bytes);
          if (!a.every((v, i) => v === b[i])) expect.fail(`qas ${qas} step ${step + 1}: tensor ${t.name} differs`);
        }
      }
      expect(cb.subarray(state.offset, state.offset + state.bytes).some((v) => v !== 0)).toBe(true);
    }
  }, 120_000);

  it('with the int16 master copy (lqmMaster): C and the reference agree on every tensor after each of 40 steps; w = round(master / 256)', () => {
    const train = loadMnist('train');
    const order = shuffledIndices(train.count, 1);
    const cfg = { ...defaultMlpConfig, optimizer: 'lqm' as const, lr: 2 ** -9, lqmMaster: true };
    const A = mlpLayout(cfg).layout.capacity;
    const cBuf = new ArrayBuffer(A), refBuf = new ArrayBuffer(A);
    const c = new MlpTrainer(new Kernels(new NodeDispatch(cBuf)), cfg);
    const ref = new MlpTrainer(new Kernels(new ReferenceDispatch(refBuf)), cfg);
    c.init();
    ref.init();
    const cb = new Uint8Array(cBuf), rb = new Uint8Array(refBuf);
    const compared = c.layout.tensors.filter((t) => t.name !== 'scratch');
    for (let step = 0; step < 40; step++) {
      trainOnline(c, train, order, step, 1);
      trainOnline(ref, train, order, step, 1);
      for (const t of compared) {
        const a = cb.subarray(t.offset, t.offset + t.bytes), b = rb.subarray(t.offset, t.offset + t.bytes);
        if (!a.every((v, i) => v === b[i])) expect.fail(`step ${step + 1}: tensor ${t.name} differs`);
      }
    }
    for (const f of [c.t.fc1, c.t.fc2]) {
      const w = c.k.readInt8(f.w), res = c.k.readInt8(f.lqmResidual!);
      expect(res.some((v) => v !== 0)).toBe(true); // the steps below one LSB are kept
      for (let k = 0; k < w.length; k++) {
        const m = lqm16Master(w[k]!, res[k]!);
        if (Math.round(m / 256) !== w[k] || Math.abs(m) > LQM16_MAX) expect.fail(`${f.w.name}[${k}]: master ${m}, w ${w[k]}`);
      }
    }
  }, 120_000);
});
