// Reference log-quantized momentum (LQM), the oracle of native/core/lqm_s8.c.
// The rule, units and state format are in native/core/xst.h:
//   m~ = Q(m) - dec(Q(m)) - eta*g,  w += sr(m~),  m = Q(m~)
// The momentum counts u = 2^emin weight LSBs; the state of element k is a
// `bits`-wide field at bit bits*k (LSB first): the low bits-1 bits are the
// exponent code (0: zero, c >= 1: 2^(c-1) u), the top bit the sign.

import { xorshift32 } from '../rng.js';
import { clamp } from './fixed.js';
import type { Block } from './kernels.js';

export interface LqmParams {
  bits: number; // state bits per parameter, [2, 5]
  emin: number; // lowest momentum exponent in weight LSBs, [-24, 0]
  emax: number; // highest, [emin, min(6, emin + 2^(bits-1) - 2)]
  decay: number; // decay shift d, [0, 15]; 0 = the published rule (no decay)
}

// The reason the parameters are out of range (naming the parameter), or null.
export function lqmParamError(p: LqmParams): string | null {
  const int = (v: number) => Number.isInteger(v);
  if (!int(p.bits) || p.bits < 2 || p.bits > 5) return `bits is ${p.bits}, expected an integer in [2, 5]`;
  if (!int(p.emin) || p.emin < -24 || p.emin > 0) return `emin is ${p.emin}, expected an integer in [-24, 0]`;
  const top = Math.min(6, p.emin + 2 ** (p.bits - 1) - 2);
  if (!int(p.emax) || p.emax < p.emin || p.emax > top) {
    return `emax is ${p.emax}, expected an integer in [${p.emin}, ${top}] (emin ${p.emin}, ${p.bits}-bit state: ` +
      `${2 ** (p.bits - 1) - 1} exponent codes, at most 2^6 LSB)`;
  }
  if (!int(p.decay) || p.decay < 0 || p.decay > 15) return `decay is ${p.decay}, expected an integer in [0, 15]`;
  return null;
}

export function lqmStateBytes(bits: number, n: number): number {
  return Math.ceil((bits * n) / 8);
}

const T_MAX = 2 ** 30;

// eta*g in momentum units: g * 2^S, rounded to nearest (ties up) for S < 0,
// saturated to +-2^30.
export function lqmScaled(g: number, S: number): number {
  if (g === 0) return 0;
  if (S >= 0) return clamp(S >= 31 ? g * 2 ** 31 : g * 2 ** S, -T_MAX, T_MAX);
  if (S < -32) return 0;
  const n = -S;
  return Math.floor((g + 2 ** (n - 1)) / 2 ** n);
}

// Q(x) as a state code: floor(log2 |x|) + 1 clipped to the window's top.
export function lqmCode(x: number, topCode: number): number {
  let a = Math.abs(x), c = 0;
  while (a >= 1) {
    c++;
    a = Math.floor(a / 2);
  }
  return Math.min(c, topCode);
}

// Signed momentum (units) of a state field.
export function lqmDecode(field: number, bits: number): number {
  const code = field & (2 ** (bits - 1) - 1);
  const mag = code ? 2 ** (code - 1) : 0;
  return field & 2 ** (bits - 1) ? -mag : mag;
}

export function lqmEncode(m: number, p: LqmParams): number {
  const c = lqmCode(m, p.emax - p.emin + 1);
  return c === 0 ? 0 : c + (m < 0 ? 2 ** (p.bits - 1) : 0);
}

export function getField(state: Uint8Array, k: number, bits: number): number {
  let v = 0;
  for (let j = 0; j < bits; j++) {
    const at = bits * k + j;
    v += ((state[at >> 3]! >> (at & 7)) & 1) << j;
  }
  return v;
}

export function setField(state: Uint8Array, k: number, bits: number, v: number): void {
  for (let j = 0; j < bits; j++) {
    const at = bits * k + j;
    if ((v >> j) & 1) state[at >> 3]! |= 1 << (at & 7);
    else state[at >> 3]! &= ~(1 << (at & 7));
  }
}

// m~ for a momentum q (units) and a step t = eta*g (units).
export function lqmTilde(q: number, t: number, decay: number): number {
  const mag = Math.abs(q);
  const dec = decay ? Math.ceil(mag / 2 ** decay) : 0;
  return Math.sign(q) * (mag - dec) - t;
}

// One element: returns the new weight (clamped to [-wMax, wMax]: int8 weights
// by default); updates the state field and rng.
export function lqmElement(p: LqmParams, state: Uint8Array, k: number, t: number, w: number, rng: { state: number },
  wMax = 127): number {
  const mt = lqmTilde(lqmDecode(getField(state, k, p.bits), p.bits), t, p.decay);
  setField(state, k, p.bits, lqmEncode(mt, p));
  if (mt === 0) return w;
  rng.state = xorshift32(rng.state);
  const F = -p.emin;
  const r = F ? Math.floor(rng.state / 2 ** (32 - F)) : 0;
  return clamp(w + Math.floor((mt + r) / 2 ** F), -wMax, wMax);
}

function lqmInt8(inF: number, b: Block, grad: (c: number, i: number) => number, exp: number, shift: Int32Array,
  p: LqmParams, state: Uint8Array, w: Int8Array, rng: { state: number }): void {
  for (let c = b.ocBegin; c < b.ocEnd; c++) {
    const S = exp + shift[c]! - p.emin;
    for (let i = b.icBegin; i < b.icEnd; i++) {
      const k = c * inF + i;
      w[k] = lqmElement(p, state, k, lqmScaled(grad(c, i), S), w[k]!, rng);
    }
  }
}

export function lqmS8Update(inF: number, b: Block, grad: Int32Array, exp: number, shift: Int32Array, p: LqmParams,
  state: Uint8Array, w: Int8Array, rng: { state: number }): void {
  const nic = b.icEnd - b.icBegin;
  lqmInt8(inF, b, (c, i) => grad[(c - b.ocBegin) * nic + (i - b.icBegin)]!, exp, shift, p, state, w, rng);
}

export function fcBackwardWeightLqm(rows: number, inF: number, outF: number, b: Block, inputOffset: number,
  gradOut: Int8Array, gradOutExp: number, input: Int8Array, shift: Int32Array, p: LqmParams, state: Uint8Array,
  w: Int8Array, rng: { state: number }): void {
  const grad = (c: number, i: number) => {
    let g = 0;
    for (let r = 0; r < rows; r++) g += gradOut[r * outF + c]! * (input[r * inF + i]! + inputOffset);
    return g;
  };
  lqmInt8(inF, b, grad, gradOutExp, shift, p, state, w, rng);
}
