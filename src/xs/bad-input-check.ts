// Bad input on the XS engine: prints the Error each case throws, one per
// line, so host-tests/bad-input-xs.test.ts can check them. Usage:
//   xst-xs out/ts/xs/bad-input-check.js

import { ArenaLayout } from '../core/arena.js';
import { Kernels } from '../core/kernels.js';
import { Op } from '../core/ops.js';
import { XsDispatch } from './dispatch.js';
import { print } from './host.js';

function attempt(what: string, f: () => void): void {
  try {
    f();
    print(`${what}: no error`);
  } catch (e) {
    print(`${what}: ${(e as Error).constructor.name}: ${(e as Error).message}`);
  }
}

const L = new ArenaLayout(4096);
const d = new XsDispatch(new ArrayBuffer(4096));
const k = new Kernels(d);
const t = {
  input: L.alloc('layer1.input', 'int8', [1, 16]),
  weights: L.alloc('layer1.weights', 'int8', [8, 15]),
  bias: L.alloc('layer1.bias', 'int32', [8]),
  output: L.alloc('layer1.output', 'int8', [1, 8]),
  multiplier: L.alloc('layer1.multiplier', 'int32', [8]),
  shift: L.alloc('layer1.shift', 'int32', [8]),
};
attempt('shape', () =>
  k.fcForward({ rows: 1, inFeatures: 16, outFeatures: 8, inputOffset: 0, outputOffset: 0, actMin: -128, actMax: 127, ...t, mask: null }),
);
attempt('bounds', () => d.call(Op.ActivationBackward, Int32Array.of(100000, 0, 64)));
attempt('args', () => d.call(Op.ActivationBackward, Int32Array.of(10, 0)));
print('done');
