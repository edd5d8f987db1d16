// The fused weight-gradient + integer SGD kernels of convolutions (ops 37-38:
// conv2d_s8_backward_weight_sgd, depthwise_conv2d_s8_backward_weight_sgd):
//  - the C core (Node addon) bit-identical to the TypeScript reference on
//    random geometries (strides 1-3, SAME/VALID, kernels larger than the
//    image, pointwise convs through the FC kernel, patches beyond the C
//    kernels' 256-entry gradient tile, depth multipliers 1-3), random channel
//    blocks, sparse and dense gradients, learning rates and exponents that put
//    R = 31 - shift - exp on every side of the C kernels' fast paths;
//  - the fused result equal to the weight-gradient kernel followed by the
//    unfused update (sgd_s8_update on the (out, k_h*k_w*in) view of conv
//    weights, one call per channel and tap when input channels are left out;
//    on the transposed (out_c, k_h*k_w) depthwise weights), weights and rng;
//  - the same calls replayed on the Cortex-M4F images (DSP and portable).
// Bad arguments: clear KernelArgumentErrors naming the tensor or the value.
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../src/core/arena.js';
import { KernelArgumentError, Kernels, type ConvShape, type DepthwiseConv2dShape } from '../src/core/kernels.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import { TraceWriter } from '../src/core/trace.js';
import { NodeDispatch } from '../src/node/addon.js';
import { Placer, Tee, itReplaysOnM4Images, type Expected } from './support/dsp-replay.js';
import { Pair, randInt8 } from './support/pair.js';
import { type Case, EDGES, pickCase, shapes, view } from './support/conv-cases.js';

// Learning rates whose R = 31 - shift - exp falls on both sides of the
// C kernels' fast ranges ([1, 62], DSP [32, 62]) and on their ends.
function lrTables(rng: Xorshift32, n: number, trial: number) {
  const lr = Array.from({ length: n }, () => quantizeMultiplier(((1 + rng.below(1000)) / 1000) * 2 ** -rng.int(-3, 40), -62, 62));
  const gExp = trial % 3 === 2 ? rng.int(-4, 8) : rng.int(-20, -4);
  return { multiplier: lr.map((x) => x.multiplier), shift: lr.map((x) => x.shift), gExp };
}

// The fused call's tensors in one layout.
function fusedTensors(alloc: (name: string, dtype: 'int8' | 'int32', count: number) => Tensor, c: Case) {
  const { g, OC, T } = c;
  return {
    gradOut: alloc('grad_out', 'int8', c.s.batch * c.s.outH * c.s.outW * OC),
    gradOutExp: alloc('grad_out.exp', 'int32', 1),
    input: alloc('in', 'int8', g.batch * g.inH * g.inW * g.inC),
    lrMultiplier: alloc('lr.multiplier', 'int32', OC),
    lrShift: alloc('lr.shift', 'int32', OC),
    weights: alloc('w', 'int8', c.dw ? T * OC : OC * T * g.inC),
    rng: alloc('rng', 'int32', 1),
  };
}

type FusedTensors = ReturnType<typeof fusedTensors>;

function fusedCall(k: Kernels, c: Case, t: FusedTensors, inputOffset: number): void {
  if (c.dw) k.depthwiseConv2dBackwardWeightSgd({ ...(c.s as DepthwiseConv2dShape), ocBegin: c.blk.ocBegin, ocEnd: c.blk.ocEnd, inputOffset, ...t });
  else k.conv2dBackwardWeightSgd({ ...(c.s as ConvShape), ...c.blk, inputOffset, ...t });
}

const TRIALS = 2 * EDGES.length + 60;

describe('fused conv / depthwise weight gradient + SGD: C = TypeScript reference', () => {
  it('bit-identical weights and rng state on random geometries, blocks and learning rates', () => {
    const rng = new Xorshift32(3737);
    let changed = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      const c = pickCase(rng, trial);
      const p = new Pair(rng, 1 << 17);
      const t = fusedTensors((name, dtype, n) => p.alloc(name, dtype, [n]), c);
      const sparse = trial % 4 === 2;
      p.set(t.gradOut, randInt8(rng, t.gradOut.bytes).map((v) => (sparse && rng.below(6) ? 0 : v)));
      p.set(t.input, randInt8(rng, t.input.bytes));
      p.set(t.weights, randInt8(rng, t.weights.bytes, -127, 127));
      const lr = lrTables(rng, c.OC, trial);
      p.set(t.lrMultiplier, lr.multiplier);
      p.set(t.lrShift, lr.shift);
      p.set(t.gradOutExp, [lr.gExp]);
      p.set(t.rng, [rng.int(1, 0x7fffffff)]);
      const inputOffset = [-127, 128, 0][trial % 5] ?? rng.int(-127, 128);
      const before = p.c.readInt8(t.weights);
      p.both((k) => fusedCall(k, c, t, inputOffset));
      const what = `trial ${trial} ${c.dw ? 'depthwise' : 'conv2d'} ${JSON.stringify(c.g)} block ${JSON.stringify(c.blk)}`;
      expect(p.differences(), what).toEqual([]);
      if (p.c.readInt8(t.weights).some((v, i) => v !== before[i])) changed++;
    }
    expect(changed, 'calls whose update changed a weight').toBeGreaterThan(TRIALS / 2);
  });

  it('equals the weight-gradient kernel followed by sgd_s8_update (C fused, reference unfused)', () => {
    const rng = new Xorshift32(3838);
    for (let trial = 0; trial < TRIALS; trial++) {
      const c = pickCase(rng, trial);
      const { g, OC, T, blk } = c;
      const p = new Pair(rng, 1 << 18);
      const t = fusedTensors((name, dtype, n) => p.alloc(name, dtype, [n]), c);
      const noc = blk.ocEnd - blk.ocBegin, nic = blk.icEnd - blk.icBegin;
      const gw = p.alloc('grad_w', 'int32', [c.dw ? T * noc : noc * T * nic]);
      const wT = p.alloc('w transposed', 'int8', [c.dw ? OC * T : 1]);
      const gwT = p.alloc('grad_w transposed', 'int32', [c.dw ? noc * T : 1]);
      p.set(t.gradOut, randInt8(rng, t.gradOut.bytes).map((v) => (trial % 4 === 2 && rng.below(6) ? 0 : v)));
      p.set(t.input, randInt8(rng, t.input.bytes));
      p.set(t.weights, randInt8(rng, t.weights.bytes, -127, 127));
      const lr = lrTables(rng, OC, trial);
      p.set(t.lrMultiplier, lr.multiplier);
      p.set(t.lrShift, lr.shift);
      p.set(t.gradOutExp, [lr.gExp]);
      p.set(t.rng, [rng.int(1, 0x7fffffff)]);
      const inputOffset = rng.int(-127, 128);
      fusedCall(p.c, c, t, inputOffset);
      const k = p.ref;
      const upd = { gradExp: t.gradOutExp, lrMultiplier: t.lrMultiplier, lrShift: t.lrShift, rng: t.rng };
      if (c.dw) {
        k.depthwiseConv2dBackwardWeight({ ...(c.s as DepthwiseConv2dShape), ocBegin: blk.ocBegin, ocEnd: blk.ocEnd, inputOffset,
          gradOut: t.gradOut, input: t.input, gradWeights: gw });
        const w = k.readInt8(t.weights), gwv = k.readInt32(gw);
        k.write(wT, Uint8Array.from({ length: OC * T }, (_, i) => w[(i % T) * OC + Math.floor(i / T)]! & 0xff));
        k.writeInt32(gwT, Array.from({ length: noc * T }, (_, i) => gwv[(i % T) * noc + Math.floor(i / T)]!));
        k.sgdS8Update({ inFeatures: T, outFeatures: OC, ocBegin: blk.ocBegin, ocEnd: blk.ocEnd, icBegin: 0, icEnd: T, grad: gwT,
          weights: { ...wT, shape: [OC, T] }, ...upd });
        const wt = k.readInt8(wT);
        k.write(t.weights, Uint8Array.from({ length: OC * T }, (_, i) => wt[(i % OC) * T + Math.floor(i / OC)]! & 0xff));
      } else {
        k.conv2dBackwardWeight({ ...(c.s as ConvShape), ...blk, inputOffset, gradOut: t.gradOut, input: t.input, gradWeights: gw });
        const K = T * g.inC, weights = { ...t.weights, shape: [OC, K] };
        if (nic === g.inC) k.sgdS8Update({ inFeatures: K, outFeatures: OC, ...blk, icBegin: 0, icEnd: K, grad: gw, weights, ...upd });
        else {
          for (let ch = blk.ocBegin; ch < blk.ocEnd; ch++) {
            for (let tap = 0; tap < T; tap++) {
              const at = gw.offset + 4 * ((ch - blk.ocBegin) * T * nic + tap * nic);
              k.sgdS8Update({ inFeatures: K, outFeatures: OC, ocBegin: ch, ocEnd: ch + 1, icBegin: tap * g.inC + blk.icBegin,
                icEnd: tap * g.inC + blk.icEnd, grad: view(gw, at, [nic], 4 * nic), weights, ...upd });
            }
          }
        }
      }
      const what = `trial ${trial} ${c.dw ? 'depthwise' : 'conv2d'} ${JSON.stringify(c.g)} block ${JSON.stringify(blk)}`;
      expect(Array.from(p.c.readInt8(t.weights)), what).toEqual(Array.from(p.ref.readInt8(t.weights)));
      expect(p.c.readInt32(t.rng)[0], what).toBe(p.ref.readInt32(t.rng)[0]);
    }
  });
});

describe('fused conv / depthwise weight gradient + SGD: bad arguments', () => {
  const s = shapes({ batch: 1, inH: 6, inW: 6, inC: 4, outC: 5, mult: 2, kH: 3, kW: 3, s: 1, sW: 1, pad: 'same' });
  const at = (name: string, dtype: 'int8' | 'int32', n: number, offset: number): Tensor =>
    ({ name, dtype, shape: [n], offset, bytes: n * (dtype === 'int32' ? 4 : 1) });
  const conv = () => ({
    ...s.conv, ocBegin: 0, ocEnd: 5, icBegin: 0, icEnd: 4, inputOffset: 3, gradOut: at('go', 'int8', 180, 0),
    gradOutExp: at('ge', 'int32', 1, 192), input: at('x', 'int8', 144, 256), lrMultiplier: at('m', 'int32', 5, 400),
    lrShift: at('s', 'int32', 5, 432), weights: at('w', 'int8', 180, 464), rng: at('rng', 'int32', 1, 656),
  });
  it('Kernels names the tensor, the range or the value', () => {
    const k = new Kernels(new ReferenceDispatch(new ArrayBuffer(1024)));
    expect(() => k.conv2dBackwardWeightSgd({ ...conv(), weights: at('w', 'int8', 179, 464) })).toThrow(/conv2d_s8_backward_weight_sgd: weights tensor "w"/);
    expect(() => k.conv2dBackwardWeightSgd({ ...conv(), icEnd: 5 })).toThrow(/input-channel range \[0, 5\) is not inside \[0, 4\)/);
    expect(() => k.conv2dBackwardWeightSgd({ ...conv(), inputOffset: 200 })).toThrow(/input_offset is 200/);
    expect(() => k.conv2dBackwardWeightSgd({ ...conv(), lrShift: at('s', 'int32', 4, 432) })).toThrow(KernelArgumentError);
    const dw = { ...s.dw, ocBegin: 0, ocEnd: 8, inputOffset: 0, gradOut: at('go', 'int8', 288, 0), gradOutExp: at('ge', 'int32', 1, 288),
      input: at('x', 'int8', 144, 296), lrMultiplier: at('m', 'int32', 8, 440), lrShift: at('s', 'int32', 8, 472),
      weights: at('w', 'int8', 72, 504), rng: at('rng', 'int32', 1, 576) };
    expect(() => k.depthwiseConv2dBackwardWeightSgd({ ...dw, ocEnd: 9 })).toThrow(/output-channel range \[0, 9\) is not inside \[0, 8\)/);
    expect(() => k.depthwiseConv2dBackwardWeightSgd({ ...dw, weights: at('w', 'int8', 80, 504) })).toThrow(/weights tensor "w" .* expected int8\[1x3x3x8\]/);
  });
  it('a learning rate out of range or a zero rng state is an error on both cores', () => {
    for (const dispatch of [new NodeDispatch(new ArrayBuffer(1024)), new ReferenceDispatch(new ArrayBuffer(1024))]) {
      const k = new Kernels(dispatch);
      const a = conv();
      k.writeInt32(a.lrShift, [0, 0, 63, 0, 0]);
      k.writeInt32(a.rng, [1]);
      expect(() => k.conv2dBackwardWeightSgd(a), dispatch.name).toThrow(/quantisation parameter out of range|lr\[2\] is multiplier 0, shift 63/);
      k.writeInt32(a.lrShift, [0, 0, 0, 0, 0]);
      k.writeInt32(a.rng, [0]);
      expect(() => k.conv2dBackwardWeightSgd(a), dispatch.name).toThrow(/quantisation parameter out of range|rng state is 0/);
    }
  });
});

describe('fused conv / depthwise weight gradient + SGD on the Cortex-M4F images', () => {
  const rng = new Xorshift32(3939);
  const ARENA = 160 * 1024;
  const trace = new TraceWriter(1 << 20);
  const expected: Expected[] = [];
  let calls = 0;
  for (let trial = 0; trial < 40; trial++) {
    const c = pickCase(rng, trial);
    const placer = new Placer();
    const t = fusedTensors((name, dtype, n) => placer.place(name, dtype, n, dtype === 'int8' ? rng.int(0, 3) : 0), c);
    if (placer.top > ARENA) throw new Error(`case ${trial} too large for the arena`);
    const ref = new ReferenceDispatch(new ArrayBuffer(ARENA));
    trace.arena(ARENA);
    const k = new Kernels(new Tee(ref, trace));
    const i8 = (n: number, lo = -128) => Uint8Array.from({ length: n }, () => (trial % 4 === 2 && rng.below(6) ? 0 : rng.int(lo, 127)) & 0xff);
    k.write(t.gradOut, i8(t.gradOut.bytes));
    k.write(t.input, i8(t.input.bytes));
    k.write(t.weights, i8(t.weights.bytes, -127));
    const lr = lrTables(rng, c.OC, trial);
    k.writeInt32(t.lrMultiplier, lr.multiplier);
    k.writeInt32(t.lrShift, lr.shift);
    k.writeInt32(t.gradOutExp, [lr.gExp]);
    k.writeInt32(t.rng, [rng.int(1, 0x7fffffff)]);
    fusedCall(k, c, t, [-127, 128, 0][trial % 5] ?? rng.int(-127, 128));
    calls++;
    const what = `case ${trial} ${c.dw ? 'depthwise' : 'conv2d'} ${JSON.stringify(c.g)} block ${JSON.stringify(c.blk)}`;
    for (const x of [t.weights, t.rng]) {
      trace.read(x.offset, x.bytes);
      expected.push({ offset: x.offset, bytes: ref.read(x.offset, x.bytes), what: `${what}, ${x.name}` });
    }
  }
  itReplaysOnM4Images('40 fused weight-gradient updates', trace.end(), calls, expected);
});
