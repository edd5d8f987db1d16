// The Cortex-M4F DSP (SMLAD) path of fully_connected_s8_forward
// (native/core/nn_mat_mult_s8.c) against the TypeScript reference: random
// shapes (rows 1..40, in 1..300 with every k % 4 tail, out 1..40), random
// offsets, multipliers, activations, and int8 tensors at every byte
// alignment (the DSP path loads 4 int8 at a time from any address); then
// families aimed at the DSP path's special cases: K in {8, 16, 32} and tiny
// K with hundreds of rows (8-row tiles, 2x2 blocks), k chunks (k > 256 for
// row pairs, > 512 for a lone row, odd group counts), tiles wider than 32
// columns, and multipliers over every right shift (the output offset rides
// in the rounding constant for shifts -2..-23 only). One recorded trace,
// replayed on the DSP image and on the portable M4 image: outputs and masks
// bit-identical to the reference.
import { describe, expect, it } from 'vitest';
import { Kernels } from '../src/core/kernels.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import { TraceWriter } from '../src/core/trace.js';
import { Placer, Tee, itReplaysOnM4Images, type Expected } from './support/dsp-replay.js';

const RANDOM = 60; // the first 60 cases: random shapes
const CASES = RANDOM + 48;
const ARENA = 128 * 1024;

describe('fully_connected_s8_forward: DSP path on Cortex-M4F = TypeScript reference', () => {
  const rng = new Xorshift32(4242);
  const trace = new TraceWriter(1 << 20);
  const expected: Expected[] = [];
  for (let n = 0; n < CASES; n++) {
    // Shapes: a few fixed edge cases, then random; draws happen here, not in
    // the kernels' closures.
    const edge = [
      { rows: 1, inFeatures: 1, outFeatures: 1 },
      { rows: 2, inFeatures: 3, outFeatures: 5 },
      { rows: 3, inFeatures: 4, outFeatures: 4 },
      { rows: 1, inFeatures: 300, outFeatures: 40 },
      { rows: 40, inFeatures: 7, outFeatures: 33 },
    ][n];
    const family = n >= RANDOM ? (n - RANDOM) % 8 : -1;
    const s = edge ?? [
      { rows: rng.int(50, 300), inFeatures: 8, outFeatures: rng.int(1, 40) },
      { rows: rng.int(40, 200), inFeatures: 16, outFeatures: rng.int(1, 40) },
      { rows: rng.int(20, 150), inFeatures: 32, outFeatures: rng.int(1, 40) },
      { rows: rng.int(2, 5), inFeatures: rng.int(257, 1100), outFeatures: rng.int(1, 12) },
      { rows: 1, inFeatures: rng.int(513, 1500), outFeatures: rng.int(1, 24) },
      { rows: rng.int(9, 20), inFeatures: rng.int(1, 64), outFeatures: rng.int(30, 70) },
      { rows: 1, inFeatures: rng.int(100, 300), outFeatures: rng.int(100, 260) },
      { rows: rng.int(60, 120), inFeatures: rng.int(1, 7), outFeatures: rng.int(1, 40) },
    ][family] ?? { rows: rng.int(1, 40), inFeatures: rng.int(1, 300), outFeatures: rng.int(1, 40) };
    const { rows: R, inFeatures: I, outFeatures: O } = s;
    const placer = new Placer();
    const place = placer.place.bind(placer);
    const t = {
      input: place('in', 'int8', R * I, rng.int(0, 3)),
      weights: place('w', 'int8', O * I, rng.int(0, 3)),
      bias: place('bias', 'int32', O),
      output: place('out', 'int8', R * O, rng.int(0, 3)),
      mask: place('mask', 'uint8', Math.ceil((R * O) / 8)),
      multiplier: place('mult', 'int32', O),
      shift: place('shift', 'int32', O),
    };
    if (placer.top > ARENA) throw new Error('case too large for the arena');
    const ref = new ReferenceDispatch(new ArrayBuffer(ARENA));
    trace.arena(ARENA);
    const k = new Kernels(new Tee(ref, trace));
    const inputOffset = [-127, 128, 0][n % 7] ?? rng.int(-127, 128);
    // Odd cases are "exact": (in + input_offset) and w mostly in [-3, 3] and
    // multipliers near 1/2, so the outputs follow the int32 sums to the last
    // bit and a sum that is off by one shows. Even cases use the full int8
    // range (sign extension, large sums) with smaller multipliers.
    const exact = n % 2 === 1;
    const small = (lo: number) => exact && rng.below(16) !== 0 ? rng.int(-3, 3) - lo : rng.int(-128, 127);
    const i8 = (count: number, centre: number, lo = -128) =>
      Uint8Array.from({ length: count }, () => Math.max(lo, Math.min(127, small(centre))) & 0xff);
    k.write(t.input, i8(R * I, inputOffset));
    k.write(t.weights, i8(O * I, 0, -127));
    k.writeInt32(t.bias, Array.from({ length: O }, () => exact ? rng.int(-20, 20) : rng.int(0, 80000) - 40000));
    // Families: every right shift from -1 to -31 (and a few >= 0).
    const sweep = () => (0.5 + rng.below(1000) / 2000) * 2 ** -rng.int(-2, 30);
    const q = Array.from({ length: O }, () =>
      quantizeMultiplier(family >= 0 ? sweep() : exact ? 0.25 + rng.below(1000) / 1000 : (1 + rng.below(999)) / 1000 * 2 ** -rng.int(4, 12) / Math.sqrt(I)));
    k.writeInt32(t.multiplier, q.map((x) => x.multiplier));
    k.writeInt32(t.shift, q.map((x) => x.shift));
    const zpOut = rng.int(-128, 127);
    const act = [[-128, 127], [zpOut, 127], [zpOut, Math.min(127, zpOut + 40)]][n % 3]!;
    const useBias = n % 4 !== 3, useMask = n % 5 !== 4;
    k.fcForward({
      ...s, inputOffset, outputOffset: zpOut, actMin: act[0]!, actMax: act[1]!, ...t,
      bias: useBias ? t.bias : null, mask: useMask ? t.mask : null,
    });
    const what = `case ${n}: ${R}x${I} -> ${O}, input_offset ${inputOffset}`;
    for (const x of useMask ? [t.output, t.mask] : [t.output]) {
      trace.read(x.offset, x.bytes);
      expected.push({ offset: x.offset, bytes: ref.read(x.offset, x.bytes), what: `${what}, ${x.name}` });
    }
  }
  const bytes = trace.end();

  itReplaysOnM4Images(`${CASES} random shapes`, bytes, CASES, expected);
});
