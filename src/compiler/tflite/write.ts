// Graph IR -> .tflite bytes, the inverse of import.ts: one subgraph, a buffer
// per constant (16-byte aligned, as TFLite's converter writes them), the
// operator codes the graph uses, each op's builtin options. For float test
// models (no float .tflite is bundled), and to export a trained int8 graph so
// other TFLite tools can read it.
//
// writeTflite does not validate the graph (importing checks it); it writes
// what the Graph holds:
//  - op indices are not stored: a graph whose ops are numbered 0, 1, ...
//    in order (any imported or quantised graph) reads back equal;
//  - scales are float32 in the file: a graph whose scales are float32
//    values (any imported or quantised graph) reads back equal;
//  - RESHAPE gets ReshapeOptions.new_shape = its output shape, as the
//    converter writes it; operator code versions are 1 (TFLite Micro ignores
//    them; the TFLite interpreter looks a version up in its resolver, which
//    registers every version of these ops).
// Host side: it uses the flatbuffers npm runtime.

import * as flatbuffers from 'flatbuffers';
import type { FusedActivation, Graph, GraphDType, GraphOp, GraphOpKind, Padding } from '../../core/graph.js';
import * as tfl from './generated/tflite_subset_generated.js';

const TYPE: Record<GraphDType, tfl.TensorType> = {
  int8: tfl.TensorType.INT8,
  uint8: tfl.TensorType.UINT8,
  int16: tfl.TensorType.INT16,
  int32: tfl.TensorType.INT32,
  float32: tfl.TensorType.FLOAT32,
};

const BUILTIN: Record<GraphOpKind, tfl.BuiltinOperator> = {
  conv2d: tfl.BuiltinOperator.CONV_2D,
  depthwise_conv2d: tfl.BuiltinOperator.DEPTHWISE_CONV_2D,
  fully_connected: tfl.BuiltinOperator.FULLY_CONNECTED,
  average_pool2d: tfl.BuiltinOperator.AVERAGE_POOL_2D,
  mean: tfl.BuiltinOperator.MEAN,
  add: tfl.BuiltinOperator.ADD,
  reshape: tfl.BuiltinOperator.RESHAPE,
  softmax: tfl.BuiltinOperator.SOFTMAX,
};

const padding = (p: Padding) => (p === 'same' ? tfl.Padding.SAME : tfl.Padding.VALID);

const ACTIVATION: Record<FusedActivation, tfl.ActivationFunctionType> = {
  none: tfl.ActivationFunctionType.NONE,
  relu: tfl.ActivationFunctionType.RELU,
  relu6: tfl.ActivationFunctionType.RELU6,
};

export interface WriteOptions {
  description?: string; // Model.description (default "xstrain")
}

export function writeTflite(g: Graph, options: WriteOptions = {}): Uint8Array {
  const dataBytes = g.tensors.reduce((a, t) => a + (t.data ? t.data.length + 16 : 0), 0);
  const b = new flatbuffers.Builder(dataBytes + 1024 + 256 * (g.tensors.length + g.ops.length));

  // Buffers: 0 is the empty sentinel every activation names; each constant
  // gets its own.
  const buffers: flatbuffers.Offset[] = [tfl.Buffer.createBuffer(b, 0, 0n, 0n)];
  const tensorOffsets = g.tensors.map((t) => {
    let bufferIndex = 0;
    if (t.data) {
      buffers.push(tfl.Buffer.createBuffer(b, alignedBytes(b, t.data), 0n, 0n));
      bufferIndex = buffers.length - 1;
    }
    const name = b.createString(t.name);
    const shape = tfl.Tensor.createShapeVector(b, t.shape);
    let quant = 0;
    if (t.quant) {
      const scale = tfl.QuantizationParameters.createScaleVector(b, t.quant.scale);
      const zeroPoint = tfl.QuantizationParameters.createZeroPointVector(b, t.quant.zeroPoint.map(BigInt));
      quant = tfl.QuantizationParameters.createQuantizationParameters(b, 0, 0, scale, zeroPoint, t.quant.axis);
    }
    tfl.Tensor.startTensor(b);
    tfl.Tensor.addShape(b, shape);
    tfl.Tensor.addType(b, TYPE[t.dtype]);
    tfl.Tensor.addBuffer(b, bufferIndex);
    tfl.Tensor.addName(b, name);
    if (quant) tfl.Tensor.addQuantization(b, quant);
    return tfl.Tensor.endTensor(b);
  });

  const codes: tfl.BuiltinOperator[] = [];
  const codeOffsets: flatbuffers.Offset[] = [];
  const codeIndex = (builtin: tfl.BuiltinOperator): number => {
    const found = codes.indexOf(builtin);
    if (found >= 0) return found;
    // As converters write it: the byte field saturates at 127
    // (PLACEHOLDER_FOR_GREATER_OP_CODES), the int32 field holds the code.
    codeOffsets.push(tfl.OperatorCode.createOperatorCode(b, Math.min(builtin, 127), 0, 1, builtin));
    codes.push(builtin);
    return codes.length - 1;
  };

  const opOffsets = g.ops.map((op) => {
    const [type, opts] = builtinOptions(b, g, op);
    const inputs = tfl.Operator.createInputsVector(b, op.inputs);
    const outputs = tfl.Operator.createOutputsVector(b, op.outputs);
    return tfl.Operator.createOperator(b, codeIndex(BUILTIN[op.kind]), inputs, outputs, type, opts);
  });

  const subgraph = tfl.SubGraph.createSubGraph(
    b,
    tfl.SubGraph.createTensorsVector(b, tensorOffsets),
    tfl.SubGraph.createInputsVector(b, g.inputs),
    tfl.SubGraph.createOutputsVector(b, g.outputs),
    tfl.SubGraph.createOperatorsVector(b, opOffsets),
    b.createString(g.name),
  );
  const model = tfl.Model.createModel(
    b, 3, // schema version 3, as every current converter writes
    tfl.Model.createOperatorCodesVector(b, codeOffsets),
    tfl.Model.createSubgraphsVector(b, [subgraph]),
    b.createString(options.description ?? 'xstrain'),
    tfl.Model.createBuffersVector(b, buffers),
  );
  tfl.Model.finishModelBuffer(b, model);
  return b.asUint8Array().slice();
}

// A [ubyte] vector whose data starts 16-byte aligned (Buffer.data is
// force_align: 16), copied in one go.
function alignedBytes(b: flatbuffers.Builder, data: Uint8Array): flatbuffers.Offset {
  b.startVector(1, data.length, 16);
  b.pad(data.length);
  const bb = b.dataBuffer();
  bb.bytes().set(data, bb.capacity() - b.offset());
  return b.endVector();
}

function builtinOptions(b: flatbuffers.Builder, g: Graph, op: GraphOp): [tfl.BuiltinOptions, flatbuffers.Offset] {
  switch (op.kind) {
    case 'conv2d':
      return [tfl.BuiltinOptions.Conv2DOptions, tfl.Conv2DOptions.createConv2DOptions(
        b, padding(op.padding), op.strideW, op.strideH, ACTIVATION[op.activation], op.dilationW, op.dilationH)];
    case 'depthwise_conv2d':
      return [tfl.BuiltinOptions.DepthwiseConv2DOptions, tfl.DepthwiseConv2DOptions.createDepthwiseConv2DOptions(
        b, padding(op.padding), op.strideW, op.strideH, op.depthMultiplier, ACTIVATION[op.activation], op.dilationW, op.dilationH)];
    case 'fully_connected':
      return [tfl.BuiltinOptions.FullyConnectedOptions, tfl.FullyConnectedOptions.createFullyConnectedOptions(
        b, ACTIVATION[op.activation], tfl.FullyConnectedOptionsWeightsFormat.DEFAULT, op.keepNumDims)];
    case 'average_pool2d':
      return [tfl.BuiltinOptions.Pool2DOptions, tfl.Pool2DOptions.createPool2DOptions(
        b, padding(op.padding), op.strideW, op.strideH, op.filterW, op.filterH, ACTIVATION[op.activation])];
    case 'mean':
      return [tfl.BuiltinOptions.ReducerOptions, tfl.ReducerOptions.createReducerOptions(b, op.keepDims)];
    case 'add':
      return [tfl.BuiltinOptions.AddOptions, tfl.AddOptions.createAddOptions(b, ACTIVATION[op.activation])];
    case 'reshape': {
      const shape = tfl.ReshapeOptions.createNewShapeVector(b, g.tensors[op.outputs[0]!]!.shape);
      return [tfl.BuiltinOptions.ReshapeOptions, tfl.ReshapeOptions.createReshapeOptions(b, shape)];
    }
    case 'softmax':
      return [tfl.BuiltinOptions.SoftmaxOptions, tfl.SoftmaxOptions.createSoftmaxOptions(b, op.beta)];
  }
}
