// The Cortex-M4F DSP paths of the conv2d / depthwise conv2d backward kernels
// (depthwise backward_input / backward_weight with depth multiplier 1: 4
// channels per 32-bit load; conv2d backward_weight's patch-by-patch loop)
// against the TypeScript reference: random geometries (odd channel counts,
// strides 1-3, SAME/VALID, kernels 1..5, depth multipliers 1-3), random
// output-channel (and conv input-channel) blocks for the weight gradient,
// sparse and dense gradients, int8 tensors at every byte alignment. One
// recorded trace, replayed on the DSP and the portable M4 images: grad_in,
// its exponent and grad_w bit-identical to the reference.
import { describe, expect, it } from 'vitest';
import { convGeometry, type Padding } from '../src/core/conv-geometry.js';
import { Kernels, conv2dBackwardInputScratchBytes, depthwiseConv2dBackwardInputScratchBytes } from '../src/core/kernels.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import { TraceWriter } from '../src/core/trace.js';
import { Placer, Tee, itReplaysOnM4Images, type Expected } from './support/dsp-replay.js';

const CASES = 80;
const ARENA = 128 * 1024;

interface Geo { batch: number; inH: number; inW: number; inC: number; oc: number; mult: number; k: number; kW: number; s: number; sW: number; pad: Padding }

describe('conv2d / depthwise conv2d backward: DSP paths on Cortex-M4F = TypeScript reference', () => {
  const rng = new Xorshift32(4242);
  const trace = new TraceWriter(1 << 20);
  const expected: Expected[] = [];
  let calls = 0;
  for (let n = 0; n < CASES; n++) {
    const dw = n % 2 === 1;
    const fixed: Geo[] = [
      { batch: 1, inH: 24, inW: 24, inC: 1, oc: 8, mult: 1, k: 3, kW: 3, s: 2, sW: 2, pad: 'same' }, // person_detect layer 1, reduced
      { batch: 1, inH: 12, inW: 12, inC: 8, oc: 8, mult: 1, k: 3, kW: 3, s: 1, sW: 1, pad: 'same' },
      { batch: 1, inH: 12, inW: 12, inC: 16, oc: 16, mult: 1, k: 3, kW: 3, s: 2, sW: 2, pad: 'same' },
      { batch: 1, inH: 6, inW: 6, inC: 36, oc: 12, mult: 1, k: 3, kW: 3, s: 1, sW: 1, pad: 'same' },
      { batch: 2, inH: 5, inW: 6, inC: 7, oc: 33, mult: 1, k: 3, kW: 2, s: 1, sW: 1, pad: 'valid' },
      { batch: 1, inH: 3, inW: 3, inC: 13, oc: 5, mult: 1, k: 3, kW: 3, s: 1, sW: 1, pad: 'same' },
      { batch: 1, inH: 7, inW: 5, inC: 12, oc: 4, mult: 1, k: 5, kW: 5, s: 3, sW: 2, pad: 'same' },
      { batch: 1, inH: 4, inW: 4, inC: 40, oc: 3, mult: 1, k: 1, kW: 1, s: 2, sW: 2, pad: 'valid' },
    ];
    const f = n < fixed.length * 2 ? fixed[n >> 1] : undefined;
    const inH = rng.int(1, 12), inW = rng.int(1, 12), k = rng.int(1, 5), kW = rng.int(1, 5);
    const g: Geo = f ?? {
      batch: rng.int(1, 2), inH, inW, inC: [1, 3, 4, 8, rng.int(1, 21)][rng.below(5)]!, oc: rng.int(1, 20),
      mult: rng.below(3) === 0 ? rng.int(2, 3) : 1, k, kW, s: rng.int(1, 3), sW: rng.int(1, 3),
      pad: rng.below(3) === 0 && inH >= k && inW >= kW ? 'valid' : 'same',
    };
    if (!dw) g.mult = 1;
    const geo = convGeometry(g.inH, g.inW, g.k, g.kW, g.s, g.sW, g.pad);
    const OC = dw ? g.inC * g.mult : g.oc;
    const shape = { batch: g.batch, inH: g.inH, inW: g.inW, inC: g.inC, outH: geo.outH, outW: geo.outW, kH: g.k, kW: g.kW,
      strideH: g.s, strideW: g.sW, padH: geo.padH, padW: geo.padW };
    const conv = { ...shape, outC: OC };
    const dws = { ...shape, depthMultiplier: g.mult };
    const nIn = g.batch * g.inH * g.inW * g.inC, nOut = g.batch * geo.outH * geo.outW * OC;
    const nW = dw ? g.k * g.kW * OC : OC * g.k * g.kW * g.inC;
    // Weight-gradient block: the full range every third case, else random.
    const full = n % 3 === 0;
    const ob = full ? 0 : rng.below(OC), oe = full ? OC : rng.int(ob + 1, OC);
    const ib = full || dw ? 0 : rng.below(g.inC), ie = full || dw ? g.inC : rng.int(ib + 1, g.inC);
    const nGw = dw ? g.k * g.kW * (oe - ob) : (oe - ob) * g.k * g.kW * (ie - ib);
    const sb = dw ? depthwiseConv2dBackwardInputScratchBytes(dws) : conv2dBackwardInputScratchBytes(conv);
    const placer = new Placer();
    const place = placer.place.bind(placer);
    const t = {
      input: place('in', 'int8', nIn, rng.int(0, 3)),
      weights: place('w', 'int8', nW, rng.int(0, 3)),
      gradOut: place('go', 'int8', nOut, rng.int(0, 3)),
      gradOutExp: place('go.exp', 'int32', 1),
      ws: place('ws', 'int16', OC),
      gradIn: place('gi', 'int8', nIn, rng.int(0, 3)),
      gradInExp: place('gi.exp', 'int32', 1),
      gradWeights: place('gw', 'int32', nGw),
      scratch: place('scratch', 'uint8', sb),
    };
    if (placer.top > ARENA) throw new Error(`case ${n} too large for the arena`);
    const ref = new ReferenceDispatch(new ArrayBuffer(ARENA));
    trace.arena(ARENA);
    const kern = new Kernels(new Tee(ref, trace));
    const inputOffset = [-127, 128, 0][n % 7] ?? rng.int(-127, 128);
    const sparse = n % 4 === 2; // mostly zero gradients: the skipped groups
    const i8 = (count: number, lo = -128) => Uint8Array.from({ length: count }, () => Math.max(lo, rng.int(-128, 127)) & 0xff);
    kern.write(t.input, i8(nIn));
    kern.write(t.weights, i8(nW, -127));
    kern.write(t.gradOut, Uint8Array.from({ length: nOut }, () => (sparse && rng.below(8) !== 0 ? 0 : rng.int(-128, 127)) & 0xff));
    kern.writeInt32(t.gradOutExp, [rng.int(-20, 0)]);
    kern.writeInt16(t.ws, Array.from({ length: OC }, () => (n % 5 === 4 ? rng.int(0, 32767) : rng.int(16384, 32767))));
    const bi = { wscaleMantissa: t.ws, wscaleExp: rng.int(-10, 0), gradOut: t.gradOut, gradOutExp: t.gradOutExp, weights: t.weights,
      gradIn: t.gradIn, gradInExp: t.gradInExp, scratch: t.scratch };
    const bw = { ocBegin: ob, ocEnd: oe, inputOffset, gradOut: t.gradOut, input: t.input, gradWeights: t.gradWeights };
    if (dw) {
      kern.depthwiseConv2dBackwardInput({ ...dws, ...bi });
      kern.depthwiseConv2dBackwardWeight({ ...dws, ...bw });
    } else {
      kern.conv2dBackwardInput({ ...conv, ...bi });
      kern.conv2dBackwardWeight({ ...conv, ...bw, icBegin: ib, icEnd: ie });
    }
    calls += 2;
    const what = `case ${n} ${dw ? 'depthwise' : 'conv2d'} ${JSON.stringify(g)}, block oc [${ob}, ${oe}) ic [${ib}, ${ie}), input_offset ${inputOffset}`;
    for (const x of [t.gradIn, t.gradInExp, t.gradWeights]) {
      trace.read(x.offset, x.bytes);
      expected.push({ offset: x.offset, bytes: ref.read(x.offset, x.bytes), what: `${what}, ${x.name}` });
    }
  }
  const bytes = trace.end();

  itReplaysOnM4Images(`${CASES} random backward geometries`, bytes, calls, expected);
});
