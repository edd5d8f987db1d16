// Node adapter: the baseline updates (src/core/optim/engine.ts) on the C ops
// 28-32 (native/core/optim_f32.c, optim_s16.c) through the addon. Each
// updater owns an arena of exactly its tensors: the optimizer state, the int16
// parameters and the rng cell stay there between steps. Per step an fp32
// update copies the gradient and the parameters in and the parameters out;
// an fx16 update copies nothing (the caller quantises straight into the
// arena's gradient and dequantises from its parameters).

import { ArenaLayout, type DType, type Tensor } from '../core/arena.js';
import { Kernels } from '../core/kernels.js';
import type { F32Updater, OptimEngine, S16Updater } from '../core/optim/engine.js';
import { NodeDispatch } from './addon.js';

// The tensors of one updater laid out in an arena of exactly their size.
function arenaOf<K extends string>(specs: Record<K, [DType, number]>): { k: Kernels; t: Record<K, Tensor>; buf: ArrayBuffer } {
  const L = new ArenaLayout(Number.MAX_SAFE_INTEGER);
  const t = {} as Record<K, Tensor>;
  for (const name of Object.keys(specs) as K[]) t[name] = L.alloc(name, specs[name][0], [specs[name][1]]);
  const buf = new ArrayBuffer(L.used);
  return { k: new Kernels(new NodeDispatch(buf)), t, buf };
}

const f32 = (buf: ArrayBuffer, t: Tensor) => new Float32Array(buf, t.offset, t.bytes / 4);

function f32Updater(buf: ArrayBuffer, grad: Tensor, param: Tensor, update: () => void): F32Updater {
  const g = f32(buf, grad), p = f32(buf, param);
  return {
    step(x, gx) {
      g.set(gx);
      p.set(x);
      update();
      x.set(p);
    },
  };
}

function s16Updater(buf: ArrayBuffer, t: { grad: Tensor; gradExp: Tensor; param: Tensor; rng: Tensor }, rngState: number,
  update: () => void): S16Updater {
  new Int32Array(buf, t.rng.offset, 1)[0] = rngState | 0;
  const gradExp = new Int32Array(buf, t.gradExp.offset, 1);
  return {
    param: new Int16Array(buf, t.param.offset, t.param.bytes / 2),
    grad: new Int32Array(buf, t.grad.offset, t.grad.bytes / 4),
    update(e) {
      gradExp[0] = e;
      update();
    },
  };
}

export const nodeOptimEngine: OptimEngine = {
  name: 'node-addon',
  sgdF32(n, lr) {
    const { k, t, buf } = arenaOf({ grad: ['float32', n], param: ['float32', n] });
    return f32Updater(buf, t.grad, t.param, () => k.sgdF32Update({ n, lr, ...t }));
  },
  momentumF32(n, lr, momentum) {
    const { k, t, buf } = arenaOf({ grad: ['float32', n], velocity: ['float32', n], param: ['float32', n] });
    return f32Updater(buf, t.grad, t.param, () => k.momentumF32Update({ n, lr, momentum, ...t }));
  },
  adamF32(n, h) {
    const { k, t, buf } = arenaOf({
      grad: ['float32', n], m: ['float32', n], v: ['float32', n], betaPowers: ['float32', 2], param: ['float32', n],
    });
    f32(buf, t.betaPowers).set([1, 1]);
    return f32Updater(buf, t.grad, t.param, () => k.adamF32Update({ n, ...h, ...t }));
  },
  sgdS16(n, h, rngState) {
    const { k, t, buf } = arenaOf({ grad: ['int32', n], gradExp: ['int32', 1], param: ['int16', n], rng: ['int32', 1] });
    const args = { n, paramExp: h.paramExp, lrMultiplier: h.lrMultiplier, lrShift: h.lrShift, ...t };
    return s16Updater(buf, t, rngState, () => k.sgdS16Update(args));
  },
  momentumS16(n, h, rngState) {
    const { k, t, buf } = arenaOf({
      grad: ['int32', n], gradExp: ['int32', 1], velocity: ['int16', n], param: ['int16', n], rng: ['int32', 1],
    });
    const args = { n, paramExp: h.paramExp, velocityExp: h.stateExp, lrMultiplier: h.lrMultiplier, lrShift: h.lrShift,
      momentumQ15: h.momentumQ15, ...t };
    return s16Updater(buf, t, rngState, () => k.momentumS16Update(args));
  },
};
