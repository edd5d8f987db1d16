// Reference average pool (and global mean), int8 NHWC: TFLite
// reference_integer_ops::AveragePool and ::Mean, and the backward of the
// average as exact integer sums. Plain loops; see native/core/average_pool_s8.c
// for the bounds.

import { clamp, requantize, bitLength, normalizeToInt8, storeActivation } from './fixed.js';

export interface PoolDims {
  batches: number;
  inH: number;
  inW: number;
  channels: number;
  outH: number;
  outW: number;
  filterH: number;
  filterW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
}

const nhwc = (d: { channels: number }, h: number, w: number, b: number, y: number, x: number, c: number): number =>
  ((b * h + y) * w + x) * d.channels + c;

// In-image taps [t0, t1) of window o along one axis.
function taps(o: number, stride: number, pad: number, filter: number, size: number): [number, number] {
  const origin = o * stride - pad;
  return [Math.max(0, -origin), Math.min(filter, size - origin)];
}

function windowCount(d: PoolDims, oy: number, ox: number): number {
  const [y0, y1] = taps(oy, d.strideH, d.padH, d.filterH, d.inH);
  const [x0, x1] = taps(ox, d.strideW, d.padW, d.filterW, d.inW);
  return (y1 - y0) * (x1 - x0);
}

// TFLite's rounding of the average: half away from zero, truncating division.
function roundedDivide(sum: number, count: number): number {
  const half = Math.trunc(count / 2);
  return sum > 0 ? Math.trunc((sum + half) / count) : Math.trunc((sum - half) / count);
}

export function averagePoolForward(d: PoolDims, actMin: number, actMax: number, input: Int8Array, out: Int8Array,
  mask: Uint8Array | null): void {
  for (let b = 0; b < d.batches; b++) {
    for (let oy = 0; oy < d.outH; oy++) {
      for (let ox = 0; ox < d.outW; ox++) {
        for (let c = 0; c < d.channels; c++) {
          let sum = 0, count = 0;
          for (let fy = 0; fy < d.filterH; fy++) {
            for (let fx = 0; fx < d.filterW; fx++) {
              const y = oy * d.strideH - d.padH + fy, x = ox * d.strideW - d.padW + fx;
              if (y < 0 || y >= d.inH || x < 0 || x >= d.inW) continue; // out-of-image taps are skipped
              sum += input[nhwc(d, d.inH, d.inW, b, y, x, c)]!;
              count++;
            }
          }
          const v = roundedDivide(sum, count);
          const k = nhwc(d, d.outH, d.outW, b, oy, ox, c);
          storeActivation(out, mask, k, v, actMin, actMax);
        }
      }
    }
  }
}


// Q of the reciprocals round(2^Q / count): 22 - L + C, at most 30, where
// 2^L > ceil(fh/sh)*ceil(fw/sw) (windows per pixel) and 2^C <= the smallest count.
export function averagePoolBackwardQ(d: PoolDims): number {
  const perPixel = Math.ceil(d.filterH / d.strideH) * Math.ceil(d.filterW / d.strideW);
  let minCount = Infinity;
  for (let oy = 0; oy < d.outH; oy++) for (let ox = 0; ox < d.outW; ox++) minCount = Math.min(minCount, windowCount(d, oy, ox));
  return Math.min(30, 22 - bitLength(perPixel) + bitLength(minCount) - 1);
}

// Returns the exponent of grad_in.
export function averagePoolBackward(d: PoolDims, gradOut: Int8Array, gradOutExp: number, gradIn: Int8Array): number {
  const q = averagePoolBackwardQ(d);
  const acc: number[] = [];
  for (let b = 0; b < d.batches; b++) {
    for (let y = 0; y < d.inH; y++) {
      for (let x = 0; x < d.inW; x++) {
        for (let c = 0; c < d.channels; c++) {
          // gather: every window that holds (y, x)
          let sum = 0;
          for (let oy = 0; oy < d.outH; oy++) {
            const fy = y - (oy * d.strideH - d.padH);
            if (fy < 0 || fy >= d.filterH) continue;
            for (let ox = 0; ox < d.outW; ox++) {
              const fx = x - (ox * d.strideW - d.padW);
              if (fx < 0 || fx >= d.filterW) continue;
              const count = windowCount(d, oy, ox);
              const r = Math.floor((2 ** q + Math.floor(count / 2)) / count);
              sum += gradOut[nhwc(d, d.outH, d.outW, b, oy, ox, c)]! * r;
            }
          }
          acc.push(sum);
        }
      }
    }
  }
  const s = normalizeToInt8(acc, gradIn);
  return gradOutExp - q + s;
}

// TFLite MEAN over axes [1, 2], keep_dims: requantise the zero-point-free
// sum by s_in/s_out, then divide by h*w with the pool's rounding.
export function meanForward(batches: number, h: number, w: number, channels: number, inputZeroPoint: number,
  multiplier: number, shift: number, outputZeroPoint: number, input: Int8Array, out: Int8Array): void {
  for (let b = 0; b < batches; b++) {
    for (let c = 0; c < channels; c++) {
      let sum = 0;
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) sum += input[((b * h + y) * w + x) * channels + c]! - inputZeroPoint;
      const v = clamp(requantize(sum, multiplier, shift), -(2 ** 30), 2 ** 30);
      out[b * channels + c] = clamp(roundedDivide(v, h * w) + outputZeroPoint, -128, 127);
    }
  }
}
