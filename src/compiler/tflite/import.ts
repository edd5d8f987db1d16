// .tflite -> Graph IR (src/core/graph.ts). Host side: it uses the
// flatbuffers npm runtime through the code flatc generated from
// schema/tflite_subset.fbs, which the device does not carry.
//
// Three steps, each of which throws only TfliteImportError:
//   1. verifyTflite: the bytes are a structurally sound flatbuffer for the
//      subset (bounds, alignment, budgets), so the generated accessors below
//      read only inside the buffer;
//   2. read subgraph 0: tensors, constant buffers, operators and options;
//      operators outside xstrain's set are refused here, by name and index;
//      a QUANTIZE on the graph input and a DEQUANTIZE on the graph output
//      (the float interface TFLiteConverter gives an int8 model unless told
//      inference_input_type = tf.int8) are dropped: the int8 tensors become
//      the graph's input and output;
//   3. validateGraph: dtypes, quantisation and shapes agree (validate.ts).
// importTflite takes int8 models (what the runner and the training compiler
// need); importFloatTflite takes float32 models, for post-training
// quantisation (src/compiler/quantize); importAnyTflite either.

import * as flatbuffers from 'flatbuffers';
import type {
  FusedActivation, Graph, GraphDType, GraphOp, GraphQuant, GraphTensor, Padding,
} from '../../core/graph.js';
import { TfliteImportError } from './errors.js';
import * as tfl from './generated/tflite_subset_generated.js';
import { type GraphPrecision, SUPPORTED_BUILTINS, validateGraph } from './validate.js';
import { verifyTflite } from './verify.js';

export { TfliteImportError } from './errors.js';
export { summarizeGraph, validateGraph } from './validate.js';
export type { GraphPrecision, GraphSummary } from './validate.js';

const DTYPES: Partial<Record<tfl.TensorType, GraphDType>> = {
  [tfl.TensorType.INT8]: 'int8',
  [tfl.TensorType.UINT8]: 'uint8',
  [tfl.TensorType.INT16]: 'int16',
  [tfl.TensorType.INT32]: 'int32',
  [tfl.TensorType.FLOAT32]: 'float32',
};

const MAX_RANK = 6;
export const MAX_ELEMENTS = 2 ** 28;

// An int8 model (int8 activations and weights, int32 biases).
export function importTflite(bytes: Uint8Array, name: string): Graph {
  return importAs(bytes, name, () => 'int8');
}

// A float32 model (float32 activations, weights and biases), to be quantised.
export function importFloatTflite(bytes: Uint8Array, name: string): Graph {
  return importAs(bytes, name, () => 'float32');
}

// Either; the graph input's dtype says which the model is meant to be.
export function importAnyTflite(bytes: Uint8Array, name: string): { graph: Graph; precision: GraphPrecision } {
  let precision: GraphPrecision = 'int8';
  const graph = importAs(bytes, name, (g) => {
    precision = g.inputs.length === 1 && g.tensors[g.inputs[0]!]?.dtype === 'float32' ? 'float32' : 'int8';
    return precision;
  });
  return { graph, precision };
}

function importAs(bytes: Uint8Array, name: string, precisionOf: (g: Graph) => GraphPrecision): Graph {
  try {
    // The generated *Array() accessors build typed arrays over the buffer,
    // which needs the file's start aligned like a fresh allocation.
    const aligned = bytes.byteOffset % 16 === 0 ? bytes : bytes.slice();
    verifyTflite(aligned);
    const graph = readModel(aligned, name);
    validateGraph(graph, precisionOf(graph));
    return graph;
  } catch (e) {
    if (e instanceof TfliteImportError) {
      if (e.message.startsWith(`${name}: `)) throw e;
      throw new TfliteImportError(`${name}: ${e.message}`);
    }
    // Nothing else should get here: the verifier is meant to make the reads
    // safe. Still, the promise is one error type.
    throw new TfliteImportError(`${name}: internal error while importing (please report it with the file): ${String(e)}`);
  }
}

function fail(msg: string): never {
  throw new TfliteImportError(msg);
}

function builtinName(code: number): string {
  const n = (tfl.BuiltinOperator as unknown as Record<number, string | undefined>)[code];
  return n ?? 'unknown to xstrain\'s schema';
}

function readModel(bytes: Uint8Array, name: string): Graph {
  const bb = new flatbuffers.ByteBuffer(bytes);
  const model = tfl.Model.getRootAsModel(bb);
  if (model.subgraphsLength() < 1) fail('the model has no subgraph');
  const sg = model.subgraphs(0)!;
  const nBuffers = model.buffersLength();

  // --- tensors ---------------------------------------------------------------
  const nTensors = sg.tensorsLength();
  const tensors: GraphTensor[] = [];
  const sparsitySlot = 4 + 2 * 6; // Tensor.sparsity (field 6 in the real schema)
  // Tensors refer to buffers by index, so many tensors can name one large
  // buffer; each gets its own copy, within a budget of a few times the file.
  let copyBudget = 4 * bytes.length;
  for (let i = 0; i < nTensors; i++) {
    const t = sg.tensors(i)!;
    const tname = t.name() ?? `tensor${i}`;
    const where = `tensor ${i} "${tname}"`;
    const type = t.type();
    const dtype = DTYPES[type];
    if (dtype === undefined) {
      const f16 = type === tfl.TensorType.FLOAT16
        ? ' (a float16-quantised model: export it without optimizations, as float32)' : '';
      fail(`${where} has type ${tfl.TensorType[type] ?? type}${f16}; xstrain reads int8 models (int8 activations and ` +
        'weights, int32 biases), and float32 models it quantises itself from calibration samples; ' +
        'or convert with TFLiteConverter and full-integer quantisation');
    }
    if (bb.__offset(t.bb_pos, sparsitySlot) !== 0) fail(`${where} is sparse; xstrain needs dense tensors (convert without sparsity)`);
    const rank = t.shapeLength();
    if (rank > MAX_RANK) fail(`${where} has rank ${rank}; xstrain supports at most ${MAX_RANK}`);
    const shape: number[] = [];
    let elements = 1;
    for (let d = 0; d < rank; d++) {
      const v = t.shape(d)!;
      if (v <= 0) fail(`${where} has shape [${readShape(t).join(',')}]: dimension ${d} is ${v}, must be positive (dynamic shapes are not supported)`);
      elements *= v;
      if (elements > MAX_ELEMENTS) fail(`${where} has shape [${readShape(t).join(',')}]: more than 2^28 elements`);
      shape.push(v);
    }
    const quant = readQuant(t, where, shape);
    let data: Uint8Array | null = null;
    const bufIndex = t.buffer();
    if (bufIndex !== 0) {
      if (bufIndex >= nBuffers) fail(`${where} refers to buffer ${bufIndex}, the model has ${nBuffers}`);
      const buf = model.buffers(bufIndex)!;
      if (buf.offset() > 1n || buf.size() > 0n) {
        fail(`${where} keeps its data outside the flatbuffer (a >2 GB model layout); xstrain needs the data inside the .tflite`);
      }
      const raw = buf.dataArray();
      if (raw !== null && raw.length > 0) {
        const want = elements * DTYPE_BYTES[dtype];
        if (raw.length !== want) {
          fail(`${where} is ${dtype}[${shape.join('x')}] (${want} bytes) but its buffer ${bufIndex} has ${raw.length} bytes`);
        }
        copyBudget -= raw.length;
        if (copyBudget < 0) fail(`${where}: constant buffers shared by too many tensors (more data than 4x the file size)`);
        data = raw.slice();
      }
    }
    tensors.push({ name: tname, dtype, shape, quant, data });
  }

  const index = (v: number, where: string, optional: boolean): number => {
    if (optional && v === -1) return -1;
    if (!Number.isInteger(v) || v < 0 || v >= nTensors) fail(`${where} refers to tensor ${v}, the subgraph has ${nTensors} tensors`);
    return v;
  };
  const inputs: number[] = [];
  for (let i = 0; i < sg.inputsLength(); i++) inputs.push(index(sg.inputs(i)!, `graph input ${i}`, false));
  const outputs: number[] = [];
  for (let i = 0; i < sg.outputsLength(); i++) outputs.push(index(sg.outputs(i)!, `graph output ${i}`, false));

  // --- operators --------------------------------------------------------------
  const nCodes = model.operatorCodesLength();
  const ops: GraphOp[] = [];
  const interfaceOps: { builtin: number; index: number; input: number; output: number }[] = [];
  for (let i = 0; i < sg.operatorsLength(); i++) {
    const op = sg.operators(i)!;
    const codeIndex = op.opcodeIndex();
    if (codeIndex >= nCodes) fail(`operator ${i} refers to operator code ${codeIndex}, the model has ${nCodes}`);
    const code = model.operatorCodes(codeIndex)!;
    // As TFLite does: the byte-sized deprecated field for codes below 127,
    // the int32 field above.
    const builtin = Math.max(code.deprecatedBuiltinCode(), code.builtinCode());
    const opName = builtinName(builtin);
    if (builtin === tfl.BuiltinOperator.QUANTIZE || builtin === tfl.BuiltinOperator.DEQUANTIZE) {
      // Kept aside: only the float interface of an int8 model is accepted (below).
      if (op.inputsLength() !== 1 || op.outputsLength() !== 1) fail(`operator ${i} (${opName}) must have one input and one output`);
      interfaceOps.push({
        builtin, index: i, input: index(op.inputs(0)!, `operator ${i} (${opName}) input 0`, false),
        output: index(op.outputs(0)!, `operator ${i} (${opName}) output 0`, false),
      });
      continue;
    }
    if (builtin === tfl.BuiltinOperator.CUSTOM) {
      fail(`operator ${i} (custom "${code.customCode() ?? ''}") is not supported; xstrain supports ${SUPPORTED_BUILTINS.join(', ')}`);
    }
    const kind = KIND_OF[builtin];
    if (kind === undefined) {
      fail(`operator ${i} (${opName}, builtin ${builtin}) is not supported; xstrain supports ${SUPPORTED_BUILTINS.join(', ')}; ` +
        'rebuild the model from those ops (or file an issue naming the op)');
    }
    const where = `operator ${i} (${opName})`;
    const opInputs: number[] = [];
    for (let k = 0; k < op.inputsLength(); k++) opInputs.push(index(op.inputs(k)!, `${where} input ${k}`, true));
    const opOutputs: number[] = [];
    for (let k = 0; k < op.outputsLength(); k++) opOutputs.push(index(op.outputs(k)!, `${where} output ${k}`, false));
    const base = { index: i, inputs: opInputs, outputs: opOutputs };
    ops.push(readOptions(op, kind, base, where));
  }

  // depth_multiplier is redundant in the schema and newer converters may
  // leave it 0; then it is what the shapes say (weights' channels / input's).
  for (const op of ops) {
    if (op.kind !== 'depthwise_conv2d' || op.depthMultiplier !== 0) continue;
    const x = tensors[op.inputs[0] ?? -1];
    const w = tensors[op.inputs[1] ?? -1];
    const cin = x?.shape[3];
    const cout = w?.shape[3];
    if (cin !== undefined && cout !== undefined && cout % cin === 0) op.depthMultiplier = cout / cin;
  }

  if (interfaceOps.length > 0) return dropFloatInterface({ name, tensors, ops, inputs, outputs }, interfaceOps);
  return { name, tensors, ops, inputs, outputs };
}

// QUANTIZE float32 graph input -> int8, DEQUANTIZE int8 -> float32 graph
// output: the int8 tensors become the graph's input and output and the float
// ends are removed (the caller quantises the input and dequantises the output
// with the tensors' parameters). Any other QUANTIZE or DEQUANTIZE (inside the
// graph, on a constant, int8 to int8) is refused.
function dropFloatInterface(
  g: Graph, interfaceOps: { builtin: number; index: number; input: number; output: number }[],
): Graph {
  const dropped = new Set<number>();
  for (const q of interfaceOps) {
    const [x, y] = [g.tensors[q.input]!, g.tensors[q.output]!];
    const where = `operator ${q.index} (${builtinName(q.builtin)})`;
    const interfaceHint = 'xstrain accepts QUANTIZE only from a float32 graph input and DEQUANTIZE only to a float32 graph output ' +
      '(an int8 model with a float interface); convert with inference_input_type = tf.int8 and inference_output_type = tf.int8';
    if (x.data !== null) {
      fail(`${where} dequantises the constant "${x.name}" (a float16 or dynamic-range quantised model); export the model as ` +
        'float32 and let xstrain quantise it with calibration samples, or convert it to full int8');
    }
    if (q.builtin === tfl.BuiltinOperator.QUANTIZE) {
      const k = g.inputs.indexOf(q.input);
      if (k < 0 || x.dtype !== 'float32' || y.dtype !== 'int8') {
        fail(`${where} converts "${x.name}" (${x.dtype}) to "${y.name}" (${y.dtype}); ${interfaceHint}`);
      }
      g.inputs[k] = q.output;
      dropped.add(q.input);
    } else {
      const k = g.outputs.indexOf(q.output);
      if (k < 0 || x.dtype !== 'int8' || y.dtype !== 'float32') {
        fail(`${where} converts "${x.name}" (${x.dtype}) to "${y.name}" (${y.dtype}); ${interfaceHint}`);
      }
      g.outputs[k] = q.input;
      dropped.add(q.output);
    }
  }
  for (const op of g.ops) {
    for (const t of [...op.inputs, ...op.outputs]) {
      if (dropped.has(t)) fail(`operator ${op.index} uses the float tensor "${g.tensors[t]!.name}" of the model's float interface; convert with inference_input_type = tf.int8`);
    }
  }
  // Remove the float end tensors, renumbering the rest.
  const newIndex: number[] = [];
  const tensors = g.tensors.filter((_, i) => {
    newIndex[i] = dropped.has(i) ? -1 : i - [...dropped].filter((d) => d < i).length;
    return !dropped.has(i);
  });
  const map = (t: number) => (t < 0 ? t : newIndex[t]!);
  return {
    name: g.name, tensors,
    ops: g.ops.map((op) => ({ ...op, inputs: op.inputs.map(map), outputs: op.outputs.map(map) })),
    inputs: g.inputs.map(map), outputs: g.outputs.map(map),
  };
}

function readShape(t: tfl.Tensor): number[] {
  const s: number[] = [];
  for (let d = 0; d < t.shapeLength(); d++) s.push(t.shape(d)!);
  return s;
}

function readQuant(t: tfl.Tensor, where: string, shape: number[]): GraphQuant | null {
  const q = t.quantization();
  if (q === null) return null;
  const n = q.scaleLength();
  if (n === 0) return null; // TFLite writes an empty table for unquantised tensors
  const nz = q.zeroPointLength();
  if (nz !== n) fail(`${where} has ${n} quantisation scales but ${nz} zero points`);
  let axis = q.quantizedDimension();
  // Older converters copy the weights' axis (3 for depthwise) onto the 1-D
  // per-channel bias; TFLite ignores it, so do we.
  if (n > 1 && shape.length === 1 && shape[0] === n) axis = 0;
  if (n > 1 && (axis < 0 || axis >= shape.length || shape[axis] !== n)) {
    fail(`${where} has ${n} per-channel scales on axis ${axis}, but its shape is [${shape.join(',')}]`);
  }
  const scale: number[] = [];
  const zeroPoint: number[] = [];
  for (let c = 0; c < n; c++) {
    const sc = q.scale(c)!;
    if (!(sc > 0) || !Number.isFinite(sc)) fail(`${where} has quantisation scale ${sc} at channel ${c}; scales must be positive and finite`);
    scale.push(sc);
    const z = q.zeroPoint(c)!;
    if (z < -32768n || z > 65535n) fail(`${where} has zero point ${z} at channel ${c}, outside any integer type's range`);
    zeroPoint.push(Number(z));
  }
  return { scale, zeroPoint, axis: n > 1 ? axis : 0 };
}

export const DTYPE_BYTES: Record<GraphDType, number> = { int8: 1, uint8: 1, int16: 2, int32: 4, float32: 4 };

const KIND_OF: Partial<Record<number, GraphOp['kind']>> = {
  [tfl.BuiltinOperator.CONV_2D]: 'conv2d',
  [tfl.BuiltinOperator.DEPTHWISE_CONV_2D]: 'depthwise_conv2d',
  [tfl.BuiltinOperator.FULLY_CONNECTED]: 'fully_connected',
  [tfl.BuiltinOperator.AVERAGE_POOL_2D]: 'average_pool2d',
  [tfl.BuiltinOperator.MEAN]: 'mean',
  [tfl.BuiltinOperator.ADD]: 'add',
  [tfl.BuiltinOperator.RESHAPE]: 'reshape',
  [tfl.BuiltinOperator.SOFTMAX]: 'softmax',
};

type OpBase = { index: number; inputs: number[]; outputs: number[] };

// The options table an op carries must be the union member its kind uses
// (or absent: then the schema's defaults apply, as in TFLite).
function options<T>(op: tfl.Operator, want: tfl.BuiltinOptions, make: () => T, where: string): T | null {
  const type = op.builtinOptionsType();
  if (type === tfl.BuiltinOptions.NONE) return null;
  if (type !== want) {
    fail(`${where} carries ${tfl.BuiltinOptions[type] ?? `options type ${type}`}, expected ${tfl.BuiltinOptions[want]}`);
  }
  return op.builtinOptions(make()) as T | null;
}

function padding(p: tfl.Padding, where: string): Padding {
  if (p === tfl.Padding.SAME) return 'same';
  if (p === tfl.Padding.VALID) return 'valid';
  return fail(`${where} has padding ${p}; expected SAME or VALID`);
}

function activation(a: tfl.ActivationFunctionType, where: string): FusedActivation {
  switch (a) {
    case tfl.ActivationFunctionType.NONE: return 'none';
    case tfl.ActivationFunctionType.RELU: return 'relu';
    case tfl.ActivationFunctionType.RELU6: return 'relu6';
    default:
      return fail(`${where} has fused activation ${tfl.ActivationFunctionType[a] ?? a}; xstrain supports NONE, RELU, RELU6`);
  }
}

function readOptions(op: tfl.Operator, kind: GraphOp['kind'], base: OpBase, where: string): GraphOp {
  switch (kind) {
    case 'conv2d': {
      const o = options(op, tfl.BuiltinOptions.Conv2DOptions, () => new tfl.Conv2DOptions(), where);
      return {
        ...base, kind,
        padding: padding(o?.padding() ?? tfl.Padding.SAME, where),
        strideH: o?.strideH() ?? 0, strideW: o?.strideW() ?? 0,
        dilationH: o?.dilationHFactor() ?? 1, dilationW: o?.dilationWFactor() ?? 1,
        activation: activation(o?.fusedActivationFunction() ?? tfl.ActivationFunctionType.NONE, where),
      };
    }
    case 'depthwise_conv2d': {
      const o = options(op, tfl.BuiltinOptions.DepthwiseConv2DOptions, () => new tfl.DepthwiseConv2DOptions(), where);
      return {
        ...base, kind,
        padding: padding(o?.padding() ?? tfl.Padding.SAME, where),
        strideH: o?.strideH() ?? 0, strideW: o?.strideW() ?? 0,
        dilationH: o?.dilationHFactor() ?? 1, dilationW: o?.dilationWFactor() ?? 1,
        depthMultiplier: o?.depthMultiplier() ?? 0,
        activation: activation(o?.fusedActivationFunction() ?? tfl.ActivationFunctionType.NONE, where),
      };
    }
    case 'fully_connected': {
      const o = options(op, tfl.BuiltinOptions.FullyConnectedOptions, () => new tfl.FullyConnectedOptions(), where);
      if (o !== null && o.weightsFormat() !== tfl.FullyConnectedOptionsWeightsFormat.DEFAULT) {
        fail(`${where} uses the shuffled weights format ${o.weightsFormat()}; xstrain reads the DEFAULT [out][in] layout`);
      }
      return {
        ...base, kind,
        activation: activation(o?.fusedActivationFunction() ?? tfl.ActivationFunctionType.NONE, where),
        keepNumDims: o?.keepNumDims() ?? false,
      };
    }
    case 'average_pool2d': {
      const o = options(op, tfl.BuiltinOptions.Pool2DOptions, () => new tfl.Pool2DOptions(), where);
      return {
        ...base, kind,
        padding: padding(o?.padding() ?? tfl.Padding.SAME, where),
        strideH: o?.strideH() ?? 0, strideW: o?.strideW() ?? 0,
        filterH: o?.filterHeight() ?? 0, filterW: o?.filterWidth() ?? 0,
        activation: activation(o?.fusedActivationFunction() ?? tfl.ActivationFunctionType.NONE, where),
      };
    }
    case 'mean': {
      const o = options(op, tfl.BuiltinOptions.ReducerOptions, () => new tfl.ReducerOptions(), where);
      return { ...base, kind, keepDims: o?.keepDims() ?? false };
    }
    case 'add': {
      const o = options(op, tfl.BuiltinOptions.AddOptions, () => new tfl.AddOptions(), where);
      return { ...base, kind, activation: activation(o?.fusedActivationFunction() ?? tfl.ActivationFunctionType.NONE, where) };
    }
    case 'reshape':
      // new_shape in ReshapeOptions repeats the output tensor's shape; the
      // output shape is what validateGraph checks.
      options(op, tfl.BuiltinOptions.ReshapeOptions, () => new tfl.ReshapeOptions(), where);
      return { ...base, kind };
    case 'softmax': {
      const o = options(op, tfl.BuiltinOptions.SoftmaxOptions, () => new tfl.SoftmaxOptions(), where);
      return { ...base, kind, beta: o?.beta() ?? 1 };
    }
  }
}
