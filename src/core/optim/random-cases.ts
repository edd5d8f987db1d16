// Random cases for the optimizer-baseline ops (28-32): random sizes, states,
// exponents and hyper-parameters, 1-3 steps each. Shared by the host tests
// (C = reference, bare-metal trace replay) and the XS check
// (src/xs/optim-check.ts), so every place runs the same cases. Platform-free.

import { ArenaLayout, type Tensor } from '../arena.js';
import { Kernels, type Dispatch } from '../kernels.js';
import { Xorshift32 } from '../rng.js';

export interface OptimCase {
  arenaBytes: number;
  init: Uint8Array; // the arena before the calls
  calls: ((k: Kernels) => void)[];
  label: string;
}

// A float32 from a mix of magnitudes, zeros, -0 and subnormals (never NaN
// or Inf: NaN payloads differ between x86 and JavaScript, so only finite
// behaviour is compared).
function randomFloat(r: Xorshift32, scale: number): number {
  switch (r.below(10)) {
    case 0: return 0;
    case 1: return -0;
    case 2: { // subnormal
      const b = new Uint32Array([(r.next() & 0x807fffff) >>> 0]);
      return new Float32Array(b.buffer)[0]!;
    }
    case 3: return r.int(-8, 8);
    default: {
      const u = r.next() / 4294967296 - 0.5;
      return Math.fround(u * scale * 2 ** (r.int(-20, 4)));
    }
  }
}

export function randomOptimCase(seed: number): OptimCase {
  const r = new Xorshift32(seed);
  const n = r.below(4) === 0 ? r.int(1, 4) : r.int(1, 300);
  const kind = r.below(5);
  const L = new ArenaLayout(64 * 1024);
  const buf = new ArrayBuffer(64 * 1024);
  const f32 = (t: Tensor) => new Float32Array(buf, t.offset, t.bytes / 4);
  const fill = (t: Tensor, scale: number, abs = false) => {
    const v = f32(t);
    for (let i = 0; i < v.length; i++) v[i] = abs ? Math.abs(randomFloat(r, scale)) : randomFloat(r, scale);
  };
  const calls: ((k: Kernels) => void)[] = [];
  const steps = r.int(1, 3);
  let label = '';
  if (kind <= 2) {
    const grad = L.alloc('grad', 'float32', [n]), param = L.alloc('param', 'float32', [n]);
    fill(grad, 1e3);
    fill(param, 10);
    const lr = Math.fround(2 ** -r.int(0, 14) * (1 + r.below(8) / 8));
    if (kind === 0) {
      label = `sgd_f32 n=${n} lr=${lr}`;
      for (let s = 0; s < steps; s++) calls.push((k) => k.sgdF32Update({ n, lr, grad, param }));
    } else if (kind === 1) {
      const velocity = L.alloc('velocity', 'float32', [n]);
      fill(velocity, 1e3);
      const momentum = Math.fround(r.below(4) === 0 ? 0.9 : r.next() / 4294967296);
      label = `momentum_f32 n=${n} lr=${lr} mu=${momentum}`;
      for (let s = 0; s < steps; s++) calls.push((k) => k.momentumF32Update({ n, lr, momentum, grad, velocity, param }));
    } else {
      const m = L.alloc('m', 'float32', [n]), v = L.alloc('v', 'float32', [n]), betaPowers = L.alloc('powers', 'float32', [2]);
      fill(m, 1e2);
      fill(v, 1e4, true);
      const p = f32(betaPowers);
      if (r.below(2)) p.set([1, 1]);
      else {
        // beta^t by repeated float32 products (no Math.pow: engines may differ in its last bit)
        let p1 = 1, p2 = 1;
        for (let t = r.int(1, 50); t > 0; t--) p1 = Math.fround(p1 * Math.fround(0.9));
        for (let t = r.int(1, 5000); t > 0; t--) p2 = Math.fround(p2 * Math.fround(0.999));
        p.set([p1, p2]);
      }
      const beta1 = r.below(2) ? 0.9 : r.next() / 4294967296, beta2 = r.below(2) ? 0.999 : r.next() / 4294967296;
      const eps = r.below(2) ? 1e-8 : 2 ** -r.int(1, 30);
      label = `adam_f32 n=${n} lr=${lr} b1=${beta1} b2=${beta2} eps=${eps}`;
      for (let s = 0; s < steps; s++) {
        calls.push((k) => k.adamF32Update({ n, lr, beta1, beta2, eps, grad, m, v, betaPowers, param }));
      }
    }
  } else {
    const grad = L.alloc('grad', 'int32', [n]), gradExp = L.cell('grad_exp'), param = L.alloc('param', 'int16', [n]);
    const rng = L.cell('rng');
    const g = new Int32Array(buf, grad.offset, n), q = new Int16Array(buf, param.offset, n);
    const big = r.below(4) === 0;
    for (let i = 0; i < n; i++) {
      g[i] = r.below(3) === 0 ? 0 : big ? r.next() | 0 : r.int(-(1 << 21), 1 << 21);
      q[i] = r.below(8) === 0 ? (r.below(2) ? 32767 : -32767) : r.int(-32767, 32767);
    }
    new Int32Array(buf, gradExp.offset, 1)[0] = r.below(8) === 0 ? r.int(-200, 200) : r.int(-40, 4);
    new Uint32Array(buf, rng.offset, 1)[0] = r.next() || 1;
    const paramExp = r.below(8) === 0 ? r.int(-64, 64) : r.int(-20, 2);
    const lrMultiplier = r.below(10) === 0 ? 0 : 0x40000000 + (r.next() >>> 2);
    const lrShift = r.below(8) === 0 ? r.int(-62, 62) : r.int(-16, 2);
    if (kind === 3) {
      label = `sgd_s16 n=${n} pexp=${paramExp} lr=${lrMultiplier}/${lrShift}`;
      for (let s = 0; s < steps; s++) {
        calls.push((k) => k.sgdS16Update({ n, paramExp, lrMultiplier, lrShift, grad, gradExp, param, rng }));
      }
    } else {
      const velocity = L.alloc('velocity', 'int16', [n]);
      const v = new Int16Array(buf, velocity.offset, n);
      for (let i = 0; i < n; i++) v[i] = r.below(3) === 0 ? 0 : r.below(8) === 0 ? r.int(-32767, 32767) : r.int(-300, 300);
      const velocityExp = r.below(8) === 0 ? r.int(-64, 64) : paramExp - r.int(-2, 10);
      const momentumQ15 = r.below(3) === 0 ? 29491 : r.int(0, 32767);
      label = `momentum_s16 n=${n} pexp=${paramExp} vexp=${velocityExp} lr=${lrMultiplier}/${lrShift} mu=${momentumQ15}`;
      if (velocityExp >= -64 && velocityExp <= 64) {
        for (let s = 0; s < steps; s++) {
          calls.push((k) => k.momentumS16Update({ n, paramExp, velocityExp, lrMultiplier, lrShift, momentumQ15, grad, gradExp,
            velocity, param, rng }));
        }
      }
    }
  }
  const arenaBytes = Math.ceil(L.used / 4) * 4;
  return { arenaBytes, init: new Uint8Array(buf, 0, arenaBytes).slice(), calls, label };
}

// Runs a case on a fresh arena of the dispatch `make` builds; returns the arena.
export function runOptimCase(c: OptimCase, make: (buf: ArrayBuffer) => Dispatch): Uint8Array {
  const buf = new ArrayBuffer(c.arenaBytes);
  new Uint8Array(buf).set(c.init);
  const k = new Kernels(make(buf));
  for (const call of c.calls) call(k);
  return new Uint8Array(buf);
}
