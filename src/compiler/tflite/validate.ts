// Checks that a Graph is one xstrain can run and train: fully int8
// activations, int8 symmetric weights, int32 biases, shapes that agree from op
// to op with TFLite's geometry, tensors produced before they are used. The
// importer runs it on every graph it returns; the tests run it again.
// With precision 'float32' it checks a float model before post-training
// quantisation instead: float32 activations, weights and biases (finite),
// the same ops and shapes. Every failure is a TfliteImportError that names
// the operator or tensor.

import type { Graph, GraphDType, GraphOp, GraphOpKind, GraphTensor, Padding } from '../../core/graph.js';
import { TfliteImportError } from './errors.js';

export const SUPPORTED_BUILTINS = [
  'CONV_2D', 'DEPTHWISE_CONV_2D', 'FULLY_CONNECTED', 'AVERAGE_POOL_2D', 'MEAN', 'ADD', 'RESHAPE', 'SOFTMAX',
];

const TFLITE_NAME: Record<GraphOpKind, string> = {
  conv2d: 'CONV_2D',
  depthwise_conv2d: 'DEPTHWISE_CONV_2D',
  fully_connected: 'FULLY_CONNECTED',
  average_pool2d: 'AVERAGE_POOL_2D',
  mean: 'MEAN',
  add: 'ADD',
  reshape: 'RESHAPE',
  softmax: 'SOFTMAX',
};

const BYTES: Record<GraphDType, number> = { int8: 1, uint8: 1, int16: 2, int32: 4, float32: 4 };
const MAX_ELEMENTS = 2 ** 28;

export type GraphPrecision = 'int8' | 'float32';

export const CONVERT_HINT =
  'xstrain needs a fully int8 model: convert it with tf.lite.TFLiteConverter, setting ' +
  'optimizations = [tf.lite.Optimize.DEFAULT], representative_dataset = a generator of ~100 real input samples, ' +
  'target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8], inference_input_type = tf.int8 and ' +
  'inference_output_type = tf.int8';

// For a float32 tensor in an int8 model: a float model can also be quantised
// by xstrain itself.
export const FLOAT_HINT =
  'xstrain needs a fully int8 model: for a float32 model, give calibration samples (a few hundred real inputs) and ' +
  'xstrain quantises it (importModel with calibration samples); or ' + CONVERT_HINT.slice(CONVERT_HINT.indexOf('convert it'));

function fail(msg: string): never {
  throw new TfliteImportError(msg);
}

const fmt = (t: GraphTensor) => `${t.dtype}[${t.shape.join('x')}]`;
const elements = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

// TFLite's output size: SAME ceil(in / stride), VALID ceil((in - k + 1) / stride).
export function convOutSize(inSize: number, k: number, stride: number, padding: Padding): number {
  return padding === 'same' ? Math.ceil(inSize / stride) : Math.ceil((inSize - k + 1) / stride);
}

export function validateGraph(g: Graph, precision: GraphPrecision = 'int8'): void {
  const T = g.tensors.length;
  g.tensors.forEach((t, i) => checkTensor(t, i));
  const tensorAt = (v: number, where: string): GraphTensor => {
    if (!Number.isInteger(v) || v < 0 || v >= T) fail(`${where} refers to tensor ${v}, the graph has ${T} tensors`);
    return g.tensors[v]!;
  };
  g.inputs.forEach((v, i) => tensorAt(v, `graph input ${i}`));
  g.outputs.forEach((v, i) => tensorAt(v, `graph output ${i}`));
  if (g.inputs.length === 0) fail('the graph has no inputs');
  if (g.outputs.length === 0) fail('the graph has no outputs');
  if (g.ops.length === 0) fail('the graph has no operators');

  // Tensors flow in execution order: a graph input, a constant or an earlier
  // op's output; every non-constant tensor is written once.
  const ready = new Set<number>();
  for (const v of g.inputs) {
    if (g.tensors[v]!.data !== null) fail(`graph input ${v} "${g.tensors[v]!.name}" is a constant`);
    checkActivation(g.tensors[v]!, `graph input "${g.tensors[v]!.name}"`, precision);
    ready.add(v);
  }
  for (const op of g.ops) {
    const where = `operator ${op.index} (${TFLITE_NAME[op.kind]})`;
    op.inputs.forEach((v, k) => {
      if (v === -1) return;
      const t = tensorAt(v, `${where} input ${k}`);
      if (t.data === null && !ready.has(v)) fail(`${where} reads tensor ${v} "${t.name}" before any operator writes it`);
    });
    op.outputs.forEach((v, k) => {
      const t = tensorAt(v, `${where} output ${k}`);
      if (t.data !== null) fail(`${where} writes into the constant tensor ${v} "${t.name}"`);
      if (ready.has(v)) fail(`${where} writes tensor ${v} "${t.name}", which is already written earlier`);
      ready.add(v);
    });
    checkOp(g, op, where, precision);
  }
  for (const v of g.outputs) {
    if (!ready.has(v)) fail(`graph output ${v} "${g.tensors[v]!.name}" is never written`);
  }
}

function checkTensor(t: GraphTensor, i: number): void {
  const where = `tensor ${i} "${t.name}"`;
  if (!(t.dtype in BYTES)) fail(`${where} has unknown dtype ${String(t.dtype)}`);
  let n = 1;
  for (const d of t.shape) {
    if (!Number.isInteger(d) || d <= 0) fail(`${where} has shape [${t.shape.join(',')}]: dimensions must be positive`);
    n *= d;
    if (n > MAX_ELEMENTS) fail(`${where} has more than 2^28 elements`);
  }
  if (t.data !== null && t.data.length !== n * BYTES[t.dtype]) {
    fail(`${where} is ${fmt(t)} (${n * BYTES[t.dtype]} bytes) but has ${t.data.length} bytes of data`);
  }
  const q = t.quant;
  if (q !== null) {
    if (q.scale.length === 0 || q.scale.length !== q.zeroPoint.length) fail(`${where} has inconsistent quantisation`);
    if (q.scale.length > 1 && t.shape[q.axis] !== q.scale.length) {
      fail(`${where} has ${q.scale.length} per-channel scales on axis ${q.axis}, but its shape is [${t.shape.join(',')}]`);
    }
  }
}

// A tensor computed at run time: int8, quantised per tensor (or float32 in a
// float model).
function checkActivation(t: GraphTensor, where: string, precision: GraphPrecision): void {
  if (precision === 'float32') {
    if (t.dtype !== 'float32') {
      fail(`${where} is ${fmt(t)} in a float32 model; a model is either fully float32 (quantised by xstrain) or fully int8`);
    }
    return;
  }
  if (t.dtype === 'float32') fail(`${where} is ${fmt(t)}; ${FLOAT_HINT}`);
  if (t.dtype === 'uint8') fail(`${where} is ${fmt(t)}; ${CONVERT_HINT}`);
  if (t.dtype !== 'int8') fail(`${where} is ${fmt(t)}; activations must be int8. ${CONVERT_HINT}`);
  if (t.quant === null) fail(`${where} is int8 without quantisation parameters; ${CONVERT_HINT}`);
  if (t.quant.scale.length !== 1) fail(`${where} is an activation with ${t.quant.scale.length} scales; activations are quantised per tensor`);
  const zp = t.quant.zeroPoint[0]!;
  if (zp < -128 || zp > 127) fail(`${where} has zero point ${zp}, outside int8`);
}

function checkOp(g: Graph, op: GraphOp, where: string, precision: GraphPrecision): void {
  const tensor = (k: number): GraphTensor => {
    const v = op.inputs[k];
    if (v === undefined || v === -1) fail(`${where} is missing input ${k}`);
    return g.tensors[v]!;
  };
  const nIn = (min: number, max: number) => {
    if (op.inputs.length < min || op.inputs.length > max) {
      fail(`${where} has ${op.inputs.length} inputs, expected ${min === max ? min : `${min} to ${max}`}`);
    }
  };
  if (op.outputs.length !== 1) fail(`${where} has ${op.outputs.length} outputs, expected 1`);
  const out = g.tensors[op.outputs[0]!]!;
  checkActivation(out, `${where} output "${out.name}"`, precision);
  const act = (k: number): GraphTensor => {
    const t = tensor(k);
    if (t.data === null) checkActivation(t, `${where} input "${t.name}"`, precision);
    else if (precision === 'float32') {
      fail(`${where} input "${t.name}" is a constant; xstrain quantises only computed tensors there (weights and biases are the constants)`);
    } else if (t.dtype !== 'int8' || t.quant === null) fail(`${where} input "${t.name}" is a ${fmt(t)} constant; expected quantised int8`);
    return t;
  };
  const shapeIs = (t: GraphTensor, want: number[], what: string) => {
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      fail(`${where}: ${what} "${t.name}" has shape [${t.shape.join(',')}], expected [${want.join(',')}]`);
    }
  };
  const rank4 = (t: GraphTensor, what: string) => {
    if (t.shape.length !== 4) fail(`${where}: ${what} "${t.name}" has shape [${t.shape.join(',')}], expected NHWC (rank 4)`);
  };
  const strides = (sh: number, sw: number) => {
    if (!(sh >= 1 && sw >= 1)) fail(`${where} has strides ${sh}x${sw}; strides must be at least 1`);
  };
  const spatial = (x: GraphTensor, kh: number, kw: number, sh: number, sw: number, padding: Padding): [number, number] => {
    const ho = convOutSize(x.shape[1]!, kh, sh, padding);
    const wo = convOutSize(x.shape[2]!, kw, sw, padding);
    if (ho < 1 || wo < 1) fail(`${where}: a ${kh}x${kw} window does not fit the ${x.shape[1]}x${x.shape[2]} input with VALID padding`);
    return [ho, wo];
  };

  switch (op.kind) {
    case 'conv2d':
    case 'depthwise_conv2d': {
      nIn(2, 3);
      const x = act(0);
      rank4(x, 'input');
      const w = weights(g, op, where, precision);
      rank4(w, 'weights');
      strides(op.strideH, op.strideW);
      if (op.dilationH !== 1 || op.dilationW !== 1) {
        fail(`${where} has dilation ${op.dilationH}x${op.dilationW}; xstrain supports dilation 1 only (rebuild the layer without dilation_rate)`);
      }
      const [kh, kw] = [w.shape[1]!, w.shape[2]!];
      const cin = x.shape[3]!;
      let cout: number;
      if (op.kind === 'conv2d') {
        cout = w.shape[0]!;
        if (w.shape[3] !== cin) fail(`${where}: weights "${w.name}" have ${w.shape[3]} input channels, the input "${x.name}" has ${cin}`);
        perChannelAxis(w, 0, where);
      } else {
        if (w.shape[0] !== 1) fail(`${where}: depthwise weights "${w.name}" have shape [${w.shape.join(',')}], expected [1,kh,kw,channels]`);
        cout = w.shape[3]!;
        if (cout % cin !== 0) fail(`${where}: depthwise weights "${w.name}" have ${cout} channels, not a multiple of the input's ${cin}`);
        if (op.depthMultiplier !== cout / cin) {
          fail(`${where} has depth multiplier ${op.depthMultiplier}, but weights "${w.name}" give ${cout}/${cin} = ${cout / cin}`);
        }
        perChannelAxis(w, 3, where);
      }
      bias(g, op, cout, where, precision);
      const [ho, wo] = spatial(x, kh, kw, op.strideH, op.strideW, op.padding);
      shapeIs(out, [x.shape[0]!, ho, wo, cout], 'output');
      break;
    }
    case 'fully_connected': {
      nIn(2, 3);
      const x = act(0);
      const w = weights(g, op, where, precision);
      if (w.shape.length !== 2) fail(`${where}: weights "${w.name}" have shape [${w.shape.join(',')}], expected [out, in]`);
      perChannelAxis(w, 0, where);
      const [nOut, nInF] = [w.shape[0]!, w.shape[1]!];
      const xe = elements(x.shape);
      if (x.shape.length === 0 || x.shape[x.shape.length - 1] !== nInF && !(xe % nInF === 0 && !op.keepNumDims)) {
        fail(`${where}: input "${x.name}" has shape [${x.shape.join(',')}], weights "${w.name}" expect ${nInF} input features`);
      }
      bias(g, op, nOut, where, precision);
      if (op.keepNumDims) shapeIs(out, [...x.shape.slice(0, -1), nOut], 'output');
      else shapeIs(out, [xe / nInF, nOut], 'output');
      break;
    }
    case 'average_pool2d': {
      nIn(1, 1);
      const x = act(0);
      rank4(x, 'input');
      strides(op.strideH, op.strideW);
      if (!(op.filterH >= 1 && op.filterW >= 1)) fail(`${where} has filter ${op.filterH}x${op.filterW}; must be at least 1x1`);
      const [ho, wo] = spatial(x, op.filterH, op.filterW, op.strideH, op.strideW, op.padding);
      shapeIs(out, [x.shape[0]!, ho, wo, x.shape[3]!], 'output');
      break;
    }
    case 'mean': {
      nIn(2, 2);
      const x = act(0);
      const axesT = tensor(1);
      if (axesT.dtype !== 'int32' || axesT.data === null) fail(`${where}: axes "${axesT.name}" must be a constant int32 tensor, is ${fmt(axesT)}`);
      const dv = new DataView(axesT.data.buffer, axesT.data.byteOffset, axesT.data.byteLength);
      const r = x.shape.length;
      const reduced = new Set<number>();
      for (let i = 0; i < axesT.data.length / 4; i++) {
        const a = dv.getInt32(4 * i, true);
        if (a < -r || a >= r) fail(`${where}: axis ${a} is outside the input's rank ${r}`);
        reduced.add(a < 0 ? a + r : a);
      }
      const want = op.keepDims
        ? x.shape.map((d, i) => (reduced.has(i) ? 1 : d))
        : x.shape.filter((_, i) => !reduced.has(i));
      shapeIs(out, want, 'output');
      break;
    }
    case 'add': {
      nIn(2, 2);
      const a = act(0);
      const b = act(1);
      const r = Math.max(a.shape.length, b.shape.length);
      const want: number[] = [];
      for (let i = 0; i < r; i++) {
        const da = a.shape[a.shape.length - r + i] ?? 1;
        const db = b.shape[b.shape.length - r + i] ?? 1;
        if (da !== db && da !== 1 && db !== 1) fail(`${where}: inputs [${a.shape.join(',')}] and [${b.shape.join(',')}] do not broadcast`);
        want.push(Math.max(da, db));
      }
      shapeIs(out, want, 'output');
      break;
    }
    case 'reshape': {
      nIn(1, 2);
      const x = act(0);
      if (op.inputs.length === 2 && op.inputs[1] !== -1) {
        const s = tensor(1);
        if (s.dtype !== 'int32') fail(`${where}: shape input "${s.name}" must be int32, is ${fmt(s)}`);
      }
      if (elements(x.shape) !== elements(out.shape)) {
        fail(`${where}: input "${x.name}" [${x.shape.join(',')}] and output "${out.name}" [${out.shape.join(',')}] have different element counts`);
      }
      break;
    }
    case 'softmax': {
      nIn(1, 1);
      const x = act(0);
      if (!(op.beta > 0) || !Number.isFinite(op.beta)) fail(`${where} has beta ${op.beta}; must be positive`);
      shapeIs(out, x.shape, 'output');
      break;
    }
  }
}

// Every value of a float32 constant is finite (a NaN weight would quantise to nonsense).
function checkFinite(t: GraphTensor, what: string): void {
  const d = t.data!;
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  for (let i = 0; i < d.length / 4; i++) {
    const v = dv.getFloat32(4 * i, true);
    if (!Number.isFinite(v)) fail(`${what} "${t.name}" holds ${v} at element ${i}; fix the model's weights before quantising it`);
  }
}

function weights(g: Graph, op: GraphOp, where: string, precision: GraphPrecision): GraphTensor {
  const v = op.inputs[1]!;
  if (v === -1) fail(`${where} has no weights`);
  const w = g.tensors[v]!;
  if (w.data === null) fail(`${where}: weights "${w.name}" are not a constant; xstrain needs constant weights`);
  if (precision === 'float32') {
    if (w.dtype !== 'float32') fail(`${where}: weights "${w.name}" are ${fmt(w)} in a float32 model; expected float32`);
    checkFinite(w, `${where}: weights`);
    return w;
  }
  if (w.dtype !== 'int8') fail(`${where}: weights "${w.name}" are ${fmt(w)}, expected int8; ${CONVERT_HINT}`);
  if (w.quant === null) fail(`${where}: weights "${w.name}" have no quantisation parameters; ${CONVERT_HINT}`);
  if (w.quant.zeroPoint.some((z) => z !== 0)) {
    fail(`${where}: weights "${w.name}" are asymmetric (zero points ${w.quant.zeroPoint.filter((z) => z !== 0).slice(0, 4).join(', ')}); ` +
      'int8 weights must be symmetric (zero point 0), as TFLiteConverter writes them');
  }
  return w;
}

function perChannelAxis(w: GraphTensor, axis: number, where: string): void {
  const q = w.quant;
  if (q && q.scale.length > 1 && q.axis !== axis) {
    fail(`${where}: weights "${w.name}" are quantised per channel on axis ${q.axis}, expected axis ${axis}`);
  }
}

function bias(g: Graph, op: GraphOp, channels: number, where: string, precision: GraphPrecision): void {
  const v = op.inputs[2];
  if (v === undefined || v === -1) return;
  const b = g.tensors[v]!;
  if (b.data === null) fail(`${where}: bias "${b.name}" is not a constant`);
  if (precision === 'float32') {
    if (b.dtype !== 'float32') fail(`${where}: bias "${b.name}" is ${fmt(b)} in a float32 model; expected float32`);
    if (elements(b.shape) !== channels) fail(`${where}: bias "${b.name}" has ${elements(b.shape)} elements, the layer has ${channels} output channels`);
    checkFinite(b, `${where}: bias`);
    return;
  }
  if (b.dtype !== 'int32') fail(`${where}: bias "${b.name}" is ${fmt(b)}, expected int32 (int8 models keep int32 biases); ${CONVERT_HINT}`);
  if (elements(b.shape) !== channels) fail(`${where}: bias "${b.name}" has ${elements(b.shape)} elements, the layer has ${channels} output channels`);
  if (b.quant === null) fail(`${where}: bias "${b.name}" has no quantisation parameters; ${CONVERT_HINT}`);
}

// --- summary for the CLI --------------------------------------------------------

export interface GraphSummary {
  name: string;
  inputs: string[]; // "int8[1x96x96x1]"
  outputs: string[];
  counts: Partial<Record<GraphOpKind, number>>;
  ops: { index: number; kind: GraphOpKind; macs: number; paramBytes: number }[];
  totalMacs: number;
  paramBytes: number; // constant data, each tensor counted once
}

export function summarizeGraph(g: Graph): GraphSummary {
  const counts: Partial<Record<GraphOpKind, number>> = {};
  const seen = new Set<number>();
  const ops = g.ops.map((op) => {
    counts[op.kind] = (counts[op.kind] ?? 0) + 1;
    let paramBytes = 0;
    for (const v of op.inputs) {
      const t = v >= 0 ? g.tensors[v] : undefined;
      if (t?.data && !seen.has(v)) {
        seen.add(v);
        paramBytes += t.data.length;
      }
    }
    return { index: op.index, kind: op.kind, macs: opMacs(g, op), paramBytes };
  });
  const shapeOf = (v: number) => fmt(g.tensors[v]!);
  return {
    name: g.name,
    inputs: g.inputs.map(shapeOf),
    outputs: g.outputs.map(shapeOf),
    counts,
    ops,
    totalMacs: ops.reduce((a, o) => a + o.macs, 0),
    paramBytes: ops.reduce((a, o) => a + o.paramBytes, 0),
  };
}

// Multiply-accumulates (adds for pooling and means, one per element for
// add and softmax).
function opMacs(g: Graph, op: GraphOp): number {
  const out = g.tensors[op.outputs[0]!]!;
  const x = g.tensors[op.inputs[0]!]!;
  const w = op.inputs.length > 1 && op.inputs[1]! >= 0 ? g.tensors[op.inputs[1]!]! : undefined;
  switch (op.kind) {
    case 'conv2d':
      return elements(out.shape) * w!.shape[1]! * w!.shape[2]! * w!.shape[3]!;
    case 'depthwise_conv2d':
      return elements(out.shape) * w!.shape[1]! * w!.shape[2]!;
    case 'fully_connected':
      return elements(out.shape) * w!.shape[1]!;
    case 'average_pool2d':
      return elements(out.shape) * op.filterH * op.filterW;
    case 'mean':
      return elements(x.shape);
    case 'add':
    case 'softmax':
      return elements(out.shape);
    case 'reshape':
      return 0;
  }
}
