// Bad input from TypeScript is a thrown Error that names the tensor and the
// sizes; input that slips past the TypeScript checks is refused by the C
// dispatcher with an Error, never a crash.
import { describe, expect, it } from 'vitest';
import { ArenaLayout } from '../src/core/arena.js';
import { KernelArgumentError, Kernels } from '../src/core/kernels.js';
import { Op } from '../src/core/ops.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { NodeDispatch } from '../src/node/addon.js';

function fcSetup() {
  const L = new ArenaLayout(4096);
  return {
    L,
    t: {
      input: L.alloc('layer1.input', 'int8', [1, 16]),
      weights: L.alloc('layer1.weights', 'int8', [8, 15]), // one column short
      bias: L.alloc('layer1.bias', 'int32', [8]),
      output: L.alloc('layer1.output', 'int8', [1, 8]),
      multiplier: L.alloc('layer1.multiplier', 'int32', [8]),
      shift: L.alloc('layer1.shift', 'int32', [8]),
    },
  };
}

describe('bad input', () => {
  for (const make of [(b: ArrayBuffer) => new NodeDispatch(b), (b: ArrayBuffer) => new ReferenceDispatch(b)]) {
    const name = make(new ArrayBuffer(8)).name;
    it(`a shape mismatch names the tensor and both sizes (${name})`, () => {
      const { t } = fcSetup();
      const k = new Kernels(make(new ArrayBuffer(4096)));
      const call = () =>
        k.fcForward({
          rows: 1, inFeatures: 16, outFeatures: 8, inputOffset: 0, outputOffset: 0, actMin: -128, actMax: 127,
          ...t, mask: null,
        });
      expect(call).toThrow(KernelArgumentError);
      expect(call).toThrow(
        'fully_connected_s8_forward: weights tensor "layer1.weights" is int8[8x15] (120 bytes), expected int8[8x16] (128 bytes)',
      );
    });
  }

  it('an arena write of the wrong size names the tensor', () => {
    const { t } = fcSetup();
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(4096)));
    expect(() => k.write(t.input, new Uint8Array(17))).toThrow('write: tensor "layer1.input" has 16 bytes, got 17');
  });

  it('an out-of-range channel block is refused with the range and the bound', () => {
    const L = new ArenaLayout(4096);
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(4096)));
    expect(() =>
      k.fcBackwardWeight({
        rows: 1, inFeatures: 4, outFeatures: 4, ocBegin: 2, ocEnd: 6, icBegin: 0, icEnd: 4, inputOffset: 0,
        gradOut: L.alloc('g', 'int8', [1, 4]), input: L.alloc('x', 'int8', [1, 4]), gradWeights: L.alloc('gw', 'int32', [4, 4]),
      }),
    ).toThrow('output-channel range [2, 6) is not inside [0, 4)');
  });

  it('the C dispatcher refuses offsets outside the arena, wrong arg counts and unknown ops with an Error', () => {
    const d = new NodeDispatch(new ArrayBuffer(256));
    expect(() => d.call(Op.ActivationBackward, Int32Array.of(1000, 0, 64))).toThrow(
      'xstrain op 8: tensor outside the arena (status 5)',
    );
    expect(() => d.call(Op.ActivationBackward, Int32Array.of(10, 0))).toThrow('wrong number of arguments');
    expect(() => d.call(42 as never, Int32Array.of(1))).toThrow('unknown op');
    expect(() => d.call(Op.SoftmaxXentBackward, Int32Array.of(10, 0, 1000, 2, 32, 48, -1))).toThrow('tensor misaligned');
  });

  it('a layout that does not fit the arena says how much it needs', () => {
    const L = new ArenaLayout(1000);
    expect(() => L.alloc('fc1.weights', 'int8', [100, 784])).toThrow(
      'arena overflow: tensor "fc1.weights" needs 78400 bytes at offset 0, arena has 1000 bytes',
    );
  });
});
