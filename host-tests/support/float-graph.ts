// The float64 oracle for whole models: each graph op evaluated in plain
// real arithmetic on dequantised tensors (TFLite's float semantics: NHWC,
// OHWI weights, SAME/VALID padding, fused ReLU/ReLU6), then quantised with
// the output's scale and zero point. Written from the op definitions, not
// from the kernels it checks.
import type { FusedActivation, Graph, GraphOp, GraphTensor } from '../../src/core/graph.js';

export function dequantize(t: GraphTensor, q: ArrayLike<number>): Float64Array {
  const out = new Float64Array(q.length);
  const quant = t.quant!;
  if (quant.scale.length === 1) {
    for (let i = 0; i < q.length; i++) out[i] = (q[i]! - quant.zeroPoint[0]!) * quant.scale[0]!;
    return out;
  }
  // Per-channel along axis: the stride of that axis.
  let inner = 1;
  for (let d = quant.axis + 1; d < t.shape.length; d++) inner *= t.shape[d]!;
  const n = t.shape[quant.axis]!;
  for (let i = 0; i < q.length; i++) {
    const c = Math.floor(i / inner) % n;
    out[i] = (q[i]! - quant.zeroPoint[c]!) * quant.scale[c]!;
  }
  return out;
}

export function constantValues(t: GraphTensor): number[] {
  const d = t.data!;
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const n = t.dtype === 'int32' ? d.length / 4 : d.length;
  return Array.from({ length: n }, (_, i) => (t.dtype === 'int32' ? dv.getInt32(4 * i, true) : dv.getInt8(i)));
}

function roundHalfAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

export function quantize(t: GraphTensor, real: Float64Array): Int8Array {
  const s = t.quant!.scale[0]!, zp = t.quant!.zeroPoint[0]!;
  return Int8Array.from(real, (v) => Math.max(-128, Math.min(127, roundHalfAway(v / s) + zp)));
}

function act(v: number, a: FusedActivation): number {
  if (a === 'relu') return Math.max(0, v);
  if (a === 'relu6') return Math.min(6, Math.max(0, v));
  return v;
}

function pads(inSize: number, k: number, stride: number, out: number, padding: 'same' | 'valid'): number {
  if (padding === 'valid') return 0;
  return Math.floor(Math.max((out - 1) * stride + k - inSize, 0) / 2);
}

// Real output of op from the real values of its inputs (by graph tensor index).
export function floatOp(g: Graph, op: GraphOp, value: (tensor: number) => Float64Array): Float64Array {
  const T = (i: number) => g.tensors[i]!;
  const y = T(op.outputs[0]!);
  const out = new Float64Array(y.shape.reduce((a, b) => a * b, 1));
  switch (op.kind) {
    case 'conv2d':
    case 'depthwise_conv2d': {
      const xT = T(op.inputs[0]!), wT = T(op.inputs[1]!);
      const x = value(op.inputs[0]!), w = dequantize(wT, constantValues(wT));
      const [N, H, W, C] = xT.shape as [number, number, number, number];
      const [, OH, OW, OC] = y.shape as [number, number, number, number];
      const KH = wT.shape[1]!, KW = wT.shape[2]!;
      const bias = op.inputs[2]! >= 0 ? constantValues(T(op.inputs[2]!)) : null;
      const sIn = xT.quant!.scale[0]!;
      const sW = (c: number) => wT.quant!.scale.length === 1 ? wT.quant!.scale[0]! : wT.quant!.scale[c]!;
      const ph = pads(H, KH, op.strideH, OH, op.padding), pw = pads(W, KW, op.strideW, OW, op.padding);
      const mult = op.kind === 'depthwise_conv2d' ? op.depthMultiplier : 1;
      for (let n = 0; n < N; n++)
        for (let oy = 0; oy < OH; oy++)
          for (let ox = 0; ox < OW; ox++)
            for (let oc = 0; oc < OC; oc++) {
              let s = bias ? bias[oc]! * sIn * sW(oc) : 0;
              for (let ky = 0; ky < KH; ky++) {
                const iy = oy * op.strideH - ph + ky;
                if (iy < 0 || iy >= H) continue;
                for (let kx = 0; kx < KW; kx++) {
                  const ix = ox * op.strideW - pw + kx;
                  if (ix < 0 || ix >= W) continue;
                  const base = ((n * H + iy) * W + ix) * C;
                  if (op.kind === 'conv2d') {
                    for (let ic = 0; ic < C; ic++) s += x[base + ic]! * w[((oc * KH + ky) * KW + kx) * C + ic]!;
                  } else {
                    s += x[base + Math.floor(oc / mult)]! * w[(ky * KW + kx) * OC + oc]!;
                  }
                }
              }
              out[((n * OH + oy) * OW + ox) * OC + oc] = act(s, op.activation);
            }
      return out;
    }
    case 'fully_connected': {
      const wT = T(op.inputs[1]!);
      const x = value(op.inputs[0]!), w = dequantize(wT, constantValues(wT));
      const [O, I] = [wT.shape[0]!, wT.shape[1]!];
      const sIn = T(op.inputs[0]!).quant!.scale[0]!;
      const bias = op.inputs[2]! >= 0 ? constantValues(T(op.inputs[2]!)) : null;
      const sW = (c: number) => wT.quant!.scale.length === 1 ? wT.quant!.scale[0]! : wT.quant!.scale[c]!;
      for (let r = 0; r < x.length / I; r++)
        for (let c = 0; c < O; c++) {
          let s = bias ? bias[c]! * sIn * sW(c) : 0;
          for (let i = 0; i < I; i++) s += x[r * I + i]! * w[c * I + i]!;
          out[r * O + c] = act(s, op.activation);
        }
      return out;
    }
    case 'average_pool2d': {
      const xT = T(op.inputs[0]!), x = value(op.inputs[0]!);
      const [N, H, W, C] = xT.shape as [number, number, number, number];
      const [, OH, OW] = y.shape as [number, number, number, number];
      const ph = pads(H, op.filterH, op.strideH, OH, op.padding), pw = pads(W, op.filterW, op.strideW, OW, op.padding);
      for (let n = 0; n < N; n++)
        for (let oy = 0; oy < OH; oy++)
          for (let ox = 0; ox < OW; ox++)
            for (let c = 0; c < C; c++) {
              let s = 0, k = 0;
              for (let ky = 0; ky < op.filterH; ky++)
                for (let kx = 0; kx < op.filterW; kx++) {
                  const iy = oy * op.strideH - ph + ky, ix = ox * op.strideW - pw + kx;
                  if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                  s += x[((n * H + iy) * W + ix) * C + c]!;
                  k++;
                }
              out[((n * OH + oy) * OW + ox) * C + c] = act(s / k, op.activation);
            }
      return out;
    }
    case 'mean': {
      const xT = T(op.inputs[0]!), x = value(op.inputs[0]!);
      const [N, H, W, C] = xT.shape as [number, number, number, number];
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let p = 0; p < H * W; p++) s += x[(n * H * W + p) * C + c]!;
          out[n * C + c] = s / (H * W);
        }
      return out;
    }
    case 'add': {
      const a = value(op.inputs[0]!), b = value(op.inputs[1]!);
      for (let i = 0; i < out.length; i++) out[i] = act(a[i]! + b[i]!, op.activation);
      return out;
    }
    case 'reshape':
      return value(op.inputs[0]!).slice();
    case 'softmax': {
      const x = value(op.inputs[0]!);
      const C = y.shape[y.shape.length - 1]!;
      for (let r = 0; r < x.length / C; r++) {
        let m = -Infinity;
        for (let c = 0; c < C; c++) m = Math.max(m, x[r * C + c]!);
        let z = 0;
        for (let c = 0; c < C; c++) z += Math.exp(op.beta * (x[r * C + c]! - m));
        for (let c = 0; c < C; c++) out[r * C + c] = Math.exp(op.beta * (x[r * C + c]! - m)) / z;
      }
      return out;
    }
  }
}
