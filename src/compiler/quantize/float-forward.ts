// The real-arithmetic forward of a Graph: each op evaluated in float64 from
// its definition (TFLite's float semantics: NHWC, OHWI weights, depthwise
// weights [1][kh][kw][c*m], SAME/VALID padding, fused ReLU/ReLU6), never from
// the int8 kernels. Two users:
//  - post-training quantisation: the float32 model's reference forward, whose
//    activations on the calibration samples give the ranges (calibrate.ts);
//  - the tests' oracle for int8 graphs: the same ops on dequantised tensors.
// So constants may be float32 (a float model) or quantised (int8 weights,
// int32 biases at s_in * s_w, as the int8 kernels add them). The arithmetic is
// float64 whatever the storage: float32 weights are exact in float64, and the
// reference stays well below the int8 error it is compared with.
// Host-side compiler code, platform-free.

import { type FusedActivation, type Graph, GraphError, type GraphOp, type GraphTensor, tensorElements } from '../../core/graph.js';

// Real values of a quantised tensor's integers (per tensor, or per channel
// along quant.axis).
export function dequantize(t: GraphTensor, q: ArrayLike<number>): Float64Array {
  const out = new Float64Array(q.length);
  const quant = t.quant;
  if (!quant) throw new GraphError(`tensor "${t.name}" is ${t.dtype} without quantisation parameters`);
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

// The stored values of a constant: integers for int8/int32, floats for float32.
export function constantValues(t: GraphTensor): Float64Array {
  const d = t.data;
  if (!d) throw new GraphError(`tensor "${t.name}" is not a constant`);
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  switch (t.dtype) {
    case 'int8': return Float64Array.from({ length: d.length }, (_, i) => dv.getInt8(i));
    case 'uint8': return Float64Array.from(d);
    case 'int16': return Float64Array.from({ length: d.length / 2 }, (_, i) => dv.getInt16(2 * i, true));
    case 'int32': return Float64Array.from({ length: d.length / 4 }, (_, i) => dv.getInt32(4 * i, true));
    case 'float32': return Float64Array.from({ length: d.length / 4 }, (_, i) => dv.getFloat32(4 * i, true));
  }
}

// The real weights and biases of a conv, depthwise or fully-connected op.
export interface LayerConstants {
  weights: Float64Array;
  bias: Float64Array | null; // per output channel
}

export function layerConstants(g: Graph, op: GraphOp): LayerConstants {
  const wT = g.tensors[op.inputs[1]!]!;
  const w = constantValues(wT);
  const weights = wT.dtype === 'float32' ? w : dequantize(wT, w);
  const bi = op.inputs[2] ?? -1;
  if (bi < 0) return { weights, bias: null };
  const bT = g.tensors[bi]!;
  const b = constantValues(bT);
  if (bT.dtype === 'float32') return { weights, bias: b };
  // An int32 bias is added to the accumulator, whose scale is s_in * s_w[c]
  // (TFLite ignores the bias tensor's own float32 copy of that product).
  const sIn = g.tensors[op.inputs[0]!]!.quant?.scale[0];
  const sW = wT.quant?.scale;
  if (sIn === undefined || !sW) throw new GraphError(`operator ${op.index} (${op.kind}): an integer bias needs quantised input and weights`);
  return { weights, bias: b.map((v, c) => v * sIn * (sW.length === 1 ? sW[0]! : sW[c]!)) };
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

// Real output of op from the real values of its inputs (by graph tensor
// index). `constants` lets a caller cache a layer's real weights.
export function floatOp(
  g: Graph, op: GraphOp, value: (tensor: number) => Float64Array,
  constants: (op: GraphOp) => LayerConstants = (o) => layerConstants(g, o),
): Float64Array {
  const T = (i: number) => g.tensors[i]!;
  const y = T(op.outputs[0]!);
  const out = new Float64Array(tensorElements(y));
  switch (op.kind) {
    case 'conv2d':
    case 'depthwise_conv2d': {
      const xT = T(op.inputs[0]!), wT = T(op.inputs[1]!);
      const x = value(op.inputs[0]!);
      const { weights: w, bias } = constants(op);
      const [N, H, W, C] = xT.shape as [number, number, number, number];
      const [, OH, OW, OC] = y.shape as [number, number, number, number];
      const KH = wT.shape[1]!, KW = wT.shape[2]!;
      const ph = pads(H, KH, op.strideH, OH, op.padding), pw = pads(W, KW, op.strideW, OW, op.padding);
      const mult = op.kind === 'depthwise_conv2d' ? op.depthMultiplier : 1;
      // Per output pixel: start from the bias, add each kernel tap's
      // contribution to every output channel (the input pixel is read once
      // per tap), then apply the activation.
      for (let n = 0; n < N; n++)
        for (let oy = 0; oy < OH; oy++)
          for (let ox = 0; ox < OW; ox++) {
            const o = ((n * OH + oy) * OW + ox) * OC;
            for (let oc = 0; oc < OC; oc++) out[o + oc] = bias ? bias[oc]! : 0;
            for (let ky = 0; ky < KH; ky++) {
              const iy = oy * op.strideH - ph + ky;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < KW; kx++) {
                const ix = ox * op.strideW - pw + kx;
                if (ix < 0 || ix >= W) continue;
                const base = ((n * H + iy) * W + ix) * C;
                if (op.kind === 'conv2d') {
                  for (let oc = 0; oc < OC; oc++) {
                    const wo = ((oc * KH + ky) * KW + kx) * C;
                    let s = 0;
                    for (let ic = 0; ic < C; ic++) s += x[base + ic]! * w[wo + ic]!;
                    out[o + oc]! += s;
                  }
                } else {
                  const wo = (ky * KW + kx) * OC;
                  if (mult === 1) for (let oc = 0; oc < OC; oc++) out[o + oc]! += x[base + oc]! * w[wo + oc]!;
                  else for (let oc = 0; oc < OC; oc++) out[o + oc]! += x[base + Math.floor(oc / mult)]! * w[wo + oc]!;
                }
              }
            }
            if (op.activation !== 'none') for (let oc = 0; oc < OC; oc++) out[o + oc] = act(out[o + oc]!, op.activation);
          }
      return out;
    }
    case 'fully_connected': {
      const wT = T(op.inputs[1]!);
      const x = value(op.inputs[0]!);
      const { weights: w, bias } = constants(op);
      const [O, I] = [wT.shape[0]!, wT.shape[1]!];
      for (let r = 0; r < x.length / I; r++)
        for (let c = 0; c < O; c++) {
          let s = bias ? bias[c]! : 0;
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
      // Mean over the axes named by the constant int32 input, any rank.
      const xT = T(op.inputs[0]!), x = value(op.inputs[0]!);
      const r = xT.shape.length;
      const reduced = new Set(Array.from(constantValues(T(op.inputs[1]!)), (a) => (a < 0 ? a + r : a)));
      const count = xT.shape.reduce((a, d, i) => (reduced.has(i) ? a * d : a), 1);
      for (let i = 0; i < x.length; i++) {
        // The output element of input element i: its index with the reduced axes dropped.
        let rem = i, o = 0, stride = 1;
        for (let d = r - 1; d >= 0; d--) {
          const size = xT.shape[d]!, coord = rem % size;
          rem = (rem - coord) / size;
          if (!reduced.has(d)) {
            o += coord * stride;
            stride *= size;
          }
        }
        out[o]! += x[i]!;
      }
      for (let o = 0; o < out.length; o++) out[o]! /= count;
      return out;
    }
    case 'add': {
      const a = value(op.inputs[0]!), b = value(op.inputs[1]!);
      if (a.length !== out.length || b.length !== out.length) {
        throw new GraphError(`operator ${op.index} (add): broadcasting is not supported`);
      }
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

// A graph's forward in real arithmetic, with each layer's real weights
// computed once. Input: the real values of the graph input (for an int8
// graph, the dequantised input).
export class FloatForward {
  private readonly cache = new Map<GraphOp, LayerConstants>();
  private readonly constantsOf = (op: GraphOp): LayerConstants => {
    let c = this.cache.get(op);
    if (!c) this.cache.set(op, (c = layerConstants(this.graph, op)));
    return c;
  };

  constructor(readonly graph: Graph) {
    if (graph.inputs.length !== 1 || graph.outputs.length !== 1) {
      throw new GraphError(`model "${graph.name}" has ${graph.inputs.length} inputs and ${graph.outputs.length} outputs; one of each is supported`);
    }
  }

  get inputElements(): number {
    return tensorElements(this.graph.tensors[this.graph.inputs[0]!]!);
  }

  // Every tensor's real value (the graph input and each op's output), by
  // tensor index; undefined for constants.
  run(input: ArrayLike<number>): (Float64Array | undefined)[] {
    const g = this.graph;
    const n = this.inputElements;
    if (input.length !== n) throw new GraphError(`input of "${g.name}" has ${n} elements, got ${input.length}`);
    const values: (Float64Array | undefined)[] = new Array(g.tensors.length);
    values[g.inputs[0]!] = Float64Array.from(input);
    const value = (t: number): Float64Array => {
      const v = values[t];
      if (!v) throw new GraphError(`tensor ${t} "${g.tensors[t]!.name}" is read before it is written`);
      return v;
    };
    for (const op of g.ops) values[op.outputs[0]!] = floatOp(g, op, value, this.constantsOf);
    return values;
  }

  output(input: ArrayLike<number>): Float64Array {
    return this.run(input)[this.graph.outputs[0]!]!;
  }
}
