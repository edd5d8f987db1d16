// The fused weight-gradient + LQM kernels of convolutions (ops 39-40:
// conv2d_s8_backward_weight_lqm, depthwise_conv2d_s8_backward_weight_lqm):
//  - the C core (Node addon) bit-identical to the TypeScript reference over
//    several steps from a random momentum state, on the geometries of the SGD
//    ops' test (strides 1-3, SAME/VALID padding, kernels larger than the
//    image, pointwise convs through the FC kernel, patches beyond the 256-entry
//    gradient tile, depth multipliers 1-3), random channel blocks, LQM
//    settings across their ranges and step exponents from no step to
//    saturation: weights, packed state bytes and rng state;
//  - the same calls replayed on the Cortex-M4F images (DSP and portable).
// Bad arguments: clear KernelArgumentErrors naming the tensor or the value,
// and the C core's status for what only it checks at run time.
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../src/core/arena.js';
import { KernelArgumentError, Kernels, type ConvShape, type DepthwiseConv2dShape, type LqmSettings } from '../src/core/kernels.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import { TraceWriter } from '../src/core/trace.js';
import { NodeDispatch } from '../src/node/addon.js';
import { Placer, Tee, itReplaysOnM4Images, type Expected } from './support/dsp-replay.js';
import { Pair, randInt8 } from './support/pair.js';
import { type Case, EDGES, pickCase, shapes } from './support/conv-cases.js';

// LQM settings across their ranges (bits 2-5, the window's edges, decay 0-15).
function lqmSettings(rng: Xorshift32, trial: number): LqmSettings {
  if (trial % 4 === 0) return { bits: 5, emin: -12, emax: 2, decay: 3 }; // the shipped default
  const bits = rng.int(2, 5), emin = rng.int(-24, 0);
  const top = Math.min(6, emin + 2 ** (bits - 1) - 2);
  return { bits, emin, emax: rng.int(emin, top), decay: rng.int(0, 15) };
}

const stateBytes = (c: Case, bits: number) => Math.ceil((bits * c.OC * c.T * (c.dw ? 1 : c.g.inC)) / 8);

// The fused call's tensors in one layout (the weights and state last: an
// overrun of either shows as a difference in the other or past the layout).
function fusedTensors(alloc: (name: string, dtype: 'int8' | 'uint8' | 'int32', count: number) => Tensor, c: Case, bits: number) {
  const { g, OC, T } = c;
  return {
    gradOut: alloc('grad_out', 'int8', c.s.batch * c.s.outH * c.s.outW * OC),
    gradOutExp: alloc('grad_out.exp', 'int32', 1),
    input: alloc('in', 'int8', g.batch * g.inH * g.inW * g.inC),
    lqmShift: alloc('lqm_shift', 'int32', OC),
    rng: alloc('rng', 'int32', 1),
    state: alloc('state', 'uint8', stateBytes(c, bits)),
    weights: alloc('w', 'int8', c.dw ? T * OC : OC * T * g.inC),
  };
}

type FusedTensors = ReturnType<typeof fusedTensors>;

function fusedCall(k: Kernels, c: Case, t: FusedTensors, p: LqmSettings, inputOffset: number): void {
  if (c.dw) {
    k.depthwiseConv2dBackwardWeightLqm({ ...(c.s as DepthwiseConv2dShape), ...p, ocBegin: c.blk.ocBegin, ocEnd: c.blk.ocEnd, inputOffset, ...t });
  } else k.conv2dBackwardWeightLqm({ ...(c.s as ConvShape), ...p, ...c.blk, inputOffset, ...t });
}

// Per-channel step exponents and a gradient exponent: S = exp + shift - emin
// from below -32 (no step) through the window to saturation.
function steps(rng: Xorshift32, n: number, trial: number): { shift: number[]; gExp: number } {
  const wide = trial % 5 === 3;
  return { shift: Array.from({ length: n }, () => (wide ? rng.int(-64, 64) : rng.int(-24, 4))), gExp: rng.int(-20, 0) };
}

const TRIALS = 2 * EDGES.length + 60;
const STEPS = 3;

describe('fused conv / depthwise weight gradient + LQM: C = TypeScript reference', () => {
  it(`bit-identical weights, state bytes and rng over ${STEPS} steps on random geometries, blocks and settings`, () => {
    const rng = new Xorshift32(3940);
    let changedW = 0, changedState = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      const c = pickCase(rng, trial);
      const p = lqmSettings(rng, trial);
      const pair = new Pair(rng, 1 << 17);
      const t = fusedTensors((name, dtype, n) => pair.alloc(name, dtype, [n]), c, p.bits);
      const st = steps(rng, c.OC, trial);
      pair.set(t.lqmShift, st.shift);
      pair.set(t.weights, randInt8(rng, t.weights.bytes, -127, 127));
      // A random momentum state, or zero (a fresh plan) on every third trial.
      pair.set(t.state, trial % 3 === 1 ? new Array<number>(t.state.bytes).fill(0) : randInt8(rng, t.state.bytes, 0, 255));
      pair.set(t.rng, [rng.int(1, 0x7fffffff)]);
      const w0 = pair.c.readInt8(t.weights), s0 = pair.c.read(t.state).slice();
      const what = `trial ${trial} ${c.dw ? 'depthwise' : 'conv2d'} ${JSON.stringify(c.g)} block ${JSON.stringify(c.blk)} ${JSON.stringify(p)}`;
      for (let step = 0; step < STEPS; step++) {
        const sparse = (trial + step) % 4 === 2;
        pair.set(t.gradOut, randInt8(rng, t.gradOut.bytes).map((v) => (sparse && rng.below(6) ? 0 : v)));
        pair.set(t.input, randInt8(rng, t.input.bytes));
        pair.set(t.gradOutExp, [st.gExp + rng.int(-2, 2)]);
        const inputOffset = [-127, 128, 0][trial % 5] ?? rng.int(-127, 128);
        pair.both((k) => fusedCall(k, c, t, p, inputOffset));
        expect(pair.differences(), `${what} step ${step}`).toEqual([]);
      }
      if (pair.c.readInt8(t.weights).some((v, i) => v !== w0[i])) changedW++;
      if (pair.c.read(t.state).some((v, i) => v !== s0[i])) changedState++;
    }
    expect(changedW, 'cases whose updates changed a weight').toBeGreaterThan(TRIALS / 2);
    expect(changedState, 'cases whose updates changed the state').toBeGreaterThan(TRIALS * 0.8);
  });
});

describe('fused conv / depthwise weight gradient + LQM: bad arguments', () => {
  const s = shapes({ batch: 1, inH: 6, inW: 6, inC: 4, outC: 5, mult: 2, kH: 3, kW: 3, s: 2, sW: 2, pad: 'same' });
  const at = (name: string, dtype: 'int8' | 'uint8' | 'int32', n: number, offset: number): Tensor =>
    ({ name, dtype, shape: [n], offset, bytes: n * (dtype === 'int32' ? 4 : 1) });
  const lqm = { bits: 5, emin: -12, emax: 2, decay: 3 };
  // conv: 5 x 3x3x4 = 180 weights, 5-bit state 113 bytes; grad_out 1x3x3x5
  const conv = () => ({
    ...s.conv, ...lqm, ocBegin: 0, ocEnd: 5, icBegin: 0, icEnd: 4, inputOffset: 3, gradOut: at('go', 'int8', 45, 0),
    gradOutExp: at('ge', 'int32', 1, 48), input: at('x', 'int8', 144, 64), lqmShift: at('shift', 'int32', 5, 208),
    state: at('state', 'uint8', 113, 240), weights: at('w', 'int8', 180, 360), rng: at('rng', 'int32', 1, 544),
  });
  // depthwise: 3x3x8 = 72 weights, 5-bit state 45 bytes; grad_out 1x3x3x8
  const dw = () => ({
    ...s.dw, ...lqm, ocBegin: 0, ocEnd: 8, inputOffset: 0, gradOut: at('go', 'int8', 72, 0), gradOutExp: at('ge', 'int32', 1, 72),
    input: at('x', 'int8', 144, 80), lqmShift: at('shift', 'int32', 8, 224), state: at('state', 'uint8', 45, 256),
    weights: at('w', 'int8', 72, 304), rng: at('rng', 'int32', 1, 376),
  });

  it('Kernels names the tensor, the range or the value', () => {
    const k = new Kernels(new ReferenceDispatch(new ArrayBuffer(1024)));
    expect(() => k.conv2dBackwardWeightLqm({ ...conv(), state: at('state', 'uint8', 112, 240) }))
      .toThrow(/conv2d_s8_backward_weight_lqm: state tensor "state" has 112 bytes, expected 113 \(5 bits x 5x36 parameters\)/);
    expect(() => k.conv2dBackwardWeightLqm({ ...conv(), bits: 6 })).toThrow(/bits/);
    expect(() => k.conv2dBackwardWeightLqm({ ...conv(), emax: 4 })).toThrow(/emax/);
    expect(() => k.conv2dBackwardWeightLqm({ ...conv(), icEnd: 5 })).toThrow(/input-channel range \[0, 5\) is not inside \[0, 4\)/);
    expect(() => k.conv2dBackwardWeightLqm({ ...conv(), lqmShift: at('shift', 'int32', 4, 208) })).toThrow(/lqm shift/);
    expect(() => k.conv2dBackwardWeightLqm({ ...conv(), inputOffset: 200 })).toThrow(/input_offset is 200/);
    expect(() => k.depthwiseConv2dBackwardWeightLqm({ ...dw(), ocEnd: 9 })).toThrow(/output-channel range \[0, 9\) is not inside \[0, 8\)/);
    expect(() => k.depthwiseConv2dBackwardWeightLqm({ ...dw(), state: at('state', 'uint8', 72, 256) }))
      .toThrow(/depthwise_conv2d_s8_backward_weight_lqm: state tensor "state" has 72 bytes, expected 45 \(5 bits x 8x9 parameters\)/);
    expect(() => k.depthwiseConv2dBackwardWeightLqm({ ...dw(), decay: 16 })).toThrow(/decay/);
    expect(() => k.depthwiseConv2dBackwardWeightLqm({ ...dw(), weights: at('w', 'int8', 80, 304) })).toThrow(KernelArgumentError);
  });

  it('a step exponent out of range, a zero rng state or a bad raw argument is an error on both cores', () => {
    for (const dispatch of [new NodeDispatch(new ArrayBuffer(1024)), new ReferenceDispatch(new ArrayBuffer(1024))]) {
      const k = new Kernels(dispatch);
      for (const [call, a, n] of [
        [(x: ReturnType<typeof conv>) => k.conv2dBackwardWeightLqm(x), conv(), 5],
        [(x: ReturnType<typeof dw>) => k.depthwiseConv2dBackwardWeightLqm(x), dw(), 8],
      ] as const) {
        const run = call as (x: typeof a) => void;
        k.writeInt32(a.lqmShift, Array.from({ length: n }, (_, i) => (i === 2 ? 65 : 0)));
        k.writeInt32(a.rng, [1]);
        expect(() => run(a), dispatch.name).toThrow(/quantisation parameter out of range|lqm shift\[2\] is 65/);
        k.writeInt32(a.lqmShift, new Array<number>(n).fill(0));
        k.writeInt32(a.rng, [0]);
        expect(() => run(a), dispatch.name).toThrow(/quantisation parameter out of range|rng state is 0/);
        k.writeInt32(a.rng, [1]);
        expect(() => run(a), dispatch.name).not.toThrow();
      }
      // What Kernels does not get to check: the raw state size and overlapping tensors.
      const good = Int32Array.of(1, 6, 6, 4, 3, 3, 5, 3, 3, 2, 2, 0, 0, 0, 5, 0, 4, 3, 0, 48, 64, 208, 5, -12, 2, 3, 240, 113, 360, 544);
      expect(() => dispatch.call(39, good), dispatch.name).not.toThrow();
      expect(() => dispatch.call(39, Int32Array.from(good).fill(114, 27, 28)), dispatch.name).toThrow(/bad dimensions|state_bytes is 114/);
      if (dispatch instanceof NodeDispatch) {
        expect(() => dispatch.call(39, Int32Array.from(good).fill(300, 26, 27))).toThrow(/overlaps/); // state over w
        expect(() => dispatch.call(40, good)).toThrow(/wrong number of arguments/); // 30 for op 40's 28
      }
    }
  });
});

describe('fused conv / depthwise weight gradient + LQM on the Cortex-M4F images', () => {
  const rng = new Xorshift32(4041);
  const ARENA = 160 * 1024;
  const trace = new TraceWriter(1 << 20);
  const expected: Expected[] = [];
  let calls = 0;
  for (let trial = 0; trial < 30; trial++) {
    const c = pickCase(rng, trial);
    const p = lqmSettings(rng, trial);
    const placer = new Placer();
    const t = fusedTensors((name, dtype, n) => placer.place(name, dtype, n, dtype === 'int32' ? 0 : rng.int(0, 3)), c, p.bits);
    if (placer.top > ARENA) throw new Error(`case ${trial} too large for the arena`);
    const ref = new ReferenceDispatch(new ArrayBuffer(ARENA));
    trace.arena(ARENA);
    const k = new Kernels(new Tee(ref, trace));
    const bytes = (n: number, lo = -128, hi = 127) => Uint8Array.from({ length: n }, () => rng.int(lo, hi) & 0xff);
    const st = steps(rng, c.OC, trial);
    k.writeInt32(t.lqmShift, st.shift);
    k.write(t.weights, bytes(t.weights.bytes, -127));
    k.write(t.state, trial % 3 === 1 ? new Uint8Array(t.state.bytes) : bytes(t.state.bytes, 0, 255));
    k.writeInt32(t.rng, [rng.int(1, 0x7fffffff)]);
    for (let step = 0; step < 2; step++) {
      k.write(t.gradOut, bytes(t.gradOut.bytes).map((v) => ((trial + step) % 4 === 2 && rng.below(6) ? 0 : v)));
      k.write(t.input, bytes(t.input.bytes));
      k.writeInt32(t.gradOutExp, [st.gExp]);
      fusedCall(k, c, t, p, [-127, 128, 0][trial % 5] ?? rng.int(-127, 128));
      calls++;
    }
    const what = `case ${trial} ${c.dw ? 'depthwise' : 'conv2d'} ${JSON.stringify(c.g)} block ${JSON.stringify(c.blk)} ${JSON.stringify(p)}`;
    for (const x of [t.weights, t.state, t.rng]) {
      trace.read(x.offset, x.bytes);
      expected.push({ offset: x.offset, bytes: ref.read(x.offset, x.bytes), what: `${what}, ${x.name}` });
    }
  }
  itReplaysOnM4Images(`${calls} fused weight-gradient LQM updates`, trace.end(), calls, expected);
});
