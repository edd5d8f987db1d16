// Output size and explicit padding of a 2-D window (convolution, depthwise
// convolution, pooling) from TFLite's SAME/VALID padding, exactly as TFLite
// computes them (tensorflow/lite/kernels/padding.h, dilation 1):
//   SAME:  out = ceil(in / stride)
//   VALID: out = ceil((in - k + 1) / stride)
//   total pad = max((out - 1) * stride + k - in, 0), top/left = floor(total / 2)
// (the odd pixel goes to the bottom/right). The kernels take out and the
// top/left padding; the bottom/right padding follows from them.

export type Padding = 'same' | 'valid';

export interface ConvGeometry {
  outH: number;
  outW: number;
  padH: number; // top
  padW: number; // left
}

function axis(inSize: number, k: number, stride: number, padding: Padding, what: string): { out: number; pad: number } {
  for (const [name, v] of [[`${what} input`, inSize], [`${what} kernel`, k], [`${what} stride`, stride]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`convGeometry: ${name} size is ${v}, expected a positive integer`);
  }
  const out = padding === 'same' ? Math.ceil(inSize / stride) : Math.ceil((inSize - k + 1) / stride);
  if (out < 1) {
    throw new Error(`convGeometry: VALID padding needs ${what} kernel ${k} <= input ${inSize}; use SAME padding`);
  }
  const total = Math.max((out - 1) * stride + k - inSize, 0);
  return { out, pad: Math.floor(total / 2) };
}

export function convGeometry(
  inH: number, inW: number, kH: number, kW: number, strideH: number, strideW: number, padding: Padding,
): ConvGeometry {
  const h = axis(inH, kH, strideH, padding, 'height');
  const w = axis(inW, kW, strideW, padding, 'width');
  return { outH: h.out, outW: w.out, padH: h.pad, padW: w.pad };
}
