// The Cortex-M4F DSP paths of the fully-connected backward kernels
// (fully_connected_s8_backward_input, _backward_weight, _backward_weight_sgd:
// SMLAD over pairs of output channels / rows, SMULBB/SMULTB outer products)
// against the TypeScript reference: random shapes (rows 1..40, in and out
// 1..300 with every tail), random blocks, offsets, weight scales and
// learning rates, int8 tensors at every byte alignment; then families aimed
// at the DSP paths' chunking (rows 1 with in > 512, hundreds of rows, odd row
// counts, tiny shapes). One recorded trace replayed on the DSP image and on
// the portable M4 image: every output bit-identical to the reference.
import { describe, expect, it } from 'vitest';
import { type Tensor } from '../src/core/arena.js';
import { Kernels, fcBackwardInputScratchBytes } from '../src/core/kernels.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import { TraceWriter } from '../src/core/trace.js';
import { Placer, Tee, itReplaysOnM4Images, type Expected } from './support/dsp-replay.js';

const RANDOM = 60;
const CASES = RANDOM + 30;
const ARENA = 190 * 1024;

describe('fully_connected_s8 backward: DSP paths on Cortex-M4F = TypeScript reference', () => {
  const rng = new Xorshift32(9191);
  const trace = new TraceWriter(1 << 21);
  const expected: Expected[] = [];
  let calls = 0;
  const fits = (R: number, I: number, O: number) =>
    R * I * 6 + O * I * 5 + R * O + O * 16 + 64 < ARENA;
  for (let n = 0; n < CASES; n++) {
    const edge = [
      { rows: 1, inFeatures: 1, outFeatures: 1 },
      { rows: 2, inFeatures: 3, outFeatures: 5 },
      { rows: 3, inFeatures: 4, outFeatures: 4 },
      { rows: 1, inFeatures: 300, outFeatures: 40 },
      { rows: 40, inFeatures: 7, outFeatures: 33 },
      { rows: 2, inFeatures: 1, outFeatures: 2 },
    ][n];
    const family = n >= RANDOM ? (n - RANDOM) % 6 : -1;
    let s;
    do {
      s = edge ?? [
        { rows: 1, inFeatures: rng.int(513, 1500), outFeatures: rng.int(1, 30) },
        { rows: rng.int(500, 700), inFeatures: rng.int(1, 40), outFeatures: rng.int(1, 40) },
        { rows: 2 * rng.int(1, 20) + 1, inFeatures: rng.int(1, 64), outFeatures: rng.int(1, 64) },
        { rows: rng.int(1, 3), inFeatures: rng.int(1, 9), outFeatures: rng.int(1, 9) },
        { rows: rng.int(36, 40), inFeatures: rng.int(100, 130), outFeatures: rng.int(100, 260) },
        { rows: rng.int(1, 2), inFeatures: rng.int(200, 800), outFeatures: rng.int(50, 120) },
      ][family] ?? { rows: rng.int(1, 40), inFeatures: rng.int(1, 300), outFeatures: rng.int(1, 300) };
    } while (!fits(s.rows, s.inFeatures, s.outFeatures));
    const { rows: R, inFeatures: I, outFeatures: O } = s;
    const placer = new Placer();
    const place = placer.place.bind(placer);
    const t = {
      input: place('in', 'int8', R * I, rng.int(0, 3)),
      weights: place('w', 'int8', O * I, rng.int(0, 3)),
      gradOut: place('grad_out', 'int8', R * O, rng.int(0, 3)),
      gradIn: place('grad_in', 'int8', R * I, rng.int(0, 3)),
      ws: place('wscale', 'int16', O),
      lrM: place('lr_mult', 'int32', O),
      lrS: place('lr_shift', 'int32', O),
      cells: place('cells', 'int32', 4),
      scratch: place('scratch', 'uint8', fcBackwardInputScratchBytes(s)),
    };
    const ob = rng.int(0, O - 1), oe = rng.int(ob + 1, O), ib = rng.int(0, I - 1), ie = rng.int(ib + 1, I);
    const full = n % 3 === 0;
    const blk = full ? { ocBegin: 0, ocEnd: O, icBegin: 0, icEnd: I } : { ocBegin: ob, ocEnd: oe, icBegin: ib, icEnd: ie };
    const noc = blk.ocEnd - blk.ocBegin, nic = blk.icEnd - blk.icBegin;
    const gw = place('grad_w', 'int32', noc * nic);
    if (placer.top > ARENA) throw new Error(`case ${n} too large for the arena`);
    const cell = (k: number): Tensor => ({ name: `cell${k}`, dtype: 'int32', shape: [1], offset: t.cells.offset + 4 * k, bytes: 4 });
    const ref = new ReferenceDispatch(new ArrayBuffer(ARENA));
    trace.arena(ARENA);
    const k = new Kernels(new Tee(ref, trace));
    const inputOffset = [-127, 128, 0][n % 7] ?? rng.int(-127, 128);
    // Sparse gradients in some cases (zero rows and channels are skipped by
    // the portable loops), full-range int8 elsewhere.
    const sparse = n % 4 === 1;
    const i8 = (count: number, lo = -128) =>
      Uint8Array.from({ length: count }, () => (sparse && rng.below(3) ? 0 : Math.max(lo, rng.int(-128, 127))) & 0xff);
    k.write(t.input, i8(R * I));
    k.write(t.weights, i8(O * I, -127));
    k.write(t.gradOut, i8(R * O));
    k.writeInt16(t.ws, Array.from({ length: O }, () => rng.int(0, 32767)));
    // Learning rates and exponents put R = 31 - shift - exp on both sides
    // of the DSP SGD range [32, 62] (and on its ends) across the cases.
    const gExp = n % 3 === 2 ? rng.int(-4, 6) : rng.int(-14, -4);
    k.writeInt32(cell(0), [gExp]);
    const what = `case ${n}: ${R}x${I} <- ${O}, block ${blk.ocBegin}..${blk.ocEnd} x ${blk.icBegin}..${blk.icEnd}, input_offset ${inputOffset}`;
    const readBack = (x: Tensor, name: string) => {
      trace.read(x.offset, x.bytes);
      expected.push({ offset: x.offset, bytes: ref.read(x.offset, x.bytes), what: `${what}, ${name}` });
    };
    k.fcBackwardInput({ ...s, wscaleMantissa: t.ws, wscaleExp: rng.int(-10, 0), gradOut: t.gradOut, gradOutExp: cell(0), weights: t.weights, gradIn: t.gradIn, gradInExp: cell(1), scratch: t.scratch });
    readBack(t.gradIn, 'grad_in');
    readBack(cell(1), 'grad_in exponent');
    k.fcBackwardWeight({ ...s, ...blk, inputOffset, gradOut: t.gradOut, input: t.input, gradWeights: gw });
    readBack(gw, 'grad_w');
    const lr = Array.from({ length: O }, () => quantizeMultiplier((1 + rng.below(1000)) / 1000 * 2 ** -rng.int(-3, 24), -62, 62));
    k.writeInt32(t.lrM, lr.map((x) => x.multiplier));
    k.writeInt32(t.lrS, lr.map((x) => x.shift));
    k.writeInt32(cell(2), [rng.int(1, 0x7fffffff)]);
    const blk2 = n % 2 ? blk : { ocBegin: 0, ocEnd: O, icBegin: 0, icEnd: I };
    k.fcBackwardWeightSgd({ ...s, ...blk2, inputOffset, gradOut: t.gradOut, gradOutExp: cell(0), input: t.input, lrMultiplier: t.lrM, lrShift: t.lrS, weights: t.weights, rng: cell(2) });
    readBack(t.weights, 'weights after fused sgd');
    readBack(cell(2), 'rng after fused sgd');
    k.sgdS8Update({ inFeatures: I, outFeatures: O, ...blk, grad: gw, gradExp: cell(0), lrMultiplier: t.lrM, lrShift: t.lrS, weights: t.weights, rng: cell(2) });
    readBack(t.weights, 'weights after sgd_s8_update');
    readBack(cell(2), 'rng after sgd_s8_update');
    calls += 4;
  }
  const bytes = trace.end();

  itReplaysOnM4Images(`${CASES} random shapes`, bytes, calls, expected);
});
