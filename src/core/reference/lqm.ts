// Reference log-quantized momentum (LQM), the oracle of native/core/lqm_s8.c.
// The rule, units and state format are in native/core/xst.h:
//   m~ = Q(m) - dec(Q(m)) - eta*g,  w += sr(m~),  m = Q(m~)
// The momentum counts u = 2^emin weight LSBs; the state of element k is a
// `bits`-wide field at bit bits*k (LSB first): the low bits-1 bits are the
// exponent code (0: zero, c >= 1: 2^(c-1) u), the top bit the sign.
// Op 26 keeps an int16 master copy of the weights (lqm16*, below): the same
// momentum, the write-back at 1/256 LSB.

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

// The momentum half of one element: m~ from the state field k and the step
// t, the field rewritten to Q(m~); then the element's xorshift32 draw, or
// null when m~ = 0 (no write-back and nothing drawn).
function lqmMomentum(p: LqmParams, state: Uint8Array, k: number, t: number, rng: { state: number }):
  { mt: number; u: number } | null {
  const mt = lqmTilde(lqmDecode(getField(state, k, p.bits), p.bits), t, p.decay);
  setField(state, k, p.bits, lqmEncode(mt, p));
  if (mt === 0) return null;
  rng.state = xorshift32(rng.state);
  return { mt, u: rng.state };
}

// One element: returns the new weight (clamped to [-wMax, wMax]: int8 weights
// by default); updates the state field and rng.
export function lqmElement(p: LqmParams, state: Uint8Array, k: number, t: number, w: number, rng: { state: number },
  wMax = 127): number {
  const s = lqmMomentum(p, state, k, t, rng);
  if (!s) return w;
  const F = -p.emin;
  const r = F ? Math.floor(s.u / 2 ** (32 - F)) : 0;
  return clamp(w + Math.floor((s.mt + r) / 2 ** F), -wMax, wMax);
}

// ---- int16 master copy (op 26) ----
// master = 256 w + res in 1/256 weight LSB (w the int8 weight the forward
// reads, res the int8 residual): any byte pair is a valid master and
// w = round(master / 256) (ties up) holds for all of them.
export const LQM16_MAX = 127 * 256; // the master saturates at +-127 LSB

export function lqm16Master(w: number, res: number): number {
  return 256 * w + res;
}

// w = floor((master + 128) / 256), res = master - 256 w (res in [-128, 127]).
export function lqm16Split(master: number): { w: number; res: number } {
  const w = Math.floor((master + 128) / 256);
  return { w, res: master - 256 * w };
}

// The master write-back of m~ (units of 2^-F LSB, F = -emin) with the
// element's draw u: at 1/256 LSB, stochastically rounded with the top F - 8
// bits of u when F > 8, exact when F <= 8; saturated at +-127 LSB.
export function lqm16WriteBack(mt: number, F: number, u: number, w: number, res: number): { w: number; res: number } {
  const dm = F >= 8 ? Math.floor((mt + Math.floor(u / 2 ** (40 - F))) / 2 ** (F - 8)) : mt * 2 ** (8 - F);
  return lqm16Split(clamp(lqm16Master(w, res) + dm, -LQM16_MAX, LQM16_MAX));
}

// One element with the master write-back: updates w[k], res[k], the state
// field and rng.
export function lqm16Element(p: LqmParams, state: Uint8Array, k: number, t: number, w: Int8Array, res: Int8Array,
  rng: { state: number }): void {
  const s = lqmMomentum(p, state, k, t, rng);
  if (!s) return;
  const m = lqm16WriteBack(s.mt, -p.emin, s.u, w[k]!, res[k]!);
  w[k] = m.w;
  res[k] = m.res;
}

// Every element (c, i) of the block in row-major order with its step
// t = eta*g (momentum units).
function lqmBlock(inF: number, b: Block, grad: (c: number, i: number) => number, exp: number, shift: Int32Array,
  p: LqmParams, each: (k: number, t: number) => void): void {
  for (let c = b.ocBegin; c < b.ocEnd; c++) {
    const S = exp + shift[c]! - p.emin;
    for (let i = b.icBegin; i < b.icEnd; i++) each(c * inF + i, lqmScaled(grad(c, i), S));
  }
}

function lqmInt8(inF: number, b: Block, grad: (c: number, i: number) => number, exp: number, shift: Int32Array,
  p: LqmParams, state: Uint8Array, w: Int8Array, rng: { state: number }): void {
  lqmBlock(inF, b, grad, exp, shift, p, (k, t) => {
    w[k] = lqmElement(p, state, k, t, w[k]!, rng);
  });
}

export function lqmS8Update(inF: number, b: Block, grad: Int32Array, exp: number, shift: Int32Array, p: LqmParams,
  state: Uint8Array, w: Int8Array, rng: { state: number }): void {
  const nic = b.icEnd - b.icBegin;
  lqmInt8(inF, b, (c, i) => grad[(c - b.ocBegin) * nic + (i - b.icBegin)]!, exp, shift, p, state, w, rng);
}

function fcWeightGrad(rows: number, inF: number, outF: number, inputOffset: number, gradOut: Int8Array,
  input: Int8Array): (c: number, i: number) => number {
  return (c, i) => {
    let g = 0;
    for (let r = 0; r < rows; r++) g += gradOut[r * outF + c]! * (input[r * inF + i]! + inputOffset);
    return g;
  };
}

export function fcBackwardWeightLqm(rows: number, inF: number, outF: number, b: Block, inputOffset: number,
  gradOut: Int8Array, gradOutExp: number, input: Int8Array, shift: Int32Array, p: LqmParams, state: Uint8Array,
  w: Int8Array, rng: { state: number }): void {
  lqmInt8(inF, b, fcWeightGrad(rows, inF, outF, inputOffset, gradOut, input), gradOutExp, shift, p, state, w, rng);
}

export function fcBackwardWeightLqm16(rows: number, inF: number, outF: number, b: Block, inputOffset: number,
  gradOut: Int8Array, gradOutExp: number, input: Int8Array, shift: Int32Array, p: LqmParams, state: Uint8Array,
  w: Int8Array, res: Int8Array, rng: { state: number }): void {
  lqmBlock(inF, b, fcWeightGrad(rows, inF, outF, inputOffset, gradOut, input), gradOutExp, shift, p, (k, t) => {
    lqm16Element(p, state, k, t, w, res, rng);
  });
}
