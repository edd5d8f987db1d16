// Float64 depthwise conv2d on real-valued tensors: the oracle the int8
// kernels are measured against (forward and gradients), plus the TFLite
// SAME/VALID geometry. No quantisation anywhere in this file.
import type { DepthwiseConv2dShape } from '../../src/core/kernels.js';
import type { DwDims } from '../../src/core/reference/depthwise_conv2d.js';
import { convGeometry } from '../../src/core/conv-geometry.js';
export { cosine, relErr } from './gradient-report.js';

export function dwDims(batch: number, inH: number, inW: number, inC: number, mult: number, kH: number, kW: number,
  strideH: number, strideW: number, padding: 'same' | 'valid'): DwDims {
  const g = convGeometry(inH, inW, kH, kW, strideH, strideW, padding);
  return { batch, inH, inW, inC, outH: g.outH, outW: g.outW, mult, kH, kW, strideH, strideW, padH: g.padH, padW: g.padW };
}

export function kernelShape(d: DwDims): DepthwiseConv2dShape {
  const { mult, ...rest } = d;
  return { ...rest, depthMultiplier: mult };
}

export const sizes = (d: DwDims) => {
  const oc = d.inC * d.mult;
  return { oc, inN: d.batch * d.inH * d.inW * d.inC, outN: d.batch * d.outH * d.outW * oc, wN: d.kH * d.kW * oc };
};

// Calls f(inBase, outBase, wBase) for every tap (b, oy, ox, ky, kx) inside the
// image: the indices of channel 0 of the input pixel, output pixel and tap.
function forEachTap(d: DwDims, f: (inBase: number, outBase: number, wBase: number) => void): void {
  const oc = d.inC * d.mult;
  for (let b = 0; b < d.batch; b++)
    for (let oy = 0; oy < d.outH; oy++)
      for (let ox = 0; ox < d.outW; ox++)
        for (let ky = 0; ky < d.kH; ky++)
          for (let kx = 0; kx < d.kW; kx++) {
            const iy = oy * d.strideH - d.padH + ky, ix = ox * d.strideW - d.padW + kx;
            if (iy < 0 || iy >= d.inH || ix < 0 || ix >= d.inW) continue;
            f(((b * d.inH + iy) * d.inW + ix) * d.inC, ((b * d.outH + oy) * d.outW + ox) * oc, (ky * d.kW + kx) * oc);
          }
}

// y = conv(x, w) + bias, real valued (zero padding).
export function floatForward(d: DwDims, x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null): Float64Array {
  const { oc, outN } = sizes(d);
  const y = new Float64Array(outN);
  if (bias) for (let k = 0; k < outN; k++) y[k] = bias[k % oc]!;
  forEachTap(d, (i, o, wb) => {
    for (let c = 0; c < oc; c++) y[o + c]! += x[i + Math.floor(c / d.mult)]! * w[wb + c]!;
  });
  return y;
}

// dL/dx, dL/dw ([ky][kx][oc]) and dL/db for the upstream gradient g = dL/dy.
export function floatGradients(d: DwDims, x: ArrayLike<number>, w: ArrayLike<number>, g: ArrayLike<number>) {
  const { oc, inN, wN, outN } = sizes(d);
  const dx = new Float64Array(inN), dw = new Float64Array(wN), db = new Float64Array(oc);
  forEachTap(d, (i, o, wb) => {
    for (let c = 0; c < oc; c++) {
      const ic = i + Math.floor(c / d.mult);
      dx[ic]! += w[wb + c]! * g[o + c]!;
      dw[wb + c]! += x[ic]! * g[o + c]!;
    }
  });
  for (let k = 0; k < outN; k++) db[k % oc]! += g[k]!;
  return { dx, dw, db };
}

