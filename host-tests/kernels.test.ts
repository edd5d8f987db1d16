// Every C kernel against the TypeScript reference kernels on seeded random
// shapes and quantisation parameters: bit-identical outputs, and nothing
// written outside the outputs (the arenas start as identical random bytes).
import { describe, expect, it } from 'vitest';
import { fcBackwardInputScratchBytes } from '../src/core/kernels.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import { Xorshift32 } from '../src/core/rng.js';
import { Pair, randInt8 } from './support/pair.js';

const TRIALS = 60;

function shape(rng: Xorshift32) {
  return { rows: rng.int(1, 3), inFeatures: rng.int(1, 48), outFeatures: rng.int(1, 24) };
}

function block(rng: Xorshift32, inF: number, outF: number) {
  const ocBegin = rng.int(0, outF - 1), icBegin = rng.int(0, inF - 1);
  return { ocBegin, ocEnd: rng.int(ocBegin + 1, outF), icBegin, icEnd: rng.int(icBegin + 1, inF) };
}

function lrParams(rng: Xorshift32, n: number) {
  const m = Array.from({ length: n }, () => quantizeMultiplier((1 + rng.below(1000)) / 1000 * 2 ** -rng.int(0, 24), -62, 62));
  return { mult: m.map((q) => q.multiplier), shift: m.map((q) => q.shift) };
}

describe('C kernels are bit-identical to the TypeScript reference', () => {
  it('fully_connected_s8_forward (with and without bias, mask, ReLU/ReLU6 clamps)', () => {
    const rng = new Xorshift32(101);
    for (let trial = 0; trial < TRIALS; trial++) {
      const p = new Pair(rng);
      const s = shape(rng);
      const { rows: R, inFeatures: I, outFeatures: O } = s;
      const t = {
        input: p.alloc('in', 'int8', [R, I]),
        weights: p.alloc('w', 'int8', [O, I]),
        bias: p.alloc('bias', 'int32', [O]),
        output: p.alloc('out', 'int8', [R, O]),
        mask: p.alloc('mask', 'uint8', [Math.ceil((R * O) / 8)]),
        multiplier: p.alloc('mult', 'int32', [O]),
        shift: p.alloc('shift', 'int32', [O]),
      };
      p.set(t.input, randInt8(rng, R * I));
      p.set(t.weights, randInt8(rng, O * I, -127, 127));
      p.set(t.bias, Array.from({ length: O }, () => rng.int(0, 40000) - 20000));
      const q = Array.from({ length: O }, () => quantizeMultiplier((1 + rng.below(999)) / 1000 * 2 ** -rng.int(6, 14)));
      p.set(t.multiplier, q.map((x) => x.multiplier));
      p.set(t.shift, q.map((x) => x.shift));
      const zpOut = rng.int(-128, 127);
      const act = [[-128, 127], [zpOut, 127], [zpOut, Math.min(127, zpOut + 40)]][trial % 3]!;
      const useBias = trial % 4 !== 0, useMask = trial % 5 !== 0;
      const inputOffset = rng.int(-127, 128);
      p.both((k) =>
        k.fcForward({
          ...s, inputOffset, outputOffset: zpOut,
          actMin: act[0]!, actMax: act[1]!, ...t, bias: useBias ? t.bias : null, mask: useMask ? t.mask : null,
        }),
      );
      expect(p.differences(), `trial ${trial}`).toEqual([]);
    }
  });

  it('fully_connected_s8_backward_input (per-channel weight scales, normalised exponent)', () => {
    const rng = new Xorshift32(202);
    for (let trial = 0; trial < TRIALS; trial++) {
      const p = new Pair(rng);
      const s = trial === 0 ? { rows: 1, inFeatures: 5, outFeatures: 1100 } : shape(rng);
      const { rows: R, inFeatures: I, outFeatures: O } = s;
      const t = {
        wscaleMantissa: p.alloc('wscale', 'int16', [O]),
        gradOut: p.alloc('grad_out', 'int8', [R, O]),
        gradOutExp: p.alloc('grad_out_exp', 'int32', [1]),
        weights: p.alloc('w', 'int8', [O, I]),
        gradIn: p.alloc('grad_in', 'int8', [R, I]),
        gradInExp: p.alloc('grad_in_exp', 'int32', [1]),
        scratch: p.alloc('scratch', 'uint8', [fcBackwardInputScratchBytes(s)]),
      };
      p.set(t.wscaleMantissa, Array.from({ length: O }, () => rng.int(0, 32767)));
      // Small gradients sometimes, so the exponent normalisation shifts left too.
      p.set(t.gradOut, randInt8(rng, R * O, trial % 3 ? -128 : -2, trial % 3 ? 127 : 2));
      p.set(t.gradOutExp, [rng.int(-20, 0)]);
      p.set(t.weights, randInt8(rng, O * I, -127, 127));
      const wscaleExp = rng.int(-10, 2);
      p.both((k) => k.fcBackwardInput({ ...s, wscaleExp, ...t }));
      expect(p.differences([t.scratch]), `trial ${trial}`).toEqual([]);
    }
  });

  it('fully_connected_s8_backward_bias and _backward_weight on channel blocks (sparse update)', () => {
    const rng = new Xorshift32(303);
    for (let trial = 0; trial < TRIALS; trial++) {
      const p = new Pair(rng);
      const s = shape(rng);
      const { rows: R, inFeatures: I, outFeatures: O } = s;
      const b = block(rng, I, O);
      const noc = b.ocEnd - b.ocBegin, nic = b.icEnd - b.icBegin;
      const gradOut = p.alloc('grad_out', 'int8', [R, O]);
      const input = p.alloc('in', 'int8', [R, I]);
      const gradBias = p.alloc('grad_bias', 'int32', [noc]);
      const gradWeights = p.alloc('grad_w', 'int32', [noc, nic]);
      p.set(gradOut, randInt8(rng, R * O));
      p.set(input, randInt8(rng, R * I));
      const inputOffset = rng.int(-127, 128);
      p.both((k) => {
        k.fcBackwardBias({ ...s, ocBegin: b.ocBegin, ocEnd: b.ocEnd, gradOut, gradBias });
        k.fcBackwardWeight({ ...s, ...b, inputOffset, gradOut, input, gradWeights });
      });
      expect(p.differences(), `trial ${trial}`).toEqual([]);
    }
  });

  it('fused weight gradient + SGD equals backward_weight then sgd_s8_update, and matches the reference', () => {
    const rng = new Xorshift32(404);
    for (let trial = 0; trial < TRIALS; trial++) {
      const p = new Pair(rng, 1 << 17);
      const s = shape(rng);
      const { rows: R, inFeatures: I, outFeatures: O } = s;
      const b = block(rng, I, O);
      const noc = b.ocEnd - b.ocBegin, nic = b.icEnd - b.icBegin;
      const t = {
        gradOut: p.alloc('grad_out', 'int8', [R, O]),
        gradOutExp: p.alloc('grad_exp', 'int32', [1]),
        input: p.alloc('in', 'int8', [R, I]),
        lrMultiplier: p.alloc('lr_mult', 'int32', [O]),
        lrShift: p.alloc('lr_shift', 'int32', [O]),
        weights: p.alloc('w_fused', 'int8', [O, I]),
        rng: p.alloc('rng_fused', 'int32', [1]),
      };
      const w2 = p.alloc('w_unfused', 'int8', [O, I]);
      const rng2 = p.alloc('rng_unfused', 'int32', [1]);
      const grad = p.alloc('grad_w', 'int32', [noc, nic]);
      // Sparse inputs and gradients, as after ReLU and on MNIST's zero pixels.
      const inputOffset = rng.int(-127, 128);
      p.set(t.gradOut, randInt8(rng, R * O).map((v) => (rng.below(3) ? v : 0)));
      p.set(t.input, randInt8(rng, R * I).map((v) => (rng.below(3) ? v : -inputOffset)));
      p.set(t.gradOutExp, [rng.int(-16, 2)]);
      const lr = lrParams(rng, O);
      p.set(t.lrMultiplier, lr.mult);
      p.set(t.lrShift, lr.shift);
      const w0 = randInt8(rng, O * I, -127, 127);
      p.set(t.weights, w0);
      p.set(w2, w0);
      const seed = rng.next() || 1;
      p.set(t.rng, [seed]);
      p.set(rng2, [seed]);
      p.both((k) => {
        k.fcBackwardWeightSgd({ ...s, ...b, inputOffset, ...t });
        k.fcBackwardWeight({ ...s, ...b, inputOffset, gradOut: t.gradOut, input: t.input, gradWeights: grad });
        k.sgdS8Update({
          inFeatures: I, outFeatures: O, ...b, grad, gradExp: t.gradOutExp, lrMultiplier: t.lrMultiplier,
          lrShift: t.lrShift, weights: w2, rng: rng2,
        });
      });
      expect(p.differences(), `trial ${trial}`).toEqual([]);
      expect([...p.c.read(w2)]).toEqual([...p.c.read(t.weights)]);
      expect([...p.c.read(rng2)]).toEqual([...p.c.read(t.rng)]);
    }
  });

  it('sgd_s32_update (bias) with stochastic rounding', () => {
    const rng = new Xorshift32(505);
    for (let trial = 0; trial < TRIALS; trial++) {
      const p = new Pair(rng);
      const O = rng.int(1, 32);
      const ocBegin = rng.int(0, O - 1), ocEnd = rng.int(ocBegin + 1, O);
      const grad = p.alloc('grad', 'int32', [ocEnd - ocBegin]);
      const gradExp = p.alloc('grad_exp', 'int32', [1]);
      const lrMultiplier = p.alloc('lr_mult', 'int32', [O]);
      const lrShift = p.alloc('lr_shift', 'int32', [O]);
      const bias = p.alloc('bias', 'int32', [O]);
      const r = p.alloc('rng', 'int32', [1]);
      p.set(grad, Array.from({ length: ocEnd - ocBegin }, () => rng.int(-300, 300)));
      p.set(gradExp, [rng.int(-20, 4)]);
      const m = Array.from({ length: O }, () => quantizeMultiplier((1 + rng.below(1000)) * 2 ** rng.int(-10, 20), -62, 62));
      p.set(lrMultiplier, m.map((q) => q.multiplier));
      p.set(lrShift, m.map((q) => q.shift));
      // Include biases at the int32 limits: the update must saturate, not wrap.
      p.set(bias, Array.from({ length: O }, (_, c) => (c === 0 ? 2147483600 : c === 1 ? -2147483600 : rng.int(-100000, 100000))));
      p.set(r, [rng.next() || 1]);
      p.both((k) => k.sgdS32Update({ outFeatures: O, ocBegin, ocEnd, grad, gradExp, lrMultiplier, lrShift, bias, rng: r }));
      expect(p.differences(), `trial ${trial}`).toEqual([]);
    }
  });

  it('activation_s8_backward (1-bit mask)', () => {
    const rng = new Xorshift32(606);
    for (let trial = 0; trial < TRIALS; trial++) {
      const p = new Pair(rng);
      const n = rng.int(1, 300);
      const mask = p.alloc('mask', 'uint8', [Math.ceil(n / 8)]);
      const grad = p.alloc('grad', 'int8', [n]);
      p.set(mask, randInt8(rng, Math.ceil(n / 8), 0, 255));
      p.set(grad, randInt8(rng, n));
      p.both((k) => k.activationBackward(n, mask, grad));
      expect(p.differences(), `trial ${trial}`).toEqual([]);
    }
  });

  it('softmax_xent_s8_backward (integer exp, gradient and p_label)', () => {
    const rng = new Xorshift32(707);
    for (let trial = 0; trial < TRIALS; trial++) {
      const p = new Pair(rng);
      const C = trial === 0 ? 128 : rng.int(1, 20);
      const logits = p.alloc('logits', 'int8', [C]);
      const label = p.alloc('label', 'int32', [1]);
      const grad = p.alloc('grad', 'int8', [C]);
      const gradExp = p.alloc('grad_exp', 'int32', [1]);
      const pLabel = p.alloc('p_label', 'int32', [1]);
      p.set(logits, randInt8(rng, C));
      p.set(label, [rng.int(0, C - 1)]);
      const log2eScaleQ16 = rng.int(1, 1 << 23);
      p.both((k) => k.softmaxXentBackward({ classes: C, logits, log2eScaleQ16, label, grad, gradExp, pLabelQ16: pLabel }));
      expect(p.differences(), `trial ${trial}`).toEqual([]);
    }
  });
});
