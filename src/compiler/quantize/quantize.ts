// Post-training quantisation: a float32 Graph and calibration samples in, an
// int8 Graph out that follows TFLite's int8 spec, so the forward runner, the
// training compiler and the .tflite writer take it like a converted model:
//  - weights: per-channel symmetric int8 in [-127, 127], scale max|w|/127 of
//    each output channel (axis 0 for conv and fully connected, axis 3 for
//    depthwise), zero point 0;
//  - biases: int32 at s_in * s_w[c], the accumulator's scale;
//  - activations: per-tensor asymmetric int8 from the calibrated range
//    (calibrate.ts), which always holds 0, so 0 is exactly a zero point in
//    [-128, 127]; a ReLU6 output's range is within [0, 6] (zero point -128);
//  - the ops whose int8 kernels need it keep TFLite's fixed parameters:
//    AVERAGE_POOL_2D and RESHAPE outputs share their input's scale and zero
//    point, SOFTMAX outputs are scale 1/256, zero point -128.
// Scales are stored as float32 values (as in a .tflite file), so writing and
// re-importing the result gives the same graph. Only exact IEEE operations
// (no Math.log/exp), so every engine produces the same bytes.
// Host-side compiler code, platform-free.

import { type FusedActivation, type Graph, type GraphOp, type GraphQuant, type GraphTensor, tensorElements } from '../../core/graph.js';
import { TfliteImportError } from '../tflite/errors.js';
import { validateGraph } from '../tflite/validate.js';
import { calibrate, type CalibrationSample, type RangeMethod, type TensorRange } from './calibrate.js';
import { QuantizeError } from './errors.js';
import { constantValues } from './float-forward.js';

export interface QuantizeOptions {
  method?: RangeMethod; // how per-sample ranges combine (calibrate.ts); default 'minmax'
  // Widen each calibrated range that no fused ReLU6 bounds by this fraction
  // of its width at each open end (a ReLU output only upwards), for inputs
  // beyond what calibration saw. Default 0 (TFLite's converter widens
  // nothing); the seeded architectures use 1/8.
  margin?: number;
  // Fix the input's quantisation instead of calibrating it, when the input
  // range is known (images in [-1, 1): scale 1/128, zero point 0).
  inputQuant?: { scale: number; zeroPoint: number };
}

const f32 = Math.fround;

// Per-tensor asymmetric int8 from a real range that holds 0.
export function activationQuant(r: TensorRange, activation: FusedActivation, margin = 0): GraphQuant {
  let lo = Math.min(0, r.lo), hi = Math.max(0, r.hi);
  if (activation === 'relu6') {
    lo = 0;
    hi = Math.min(6, hi);
  } else if (activation === 'relu') {
    lo = 0;
    hi += hi * margin;
  } else {
    const m = (hi - lo) * margin;
    lo -= m;
    hi += m;
  }
  if (!(hi - lo > 1e-6)) hi = lo + 1e-6 * 255; // a constant-zero tensor: any small scale
  const scale = f32((hi - lo) / 255);
  const zeroPoint = Math.max(-128, Math.min(127, Math.round(-128 - lo / scale)));
  return { scale: [scale], zeroPoint: [zeroPoint], axis: 0 };
}

// Per-channel symmetric int8 of weights whose channel is (element / inner) %
// channels: scale max|w|/127 per channel (1/127 for an all-zero channel).
export function quantizeWeights(w: ArrayLike<number>, channels: number, inner: number): { data: Int8Array; scales: number[] } {
  const max = new Float64Array(channels);
  for (let i = 0; i < w.length; i++) {
    const c = Math.floor(i / inner) % channels;
    max[c] = Math.max(max[c]!, Math.abs(w[i]!));
  }
  const scales = Array.from(max, (m) => f32((m || 1) / 127));
  const data = Int8Array.from({ length: w.length }, (_, i) =>
    Math.max(-127, Math.min(127, Math.round(w[i]! / scales[Math.floor(i / inner) % channels]!))));
  return { data, scales };
}

// int32 at s_in * s_w[c] (the kernels' accumulator scale), saturated to
// +-(2^31 - 1) as TFLite's converter does; the stored scales are float32.
export function quantizeBias(b: ArrayLike<number>, sIn: number, sW: readonly number[]): { data: Int32Array; quant: GraphQuant } {
  const data = Int32Array.from({ length: b.length }, (_, c) =>
    Math.max(-2147483647, Math.min(2147483647, Math.round(b[c]! / (sIn * sW[c]!)))));
  const scale = sW.map((s) => f32(sIn * s));
  return { data, quant: { scale, zeroPoint: scale.map(() => 0), axis: 0 } };
}

const bytes = (a: Int8Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

// A float32 graph the quantiser (and the runner after it) can take; every
// refusal is a QuantizeError naming the tensor or operator.
export function checkFloatGraph(g: Graph): void {
  const input = g.tensors[g.inputs[0] ?? -1];
  if (input && input.dtype !== 'float32' && g.inputs.length === 1) {
    throw new QuantizeError(`${g.name}: the model input "${input.name}" is ${input.dtype}: this is not a float32 model. ` +
      'Post-training quantisation takes a float32 model; an int8 model is used as it is (importTflite)');
  }
  if (g.inputs.length !== 1 || g.outputs.length !== 1) {
    throw new QuantizeError(`${g.name}: the model has ${g.inputs.length} inputs and ${g.outputs.length} outputs; xstrain takes one of each`);
  }
  try {
    validateGraph(g, 'float32');
  } catch (e) {
    if (e instanceof TfliteImportError) throw new QuantizeError(`${g.name}: ${e.message}`);
    throw e;
  }
  for (const op of g.ops) {
    if (op.kind !== 'add') continue;
    const [a, b, y] = [g.tensors[op.inputs[0]!]!, g.tensors[op.inputs[1]!]!, g.tensors[op.outputs[0]!]!];
    if (tensorElements(a) !== tensorElements(y) || tensorElements(b) !== tensorElements(y)) {
      throw new QuantizeError(`${g.name}: operator ${op.index} (ADD) broadcasts [${a.shape.join(',')}] + [${b.shape.join(',')}]; ` +
        'xstrain adds tensors of the same shape only');
    }
  }
}

// Calibrate the float graph on the samples, then quantise it.
export function quantizeGraph(float: Graph, samples: readonly CalibrationSample[], options: QuantizeOptions = {}): Graph {
  checkFloatGraph(float);
  return quantizeWithRanges(float, calibrate(float, samples, options.method), options);
}

type LayerOp = Extract<GraphOp, { kind: 'conv2d' | 'depthwise_conv2d' | 'fully_connected' }>;

// Quantise a checked float32 graph with activation ranges already known (by
// tensor index, as calibrate returns them). Tensors no op or graph
// input/output uses are dropped; the rest keep their order and names.
export function quantizeWithRanges(float: Graph, ranges: readonly (TensorRange | null)[], options: QuantizeOptions = {}): Graph {
  const margin = options.margin ?? 0;
  if (!(margin >= 0) || !Number.isFinite(margin)) throw new QuantizeError(`range margin ${margin} must be a non-negative number`);
  const T = float.tensors;
  const fail = (msg: string): never => {
    throw new QuantizeError(`${float.name}: ${msg}`);
  };
  const rangeOf = (t: number): TensorRange => ranges[t] ?? fail(`no calibrated range for tensor ${t} "${T[t]!.name}"`);

  const quant = new Map<number, GraphQuant>(); // activations
  const inputIndex = float.inputs[0]!;
  if (options.inputQuant) {
    const { scale, zeroPoint } = options.inputQuant;
    if (!(scale > 0) || !Number.isFinite(scale) || !Number.isInteger(zeroPoint) || zeroPoint < -128 || zeroPoint > 127) {
      fail(`input quantisation scale ${scale}, zero point ${zeroPoint}: the scale must be positive and the zero point an integer in [-128, 127]`);
    }
    quant.set(inputIndex, { scale: [f32(scale)], zeroPoint: [zeroPoint], axis: 0 });
  } else {
    quant.set(inputIndex, activationQuant(rangeOf(inputIndex), 'none', margin));
  }
  const qOf = (t: number, where: string): GraphQuant => quant.get(t) ?? fail(`${where}: tensor ${t} "${T[t]!.name}" is read before it is quantised`);

  const constants = new Map<number, { data: Uint8Array; dtype: 'int8' | 'int32'; quant: GraphQuant }>();
  const biasInputScale = new Map<number, { scale: number; op: number }>();
  for (const op of float.ops) {
    const where = `operator ${op.index} (${op.kind})`;
    const out = op.outputs[0]!;
    switch (op.kind) {
      case 'conv2d':
      case 'depthwise_conv2d':
      case 'fully_connected': {
        quantizeLayer(float, op, qOf(op.inputs[0]!, where).scale[0]!, constants, biasInputScale, fail);
        quant.set(out, activationQuant(rangeOf(out), op.activation, margin));
        break;
      }
      case 'add':
        quant.set(out, activationQuant(rangeOf(out), op.activation, margin));
        break;
      case 'mean':
        quant.set(out, activationQuant(rangeOf(out), 'none', margin));
        break;
      case 'average_pool2d':
      case 'reshape':
        quant.set(out, qOf(op.inputs[0]!, where)); // TFLite: output quantised as the input
        break;
      case 'softmax':
        quant.set(out, { scale: [1 / 256], zeroPoint: [-128], axis: 0 });
        break;
    }
  }

  // Assemble: used tensors in their original order.
  const used = new Set<number>([...float.inputs, ...float.outputs]);
  for (const op of float.ops) for (const t of [...op.inputs, ...op.outputs]) if (t >= 0) used.add(t);
  const newIndex = new Map<number, number>();
  const tensors: GraphTensor[] = [];
  T.forEach((t, i) => {
    if (!used.has(i)) return;
    newIndex.set(i, tensors.length);
    const c = constants.get(i);
    if (c) tensors.push({ name: t.name, dtype: c.dtype, shape: t.shape.slice(), quant: c.quant, data: c.data });
    else if (t.data) {
      if (t.dtype === 'float32') fail(`tensor ${i} "${t.name}" is a float32 constant no layer reads as weights or bias`);
      tensors.push({ ...t, shape: t.shape.slice(), data: t.data.slice() }); // int32 shapes and axes
    } else {
      tensors.push({ name: t.name, dtype: 'int8', shape: t.shape.slice(), quant: qOf(i, `tensor ${i}`), data: null });
    }
  });
  const map = (t: number) => (t < 0 ? t : newIndex.get(t)!);
  const graph: Graph = {
    name: float.name,
    tensors,
    ops: float.ops.map((op) => ({ ...op, inputs: op.inputs.map(map), outputs: op.outputs.map(map) })),
    inputs: float.inputs.map(map),
    outputs: float.outputs.map(map),
  };
  try {
    validateGraph(graph);
  } catch (e) {
    if (e instanceof TfliteImportError) fail(`internal error: the quantised graph is not valid (please report it): ${e.message}`);
    throw e;
  }
  return graph;
}

function quantizeLayer(
  g: Graph, op: LayerOp, sIn: number,
  constants: Map<number, { data: Uint8Array; dtype: 'int8' | 'int32'; quant: GraphQuant }>,
  biasInputScale: Map<number, { scale: number; op: number }>,
  fail: (msg: string) => never,
): void {
  const wi = op.inputs[1]!;
  const w = g.tensors[wi]!;
  const dw = op.kind === 'depthwise_conv2d';
  const channels = dw ? w.shape[3]! : w.shape[0]!;
  let wq = constants.get(wi);
  if (!wq) {
    const inner = dw ? 1 : w.shape.slice(1).reduce((a, b) => a * b, 1);
    const q = quantizeWeights(constantValues(w), channels, inner);
    wq = { data: bytes(q.data), dtype: 'int8', quant: { scale: q.scales, zeroPoint: q.scales.map(() => 0), axis: dw ? 3 : 0 } };
    constants.set(wi, wq);
  }
  const bi = op.inputs[2] ?? -1;
  if (bi < 0) return;
  const prior = biasInputScale.get(bi);
  if (prior) {
    if (prior.scale !== sIn) {
      fail(`bias "${g.tensors[bi]!.name}" is shared by operators ${prior.op} and ${op.index}, whose inputs have different scales; ` +
        'give each layer its own bias');
    }
    return;
  }
  biasInputScale.set(bi, { scale: sIn, op: op.index });
  const q = quantizeBias(constantValues(g.tensors[bi]!), sIn, wq.quant.scale);
  constants.set(bi, { data: bytes(q.data), dtype: 'int32', quant: q.quant });
}
