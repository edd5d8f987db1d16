// Reference conv2d kernels (TFLite reference_integer_ops::ConvPerChannel
// style): plain loops over every output element and every tap, the oracle
// for native/core/conv2d_s8.c. Layouts: in (batch, inH, inW, inC) NHWC,
// w (outC, kH, kW, inC) OHWI, out (batch, outH, outW, outC). Dilation 1;
// tap (ky, kx) of output (oy, ox) reads input (oy*strideH - padH + ky,
// ox*strideW - padW + kx) and is skipped outside the image.
//
// The backward input is written as a gather (for each input element, the
// output pixels whose taps read it), the C kernel as a scatter: two
// formulations of one transposed convolution.

import { clamp, requantize, bitLength, normalizeToInt8, sgdStep, storeActivation } from './fixed.js';
import type { Block, FcQuant, Lr } from './kernels.js';
import { type LqmParams, lqmElement, lqmScaled } from './lqm.js';

export interface ConvDims {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
}

// The 13 dispatcher arguments, in xst_conv_dims order.
export function convDimsFromArgs(a: Int32Array): ConvDims {
  return {
    batch: a[0]!, inH: a[1]!, inW: a[2]!, inC: a[3]!, outH: a[4]!, outW: a[5]!, outC: a[6]!,
    kH: a[7]!, kW: a[8]!, strideH: a[9]!, strideW: a[10]!, padH: a[11]!, padW: a[12]!,
  };
}

const inIndex = (d: ConvDims, b: number, y: number, x: number, i: number) => ((b * d.inH + y) * d.inW + x) * d.inC + i;
const outIndex = (d: ConvDims, b: number, y: number, x: number, c: number) => ((b * d.outH + y) * d.outW + x) * d.outC + c;
const wIndex = (d: ConvDims, c: number, ky: number, kx: number, i: number) => ((c * d.kH + ky) * d.kW + kx) * d.inC + i;
const inside = (d: ConvDims, y: number, x: number) => y >= 0 && y < d.inH && x >= 0 && x < d.inW;

export function conv2dForward(d: ConvDims, q: FcQuant, input: Int8Array, w: Int8Array, bias: Int32Array | null,
  out: Int8Array, mask: Uint8Array | null): void {
  for (let b = 0; b < d.batch; b++) {
    for (let oy = 0; oy < d.outH; oy++) {
      for (let ox = 0; ox < d.outW; ox++) {
        for (let c = 0; c < d.outC; c++) {
          let acc = 0;
          for (let ky = 0; ky < d.kH; ky++) {
            for (let kx = 0; kx < d.kW; kx++) {
              const y = oy * d.strideH - d.padH + ky, x = ox * d.strideW - d.padW + kx;
              if (!inside(d, y, x)) continue;
              for (let i = 0; i < d.inC; i++) {
                acc += (input[inIndex(d, b, y, x, i)]! + q.inputOffset) * w[wIndex(d, c, ky, kx, i)]!;
              }
            }
          }
          if (bias) acc = (acc + bias[c]!) | 0;
          let v = requantize(acc, q.multiplier[c]!, q.shift[c]!);
          v = clamp(v, -(1 << 24), 1 << 24) + q.outputOffset;
          const k = outIndex(d, b, oy, ox, c);
          storeActivation(out, mask, k, v, q.actMin, q.actMax);
        }
      }
    }
  }
}


// Returns the exponent of grad_in. pre as in the C kernel: from the number of
// terms summed into one element, outC * ceil(kH/strideH) * ceil(kW/strideW).
export function conv2dBackwardInput(d: ConvDims, mantissaQ15: Int16Array, wscaleExp: number, gradOut: Int8Array,
  gradOutExp: number, w: Int8Array, gradIn: Int8Array): number {
  const terms = d.outC * Math.ceil(d.kH / d.strideH) * Math.ceil(d.kW / d.strideW);
  const t = bitLength(terms - 1);
  const pre = t > 9 ? t - 1 : 8;
  const gs = (b: number, oy: number, ox: number, c: number) =>
    Math.floor((gradOut[outIndex(d, b, oy, ox, c)]! * mantissaQ15[c]! + 2 ** (pre - 1)) / 2 ** pre);
  const acc = new Array<number>(d.batch * d.inH * d.inW * d.inC).fill(0);
  for (let b = 0; b < d.batch; b++) {
    for (let y = 0; y < d.inH; y++) {
      for (let x = 0; x < d.inW; x++) {
        for (let i = 0; i < d.inC; i++) {
          let s = 0;
          for (let ky = 0; ky < d.kH; ky++) {
            const sy = y + d.padH - ky; // = oy * strideH
            if (sy < 0 || sy % d.strideH !== 0 || sy / d.strideH >= d.outH) continue;
            for (let kx = 0; kx < d.kW; kx++) {
              const sx = x + d.padW - kx;
              if (sx < 0 || sx % d.strideW !== 0 || sx / d.strideW >= d.outW) continue;
              for (let c = 0; c < d.outC; c++) {
                s += w[wIndex(d, c, ky, kx, i)]! * gs(b, sy / d.strideH, sx / d.strideW, c);
              }
            }
          }
          acc[inIndex(d, b, y, x, i)] = s;
        }
      }
    }
  }
  const s = normalizeToInt8(acc, gradIn);
  return gradOutExp + wscaleExp - 15 + pre + s;
}

export function conv2dBackwardBias(d: ConvDims, ocBegin: number, ocEnd: number, gradOut: Int8Array,
  gradBias: Int32Array): void {
  for (let c = ocBegin; c < ocEnd; c++) {
    let s = 0;
    for (let b = 0; b < d.batch; b++) {
      for (let oy = 0; oy < d.outH; oy++) {
        for (let ox = 0; ox < d.outW; ox++) s += gradOut[outIndex(d, b, oy, ox, c)]!;
      }
    }
    gradBias[c - ocBegin] = s;
  }
}

// gradW is (noc, kH, kW, nic).
export function conv2dBackwardWeight(d: ConvDims, blk: Block, inputOffset: number, gradOut: Int8Array,
  input: Int8Array, gradW: Int32Array): void {
  const nic = blk.icEnd - blk.icBegin;
  for (let c = blk.ocBegin; c < blk.ocEnd; c++) {
    for (let ky = 0; ky < d.kH; ky++) {
      for (let kx = 0; kx < d.kW; kx++) {
        for (let i = blk.icBegin; i < blk.icEnd; i++) {
          let s = 0;
          for (let b = 0; b < d.batch; b++) {
            for (let oy = 0; oy < d.outH; oy++) {
              for (let ox = 0; ox < d.outW; ox++) {
                const y = oy * d.strideH - d.padH + ky, x = ox * d.strideW - d.padW + kx;
                if (!inside(d, y, x)) continue;
                s += gradOut[outIndex(d, b, oy, ox, c)]! * (input[inIndex(d, b, y, x, i)]! + inputOffset);
              }
            }
          }
          gradW[(((c - blk.ocBegin) * d.kH + ky) * d.kW + kx) * nic + (i - blk.icBegin)] = s;
        }
      }
    }
  }
}

// One element of the weight gradient: sum over the output pixels whose tap
// (ky, kx) lies in the image.
function weightGradient(d: ConvDims, inputOffset: number, gradOut: Int8Array, input: Int8Array, c: number, ky: number,
  kx: number, i: number): number {
  let s = 0;
  for (let b = 0; b < d.batch; b++) {
    for (let oy = 0; oy < d.outH; oy++) {
      for (let ox = 0; ox < d.outW; ox++) {
        const y = oy * d.strideH - d.padH + ky, x = ox * d.strideW - d.padW + kx;
        if (!inside(d, y, x)) continue;
        s += gradOut[outIndex(d, b, oy, ox, c)]! * (input[inIndex(d, b, y, x, i)]! + inputOffset);
      }
    }
  }
  return s;
}

// Fused weight gradient + integer SGD: every element of the block in
// (c, ky, kx, i) order, its gradient, and (when nonzero) the stochastically
// rounded step of sgd_s8_update with the channel's learning rate. w is the
// whole (outC, kH, kW, inC) tensor.
export function conv2dBackwardWeightSgd(d: ConvDims, blk: Block, inputOffset: number, gradOut: Int8Array, gradOutExp: number,
  input: Int8Array, lr: Lr, w: Int8Array, rng: { state: number }): void {
  for (let c = blk.ocBegin; c < blk.ocEnd; c++) {
    for (let ky = 0; ky < d.kH; ky++) {
      for (let kx = 0; kx < d.kW; kx++) {
        for (let i = blk.icBegin; i < blk.icEnd; i++) {
          const g = weightGradient(d, inputOffset, gradOut, input, c, ky, kx, i);
          if (g === 0) continue;
          const k = wIndex(d, c, ky, kx, i);
          w[k] = clamp(w[k]! - sgdStep(g, lr.multiplier[c]!, lr.shift[c]!, gradOutExp, rng), -127, 127);
        }
      }
    }
  }
}

// Fused weight gradient + LQM (op 39): every element of the block in
// (c, ky, kx, i) order, its gradient and the update of lqmS8Update with the
// channel's step exponent (a zero gradient still decays the momentum). The
// state holds one field per element of the whole (outC, kH, kW, inC) w, at
// the element's index.
export function conv2dBackwardWeightLqm(d: ConvDims, blk: Block, inputOffset: number, gradOut: Int8Array, gradOutExp: number,
  input: Int8Array, shift: Int32Array, p: LqmParams, state: Uint8Array, w: Int8Array, rng: { state: number }): void {
  for (let c = blk.ocBegin; c < blk.ocEnd; c++) {
    const S = gradOutExp + shift[c]! - p.emin;
    for (let ky = 0; ky < d.kH; ky++) {
      for (let kx = 0; kx < d.kW; kx++) {
        for (let i = blk.icBegin; i < blk.icEnd; i++) {
          const k = wIndex(d, c, ky, kx, i);
          const t = lqmScaled(weightGradient(d, inputOffset, gradOut, input, c, ky, kx, i), S);
          w[k] = lqmElement(p, state, k, t, w[k]!, rng);
        }
      }
    }
  }
}
