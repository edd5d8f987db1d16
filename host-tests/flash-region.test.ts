// The read-only region beside the arena (frozen weights stay in flash on a
// device): tensors placed there are read by the kernels exactly like arena
// tensors, and a kernel can never write them.
import { describe, expect, it } from 'vitest';
import { ArenaLayout } from '../src/core/arena.js';
import { FLASH_BASE, Kernels, type BufferDispatch } from '../src/core/kernels.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import { NodeDispatch } from '../src/node/addon.js';

function fcCase(make: (arena: ArrayBuffer, flash: ArrayBuffer | null) => BufferDispatch, weightsInFlash: boolean) {
  const rng = new Xorshift32(77);
  const A = new ArenaLayout(1024), F = new ArenaLayout(1024, FLASH_BASE);
  const constants = weightsInFlash ? F : A;
  const t = {
    input: A.alloc('x', 'int8', [2, 24]),
    weights: constants.alloc('w', 'int8', [10, 24]),
    bias: constants.alloc('b', 'int32', [10]),
    output: A.alloc('y', 'int8', [2, 10]),
    multiplier: constants.alloc('m', 'int32', [10]),
    shift: constants.alloc('s', 'int32', [10]),
  };
  const k = new Kernels(make(new ArrayBuffer(1024), new ArrayBuffer(1024)));
  k.write(t.input, Uint8Array.from({ length: 48 }, () => rng.next() & 0xff));
  k.write(t.weights, Uint8Array.from({ length: 240 }, () => (rng.int(-127, 127) & 0xff)));
  k.writeInt32(t.bias, Array.from({ length: 10 }, () => rng.int(-3000, 3000)));
  const q = Array.from({ length: 10 }, () => quantizeMultiplier(0.001 + rng.below(1000) / 200000));
  k.writeInt32(t.multiplier, q.map((v) => v.multiplier));
  k.writeInt32(t.shift, q.map((v) => v.shift));
  const args = { rows: 2, inFeatures: 24, outFeatures: 10, inputOffset: 3, outputOffset: -5, actMin: -128, actMax: 127, ...t, mask: null };
  return { k, t, args };
}

const engines = [
  (a: ArrayBuffer, f: ArrayBuffer | null) => new NodeDispatch(a, f),
  (a: ArrayBuffer, f: ArrayBuffer | null) => new ReferenceDispatch(a, f),
];

describe('flash region', () => {
  for (const make of engines) {
    const name = make(new ArrayBuffer(4), null).name;
    it(`weights read from flash give the same output as from the arena (${name})`, () => {
      const a = fcCase(make, false), b = fcCase(make, true);
      expect(b.t.weights.offset).toBeGreaterThanOrEqual(FLASH_BASE);
      a.k.fcForward(a.args);
      b.k.fcForward(b.args);
      expect(Array.from(b.k.readInt8(b.t.output))).toEqual(Array.from(a.k.readInt8(a.t.output)));
      // Not a trivial output: the case produces varied values.
      expect(new Set(a.k.readInt8(a.t.output)).size).toBeGreaterThan(3);
    });
  }

  it('the C core refuses to write a tensor in flash, and reads nothing past its end', () => {
    const { k, args } = fcCase(engines[0]!, true);
    const F = new ArenaLayout(1024, FLASH_BASE);
    F.alloc('pad', 'int8', [900]);
    const outInFlash = F.alloc('y-in-flash', 'int8', [2, 10]);
    expect(() => k.fcForward({ ...args, output: outInFlash })).toThrow('output tensor in read-only memory (status 9)');
    const beyond = { ...args.weights, offset: FLASH_BASE + 1000 }; // 240 bytes from 1000: past 1024
    expect(() => k.fcForward({ ...args, weights: beyond })).toThrow('tensor outside the arena (status 5)');
    // Without a flash region, a flash offset is out of bounds.
    const noFlash = new Kernels(new NodeDispatch(new ArrayBuffer(1024)));
    expect(() => noFlash.fcForward(args)).toThrow('(status 5)');
  });
});
