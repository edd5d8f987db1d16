// Random conv / depthwise geometries and channel blocks for the fused
// weight-update tests (ops 37-40: conv-weight-sgd.test.ts,
// conv-weight-lqm.test.ts): hand-picked edges (kernels larger than the
// image, pointwise convs through the FC kernels, patches beyond the C
// kernels' 256-entry gradient tile, an MBV2 stem, depth multipliers), then
// random ones.
import type { Tensor } from '../../src/core/arena.js';
import { convGeometry, type Padding } from '../../src/core/conv-geometry.js';
import type { ConvShape, DepthwiseConv2dShape } from '../../src/core/kernels.js';
import type { Xorshift32 } from '../../src/core/rng.js';

export interface Geo { batch: number; inH: number; inW: number; inC: number; outC: number; mult: number; kH: number; kW: number; s: number; sW: number; pad: Padding }

export const EDGES: Geo[] = [
  { batch: 1, inH: 1, inW: 1, inC: 3, outC: 5, mult: 1, kH: 3, kW: 3, s: 1, sW: 1, pad: 'same' }, // kernel > image
  { batch: 2, inH: 2, inW: 3, inC: 5, outC: 3, mult: 2, kH: 5, kW: 4, s: 2, sW: 3, pad: 'same' },
  { batch: 1, inH: 7, inW: 9, inC: 3, outC: 6, mult: 1, kH: 3, kW: 3, s: 2, sW: 2, pad: 'same' }, // an MBV2 stem
  { batch: 1, inH: 7, inW: 9, inC: 3, outC: 6, mult: 1, kH: 3, kW: 3, s: 2, sW: 2, pad: 'valid' },
  { batch: 1, inH: 12, inW: 10, inC: 1, outC: 8, mult: 8, kH: 10, kW: 8, s: 2, sW: 2, pad: 'same' }, // micro_speech's layer
  { batch: 2, inH: 5, inW: 5, inC: 9, outC: 13, mult: 1, kH: 1, kW: 1, s: 1, sW: 1, pad: 'same' }, // pointwise: the FC kernel
  { batch: 1, inH: 5, inW: 5, inC: 4, outC: 3, mult: 1, kH: 1, kW: 1, s: 2, sW: 2, pad: 'valid' }, // 1x1 strided
  { batch: 1, inH: 4, inW: 4, inC: 40, outC: 3, mult: 1, kH: 3, kW: 3, s: 1, sW: 1, pad: 'same' }, // 360 > 256 per channel
  { batch: 1, inH: 4, inW: 5, inC: 300, outC: 2, mult: 1, kH: 1, kW: 2, s: 1, sW: 1, pad: 'valid' }, // 300 input channels per tap
  { batch: 1, inH: 9, inW: 8, inC: 3, outC: 3, mult: 1, kH: 17, kW: 16, s: 1, sW: 1, pad: 'same' }, // depthwise: 272 taps
  { batch: 1, inH: 12, inW: 12, inC: 16, outC: 16, mult: 1, kH: 3, kW: 3, s: 2, sW: 2, pad: 'same' },
];

export function randomGeo(rng: Xorshift32): Geo {
  const inH = rng.int(1, 9), inW = rng.int(1, 9), kH = rng.int(1, 5), kW = rng.int(1, 5);
  return {
    batch: rng.int(1, 2), inH, inW, inC: [1, 3, 4, 8, rng.int(1, 21)][rng.below(5)]!, outC: rng.int(1, 12), mult: rng.below(3) ? 1 : rng.int(2, 3),
    kH, kW, s: rng.int(1, 3), sW: rng.int(1, 3), pad: rng.below(3) === 0 && inH >= kH && inW >= kW ? 'valid' : 'same',
  };
}

export const shapes = (g: Geo): { conv: ConvShape; dw: DepthwiseConv2dShape } => {
  const geo = convGeometry(g.inH, g.inW, g.kH, g.kW, g.s, g.sW, g.pad);
  const common = { batch: g.batch, inH: g.inH, inW: g.inW, inC: g.inC, outH: geo.outH, outW: geo.outW, kH: g.kH, kW: g.kW,
    strideH: g.s, strideW: g.sW, padH: geo.padH, padW: geo.padW };
  return { conv: { ...common, outC: g.outC }, dw: { ...common, depthMultiplier: g.mult } };
};

export const view = (t: Tensor, offset: number, shape: number[], bytes: number): Tensor => ({ ...t, name: `${t.name} view`, offset, shape, bytes });

export interface Case {
  dw: boolean;
  g: Geo;
  s: ConvShape | DepthwiseConv2dShape;
  blk: { ocBegin: number; ocEnd: number; icBegin: number; icEnd: number };
  OC: number;
  T: number;
}

export function pickCase(rng: Xorshift32, trial: number): Case {
  const dw = trial % 2 === 1;
  const g = trial < 2 * EDGES.length ? { ...EDGES[trial >> 1]! } : randomGeo(rng);
  if (!dw) g.mult = 1;
  if (dw) g.outC = g.inC * g.mult;
  const { conv, dw: dws } = shapes(g);
  const OC = g.outC, full = trial % 3 === 0;
  const ob = full ? 0 : rng.below(OC), oe = full ? OC : rng.int(ob + 1, OC);
  const ib = full || dw ? 0 : rng.below(g.inC), ie = full || dw ? g.inC : rng.int(ib + 1, g.inC);
  return { dw, g, s: dw ? dws : conv, blk: { ocBegin: ob, ocEnd: oe, icBegin: ib, icEnd: ie }, OC, T: g.kH * g.kW };
}

