// Reference kernels: the plain, obviously correct versions of native/core.
// Every C kernel is tested bit-for-bit against these. Loops follow the math,
// not speed. Layouts: in (rows, in), w (out, in), out (rows, out).

import { bitLength, clamp, normalizeToInt8, requantize, sgdStep, storeActivation } from './fixed.js';

export interface FcQuant {
  inputOffset: number;
  outputOffset: number;
  actMin: number;
  actMax: number;
  multiplier: Int32Array;
  shift: Int32Array;
}

export function fcForward(
  rows: number, inF: number, outF: number, q: FcQuant,
  input: Int8Array, w: Int8Array, bias: Int32Array | null, out: Int8Array, mask: Uint8Array | null,
): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < outF; c++) {
      let acc = 0;
      for (let i = 0; i < inF; i++) acc += (input[r * inF + i]! + q.inputOffset) * w[c * inF + i]!;
      if (bias) acc = (acc + bias[c]!) | 0;
      let v = requantize(acc, q.multiplier[c]!, q.shift[c]!);
      v = clamp(v, -(1 << 24), 1 << 24) + q.outputOffset;
      storeActivation(out, mask, r * outF + c, v, q.actMin, q.actMax);
    }
  }
}


// Returns the exponent of grad_in.
export function fcBackwardInput(
  rows: number, inF: number, outF: number, mantissaQ15: Int16Array, wscaleExp: number,
  gradOut: Int8Array, gradOutExp: number, w: Int8Array, gradIn: Int8Array,
): number {
  const k = bitLength(outF - 1);
  const pre = k > 9 ? k - 1 : 8;
  const acc = new Array<number>(rows * inF).fill(0);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < outF; c++) {
      const gs = Math.floor((gradOut[r * outF + c]! * mantissaQ15[c]! + 2 ** (pre - 1)) / 2 ** pre);
      for (let i = 0; i < inF; i++) acc[r * inF + i]! += w[c * inF + i]! * gs;
    }
  }
  const s = normalizeToInt8(acc, gradIn);
  return gradOutExp + wscaleExp - 15 + pre + s;
}

export function fcBackwardBias(rows: number, outF: number, ocBegin: number, ocEnd: number, gradOut: Int8Array, gradBias: Int32Array): void {
  for (let c = ocBegin; c < ocEnd; c++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += gradOut[r * outF + c]!;
    gradBias[c - ocBegin] = s;
  }
}

export interface Block {
  ocBegin: number;
  ocEnd: number;
  icBegin: number;
  icEnd: number;
}

export function fcWeightGradient(rows: number, inF: number, outF: number, b: Block, inputOffset: number,
  gradOut: Int8Array, input: Int8Array, c: number, i: number): number {
  let g = 0;
  for (let r = 0; r < rows; r++) g += gradOut[r * outF + c]! * (input[r * inF + i]! + inputOffset);
  return g;
}

export function fcBackwardWeight(rows: number, inF: number, outF: number, b: Block, inputOffset: number,
  gradOut: Int8Array, input: Int8Array, gradW: Int32Array): void {
  const nic = b.icEnd - b.icBegin;
  for (let c = b.ocBegin; c < b.ocEnd; c++) {
    for (let i = b.icBegin; i < b.icEnd; i++) {
      gradW[(c - b.ocBegin) * nic + (i - b.icBegin)] = fcWeightGradient(rows, inF, outF, b, inputOffset, gradOut, input, c, i);
    }
  }
}

export interface Lr {
  multiplier: Int32Array;
  shift: Int32Array;
}

// w[c][i] -= step(grad); grad(c, i) supplies the gradient of element (c, i).
function sgdInt8(inF: number, b: Block, grad: (c: number, i: number) => number, exp: number, lr: Lr,
  w: Int8Array, rng: { state: number }): void {
  for (let c = b.ocBegin; c < b.ocEnd; c++) {
    for (let i = b.icBegin; i < b.icEnd; i++) {
      const g = grad(c, i);
      if (g === 0) continue;
      const v = w[c * inF + i]! - sgdStep(g, lr.multiplier[c]!, lr.shift[c]!, exp, rng);
      w[c * inF + i] = clamp(v, -127, 127);
    }
  }
}

export function fcBackwardWeightSgd(rows: number, inF: number, outF: number, b: Block, inputOffset: number,
  gradOut: Int8Array, gradOutExp: number, input: Int8Array, lr: Lr, w: Int8Array, rng: { state: number }): void {
  sgdInt8(inF, b, (c, i) => fcWeightGradient(rows, inF, outF, b, inputOffset, gradOut, input, c, i), gradOutExp, lr, w, rng);
}

export function sgdS8Update(inF: number, b: Block, grad: Int32Array, exp: number, lr: Lr, w: Int8Array,
  rng: { state: number }): void {
  const nic = b.icEnd - b.icBegin;
  sgdInt8(inF, b, (c, i) => grad[(c - b.ocBegin) * nic + (i - b.icBegin)]!, exp, lr, w, rng);
}

export function sgdS32Update(ocBegin: number, ocEnd: number, grad: Int32Array, exp: number, lr: Lr,
  bias: Int32Array, rng: { state: number }): void {
  for (let c = ocBegin; c < ocEnd; c++) {
    const g = grad[c - ocBegin]!;
    if (g === 0) continue;
    bias[c] = clamp(bias[c]! - sgdStep(g, lr.multiplier[c]!, lr.shift[c]!, exp, rng), -2147483648, 2147483647);
  }
}

export function activationBackward(n: number, mask: Uint8Array, grad: Int8Array): void {
  for (let k = 0; k < n; k++) if (((mask[k >> 3]! >> (k & 7)) & 1) === 0) grad[k] = 0;
}

// in (rows, channels) -> out (rows, end - begin): channels [begin, end).
export function channelSlice(rows: number, channels: number, begin: number, end: number, input: Int8Array, out: Int8Array): void {
  for (let r = 0; r < rows; r++) for (let c = begin; c < end; c++) out[r * (end - begin) + c - begin] = input[r * channels + c]!;
}

// round(2^(i/32) * 2^30), i = 0..32: the same table as native/core.
export const exp2Q30 = [
  1073741824, 1097253708, 1121280436, 1145833280, 1170923762, 1196563654, 1222764986, 1249540052,
  1276901417, 1304861917, 1333434672, 1362633090, 1392470869, 1422962010, 1454120821, 1485961921,
  1518500250, 1551751076, 1585730000, 1620452965, 1655936265, 1692196547, 1729250827, 1767116489,
  1805811301, 1845353420, 1885761398, 1927054196, 1969251188, 2012372174, 2056437387, 2101467502,
  2147483648,
];

// 2^(t / 2^16) in Q16, for t <= 0.
export function exp2NegQ16(t: number): number {
  const n = Math.floor(t / 65536);
  const f = t - n * 65536;
  const idx = Math.floor(f / 2048), frac = f % 2048;
  const lo = exp2Q30[idx]!, hi = exp2Q30[idx + 1]!;
  const v = lo + Math.floor(((hi - lo) * frac) / 2048);
  const sh = 14 - n;
  return sh >= 32 ? 0 : Math.floor(v / 2 ** sh);
}

// Returns p_label in Q16; writes grad (exponent -7).
export function softmaxXentBackward(classes: number, logits: Int8Array, log2eScaleQ16: number, label: number,
  grad: Int8Array): number {
  let xmax = -128;
  for (let j = 0; j < classes; j++) xmax = Math.max(xmax, logits[j]!);
  const e: number[] = [];
  for (let j = 0; j < classes; j++) e.push(exp2NegQ16((logits[j]! - xmax) * log2eScaleQ16));
  const sum = e.reduce((a, b) => a + b, 0);
  for (let j = 0; j < classes; j++) {
    let p128 = Math.floor((e[j]! * 128 + Math.floor(sum / 2)) / sum);
    if (j === label) p128 -= 128;
    grad[j] = clamp(p128, -128, 127);
  }
  return Math.floor((e[label]! * 65536 + Math.floor(sum / 2)) / sum);
}
