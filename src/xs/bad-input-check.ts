// Bad input on the XS engine: prints the Error each case throws, one per
// line, so host-tests/bad-input-xs.test.ts can check them. Usage:
//   xst-xs out/ts/xs/bad-input-check.js

import { ArenaLayout } from '../core/arena.js';
import { Kernels } from '../core/kernels.js';
import { Op } from '../core/ops.js';
import { PlanRuntime } from '../core/plan-runtime.js';
import { encodePlan } from '../core/plan-format.js';
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

// A plan bound to the Dispatch (its ops run in C from the blob): the blob
// and the description are JavaScript-writable, so the glue trusts neither.
const tensor = (offset: number, bytes: number) => ({ offset, bytes, zeroPoint: 0, scale: 1 });
const call = { op: Op.ActivationBackward, args: Int32Array.of(64, 1024, 2048) };
const blob = encodePlan({
  arenaBytes: 4096, flash: new Uint8Array(0), init: [],
  io: { input: { ...tensor(0, 64), shape: [1, 64] }, label: 256, classes: 4, logits: tensor(512, 4), metric: -1, output: tensor(512, 4) },
  train: [call], infer: [call], trainOps: 1, inferOps: 1, regions: [{ kind: 'weights', offset: 2048, bytes: 64 }],
});
const bound = d.bindPlan(blob, 4096);
print(`bind: status ${bound.status.join(',')}`);
attempt('bound step', () => {
  const r = bound.run(0);
  if (r.failed !== -1) throw new Error(`op ${r.failed} failed with status ${r.status}`);
});
const xstPlanRun = native('xs_xst_plan_run') as (desc: Int32Array, blob: Uint8Array, which: number, arena: ArrayBuffer) => number;
const xstPlanBind = native('xs_xst_plan_bind') as (blob: Uint8Array, arenaCapacity: number, desc: Int32Array) => [number, number, number];
const desc = new Int32Array(12);
xstPlanBind(blob, 4096, desc);
attempt('which', () => xstPlanRun(desc, blob, 2, new ArrayBuffer(4096)));
attempt('short desc', () => xstPlanRun(desc.subarray(1), blob, 0, new ArrayBuffer(4096)));
attempt('other blob', () => {
  const other = blob.slice();
  other[8] = other[8]! + 4; // the header's length word
  xstPlanRun(desc, other, 0, new ArrayBuffer(4096));
});
attempt('ops outside', () => {
  const moved = desc.slice();
  moved[5] = blob.length; // TRAIN's first op record past the blob
  xstPlanRun(moved, blob, 0, new ArrayBuffer(4096));
});
attempt('small arena', () => xstPlanRun(desc, blob, 0, new ArrayBuffer(1024)));
// The blob changed after binding: the op's tensor now lies outside the
// arena; the dispatcher's own check refuses it when it runs.
attempt('changed blob', () => {
  const rt = PlanRuntime.load(new XsDispatch(new ArrayBuffer(4096)), blob);
  // TRAIN's op record: its args are the first (64, 1024, 2048) in the blob.
  const v = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  for (let i = 0; i + 12 <= blob.length; i += 4) {
    if (v.getUint32(i, true) === 64 && v.getUint32(i + 4, true) === 1024 && v.getUint32(i + 8, true) === 2048) {
      v.setUint32(i + 8, 100000, true);
      break;
    }
  }
  rt.step(new Int8Array(64), 1);
});
print('done');
