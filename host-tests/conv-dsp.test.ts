// The Cortex-M4F DSP paths of conv2d_s8_forward (im2col + xst_mat_mult_s8)
// and depthwise_conv2d_s8_forward (4 channels per 32-bit load, SMLABB/SMLATT)
// against the TypeScript reference: random geometries (in_c 1/3/8 and odd
// counts, padding, strides 1-3, kernels 1..5, person_detect's first layer at
// reduced size, depth multipliers 1-3), random offsets, multipliers (both
// signs of the shift), activations, masks, and int8 tensors at every byte
// alignment; then depthwise on images of edge pixels only (3x3xC, 1x5xC,
// 6x1xC, C 4/8/12/256/7/13). One recorded trace, replayed on the DSP and the portable M4
// images: outputs and masks bit-identical to the reference.
import { describe, expect, it } from 'vitest';
import { convGeometry, type Padding } from '../src/core/conv-geometry.js';
import { Kernels } from '../src/core/kernels.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import { TraceWriter } from '../src/core/trace.js';
import { Placer, Tee, itReplaysOnM4Images, type Expected } from './support/dsp-replay.js';

const CASES = 80;
// Depthwise only, after the random cases: images where every (or nearly
// every) output pixel is an edge pixel (3x3, 1xN, Nx1; person_detect's
// 3x3x256 layer), channel counts 4, 8, 12, 256, 7, 13, 3x3 SAME stride 1.
const EDGE: { inH: number; inW: number }[] = [{ inH: 3, inW: 3 }, { inH: 1, inW: 5 }, { inH: 6, inW: 1 }];
const EDGE_C = [4, 8, 12, 256, 7, 13]; // 7, 13: mask nibbles straddle bytes
const TOTAL = CASES + EDGE.length * EDGE_C.length;
const ARENA = 96 * 1024;

interface Geo { batch: number; inH: number; inW: number; inC: number; oc: number; mult: number; k: number; kW: number; s: number; sW: number; pad: Padding }

describe('conv2d / depthwise conv2d forward: DSP paths on Cortex-M4F = TypeScript reference', () => {
  const rng = new Xorshift32(9191);
  const trace = new TraceWriter(1 << 20);
  const expected: Expected[] = [];
  for (let n = 0; n < TOTAL; n++) {
    const dw = n >= CASES || n % 2 === 1;
    const fixed: Geo[] = [
      { batch: 1, inH: 24, inW: 24, inC: 1, oc: 8, mult: 1, k: 3, kW: 3, s: 2, sW: 2, pad: 'same' }, // person_detect layer 1, reduced
      { batch: 1, inH: 12, inW: 12, inC: 8, oc: 8, mult: 1, k: 3, kW: 3, s: 1, sW: 1, pad: 'same' },
      { batch: 1, inH: 9, inW: 7, inC: 3, oc: 5, mult: 1, k: 3, kW: 3, s: 2, sW: 2, pad: 'same' },
      { batch: 1, inH: 12, inW: 12, inC: 16, oc: 16, mult: 1, k: 3, kW: 3, s: 2, sW: 2, pad: 'same' },
      { batch: 2, inH: 5, inW: 6, inC: 8, oc: 33, mult: 1, k: 3, kW: 2, s: 1, sW: 1, pad: 'valid' },
      { batch: 1, inH: 3, inW: 3, inC: 36, oc: 36, mult: 1, k: 3, kW: 3, s: 1, sW: 1, pad: 'same' },
      { batch: 1, inH: 6, inW: 6, inC: 64, oc: 9, mult: 1, k: 5, kW: 5, s: 1, sW: 1, pad: 'same' }, // patch 1600 B: portable fallback
      { batch: 1, inH: 5, inW: 5, inC: 7, oc: 7, mult: 1, k: 9, kW: 9, s: 1, sW: 1, pad: 'same' }, // 81 taps: depthwise fallback
    ];
    const e = n - CASES, edge = EDGE[Math.floor(e / EDGE_C.length)];
    const f = n < fixed.length * 2 ? fixed[n >> 1]
      : edge ? { batch: 1, ...edge, inC: EDGE_C[e % EDGE_C.length]!, oc: 0, mult: 1, k: 3, kW: 3, s: 1, sW: 1, pad: 'same' as const }
      : undefined;
    const inH = rng.int(1, 12), inW = rng.int(1, 12), k = rng.int(1, 5), kW = rng.int(1, 5);
    const g: Geo = f ?? {
      batch: rng.int(1, 2), inH, inW, inC: [1, 3, 8, rng.int(1, 20)][rng.below(4)]!, oc: rng.int(1, 20), mult: rng.below(3) === 0 ? rng.int(2, 3) : 1,
      k, kW, s: rng.int(1, 3), sW: rng.int(1, 3), pad: rng.below(3) === 0 && inH >= k && inW >= kW ? 'valid' : 'same',
    };
    const geo = convGeometry(g.inH, g.inW, g.k, g.kW, g.s, g.sW, g.pad);
    const OC = dw ? g.inC * g.mult : g.oc;
    const shape = { batch: g.batch, inH: g.inH, inW: g.inW, inC: g.inC, outH: geo.outH, outW: geo.outW, kH: g.k, kW: g.kW,
      strideH: g.s, strideW: g.sW, padH: geo.padH, padW: geo.padW };
    const nIn = g.batch * g.inH * g.inW * g.inC, nOut = g.batch * geo.outH * geo.outW * OC;
    const nW = dw ? g.k * g.kW * OC : OC * g.k * g.kW * g.inC;
    const placer = new Placer();
    const place = placer.place.bind(placer);
    const t = {
      input: place('in', 'int8', nIn, rng.int(0, 3)),
      weights: place('w', 'int8', nW, rng.int(0, 3)),
      bias: place('bias', 'int32', OC),
      output: place('out', 'int8', nOut, rng.int(0, 3)),
      mask: place('mask', 'uint8', Math.ceil(nOut / 8)),
      multiplier: place('mult', 'int32', OC),
      shift: place('shift', 'int32', OC),
    };
    if (placer.top > ARENA) throw new Error(`case ${n} too large for the arena`);
    const ref = new ReferenceDispatch(new ArrayBuffer(ARENA));
    trace.arena(ARENA);
    const kern = new Kernels(new Tee(ref, trace));
    const inputOffset = [-127, 128, 0][n % 7] ?? rng.int(-127, 128);
    const exact = n % 4 >= 2; // small values, multipliers near 1/2..1 (shift 0 too): off-by-one sums show
    const small = (lo: number) => exact && rng.below(16) !== 0 ? rng.int(-3, 3) - lo : rng.int(-128, 127);
    const i8 = (count: number, centre: number, lo = -128) =>
      Uint8Array.from({ length: count }, () => Math.max(lo, Math.min(127, small(centre))) & 0xff);
    kern.write(t.input, i8(nIn, inputOffset));
    kern.write(t.weights, i8(nW, 0, -127));
    kern.writeInt32(t.bias, Array.from({ length: OC }, () => exact ? rng.int(-20, 20) : rng.int(0, 80000) - 40000));
    const taps = dw ? g.k * g.kW : g.k * g.kW * g.inC;
    const q = Array.from({ length: OC }, () =>
      quantizeMultiplier(exact ? 0.25 + rng.below(1000) / 1000 : (1 + rng.below(999)) / 1000 * 2 ** -rng.int(2, 10) / Math.sqrt(taps)));
    kern.writeInt32(t.multiplier, q.map((x) => x.multiplier));
    kern.writeInt32(t.shift, q.map((x) => x.shift));
    const zpOut = rng.int(-128, 127);
    const act = [[-128, 127], [zpOut, 127], [zpOut, Math.min(127, zpOut + 40)], [zpOut, zpOut]][n % 4]!;
    const useBias = n % 5 !== 3, useMask = n % 6 !== 4;
    const fwd = { inputOffset, outputOffset: zpOut, actMin: act[0]!, actMax: act[1]!, ...t,
      bias: useBias ? t.bias : null, mask: useMask ? t.mask : null };
    if (dw) kern.depthwiseConv2dForward({ ...shape, depthMultiplier: g.mult, ...fwd });
    else kern.conv2dForward({ ...shape, outC: OC, ...fwd });
    const what = `case ${n} ${dw ? 'depthwise' : 'conv2d'} ${JSON.stringify(g)}, input_offset ${inputOffset}`;
    for (const x of useMask ? [t.output, t.mask] : [t.output]) {
      trace.read(x.offset, x.bytes);
      expected.push({ offset: x.offset, bytes: ref.read(x.offset, x.bytes), what: `${what}, ${x.name}` });
    }
  }
  const bytes = trace.end();

  itReplaysOnM4Images(`${TOTAL} random and edge-only geometries`, bytes, TOTAL, expected);
});
