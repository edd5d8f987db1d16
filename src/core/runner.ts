// The forward runner: lowers an int8 Graph (src/core/graph.ts) to calls of
// the C kernels and runs it. Constants (weights, biases, requantisation
// tables) go to the read-only flash region; activations are placed in the
// arena by lifetime (planner.ts), reshapes alias their input. Platform-free:
// the same code runs on Node, on XS and, recorded as a trace, on the
// bare-metal images.
//
// Quantisation parameters are computed the way TFLite's kernels prepare them
// (double products of the float32 scales, QuantizeMultiplier, activation
// ranges from float32 divisions), so outputs match TFLite's reference
// integer kernels.

import { type DType, type Tensor } from './arena.js';
import { convGeometry } from './conv-geometry.js';
import { type FusedActivation, type Graph, GraphError, type GraphOp, type GraphQuant, type GraphTensor, tensorElements } from './graph.js';
import { FLASH_BASE, Kernels } from './kernels.js';
import { planLifetimes } from './planner.js';
import { quantizeMultiplier } from './quant.js';
import { addQuantParams, meanQuantParams, softmaxQuantParams } from './tflite-params.js';
import type { SegmentCall } from './tiled-block.js';

export interface RunnerOptions {
  arenaCapacity: number;
  flashCapacity: number;
}

export const defaultRunnerOptions: RunnerOptions = { arenaCapacity: 200 * 1024, flashCapacity: 640 * 1024 };

// One lowered operator: what it is and how to call its kernel.
export interface Step {
  index: number; // the graph op's index
  kind: GraphOp['kind'];
  macs: number; // multiply-accumulates of the forward (0 for data movement)
  run(k: Kernels): void;
  // The kernel call of a conv2d, depthwise or add step (whole tensors), so a
  // row-tiled forward (tiled-block.ts) can call it on bands.
  call?: SegmentCall;
}

interface Constant {
  tensor: Tensor;
  bytes: Uint8Array;
}

const f32 = Math.fround;

function dtypeOf(t: GraphTensor, what: string): DType {
  if (t.dtype === 'float32') throw new GraphError(`${what}: tensor "${t.name}" is float32; the runner needs int8`);
  return t.dtype;
}

function quantOf(t: GraphTensor, what: string): GraphQuant {
  if (!t.quant || t.quant.scale.length === 0) {
    throw new GraphError(`${what}: tensor "${t.name}" has no quantisation parameters`);
  }
  return t.quant;
}

// Per-channel scales of a weight tensor, broadcast when per-tensor.
function channelScales(q: GraphQuant, channels: number, what: string): number[] {
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

function bytesOf(a: Int32Array | Int16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export class ForwardRunner {
  readonly steps: Step[] = [];
  readonly constants: Constant[] = [];
  readonly tensors: (Tensor | null)[]; // graph tensor index -> placed tensor
  readonly arenaBytes: number;
  readonly flashBytes: number;
  private flashTop = 0;

  constructor(readonly graph: Graph, readonly options: RunnerOptions = defaultRunnerOptions) {
    if (graph.inputs.length !== 1 || graph.outputs.length !== 1) {
      throw new GraphError(`model "${graph.name}" has ${graph.inputs.length} inputs and ${graph.outputs.length} outputs; the runner takes one of each`);
    }
    this.tensors = new Array<Tensor | null>(graph.tensors.length).fill(null);
    this.arenaBytes = this.placeActivations();
    for (const op of graph.ops) this.steps.push(this.lower(op));
    this.flashBytes = this.flashTop;
  }

  get input(): Tensor {
    return this.tensors[this.graph.inputs[0]!]!;
  }

  get output(): Tensor {
    return this.tensors[this.graph.outputs[0]!]!;
  }

  get inputTensor(): GraphTensor {
    return this.graph.tensors[this.graph.inputs[0]!]!;
  }

  get outputTensor(): GraphTensor {
    return this.graph.tensors[this.graph.outputs[0]!]!;
  }

  // Writes the constants into the flash region ("flashing the model").
  load(k: Kernels): void {
    for (const c of this.constants) k.write(c.tensor, c.bytes);
  }

  writeInput(k: Kernels, input: Uint8Array | Int8Array): void {
    const t = this.input;
    if (input.length !== t.bytes) {
      throw new GraphError(
        `input of "${this.graph.name}" is ${this.inputTensor.dtype}[${this.inputTensor.shape.join(',')}] = ${t.bytes} bytes, got ${input.length} bytes`,
      );
    }
    k.write(t, new Uint8Array(input.buffer, input.byteOffset, input.length));
  }

  invoke(k: Kernels): void {
    for (const s of this.steps) s.run(k);
  }

  run(k: Kernels, input: Uint8Array | Int8Array): Int8Array {
    this.writeInput(k, input);
    this.invoke(k);
    return k.readInt8(this.output);
  }

  get macs(): number {
    return this.steps.reduce((a, s) => a + s.macs, 0);
  }

  // ---- placement -----------------------------------------------------------

  // Activations (tensors without data) get arena offsets by lifetime; a
  // reshape's output is its input's buffer under another shape.
  private placeActivations(): number {
    const g = this.graph;
    const root = g.tensors.map((_, i) => i);
    for (const op of g.ops) {
      if (op.kind === 'reshape') root[op.outputs[0]!] = root[op.inputs[0]!]!;
    }
    const find = (i: number): number => (root[i] === i ? i : (root[i] = find(root[i]!)));
    const life = new Map<number, { first: number; last: number }>();
    const touch = (t: number, step: number) => {
      if (t < 0 || g.tensors[t]!.data) return;
      const r = find(t);
      const l = life.get(r);
      if (!l) life.set(r, { first: step, last: step });
      else {
        l.first = Math.min(l.first, step);
        l.last = Math.max(l.last, step);
      }
    };
    for (const t of g.inputs) touch(t, -1);
    g.ops.forEach((op, s) => {
      for (const t of op.inputs) touch(t, s);
      for (const t of op.outputs) touch(t, s);
    });
    for (const t of g.outputs) touch(t, g.ops.length);
    const roots = [...life.keys()];
    const place = planLifetimes(roots.map((r) => ({ bytes: tensorElements(g.tensors[r]!), ...life.get(r)! })));
    if (place.peak > this.options.arenaCapacity) {
      throw new GraphError(
        `model "${g.name}" needs ${place.peak} bytes of arena for its activations, the arena has ${this.options.arenaCapacity}; ` +
          'give it a larger arena or use a smaller model/input',
      );
    }
    const at = new Map(roots.map((r, i) => [r, place.offsets[i]!]));
    g.tensors.forEach((t, i) => {
      if (t.data) return;
      const off = at.get(find(i));
      if (off === undefined) return; // not used by any op
      this.tensors[i] = { name: t.name, dtype: dtypeOf(t, 'activation'), shape: t.shape, offset: off, bytes: tensorElements(t) };
    });
    return place.peak;
  }

  // A constant in flash: the graph tensor's bytes, or derived parameters.
  private constant(name: string, dtype: DType, shape: number[], bytes: Uint8Array): Tensor {
    const align = 16;
    const at = Math.ceil(this.flashTop / align) * align;
    if (at + bytes.length > this.options.flashCapacity) {
      throw new GraphError(
        `model "${this.graph.name}" needs more than ${this.options.flashCapacity} bytes of flash for its constants ` +
          `(at "${name}"); give it a larger flash region`,
      );
    }
    const tensor: Tensor = { name, dtype, shape, offset: FLASH_BASE + at, bytes: bytes.length };
    this.flashTop = at + bytes.length;
    this.constants.push({ tensor, bytes });
    return tensor;
  }

  private graphConstant(index: number, what: string): Tensor {
    const t = this.graph.tensors[index];
    if (!t || !t.data) throw new GraphError(`${what}: tensor ${index} is not a constant`);
    const existing = this.tensors[index];
    if (existing) return existing;
    const placed = this.constant(t.name, dtypeOf(t, what), t.shape, t.data);
    this.tensors[index] = placed;
    return placed;
  }

  private activation(index: number, what: string): { t: Tensor; g: GraphTensor; q: GraphQuant } {
    const g = this.graph.tensors[index];
    const t = this.tensors[index];
    if (!g || !t) throw new GraphError(`${what}: tensor ${index} is not an activation`);
    if (g.dtype !== 'int8') throw new GraphError(`${what}: tensor "${g.name}" is ${g.dtype}, expected int8`);
    const q = quantOf(g, what);
    return { t, g, q };
  }

  // ---- lowering ------------------------------------------------------------

  private lower(op: GraphOp): Step {
    const what = `operator ${op.index} (${op.kind})`;
    switch (op.kind) {
      case 'fully_connected':
        return this.lowerFullyConnected(op, what);
      case 'conv2d':
        return this.lowerConv2d(op, what);
      case 'depthwise_conv2d':
        return this.lowerDepthwiseConv2d(op, what);
      case 'average_pool2d':
        return this.lowerAveragePool(op, what);
      case 'mean':
        return this.lowerMean(op, what);
      case 'add':
        return this.lowerAdd(op, what);
      case 'softmax':
        return this.lowerSoftmax(op, what);
      case 'reshape':
        return { index: op.index, kind: op.kind, macs: 0, run: () => {} }; // aliased: no copy
    }
  }

  private sameQuant(a: GraphQuant, b: GraphQuant, what: string): void {
    if (a.scale[0] !== b.scale[0] || a.zeroPoint[0] !== b.zeroPoint[0]) {
      throw new GraphError(`${what}: input and output quantisation differ (TFLite requires them equal for this op)`);
    }
  }

  private lowerAveragePool(op: Extract<GraphOp, { kind: 'average_pool2d' }>, what: string): Step {
    const x = this.activation(op.inputs[0]!, what), y = this.activation(op.outputs[0]!, what);
    this.sameQuant(x.q, y.q, what);
    const [batches, inH, inW, channels] = x.g.shape as [number, number, number, number];
    const geo = convGeometry(inH, inW, op.filterH, op.filterW, op.strideH, op.strideW, op.padding);
    if (y.g.shape[1] !== geo.outH || y.g.shape[2] !== geo.outW || y.g.shape[3] !== channels) {
      throw new GraphError(`${what}: output [${y.g.shape}] does not match input [${x.g.shape}] pooled ${op.filterH}x${op.filterW}`);
    }
    const [actMin, actMax] = activationRange(op.activation, y.q.scale[0]!, y.q.zeroPoint[0]!);
    const args = {
      batches, inH, inW, channels, ...geo, filterH: op.filterH, filterW: op.filterW, strideH: op.strideH,
      strideW: op.strideW, actMin, actMax, input: x.t, output: y.t, mask: null,
    };
    return { index: op.index, kind: op.kind, macs: 0, run: (k) => k.avgPoolForward(args) };
  }

  private lowerMean(op: Extract<GraphOp, { kind: 'mean' }>, what: string): Step {
    const x = this.activation(op.inputs[0]!, what), y = this.activation(op.outputs[0]!, what);
    const axes = this.graph.tensors[op.inputs[1]!];
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
    return { index: op.index, kind: op.kind, macs: 0, run: (k) => k.meanForward(args) };
  }

  private lowerAdd(op: Extract<GraphOp, { kind: 'add' }>, what: string): Step {
    const a = this.activation(op.inputs[0]!, what), b = this.activation(op.inputs[1]!, what);
    const y = this.activation(op.outputs[0]!, what);
    const n = tensorElements(y.g);
    if (tensorElements(a.g) !== n || tensorElements(b.g) !== n) {
      throw new GraphError(`${what}: shapes [${a.g.shape}] + [${b.g.shape}] -> [${y.g.shape}] need broadcasting, which is not supported`);
    }
    const p = addQuantParams(
      { scale: a.q.scale[0]!, zeroPoint: a.q.zeroPoint[0]! }, { scale: b.q.scale[0]!, zeroPoint: b.q.zeroPoint[0]! },
      { scale: y.q.scale[0]!, zeroPoint: y.q.zeroPoint[0]! });
    const [actMin, actMax] = activationRange(op.activation, y.q.scale[0]!, y.q.zeroPoint[0]!);
    const args = { n, ...p, actMin, actMax, input1: a.t, input2: b.t, output: y.t, mask: null };
    return { index: op.index, kind: op.kind, macs: 0, run: (k) => k.addForward(args), call: { kind: 'add', args } };
  }

  private lowerSoftmax(op: Extract<GraphOp, { kind: 'softmax' }>, what: string): Step {
    const x = this.activation(op.inputs[0]!, what), y = this.activation(op.outputs[0]!, what);
    if (y.q.scale[0] !== 1 / 256 || y.q.zeroPoint[0] !== -128) {
      throw new GraphError(`${what}: int8 softmax output must have scale 1/256 and zero point -128 (TFLite's int8 spec)`);
    }
    const depth = x.g.shape[x.g.shape.length - 1]!;
    const p = softmaxQuantParams(op.beta, x.q.scale[0]!);
    const args = { rows: tensorElements(x.g) / depth, depth, ...p, input: x.t, output: y.t };
    return { index: op.index, kind: op.kind, macs: 0, run: (k) => k.softmaxForward(args) };
  }

  // Shape, geometry and requantisation shared by conv2d and depthwise conv2d.
  private convCommon(op: Extract<GraphOp, { kind: 'conv2d' | 'depthwise_conv2d' }>, what: string, outC: number) {
    if (op.dilationH !== 1 || op.dilationW !== 1) throw new GraphError(`${what}: dilation ${op.dilationH}x${op.dilationW} is not supported (only 1)`);
    const x = this.activation(op.inputs[0]!, what), y = this.activation(op.outputs[0]!, what);
    const wg = this.graph.tensors[op.inputs[1]!]!;
    const [batch, inH, inW, inC] = x.g.shape as [number, number, number, number];
    const [kH, kW] = [wg.shape[1]!, wg.shape[2]!];
    const geo = convGeometry(inH, inW, kH, kW, op.strideH, op.strideW, op.padding);
    const [, outH, outW, yC] = y.g.shape as [number, number, number, number];
    if (outH !== geo.outH || outW !== geo.outW || yC !== outC || x.g.shape.length !== 4) {
      throw new GraphError(`${what}: output [${y.g.shape}] does not match input [${x.g.shape}], weights [${wg.shape}], ` +
        `stride ${op.strideH}x${op.strideW}, ${op.padding} padding`);
    }
    const bias = op.inputs[2]! >= 0 ? this.graphConstant(op.inputs[2]!, what) : null;
    const m = outputMultipliers(x.q.scale[0]!, channelScales(quantOf(wg, what), outC, what), y.q.scale[0]!);
    const multiplier = this.constant(`${wg.name}.multiplier`, 'int32', [outC], bytesOf(m.multiplier));
    const shift = this.constant(`${wg.name}.shift`, 'int32', [outC], bytesOf(m.shift));
    const [actMin, actMax] = activationRange(op.activation, y.q.scale[0]!, y.q.zeroPoint[0]!);
    return {
      shape: { batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH: op.strideH, strideW: op.strideW, padH: geo.padH, padW: geo.padW },
      quant: { inputOffset: -x.q.zeroPoint[0]!, outputOffset: y.q.zeroPoint[0]!, actMin, actMax, multiplier, shift },
      input: x.t, output: y.t, bias,
    };
  }

  private lowerConv2d(op: Extract<GraphOp, { kind: 'conv2d' }>, what: string): Step {
    const wg = this.graph.tensors[op.inputs[1]!]!;
    const c = this.convCommon(op, what, wg.shape[0]!);
    if (wg.shape[3] !== c.shape.inC) throw new GraphError(`${what}: weights [${wg.shape}] do not fit ${c.shape.inC} input channels`);
    const weights = this.graphConstant(op.inputs[1]!, what);
    const args = { ...c.shape, ...c.quant, input: c.input, weights, bias: c.bias, output: c.output, mask: null };
    const s = c.shape;
    return {
      index: op.index, kind: op.kind, macs: s.batch * s.outH * s.outW * s.outC * s.kH * s.kW * s.inC, run: (k) => k.conv2dForward(args),
      call: { kind: 'conv2d', args },
    };
  }

  private lowerDepthwiseConv2d(op: Extract<GraphOp, { kind: 'depthwise_conv2d' }>, what: string): Step {
    const wg = this.graph.tensors[op.inputs[1]!]!;
    const outC = wg.shape[3]!;
    const c = this.convCommon(op, what, outC);
    if (outC !== c.shape.inC * op.depthMultiplier) {
      throw new GraphError(`${what}: ${outC} output channels is not ${c.shape.inC} input channels x depth multiplier ${op.depthMultiplier}`);
    }
    if (c.shape.inC === 1 && op.depthMultiplier > 1) {
      // One input channel: the same math as a conv2d with out_c = multiplier
      // (a first layer on a grayscale image). Conv weights are OHWI: the
      // depthwise [1][kh][kw][oc] transposed once at load time; the conv
      // kernel has the faster paths for this shape.
      const [kH, kW] = [c.shape.kH, c.shape.kW];
      const src = this.graph.tensors[op.inputs[1]!]!.data!;
      const t = new Uint8Array(src.length);
      for (let o = 0; o < outC; o++) for (let p = 0; p < kH * kW; p++) t[o * kH * kW + p] = src[p * outC + o]!;
      const weights = this.constant(`${wg.name}.ohwi`, 'int8', [outC, kH, kW, 1], t);
      const args = { ...c.shape, ...c.quant, input: c.input, weights, bias: c.bias, output: c.output, mask: null };
      return {
        index: op.index, kind: op.kind, macs: c.shape.batch * c.shape.outH * c.shape.outW * outC * kH * kW, run: (k) => k.conv2dForward(args),
        call: { kind: 'conv2d', args },
      };
    }
    const { outC: _, ...shape } = c.shape;
    const weights = this.graphConstant(op.inputs[1]!, what);
    const args = { ...shape, depthMultiplier: op.depthMultiplier, ...c.quant, input: c.input, weights, bias: c.bias, output: c.output, mask: null };
    const s = c.shape;
    return {
      index: op.index, kind: op.kind, macs: s.batch * s.outH * s.outW * outC * s.kH * s.kW, run: (k) => k.depthwiseConv2dForward(args),
      call: { kind: 'depthwise_conv2d', args },
    };
  }

  private lowerFullyConnected(op: Extract<GraphOp, { kind: 'fully_connected' }>, what: string): Step {
    const x = this.activation(op.inputs[0]!, what), y = this.activation(op.outputs[0]!, what);
    const wg = this.graph.tensors[op.inputs[1]!]!;
    const [O, I] = [wg.shape[0]!, wg.shape[wg.shape.length - 1]!];
    const rows = tensorElements(x.g) / I;
    if (!Number.isInteger(rows) || tensorElements(y.g) !== rows * O) {
      throw new GraphError(`${what}: input [${x.g.shape}] and output [${y.g.shape}] do not fit weights [${wg.shape}]`);
    }
    const w = this.graphConstant(op.inputs[1]!, what);
    const bias = op.inputs[2]! >= 0 ? this.graphConstant(op.inputs[2]!, what) : null;
    const sW = channelScales(quantOf(wg, what), O, what);
    const m = outputMultipliers(x.q.scale[0]!, sW, y.q.scale[0]!);
    const multiplier = this.constant(`${wg.name}.multiplier`, 'int32', [O], bytesOf(m.multiplier));
    const shift = this.constant(`${wg.name}.shift`, 'int32', [O], bytesOf(m.shift));
    const [actMin, actMax] = activationRange(op.activation, y.q.scale[0]!, y.q.zeroPoint[0]!);
    const args = {
      rows, inFeatures: I, outFeatures: O, inputOffset: -x.q.zeroPoint[0]!, outputOffset: y.q.zeroPoint[0]!,
      actMin, actMax, input: { ...x.t, shape: [rows, I] }, weights: { ...w, shape: [O, I] }, bias,
      output: { ...y.t, shape: [rows, O] }, mask: null, multiplier, shift,
    };
    return { index: op.index, kind: op.kind, macs: rows * I * O, run: (k) => k.fcForward(args) };
  }
}
