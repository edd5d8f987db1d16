// add_s8_forward (TFLite ADD int8) and add_s8_grad_sum (GRAD_ADD, where the
// gradients of two residual branches meet): C against the TypeScript
// reference, forward against float64, GRAD_ADD against the float64 sum and
// finite differences, known answers derived by hand from TFLite's
// algorithm, and bad input.
import { describe, expect, it } from 'vitest';
import { ArenaLayout } from '../src/core/arena.js';
import { Kernels, KernelArgumentError } from '../src/core/kernels.js';
import { Op } from '../src/core/ops.js';
import { addQuantParams } from '../src/core/tflite-params.js';
import { Xorshift32 } from '../src/core/rng.js';
import { NodeDispatch } from '../src/node/addon.js';
import { GradientRecord } from './support/gradient-report.js';
import { Pair, randInt8 } from './support/pair.js';

const randScale = (rng: Xorshift32) => Math.fround((1 + rng.below(1000)) / 1000 * 2 ** -rng.int(2, 8));

function kernels(bytes = 1 << 12) {
  return { layout: new ArenaLayout(bytes), k: new Kernels(new NodeDispatch(new ArrayBuffer(bytes))) };
}

describe('add_s8: C is bit-identical to the TypeScript reference', () => {
  it('add_s8_forward (random scales and zero points, clamps, mask)', () => {
    const rng = new Xorshift32(2001);
    for (let trial = 0; trial < 80; trial++) {
      const n = trial === 0 ? 1 : rng.int(1, 300);
      const p = new Pair(rng);
      const input1 = p.alloc('in1', 'int8', [n]);
      const input2 = p.alloc('in2', 'int8', [n]);
      const output = p.alloc('out', 'int8', [n]);
      const mask = p.alloc('mask', 'uint8', [Math.ceil(n / 8)]);
      p.set(input1, randInt8(rng, n));
      p.set(input2, randInt8(rng, n));
      const zp = [rng.int(-128, 127), rng.int(-128, 127), rng.int(-128, 127)];
      const q = addQuantParams({ scale: randScale(rng), zeroPoint: zp[0]! }, { scale: randScale(rng), zeroPoint: zp[1]! },
        { scale: randScale(rng), zeroPoint: zp[2]! });
      const act = [[-128, 127], [zp[2]!, 127], [zp[2]!, Math.min(127, zp[2]! + 50)]][trial % 3]!;
      const useMask = trial % 4 !== 1;
      p.both((k) => k.addForward({ n, ...q, actMin: act[0]!, actMax: act[1]!, input1, input2, output,
        mask: useMask ? mask : null }));
      expect(p.differences(), `trial ${trial}`).toEqual([]);
    }
  });

  it('add_s8_grad_sum (close, far apart and all-zero operands)', () => {
    const rng = new Xorshift32(2102);
    for (let trial = 0; trial < 120; trial++) {
      const n = rng.int(1, 200);
      const p = new Pair(rng);
      const t = {
        a: p.alloc('a', 'int8', [n]), aExp: p.alloc('a_exp', 'int32', [1]),
        b: p.alloc('b', 'int8', [n]), bExp: p.alloc('b_exp', 'int32', [1]),
        output: p.alloc('out', 'int8', [n]), outputExp: p.alloc('out_exp', 'int32', [1]),
      };
      const ea = rng.int(-30, 10);
      const eb = ea + [0, rng.int(-8, 8), rng.int(-40, 40), rng.int(-1000, 1000) >> 0][trial % 4]!;
      const zeroA = trial % 17 === 3, zeroB = trial % 19 === 5;
      p.set(t.a, zeroA ? new Array(n).fill(0) : randInt8(rng, n, trial % 5 ? -128 : -3, trial % 5 ? 127 : 3));
      p.set(t.b, zeroB ? new Array(n).fill(0) : randInt8(rng, n));
      p.set(t.aExp, [ea]);
      p.set(t.bExp, [Math.max(-1024, Math.min(1024, eb))]);
      p.both((k) => k.gradAdd({ n, ...t }));
      expect(p.differences(), `trial ${trial}`).toEqual([]);
    }
  });
});

describe('add_s8 against float64', () => {
  it('forward is within 1 LSB of round((s1 (q1 - z1) + s2 (q2 - z2)) / s_out) + z_out', () => {
    const rng = new Xorshift32(2203);
    let worst = 0;
    for (let trial = 0; trial < 100; trial++) {
      const n = 64;
      const { layout, k } = kernels();
      const input1 = layout.alloc('in1', 'int8', [n]), input2 = layout.alloc('in2', 'int8', [n]);
      const output = layout.alloc('out', 'int8', [n]);
      const q1 = randInt8(rng, n), q2 = randInt8(rng, n);
      const s = [randScale(rng), randScale(rng), randScale(rng)];
      const zp = [rng.int(-128, 127), rng.int(-128, 127), rng.int(-128, 127)];
      k.write(input1, Uint8Array.from(q1, (v) => v & 0xff));
      k.write(input2, Uint8Array.from(q2, (v) => v & 0xff));
      const q = addQuantParams({ scale: s[0]!, zeroPoint: zp[0]! }, { scale: s[1]!, zeroPoint: zp[1]! },
        { scale: s[2]!, zeroPoint: zp[2]! });
      k.addForward({ n, ...q, actMin: -128, actMax: 127, input1, input2, output, mask: null });
      const got = k.readInt8(output);
      for (let j = 0; j < n; j++) {
        const real = s[0]! * (q1[j]! - zp[0]!) + s[1]! * (q2[j]! - zp[1]!);
        const want = Math.max(-128, Math.min(127, Math.round(real / s[2]! + zp[2]!)));
        worst = Math.max(worst, Math.abs(got[j]! - want));
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('GRAD_ADD matches the float64 sum: exact rounding when |ea - eb| <= 22, within 1 LSB beyond', () => {
    const rng = new Xorshift32(2304);
    const rec = new GradientRecord('add', 'add_s8_grad_sum');
    for (let trial = 0; trial < 200; trial++) {
      const n = rng.int(1, 128);
      const { layout, k } = kernels();
      const t = {
        a: layout.alloc('a', 'int8', [n]), aExp: layout.cell('a_exp'),
        b: layout.alloc('b', 'int8', [n]), bExp: layout.cell('b_exp'),
        output: layout.alloc('out', 'int8', [n]), outputExp: layout.cell('out_exp'),
      };
      const ea = rng.int(-20, 0), d = trial % 2 ? rng.int(-6, 6) : rng.int(-40, 40), eb = ea + d;
      const qa = randInt8(rng, n), qb = randInt8(rng, n);
      k.write(t.a, Uint8Array.from(qa, (v) => v & 0xff));
      k.write(t.b, Uint8Array.from(qb, (v) => v & 0xff));
      k.writeInt32(t.aExp, [ea]);
      k.writeInt32(t.bExp, [eb]);
      k.gradAdd({ n, ...t });
      const e = k.readInt32(t.outputExp)[0]!;
      const out = k.readInt8(t.output);
      const exact = qa.map((v, j) => v * 2 ** ea + qb[j]! * 2 ** eb); // exact in float64: < 53 bits apart
      const got = Array.from(out, (v) => v * 2 ** e);
      const maxUnits = Math.max(...exact.map((v) => Math.abs(v))) / 2 ** e;
      if (maxUnits > 0) expect(maxUnits).toBeGreaterThanOrEqual(63.5); // normalised into [64, 127]
      for (let j = 0; j < n; j++) {
        const rounded = Math.max(-128, Math.min(127, Math.floor(exact[j]! / 2 ** e + 0.5)));
        if (Math.abs(d) <= 22) expect(out[j], `trial ${trial} element ${j}`).toBe(rounded);
        else expect(Math.abs(out[j]! - rounded)).toBeLessThanOrEqual(1);
      }
      if (maxUnits > 0) {
        const { cos, rel } = rec.add(got, exact);
        // int8 block floating point of the sum: each element within half a
        // unit of 2^e where the largest is >= 64 units: cos >= 0.999, rel <= 3%
        expect(cos).toBeGreaterThanOrEqual(0.999);
        expect(rel).toBeLessThanOrEqual(0.03);
      }
    }
    rec.write();
  });

  it('GRAD_ADD is the gradient of a residual fork (central finite differences)', () => {
    // x feeds two branches, y1 = x and y2 = c * x (elementwise), with loss
    // L = sum(u1 * y1) + sum(u2 * y2). dL/dx = u1 + c * u2: the branch
    // gradients u1 (exponent -7) and c * u2 (int8, exponent -9) meet in GRAD_ADD.
    const rng = new Xorshift32(2405);
    const n = 24;
    const u1 = randInt8(rng, n).map((v) => v * 2 ** -7);
    const cu2q = randInt8(rng, n);
    const cu2 = cu2q.map((v) => v * 2 ** -9);
    const c = 0.75, u2 = cu2.map((v) => v / c);
    const { layout, k } = kernels();
    const t = {
      a: layout.alloc('a', 'int8', [n]), aExp: layout.cell('a_exp'),
      b: layout.alloc('b', 'int8', [n]), bExp: layout.cell('b_exp'),
      output: layout.alloc('out', 'int8', [n]), outputExp: layout.cell('out_exp'),
    };
    k.write(t.a, Uint8Array.from(u1, (v) => (v * 128) & 0xff));
    k.writeInt32(t.aExp, [-7]);
    k.write(t.b, Uint8Array.from(cu2q, (v) => v & 0xff));
    k.writeInt32(t.bExp, [-9]);
    k.gradAdd({ n, ...t });
    const e = k.readInt32(t.outputExp)[0]!;
    const grad = Array.from(k.readInt8(t.output), (v) => v * 2 ** e);
    const x = Array.from({ length: n }, () => (rng.below(2001) - 1000) / 500);
    const loss = (xx: number[]) => xx.reduce((acc, v, j) => acc + u1[j]! * v + u2[j]! * c * v, 0);
    const h = 1e-3;
    for (let j = 0; j < n; j++) {
      const xp = x.slice(), xm = x.slice();
      xp[j]! += h;
      xm[j]! -= h;
      const fd = (loss(xp) - loss(xm)) / (2 * h);
      // linear loss: fd exact up to 1e-9; the int8 result is within half a unit of 2^e
      expect(Math.abs(fd - grad[j]!), `element ${j}`).toBeLessThanOrEqual(2 ** e / 2 + 1e-9);
    }
  });
});

describe('add_s8 known answers (derived by hand from TFLite ADD) and bad input', () => {
  it('addQuantParams: s1 = s2 = 1/256, s_out = 1/128 -> multipliers 2^30 (shift 0) and 2^30 (shift -19)', () => {
    const q = addQuantParams({ scale: 1 / 256, zeroPoint: 0 }, { scale: 1 / 256, zeroPoint: 0 }, { scale: 1 / 128, zeroPoint: 0 });
    expect(q).toEqual({ input1Offset: -0, input1Multiplier: 2 ** 30, input1Shift: 0, input2Offset: -0,
      input2Multiplier: 2 ** 30, input2Shift: 0, leftShift: 20, outputOffset: 0, outputMultiplier: 2 ** 30, outputShift: -19 });
  });

  it('add_s8_forward rounds like TFLite (half away from zero in the final RoundingDivideByPOT)', () => {
    // (x, y, s_out) -> by hand: x*2^20*0.5 + y*2^20*0.5 = raw; raw*0.5 / 2^(-shift) rounded
    const cases: [number, number, number, number][] = [
      [10, 20, 1 / 128, 15], // 7.5*2^20 / 2^19 = 15 exactly
      [1, 2, 1 / 64, 1], // 0.75 -> 1
      [-1, -2, 1 / 64, -1], // -0.75 -> -1
      [1, 0, 1 / 128, 1], // +0.5 -> 1
      [-1, 0, 1 / 128, -1], // -0.5 -> -1 (away from zero)
      [127, 127, 1 / 128, 127], // 127 exactly
      [-128, -128, 1 / 256, -128], // -256 clamps to -128
    ];
    for (const [x, y, so, want] of cases) {
      const { layout, k } = kernels(256);
      const input1 = layout.alloc('in1', 'int8', [1]), input2 = layout.alloc('in2', 'int8', [1]);
      const output = layout.alloc('out', 'int8', [1]);
      k.write(input1, Uint8Array.of(x & 0xff));
      k.write(input2, Uint8Array.of(y & 0xff));
      const q = addQuantParams({ scale: 1 / 256, zeroPoint: 0 }, { scale: 1 / 256, zeroPoint: 0 }, { scale: so, zeroPoint: 0 });
      k.addForward({ n: 1, ...q, actMin: -128, actMax: 127, input1, input2, output, mask: null });
      expect(k.readInt8(output)[0], `${x} + ${y} at s_out ${so}`).toBe(want);
    }
  });

  it('GRAD_ADD known answers', () => {
    const { layout, k } = kernels(256);
    const t = {
      a: layout.alloc('a', 'int8', [2]), aExp: layout.cell('a_exp'),
      b: layout.alloc('b', 'int8', [2]), bExp: layout.cell('b_exp'),
      output: layout.alloc('out', 'int8', [2]), outputExp: layout.cell('out_exp'),
    };
    // 100*2^-7 + 100*2^-7 = 200*2^-7 = 100*2^-6
    k.write(t.a, Uint8Array.of(100, 3));
    k.write(t.b, Uint8Array.of(100, 0));
    k.writeInt32(t.aExp, [-7]);
    k.writeInt32(t.bExp, [-7]);
    k.gradAdd({ n: 2, ...t });
    expect([...k.readInt8(t.output)]).toEqual([100, 2]); // 3/2 = 1.5 rounds half up to 2
    expect(k.readInt32(t.outputExp)[0]).toBe(-6);
    // far apart: 1*2^40 + 127*2^0: the small operand is below the result's resolution
    k.write(t.a, Uint8Array.of(1, 0));
    k.write(t.b, Uint8Array.of(127, 127));
    k.writeInt32(t.aExp, [40]);
    k.writeInt32(t.bExp, [0]);
    k.gradAdd({ n: 2, ...t });
    expect([...k.readInt8(t.output)]).toEqual([64, 0]);
    expect(k.readInt32(t.outputExp)[0]).toBe(34);
  });

  it('wrong shapes throw KernelArgumentError naming the tensor; C rejects bad dims and params', () => {
    const { layout, k } = kernels(256);
    const input1 = layout.alloc('add_a', 'int8', [8]), input2 = layout.alloc('add_b', 'int8', [7]);
    const output = layout.alloc('add_out', 'int8', [8]);
    const q = addQuantParams({ scale: 0.01, zeroPoint: 0 }, { scale: 0.02, zeroPoint: 0 }, { scale: 0.03, zeroPoint: 0 });
    expect(() => k.addForward({ n: 8, ...q, actMin: -128, actMax: 127, input1, input2, output, mask: null }))
      .toThrow(KernelArgumentError);
    expect(() => k.addForward({ n: 8, ...q, actMin: -128, actMax: 127, input1, input2, output, mask: null }))
      .toThrow(/add_b/);
    expect(() => k.gradAdd({ n: 8, a: input1, aExp: output, b: input1, bExp: output, output, outputExp: output }))
      .toThrow(/a exponent/);
    const d = new NodeDispatch(new ArrayBuffer(256));
    const base = [8, 0, 1 << 30, 0, 0, 1 << 30, 0, 20, 0, 1 << 30, -19, -128, 127, 0, 8, 16, -1];
    expect(() => d.call(Op.AddForward, Int32Array.from(base))).not.toThrow();
    const bad = (i: number, v: number) => Int32Array.from(base.map((x, j) => (j === i ? v : x)));
    expect(() => d.call(Op.AddForward, bad(0, 0))).toThrow('bad dimensions');
    expect(() => d.call(Op.AddForward, bad(1, 129))).toThrow('quantisation parameter');
    expect(() => d.call(Op.AddForward, bad(3, 1))).toThrow('quantisation parameter'); // shift must be <= 0
    expect(() => d.call(Op.AddForward, bad(7, 23))).toThrow('quantisation parameter'); // left_shift overflow
    expect(() => d.call(Op.AddForward, bad(9, -5))).toThrow('quantisation parameter');
    expect(() => d.call(Op.AddForward, bad(15, 4))).toThrow('overlaps');
    expect(() => d.call(Op.AddForward, bad(14, 250))).toThrow('outside');
    const ga = [8, 0, 32, 8, 36, 16, 40];
    expect(() => d.call(Op.GradAdd, Int32Array.from(ga))).not.toThrow();
    expect(() => d.call(Op.GradAdd, Int32Array.from(ga.map((x, j) => (j === 2 ? 33 : x))))).toThrow('misaligned');
    new Int32Array(d.arena, 32, 1)[0] = 5000;
    expect(() => d.call(Op.GradAdd, Int32Array.from(ga))).toThrow('quantisation parameter'); // exponent out of range
  });
});
