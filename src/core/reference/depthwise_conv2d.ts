// Reference depthwise conv2d kernels (TFLite DEPTHWISE_CONV_2D, int8,
// per-channel weights, dilation 1): the plain versions of
// native/core/depthwise_conv2d_s8.c, loops in TFLite's
// reference_integer_ops::DepthwiseConvPerChannel order.
// Layouts: input (batch, inH, inW, inC) NHWC, weights (1, kH, kW, outC) with
// outC = inC * mult and oc = ic * mult + m, output (batch, outH, outW, outC).
// Taps outside the image are skipped (they contribute as the zero point).

import { clamp, requantize, bitLength, normalizeToInt8, sgdStep, storeActivation } from './fixed.js';
import type { Block, FcQuant, Lr } from './kernels.js';
import { type LqmParams, lqmElement, lqmScaled } from './lqm.js';

export interface DwDims {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  mult: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
}

const inIndex = (d: DwDims, b: number, y: number, x: number, c: number): number =>
  ((b * d.inH + y) * d.inW + x) * d.inC + c;
const outIndex = (d: DwDims, b: number, y: number, x: number, c: number): number =>
  ((b * d.outH + y) * d.outW + x) * d.inC * d.mult + c;
const wIndex = (d: DwDims, ky: number, kx: number, c: number): number => (ky * d.kW + kx) * d.inC * d.mult + c;
const inside = (d: DwDims, y: number, x: number): boolean => y >= 0 && y < d.inH && x >= 0 && x < d.inW;

export function dwForward(
  d: DwDims, q: FcQuant, input: Int8Array, w: Int8Array, bias: Int32Array | null, out: Int8Array,
  mask: Uint8Array | null,
): void {
  for (let b = 0; b < d.batch; b++) {
    for (let oy = 0; oy < d.outH; oy++) {
      for (let ox = 0; ox < d.outW; ox++) {
        for (let ic = 0; ic < d.inC; ic++) {
          for (let m = 0; m < d.mult; m++) {
            const oc = ic * d.mult + m;
            let acc = 0;
            for (let ky = 0; ky < d.kH; ky++) {
              for (let kx = 0; kx < d.kW; kx++) {
                const iy = oy * d.strideH - d.padH + ky, ix = ox * d.strideW - d.padW + kx;
                if (!inside(d, iy, ix)) continue;
                acc += (input[inIndex(d, b, iy, ix, ic)]! + q.inputOffset) * w[wIndex(d, ky, kx, oc)]!;
              }
            }
            if (bias) acc = (acc + bias[oc]!) | 0;
            let v = requantize(acc, q.multiplier[oc]!, q.shift[oc]!);
            v = clamp(v, -(1 << 24), 1 << 24) + q.outputOffset;
            const k = outIndex(d, b, oy, ox, oc);
            storeActivation(out, mask, k, v, q.actMin, q.actMax);
          }
        }
      }
    }
  }
}


// The pre-scale shift of the output gradient: from the most terms one input
// element sums, mult * ceil(kH/strideH) * ceil(kW/strideW) (native/core).
export function dwBackwardInputPrescale(d: DwDims): number {
  const terms = Math.min(d.mult * Math.ceil(d.kH / d.strideH) * Math.ceil(d.kW / d.strideW), 2 ** 31);
  const k = bitLength(terms - 1);
  return k > 9 ? k - 1 : 8;
}

// Gathers, for each input element, the output gradients whose windows read
// it (the C kernel scatters). Returns the exponent of grad_in.
export function dwBackwardInput(
  d: DwDims, mantissaQ15: Int16Array, wscaleExp: number, gradOut: Int8Array, gradOutExp: number, w: Int8Array,
  gradIn: Int8Array,
): number {
  const pre = dwBackwardInputPrescale(d);
  const gs = (b: number, oy: number, ox: number, oc: number): number =>
    Math.floor((gradOut[outIndex(d, b, oy, ox, oc)]! * mantissaQ15[oc]! + 2 ** (pre - 1)) / 2 ** pre);
  const acc = new Array<number>(d.batch * d.inH * d.inW * d.inC).fill(0);
  for (let b = 0; b < d.batch; b++) {
    for (let iy = 0; iy < d.inH; iy++) {
      for (let ix = 0; ix < d.inW; ix++) {
        for (let ic = 0; ic < d.inC; ic++) {
          let a = 0;
          for (let m = 0; m < d.mult; m++) {
            const oc = ic * d.mult + m;
            for (let ky = 0; ky < d.kH; ky++) {
              const ty = iy + d.padH - ky; // = oy * strideH
              if (ty < 0 || ty % d.strideH !== 0 || ty / d.strideH >= d.outH) continue;
              for (let kx = 0; kx < d.kW; kx++) {
                const tx = ix + d.padW - kx;
                if (tx < 0 || tx % d.strideW !== 0 || tx / d.strideW >= d.outW) continue;
                a += w[wIndex(d, ky, kx, oc)]! * gs(b, ty / d.strideH, tx / d.strideW, oc);
              }
            }
          }
          acc[inIndex(d, b, iy, ix, ic)] = a;
        }
      }
    }
  }
  const s = normalizeToInt8(acc, gradIn);
  return gradOutExp + wscaleExp - 15 + pre + s;
}

export function dwBackwardBias(d: DwDims, ocBegin: number, ocEnd: number, gradOut: Int8Array, gradBias: Int32Array): void {
  for (let oc = ocBegin; oc < ocEnd; oc++) {
    let s = 0;
    for (let b = 0; b < d.batch; b++) {
      for (let oy = 0; oy < d.outH; oy++) {
        for (let ox = 0; ox < d.outW; ox++) s += gradOut[outIndex(d, b, oy, ox, oc)]!;
      }
    }
    gradBias[oc - ocBegin] = s;
  }
}

// One element of the weight gradient: tap (ky, kx) of output channel oc,
// summed over the output pixels whose tap lies in the image.
function weightGradient(d: DwDims, inputOffset: number, gradOut: Int8Array, input: Int8Array, oc: number, ky: number,
  kx: number): number {
  const ic = Math.floor(oc / d.mult);
  let g = 0;
  for (let b = 0; b < d.batch; b++) {
    for (let oy = 0; oy < d.outH; oy++) {
      for (let ox = 0; ox < d.outW; ox++) {
        const iy = oy * d.strideH - d.padH + ky, ix = ox * d.strideW - d.padW + kx;
        if (!inside(d, iy, ix)) continue;
        g += gradOut[outIndex(d, b, oy, ox, oc)]! * (input[inIndex(d, b, iy, ix, ic)]! + inputOffset);
      }
    }
  }
  return g;
}

// grad_w[ky][kx][oc - ocBegin]: only the block's output-channel range is
// used (a depthwise weight belongs to one output channel).
export function dwBackwardWeight(d: DwDims, blk: Pick<Block, 'ocBegin' | 'ocEnd'>, inputOffset: number,
  gradOut: Int8Array, input: Int8Array, gradW: Int32Array): void {
  const noc = blk.ocEnd - blk.ocBegin;
  for (let ky = 0; ky < d.kH; ky++) {
    for (let kx = 0; kx < d.kW; kx++) {
      for (let oc = blk.ocBegin; oc < blk.ocEnd; oc++) {
        gradW[(ky * d.kW + kx) * noc + (oc - blk.ocBegin)] = weightGradient(d, inputOffset, gradOut, input, oc, ky, kx);
      }
    }
  }
}

// Fused weight gradient + integer SGD, per channel: for each output channel
// of the block, each tap (ky, kx) in order, the gradient of dwBackwardWeight
// and (when nonzero) the stochastically rounded step of sgd_s8_update with
// the channel's learning rate. w is the whole (1, kH, kW, outC) tensor.
export function dwBackwardWeightSgd(d: DwDims, blk: Pick<Block, 'ocBegin' | 'ocEnd'>, inputOffset: number, gradOut: Int8Array,
  gradOutExp: number, input: Int8Array, lr: Lr, w: Int8Array, rng: { state: number }): void {
  for (let oc = blk.ocBegin; oc < blk.ocEnd; oc++) {
    for (let ky = 0; ky < d.kH; ky++) {
      for (let kx = 0; kx < d.kW; kx++) {
        const g = weightGradient(d, inputOffset, gradOut, input, oc, ky, kx);
        if (g === 0) continue;
        const k = wIndex(d, ky, kx, oc);
        w[k] = clamp(w[k]! - sgdStep(g, lr.multiplier[oc]!, lr.shift[oc]!, gradOutExp, rng), -127, 127);
      }
    }
  }
}

// Fused weight gradient + LQM (op 40), in the order of dwBackwardWeightSgd:
// every tap of every output channel of the block through the update of
// lqmS8Update with the channel's step exponent. The state holds one field
// per element of the whole (1, kH, kW, outC) w, at the element's index.
export function dwBackwardWeightLqm(d: DwDims, blk: Pick<Block, 'ocBegin' | 'ocEnd'>, inputOffset: number, gradOut: Int8Array,
  gradOutExp: number, input: Int8Array, shift: Int32Array, p: LqmParams, state: Uint8Array, w: Int8Array,
  rng: { state: number }): void {
  for (let oc = blk.ocBegin; oc < blk.ocEnd; oc++) {
    const S = gradOutExp + shift[oc]! - p.emin;
    for (let ky = 0; ky < d.kH; ky++) {
      for (let kx = 0; kx < d.kW; kx++) {
        const k = wIndex(d, ky, kx, oc);
        const t = lqmScaled(weightGradient(d, inputOffset, gradOut, input, oc, ky, kx), S);
        w[k] = lqmElement(p, state, k, t, w[k]!, rng);
      }
    }
  }
}
