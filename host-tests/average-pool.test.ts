// average_pool_s8 (forward, backward) and mean_s8_forward: C against the
// TypeScript reference (bit-identical, nothing written outside the outputs),
// forward against float64 averages, backward against float64 gradients and
// central finite differences, known answers, and bad input.
import { describe, expect, it } from 'vitest';
import { ArenaLayout } from '../src/core/arena.js';
import { convGeometry } from '../src/core/conv-geometry.js';
import { avgPoolBackwardScratchBytes, Kernels, KernelArgumentError, type PoolShape } from '../src/core/kernels.js';
import { Op } from '../src/core/ops.js';
import { meanQuantParams } from '../src/core/tflite-params.js';
import { Xorshift32 } from '../src/core/rng.js';
import { NodeDispatch } from '../src/node/addon.js';
import { GradientRecord } from './support/gradient-report.js';
import { Pair, randInt8 } from './support/pair.js';

function poolShape(batches: number, inH: number, inW: number, channels: number, kH: number, kW: number, sH: number,
  sW: number, padding: 'same' | 'valid'): PoolShape {
  const g = convGeometry(inH, inW, kH, kW, sH, sW, padding);
  return { batches, inH, inW, channels, filterH: kH, filterW: kW, strideH: sH, strideW: sW, ...g };
}

// Edge cases first, then random shapes.
const EDGE: PoolShape[] = [
  poolShape(1, 1, 1, 1, 1, 1, 1, 1, 'valid'), // 1x1 image
  poolShape(1, 1, 1, 3, 3, 3, 1, 1, 'same'), // kernel larger than the input, SAME
  poolShape(1, 2, 3, 5, 5, 4, 2, 3, 'same'),
  poolShape(1, 3, 3, 256, 3, 3, 1, 1, 'valid'), // person_detect global pool 3x3x256 -> 1x1x256
  poolShape(2, 7, 5, 3, 2, 2, 2, 2, 'same'), // stride 2, odd sizes
  poolShape(1, 9, 8, 7, 3, 3, 3, 3, 'same'), // stride 3
  poolShape(1, 6, 6, 2, 3, 2, 1, 2, 'valid'),
];

function randomShape(rng: Xorshift32): PoolShape {
  for (;;) {
    const kH = rng.int(1, 4), kW = rng.int(1, 4);
    const [b, h, w, c, sH, sW] = [rng.int(1, 2), rng.int(1, 9), rng.int(1, 9), rng.int(1, 6), rng.int(1, 3), rng.int(1, 3)];
    const padding = rng.below(2) ? 'same' : 'valid';
    if (padding === 'same' || (kH <= h && kW <= w)) return poolShape(b, h, w, c, kH, kW, sH, sW, padding);
  }
}

const elems = (s: PoolShape) => ({
  I: s.batches * s.inH * s.inW * s.channels,
  O: s.batches * s.outH * s.outW * s.channels,
});

// Windows of output (oy, ox): in-image taps, as float64 math would take them.
function windowTaps(s: PoolShape, oy: number, ox: number): [number, number][] {
  const t: [number, number][] = [];
  for (let fy = 0; fy < s.filterH; fy++) {
    for (let fx = 0; fx < s.filterW; fx++) {
      const y = oy * s.strideH - s.padH + fy, x = ox * s.strideW - s.padW + fx;
      if (y >= 0 && y < s.inH && x >= 0 && x < s.inW) t.push([y, x]);
    }
  }
  return t;
}

const idx = (s: PoolShape, h: number, w: number, b: number, y: number, x: number, c: number) =>
  ((b * h + y) * w + x) * s.channels + c;

// float64 average pool of real inputs
function poolFloat(s: PoolShape, x: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let b = 0; b < s.batches; b++) {
    for (let oy = 0; oy < s.outH; oy++) {
      for (let ox = 0; ox < s.outW; ox++) {
        const taps = windowTaps(s, oy, ox);
        for (let c = 0; c < s.channels; c++) {
          let sum = 0;
          for (const [y, xx] of taps) sum += x[idx(s, s.inH, s.inW, b, y, xx, c)]!;
          out.push(sum / taps.length);
        }
      }
    }
  }
  return out;
}

// float64 dL/dx of L = sum(g * pool(x))
function poolGradFloat(s: PoolShape, g: ArrayLike<number>): number[] {
  const gx = new Array<number>(elems(s).I).fill(0);
  for (let b = 0; b < s.batches; b++) {
    for (let oy = 0; oy < s.outH; oy++) {
      for (let ox = 0; ox < s.outW; ox++) {
        const taps = windowTaps(s, oy, ox);
        for (let c = 0; c < s.channels; c++) {
          const v = g[idx(s, s.outH, s.outW, b, oy, ox, c)]! / taps.length;
          for (const [y, x] of taps) gx[idx(s, s.inH, s.inW, b, y, x, c)]! += v;
        }
      }
    }
  }
  return gx;
}

describe('average_pool_s8: C is bit-identical to the TypeScript reference', () => {
  it('forward (masks, ReLU/ReLU6-style clamps, SAME/VALID, strides 1-3, edge shapes)', () => {
    const rng = new Xorshift32(1801);
    for (let trial = 0; trial < 80; trial++) {
      const s = trial < EDGE.length ? EDGE[trial]! : randomShape(rng);
      const { I, O } = elems(s);
      const p = new Pair(rng);
      const input = p.alloc('in', 'int8', [s.batches, s.inH, s.inW, s.channels]);
      const output = p.alloc('out', 'int8', [s.batches, s.outH, s.outW, s.channels]);
      const mask = p.alloc('mask', 'uint8', [Math.ceil(O / 8)]);
      p.set(input, randInt8(rng, I));
      const zp = rng.int(-128, 127);
      const act = [[-128, 127], [zp, 127], [zp, Math.min(127, zp + 30)]][trial % 3]!;
      const useMask = trial % 4 !== 1;
      p.both((k) => k.avgPoolForward({ ...s, actMin: act[0]!, actMax: act[1]!, input, output, mask: useMask ? mask : null }));
      expect(p.differences(), `trial ${trial} ${JSON.stringify(s)}`).toEqual([]);
    }
  });

  it('backward (exact int32 sums, normalised exponent)', () => {
    const rng = new Xorshift32(1902);
    for (let trial = 0; trial < 80; trial++) {
      const s = trial < EDGE.length ? EDGE[trial]! : randomShape(rng);
      const { I, O } = elems(s);
      const p = new Pair(rng);
      const t = {
        gradOut: p.alloc('grad_out', 'int8', [s.batches, s.outH, s.outW, s.channels]),
        gradOutExp: p.alloc('grad_out_exp', 'int32', [1]),
        gradIn: p.alloc('grad_in', 'int8', [s.batches, s.inH, s.inW, s.channels]),
        gradInExp: p.alloc('grad_in_exp', 'int32', [1]),
        scratch: p.alloc('scratch', 'uint8', [avgPoolBackwardScratchBytes(s)]),
      };
      // small gradients sometimes, so the normalisation shifts left too
      p.set(t.gradOut, randInt8(rng, O, trial % 3 ? -128 : -2, trial % 3 ? 127 : 2));
      p.set(t.gradOutExp, [rng.int(-20, 0)]);
      p.both((k) => k.avgPoolBackward({ ...s, ...t }));
      expect(p.differences([t.scratch]), `trial ${trial} ${JSON.stringify(s)}`).toEqual([]);
      expect(I).toBeGreaterThan(0);
    }
  });

  it('mean_s8_forward (different input/output scales)', () => {
    const rng = new Xorshift32(2303);
    for (let trial = 0; trial < 40; trial++) {
      const [B, H, W, C] = trial === 0 ? [1, 3, 3, 256] : [rng.int(1, 2), rng.int(1, 7), rng.int(1, 7), rng.int(1, 9)];
      const p = new Pair(rng);
      const input = p.alloc('in', 'int8', [B!, H!, W!, C!]);
      const output = p.alloc('out', 'int8', [B!, 1, 1, C!]);
      p.set(input, randInt8(rng, B! * H! * W! * C!));
      const q = meanQuantParams((1 + rng.below(1000)) / 5000, (1 + rng.below(1000)) / 5000);
      const zpIn = rng.int(-128, 127), zpOut = rng.int(-128, 127);
      p.both((k) => k.meanForward({ batches: B!, h: H!, w: W!, channels: C!, inputZeroPoint: zpIn, ...q,
        outputZeroPoint: zpOut, input, output }));
      expect(p.differences(), `trial ${trial}`).toEqual([]);
    }
  });
});

describe('average_pool_s8 against float64', () => {
  it('forward is within 1 LSB of the rounded float64 average (and mean_s8 of the float64 mean)', () => {
    const rng = new Xorshift32(1703);
    let worst = 0;
    for (let trial = 0; trial < 60; trial++) {
      const s = trial < EDGE.length ? EDGE[trial]! : randomShape(rng);
      const { I, O } = elems(s);
      const layout = new ArenaLayout(1 << 16);
      const k = new Kernels(new NodeDispatch(new ArrayBuffer(1 << 16)));
      const input = layout.alloc('in', 'int8', [I]);
      const output = layout.alloc('out', 'int8', [O]);
      const q = randInt8(rng, I);
      const scale = (1 + rng.below(1000)) / 10000, zp = rng.int(-128, 127);
      k.write(input, Uint8Array.from(q, (v) => v & 0xff));
      k.avgPoolForward({ ...s, actMin: -128, actMax: 127, input, output, mask: null });
      const got = k.readInt8(output);
      const ref = poolFloat(s, q.map((v) => scale * (v - zp)));
      for (let j = 0; j < O; j++) worst = Math.max(worst, Math.abs(got[j]! - Math.max(-128, Math.min(127, Math.round(ref[j]! / scale + zp)))));
    }
    expect(worst).toBeLessThanOrEqual(1);

    let worstMean = 0;
    for (let trial = 0; trial < 40; trial++) {
      const [H, W, C] = [rng.int(1, 6), rng.int(1, 6), rng.int(1, 8)];
      const layout = new ArenaLayout(1 << 12);
      const k = new Kernels(new NodeDispatch(new ArrayBuffer(1 << 12)));
      const input = layout.alloc('in', 'int8', [H * W * C]);
      const output = layout.alloc('out', 'int8', [C]);
      const q = randInt8(rng, H * W * C);
      const sIn = Math.fround((1 + rng.below(1000)) / 5000), sOut = Math.fround((1 + rng.below(1000)) / 5000);
      const zpIn = rng.int(-128, 127), zpOut = rng.int(-128, 127);
      k.write(input, Uint8Array.from(q, (v) => v & 0xff));
      k.meanForward({ batches: 1, h: H, w: W, channels: C, inputZeroPoint: zpIn, ...meanQuantParams(sIn, sOut),
        outputZeroPoint: zpOut, input, output });
      const got = k.readInt8(output);
      for (let c = 0; c < C; c++) {
        let sum = 0;
        for (let p = 0; p < H * W; p++) sum += sIn * (q[p * C + c]! - zpIn);
        const want = Math.max(-128, Math.min(127, Math.round(sum / (H * W) / sOut + zpOut)));
        worstMean = Math.max(worstMean, Math.abs(got[c]! - want));
      }
    }
    // TFLite requantises the sum before dividing by h*w: two roundings, so 1 LSB
    expect(worstMean).toBeLessThanOrEqual(1);
  });

  it('backward matches the float64 gradient (cosine, relative error) and finite differences', () => {
    const rng = new Xorshift32(1604);
    const rec = new GradientRecord('average_pool', 'average_pool_s8_backward');
    for (let trial = 0; trial < 60; trial++) {
      const s = trial < EDGE.length ? EDGE[trial]! : randomShape(rng);
      const { I, O } = elems(s);
      const layout = new ArenaLayout(1 << 16);
      const k = new Kernels(new NodeDispatch(new ArrayBuffer(1 << 16)));
      const t = {
        gradOut: layout.alloc('grad_out', 'int8', [O]),
        gradOutExp: layout.cell('grad_out_exp'),
        gradIn: layout.alloc('grad_in', 'int8', [I]),
        gradInExp: layout.cell('grad_in_exp'),
        scratch: layout.alloc('scratch', 'uint8', [avgPoolBackwardScratchBytes(s)]),
      };
      const g = randInt8(rng, O);
      const ge = rng.int(-12, 0);
      k.write(t.gradOut, Uint8Array.from(g, (v) => v & 0xff));
      k.writeInt32(t.gradOutExp, [ge]);
      k.avgPoolBackward({ ...s, ...t });
      const e = k.readInt32(t.gradInExp)[0]!;
      const got = Array.from(k.readInt8(t.gradIn), (v) => v * 2 ** e);
      const want = poolGradFloat(s, g.map((v) => v * 2 ** ge));
      const { cos, rel } = rec.add(got, want);
      // int8 block floating point: every element within half a unit of the
      // largest one's 2^-7 scale, so cos >= 0.999 and rel err <= 3%
      // whenever the gradient is not dominated by near-zero elements
      expect(cos, `trial ${trial}`).toBeGreaterThanOrEqual(0.999);
      expect(rel, `trial ${trial}`).toBeLessThanOrEqual(0.03);
      // and elementwise: within one unit of 2^e (rounding + reciprocal error)
      for (let j = 0; j < I; j++) expect(Math.abs(got[j]! - want[j]!)).toBeLessThanOrEqual(2 ** e * 0.51);
    }
    rec.write();

    // Central finite differences of L(x) = sum(g_real * pool(x)) in float64.
    const s = poolShape(1, 5, 4, 3, 3, 3, 2, 1, 'same');
    const { I, O } = elems(s);
    const layout = new ArenaLayout(1 << 12);
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(1 << 12)));
    const t = {
      gradOut: layout.alloc('grad_out', 'int8', [O]),
      gradOutExp: layout.cell('grad_out_exp'),
      gradIn: layout.alloc('grad_in', 'int8', [I]),
      gradInExp: layout.cell('grad_in_exp'),
      scratch: layout.alloc('scratch', 'uint8', [avgPoolBackwardScratchBytes(s)]),
    };
    const g = randInt8(rng, O);
    k.write(t.gradOut, Uint8Array.from(g, (v) => v & 0xff));
    k.writeInt32(t.gradOutExp, [-7]);
    k.avgPoolBackward({ ...s, ...t });
    const e = k.readInt32(t.gradInExp)[0]!;
    const grad = Array.from(k.readInt8(t.gradIn), (v) => v * 2 ** e);
    const x = Array.from({ length: I }, () => (rng.below(2001) - 1000) / 1000);
    const loss = (xx: number[]) => poolFloat(s, xx).reduce((acc, v, j) => acc + v * g[j]! * 2 ** -7, 0);
    const h = 1e-3;
    for (let j = 0; j < I; j++) {
      const xp = x.slice(), xm = x.slice();
      xp[j]! += h;
      xm[j]! -= h;
      const fd = (loss(xp) - loss(xm)) / (2 * h);
      // the loss is linear in x: fd is exact up to float rounding (1e-9); the
      // kernel's int8 gradient is within half a unit of 2^e (+1% for the reciprocal)
      expect(Math.abs(fd - grad[j]!), `element ${j}`).toBeLessThanOrEqual(2 ** e * 0.51 + 1e-9);
    }
  });
});

describe('average_pool_s8 known answers and bad input', () => {
  it('rounds half away from zero like TFLite and skips out-of-image taps', () => {
    const layout = new ArenaLayout(256);
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(256)));
    // 2x2 image, 1 channel, 2x2 filter VALID: (1 + 2 + 2 + 2) / 4 = 1.75 -> 2;
    // (-1 - 2 - 2 - 1)/4 = -1.5 -> -2 (away from zero); TFLite: (acc - 2) / 4 truncates to -2
    const input = layout.alloc('in', 'int8', [4]);
    const out = layout.alloc('out', 'int8', [1]);
    const s = poolShape(1, 2, 2, 1, 2, 2, 1, 1, 'valid');
    k.write(input, Uint8Array.from([1, 2, 2, 2]));
    k.avgPoolForward({ ...s, actMin: -128, actMax: 127, input, output: out, mask: null });
    expect(k.readInt8(out)[0]).toBe(2);
    k.write(input, Uint8Array.from([-1, -2, -2, -1], (v) => v & 0xff));
    k.avgPoolForward({ ...s, actMin: -128, actMax: 127, input, output: out, mask: null });
    expect(k.readInt8(out)[0]).toBe(-2);
    k.write(input, Uint8Array.from([-1, -1, -1, -3], (v) => v & 0xff)); // -6/4 = -1.5 -> -2; -5/4 -> -1
    k.avgPoolForward({ ...s, actMin: -128, actMax: 127, input, output: out, mask: null });
    expect(k.readInt8(out)[0]).toBe(-2);
    // 3x3 SAME on a 2x2 image: the corner window holds all 4 pixels: (10+20+30+41)/4 = 25.25 -> 25
    const s2 = poolShape(1, 2, 2, 1, 3, 3, 1, 1, 'same');
    const out4 = layout.alloc('out4', 'int8', [4]);
    k.write(input, Uint8Array.from([10, 20, 30, 41]));
    k.avgPoolForward({ ...s2, actMin: -128, actMax: 127, input, output: out4, mask: null });
    expect([...k.readInt8(out4)]).toEqual([25, 25, 25, 25]);
  });

  it('backward known answer: 2x2 stride 2 spreads g/4', () => {
    const layout = new ArenaLayout(256);
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(256)));
    const s = poolShape(1, 2, 4, 1, 2, 2, 2, 2, 'valid');
    const t = {
      gradOut: layout.alloc('grad_out', 'int8', [2]),
      gradOutExp: layout.cell('ge'),
      gradIn: layout.alloc('grad_in', 'int8', [8]),
      gradInExp: layout.cell('gie'),
      scratch: layout.alloc('scratch', 'uint8', [avgPoolBackwardScratchBytes(s)]),
    };
    k.write(t.gradOut, Uint8Array.from([100, -50], (v) => v & 0xff));
    k.writeInt32(t.gradOutExp, [-3]);
    k.avgPoolBackward({ ...s, ...t });
    const e = k.readInt32(t.gradInExp)[0]!;
    const got = Array.from(k.readInt8(t.gradIn), (v) => v * 2 ** e);
    expect(got).toEqual([25, 25, -12.5, -12.5, 25, 25, -12.5, -12.5].map((v) => v / 8));
  });

  it('wrong shapes throw KernelArgumentError naming the tensor; C rejects bad dims and params', () => {
    const layout = new ArenaLayout(1024);
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(1024)));
    const s = poolShape(1, 4, 4, 2, 2, 2, 2, 2, 'valid');
    const input = layout.alloc('pool_in', 'int8', [1, 4, 4, 2]);
    const output = layout.alloc('pool_out', 'int8', [1, 2, 2, 3]);
    expect(() => k.avgPoolForward({ ...s, actMin: -128, actMax: 127, input, output, mask: null }))
      .toThrow(KernelArgumentError);
    expect(() => k.avgPoolForward({ ...s, actMin: -128, actMax: 127, input, output, mask: null })).toThrow(/pool_out/);
    expect(() => k.avgPoolForward({ ...s, padH: 2, actMin: -128, actMax: 127, input, output, mask: null }))
      .toThrow(/pad_h/);
    const d = new NodeDispatch(new ArrayBuffer(1024));
    const base = [1, 4, 4, 2, 2, 2, 2, 2, 2, 2, 0, 0, -128, 127, 0, 64, -1];
    expect(() => d.call(Op.AvgPoolForward, Int32Array.from(base))).not.toThrow();
    const bad = (i: number, v: number) => Int32Array.from(base.map((x, j) => (j === i ? v : x)));
    expect(() => d.call(Op.AvgPoolForward, bad(4, 3))).toThrow('bad dimensions'); // out_h past the image
    expect(() => d.call(Op.AvgPoolForward, bad(10, 2))).toThrow('bad dimensions'); // pad >= filter
    expect(() => d.call(Op.AvgPoolForward, bad(8, 0))).toThrow('bad dimensions'); // stride 0
    expect(() => d.call(Op.AvgPoolForward, bad(12, -129))).toThrow('quantisation parameter'); // act_min below int8
    expect(() => d.call(Op.AvgPoolForward, bad(14, 1020))).toThrow('tensor outside the arena');
    expect(() => d.call(Op.AvgPoolForward, bad(15, 8))).toThrow('overlaps');
    const bw = [1, 4, 4, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 8, 12, 44, 48];
    expect(() => d.call(Op.AvgPoolBackward, Int32Array.from(bw))).not.toThrow();
    expect(() => d.call(Op.AvgPoolBackward, Int32Array.from(bw.map((x, j) => (j === 16 ? 50 : x))))).toThrow('misaligned');
    expect(() => d.call(Op.AvgPoolBackward, Int32Array.from(bw.map((x, j) => (j === 16 ? 960 : x))))).toThrow('outside');
    expect(() => d.call(Op.MeanForward, Int32Array.of(1, 4, 4, 2, 0, 1 << 30, 0, 0, 0, 64))).not.toThrow();
    expect(() => d.call(Op.MeanForward, Int32Array.of(1, 4, 4, 2, 0, -1, 0, 0, 0, 64))).toThrow('quantisation parameter');
    expect(() => d.call(Op.MeanForward, Int32Array.of(1, 4, 4, 2, 200, 1 << 30, 0, 0, 0, 64))).toThrow('quantisation parameter');
  });
});
