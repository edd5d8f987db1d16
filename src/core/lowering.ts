// Lowering of one forward graph op to its kernel call: one function per op,
// shared by the forward runner (runner.ts) and the training-plan compiler
// (src/compiler/train/lower.ts), so inference and training compute the same
// quantisation parameters and pass the same arguments.
//
// Quantisation parameters are computed the way TFLite's kernels prepare them
// (double products of the float32 scales, QuantizeMultiplier, activation
// ranges from float32 divisions), so outputs match TFLite's reference
// integer kernels. Where tensors live is the caller's business: the context
// places graph tensors (activations, weights, biases) and derived read-only
// tables (requantisation multipliers, transposed weights).

import type { DType, Tensor } from './arena.js';
import { convGeometry } from './conv-geometry.js';
import { type FusedActivation, type Graph, GraphError, type GraphOp, type GraphQuant, type GraphTensor, tensorElements } from './graph.js';
import type {
  AddForwardArgs, Conv2dForwardArgs, ConvShape, DepthwiseConv2dForwardArgs, DepthwiseConv2dShape, FcShape, Kernels, PoolShape,
} from './kernels.js';
import { quantizeMultiplier } from './quant.js';
import { addQuantParams, meanQuantParams, softmaxQuantParams } from './tflite-params.js';

export interface LoweringContext {
  readonly graph: Graph;
  // The placed tensor that holds graph tensor `index` (an activation, or a
  // weight/bias wherever the caller keeps it: flash, or the arena when it
  // trains).
  tensor(index: number, what: string): Tensor;
  // A derived read-only table, placed once per name.
  constant(name: string, dtype: DType, shape: number[], bytes: Uint8Array): Tensor;
}

// The kernel call of a conv2d, depthwise or add op on whole tensors: what a
// row-tiled forward (tiled-block.ts) calls again on bands of them.
export type ForwardCall =
  | { kind: 'conv2d'; args: Conv2dForwardArgs }
  | { kind: 'depthwise_conv2d'; args: DepthwiseConv2dForwardArgs }
  | { kind: 'add'; args: AddForwardArgs };

// One lowered operator: its cost and how to call its kernel.
export interface LoweredOp {
  macs: number; // multiply-accumulates of the forward (0 for data movement)
  run(k: Kernels): void;
  call?: ForwardCall; // conv2d, depthwise (also as a conv2d) and add
}

export type LayerOp = Extract<GraphOp, { kind: 'conv2d' | 'depthwise_conv2d' | 'fully_connected' }>;

const f32 = Math.fround;

export function quantOf(t: GraphTensor, what: string): GraphQuant {
  if (!t.quant || t.quant.scale.length === 0) {
    throw new GraphError(`${what}: tensor "${t.name}" has no quantisation parameters`);
  }
  return t.quant;
}

// Per-channel scales of a weight tensor, broadcast when per-tensor.
export function channelScales(q: GraphQuant, channels: number, what: string): number[] {
  if (q.scale.length === 1) return new Array<number>(channels).fill(q.scale[0]!);
  if (q.scale.length !== channels) {
    throw new GraphError(`${what}: ${q.scale.length} weight scales for ${channels} output channels`);
  }
  return q.scale;
}

// TFLite's CalculateActivationRangeQuantized for int8 outputs.
export function activationRange(act: FusedActivation, scale: number, zeroPoint: number): [number, number] {
  const quantize = (f: number) => zeroPoint + Math.round(f32(f / scale));
  if (act === 'relu') return [Math.max(-128, quantize(0)), 127];
  if (act === 'relu6') return [Math.max(-128, quantize(0)), Math.min(127, quantize(6))];
  return [-128, 127];
}

// Q31 multipliers and shifts of s_in * s_w[c] / s_out, as TFLite computes
// them (double arithmetic on the float32 scales, then QuantizeMultiplier).
export function outputMultipliers(sIn: number, sW: readonly number[], sOut: number): { multiplier: Int32Array; shift: Int32Array } {
  const multiplier = new Int32Array(sW.length), shift = new Int32Array(sW.length);
  for (let c = 0; c < sW.length; c++) {
    const q = quantizeMultiplier((sIn * sW[c]!) / sOut);
    multiplier[c] = q.multiplier;
    shift[c] = q.shift;
  }
  return { multiplier, shift };
}

export function bytesOf(a: Int32Array | Int16Array | Int8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// An int8 activation of the graph: its placed tensor, graph tensor and quantisation.
export function activation(ctx: LoweringContext, index: number, what: string): { t: Tensor; g: GraphTensor; q: GraphQuant } {
  const g = ctx.graph.tensors[index];
  if (!g || g.data) throw new GraphError(`${what}: tensor ${index} is not an activation`);
  if (g.dtype !== 'int8') throw new GraphError(`${what}: tensor "${g.name}" is ${g.dtype}, expected int8`);
  const q = quantOf(g, what);
  return { t: ctx.tensor(index, what), g, q };
}

// A depthwise convolution on one input channel with a depth multiplier runs
// as a conv2d with out_c = multiplier (a first layer on a grayscale image):
// the conv kernel has the faster paths for this shape. Its weights are
// transposed once at load time from [1][kh][kw][oc] to OHWI.
export function depthwiseAsConv(g: Graph, op: GraphOp): boolean {
  return op.kind === 'depthwise_conv2d' && g.tensors[op.inputs[0]!]!.shape[3] === 1 && op.depthMultiplier > 1;
}

export function transposeDepthwiseToOhwi(data: Uint8Array, kH: number, kW: number, outC: number): Uint8Array {
  const t = new Uint8Array(data.length);
  for (let o = 0; o < outC; o++) for (let p = 0; p < kH * kW; p++) t[o * kH * kW + p] = data[p * outC + o]!;
  return t;
}

// ---- geometry of a layer, as the kernels take it ----------------------------

export function convShapeOf(g: Graph, op: Extract<GraphOp, { kind: 'conv2d' | 'depthwise_conv2d' }>, what: string): ConvShape & { depthMultiplier: number } {
  if (op.dilationH !== 1 || op.dilationW !== 1) throw new GraphError(`${what}: dilation ${op.dilationH}x${op.dilationW} is not supported (only 1)`);
  const x = g.tensors[op.inputs[0]!]!, y = g.tensors[op.outputs[0]!]!, wg = g.tensors[op.inputs[1]!]!;
  if (x.shape.length !== 4 || y.shape.length !== 4 || wg.shape.length !== 4) {
    throw new GraphError(`${what}: input [${x.shape}], weights [${wg.shape}] and output [${y.shape}] must all be 4-D`);
  }
  const [batch, inH, inW, inC] = x.shape as [number, number, number, number];
  const [kH, kW] = [wg.shape[1]!, wg.shape[2]!];
  const outC = op.kind === 'conv2d' ? wg.shape[0]! : wg.shape[3]!;
  const geo = convGeometry(inH, inW, kH, kW, op.strideH, op.strideW, op.padding);
  const [, outH, outW, yC] = y.shape as [number, number, number, number];
  if (outH !== geo.outH || outW !== geo.outW || yC !== outC) {
    throw new GraphError(`${what}: output [${y.shape}] does not match input [${x.shape}], weights [${wg.shape}], ` +
      `stride ${op.strideH}x${op.strideW}, ${op.padding} padding`);
  }
  const depthMultiplier = op.kind === 'depthwise_conv2d' ? op.depthMultiplier : 1;
  if (op.kind === 'conv2d' && wg.shape[3] !== inC) throw new GraphError(`${what}: weights [${wg.shape}] do not fit ${inC} input channels`);
  if (op.kind === 'depthwise_conv2d' && outC !== inC * depthMultiplier) {
    throw new GraphError(`${what}: ${outC} output channels is not ${inC} input channels x depth multiplier ${depthMultiplier}`);
  }
  return {
    batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH: op.strideH, strideW: op.strideW, padH: geo.padH, padW: geo.padW,
    depthMultiplier,
  };
}

export function depthwiseShape(s: ConvShape & { depthMultiplier: number }): DepthwiseConv2dShape {
  const { outC: _, ...rest } = s;
  return rest;
}

export function fcShapeOf(g: Graph, op: Extract<GraphOp, { kind: 'fully_connected' }>, what: string): FcShape {
  const x = g.tensors[op.inputs[0]!]!, y = g.tensors[op.outputs[0]!]!, wg = g.tensors[op.inputs[1]!]!;
  const [O, I] = [wg.shape[0]!, wg.shape[wg.shape.length - 1]!];
  const rows = tensorElements(x) / I;
  if (!Number.isInteger(rows) || tensorElements(y) !== rows * O) {
    throw new GraphError(`${what}: input [${x.shape}] and output [${y.shape}] do not fit weights [${wg.shape}]`);
  }
  return { rows, inFeatures: I, outFeatures: O };
}

// An average pool's window sweep; a mean over height and width is one
// whole-map window (its backward is the pool's).
export function poolShapeOf(g: Graph, op: Extract<GraphOp, { kind: 'average_pool2d' | 'mean' }>, what: string): PoolShape {
  const x = g.tensors[op.inputs[0]!]!;
  if (x.shape.length !== 4) throw new GraphError(`${what}: input [${x.shape}] is not NHWC`);
  const [batches, inH, inW, channels] = x.shape as [number, number, number, number];
  if (op.kind === 'mean') {
    return { batches, inH, inW, channels, outH: 1, outW: 1, filterH: inH, filterW: inW, strideH: inH, strideW: inW, padH: 0, padW: 0 };
  }
  const geo = convGeometry(inH, inW, op.filterH, op.filterW, op.strideH, op.strideW, op.padding);
  return { batches, inH, inW, channels, ...geo, filterH: op.filterH, filterW: op.filterW, strideH: op.strideH, strideW: op.strideW };
}

// Weight scales of a layer's output channels (per-tensor broadcast).
export function weightScales(g: Graph, op: LayerOp, what: string): number[] {
  const wg = g.tensors[op.inputs[1]!]!;
  const outC = op.kind === 'depthwise_conv2d' ? wg.shape[3]! : wg.shape[0]!;
  return channelScales(quantOf(wg, what), outC, what);
}

// ---- forward lowering, one function per op -----------------------------------

// depthwiseAsConv: false runs a depthwise layer on one input channel as the
// depthwise kernel on its own (1, kh, kw, out) weights (a training plan
// whose step updates them) instead of conv2d on an OHWI copy in flash.
export function lowerForwardOp(ctx: LoweringContext, op: GraphOp, mask: Tensor | null = null,
  o: { depthwiseAsConv?: boolean } = {}): LoweredOp {
  const what = `operator ${op.index} (${op.kind})`;
  switch (op.kind) {
    case 'fully_connected':
      return lowerFullyConnected(ctx, op, what, mask);
    case 'conv2d':
    case 'depthwise_conv2d':
      return lowerConv(ctx, op, what, mask, o.depthwiseAsConv ?? true);
    case 'average_pool2d':
      return lowerAveragePool(ctx, op, what, mask);
    case 'mean':
      return lowerMean(ctx, op, what);
    case 'add':
      return lowerAdd(ctx, op, what, mask);
    case 'softmax':
      return lowerSoftmax(ctx, op, what);
    case 'reshape':
      return { macs: 0, run: () => {} }; // aliased: no copy
  }
}

function sameQuant(a: GraphQuant, b: GraphQuant, what: string): void {
  if (a.scale[0] !== b.scale[0] || a.zeroPoint[0] !== b.zeroPoint[0]) {
    throw new GraphError(`${what}: input and output quantisation differ (TFLite requires them equal for this op)`);
  }
}

function lowerAveragePool(ctx: LoweringContext, op: Extract<GraphOp, { kind: 'average_pool2d' }>, what: string, mask: Tensor | null): LoweredOp {
  const x = activation(ctx, op.inputs[0]!, what), y = activation(ctx, op.outputs[0]!, what);
  sameQuant(x.q, y.q, what);
  const s = poolShapeOf(ctx.graph, op, what);
  if (y.g.shape[1] !== s.outH || y.g.shape[2] !== s.outW || y.g.shape[3] !== s.channels) {
    throw new GraphError(`${what}: output [${y.g.shape}] does not match input [${x.g.shape}] pooled ${op.filterH}x${op.filterW}`);
  }
  const [actMin, actMax] = activationRange(op.activation, y.q.scale[0]!, y.q.zeroPoint[0]!);
  const args = { ...s, actMin, actMax, input: x.t, output: y.t, mask };
  return { macs: 0, run: (k) => k.avgPoolForward(args) };
}

function lowerMean(ctx: LoweringContext, op: Extract<GraphOp, { kind: 'mean' }>, what: string): LoweredOp {
  const x = activation(ctx, op.inputs[0]!, what), y = activation(ctx, op.outputs[0]!, what);
  const axes = ctx.graph.tensors[op.inputs[1]!];
  const ax = axes?.data ? Array.from(new Int32Array(axes.data.slice().buffer)) : [];
  if (x.g.shape.length !== 4 || ax.length !== 2 || !ax.includes(1) || !ax.includes(2)) {
    throw new GraphError(`${what}: only the mean over height and width of an NHWC tensor (axes [1, 2]) is supported`);
  }
  const [batches, h, w, channels] = x.g.shape as [number, number, number, number];
  const q = meanQuantParams(x.q.scale[0]!, y.q.scale[0]!);
  const args = {
    batches, h, w, channels, inputZeroPoint: x.q.zeroPoint[0]!, multiplier: q.multiplier, shift: q.shift,
    outputZeroPoint: y.q.zeroPoint[0]!, input: x.t, output: { ...y.t, shape: [batches, channels] },
  };
  return { macs: 0, run: (k) => k.meanForward(args) };
}

function lowerAdd(ctx: LoweringContext, op: Extract<GraphOp, { kind: 'add' }>, what: string, mask: Tensor | null): LoweredOp {
  const a = activation(ctx, op.inputs[0]!, what), b = activation(ctx, op.inputs[1]!, what);
  const y = activation(ctx, op.outputs[0]!, what);
  const n = tensorElements(y.g);
  if (tensorElements(a.g) !== n || tensorElements(b.g) !== n) {
    throw new GraphError(`${what}: shapes [${a.g.shape}] + [${b.g.shape}] -> [${y.g.shape}] need broadcasting, which is not supported`);
  }
  const p = addQuantParams(
    { scale: a.q.scale[0]!, zeroPoint: a.q.zeroPoint[0]! }, { scale: b.q.scale[0]!, zeroPoint: b.q.zeroPoint[0]! },
    { scale: y.q.scale[0]!, zeroPoint: y.q.zeroPoint[0]! });
  const [actMin, actMax] = activationRange(op.activation, y.q.scale[0]!, y.q.zeroPoint[0]!);
  const args = { n, ...p, actMin, actMax, input1: a.t, input2: b.t, output: y.t, mask };
  return { macs: 0, run: (k) => k.addForward(args), call: { kind: 'add', args } };
}

function lowerSoftmax(ctx: LoweringContext, op: Extract<GraphOp, { kind: 'softmax' }>, what: string): LoweredOp {
  const x = activation(ctx, op.inputs[0]!, what), y = activation(ctx, op.outputs[0]!, what);
  if (y.q.scale[0] !== 1 / 256 || y.q.zeroPoint[0] !== -128) {
    throw new GraphError(`${what}: int8 softmax output must have scale 1/256 and zero point -128 (TFLite's int8 spec)`);
  }
  const depth = x.g.shape[x.g.shape.length - 1]!;
  const p = softmaxQuantParams(op.beta, x.q.scale[0]!);
  const args = { rows: tensorElements(x.g) / depth, depth, ...p, input: x.t, output: y.t };
  return { macs: 0, run: (k) => k.softmaxForward(args) };
}

// The requantisation tables of a layer (flash), named after its weights.
export function requantTables(ctx: LoweringContext, op: LayerOp, what: string): { multiplier: Tensor; shift: Tensor } {
  const g = ctx.graph;
  const wg = g.tensors[op.inputs[1]!]!;
  const sIn = quantOf(g.tensors[op.inputs[0]!]!, what).scale[0]!, sOut = quantOf(g.tensors[op.outputs[0]!]!, what).scale[0]!;
  const sW = weightScales(g, op, what);
  const m = outputMultipliers(sIn, sW, sOut);
  return {
    multiplier: ctx.constant(`${wg.name}.multiplier`, 'int32', [sW.length], bytesOf(m.multiplier)),
    shift: ctx.constant(`${wg.name}.shift`, 'int32', [sW.length], bytesOf(m.shift)),
  };
}

// The weights a conv-family kernel reads: the graph tensor, or for a
// depthwise layer on one input channel its OHWI transpose (read-only).
export function convWeights(ctx: LoweringContext, op: Extract<GraphOp, { kind: 'conv2d' | 'depthwise_conv2d' }>, what: string): Tensor {
  if (!depthwiseAsConv(ctx.graph, op)) return ctx.tensor(op.inputs[1]!, what);
  const wg = ctx.graph.tensors[op.inputs[1]!]!;
  if (!wg.data) throw new GraphError(`${what}: weights "${wg.name}" are not a constant`);
  const [kH, kW, outC] = [wg.shape[1]!, wg.shape[2]!, wg.shape[3]!];
  return ctx.constant(`${wg.name}.ohwi`, 'int8', [outC, kH, kW, 1], transposeDepthwiseToOhwi(wg.data, kH, kW, outC));
}

function biasOf(ctx: LoweringContext, op: LayerOp, what: string): Tensor | null {
  return op.inputs[2] !== undefined && op.inputs[2] >= 0 ? ctx.tensor(op.inputs[2], what) : null;
}

function lowerConv(ctx: LoweringContext, op: Extract<GraphOp, { kind: 'conv2d' | 'depthwise_conv2d' }>, what: string, mask: Tensor | null,
  asConv: boolean): LoweredOp {
  const s = convShapeOf(ctx.graph, op, what);
  const x = activation(ctx, op.inputs[0]!, what), y = activation(ctx, op.outputs[0]!, what);
  const bias = biasOf(ctx, op, what);
  const { multiplier, shift } = requantTables(ctx, op, what);
  const [actMin, actMax] = activationRange(op.activation, y.q.scale[0]!, y.q.zeroPoint[0]!);
  const quant = { inputOffset: -x.q.zeroPoint[0]!, outputOffset: y.q.zeroPoint[0]!, actMin, actMax, multiplier, shift };
  const conv = op.kind === 'conv2d' || (asConv && depthwiseAsConv(ctx.graph, op));
  const weights = conv ? convWeights(ctx, op, what) : ctx.tensor(op.inputs[1]!, what);
  const tensors = { input: x.t, weights, bias, output: y.t, mask };
  if (conv) {
    const { depthMultiplier: _, ...shape } = s;
    const args = { ...shape, ...quant, ...tensors };
    const perOutput = op.kind === 'conv2d' ? s.kH * s.kW * s.inC : s.kH * s.kW;
    return { macs: s.batch * s.outH * s.outW * s.outC * perOutput, run: (k) => k.conv2dForward(args), call: { kind: 'conv2d', args } };
  }
  const args = { ...depthwiseShape(s), ...quant, ...tensors };
  return {
    macs: s.batch * s.outH * s.outW * s.outC * s.kH * s.kW, run: (k) => k.depthwiseConv2dForward(args), call: { kind: 'depthwise_conv2d', args },
  };
}

function lowerFullyConnected(ctx: LoweringContext, op: Extract<GraphOp, { kind: 'fully_connected' }>, what: string, mask: Tensor | null): LoweredOp {
  const x = activation(ctx, op.inputs[0]!, what), y = activation(ctx, op.outputs[0]!, what);
  const { rows, inFeatures: I, outFeatures: O } = fcShapeOf(ctx.graph, op, what);
  const w = ctx.tensor(op.inputs[1]!, what);
  const bias = biasOf(ctx, op, what);
  const { multiplier, shift } = requantTables(ctx, op, what);
  const [actMin, actMax] = activationRange(op.activation, y.q.scale[0]!, y.q.zeroPoint[0]!);
  const args = {
    rows, inFeatures: I, outFeatures: O, inputOffset: -x.q.zeroPoint[0]!, outputOffset: y.q.zeroPoint[0]!,
    actMin, actMax, input: { ...x.t, shape: [rows, I] }, weights: { ...w, shape: [O, I] }, bias,
    output: { ...y.t, shape: [rows, O] }, mask, multiplier, shift,
  };
  return { macs: rows * I * O, run: (k) => k.fcForward(args) };
}
