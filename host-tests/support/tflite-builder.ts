// Writes small .tflite models with the flatbuffers Builder and the generated
// code, for tests that need a model the three real ones are not: an
// unsupported op, a float tensor, a bad shape.
import * as flatbuffers from 'flatbuffers';
import * as tfl from '../../src/compiler/tflite/generated/tflite_subset_generated.js';

export interface TensorSpec {
  name: string;
  type?: tfl.TensorType; // INT8
  shape: number[];
  scale?: number[]; // absent: no quantisation table
  zeroPoint?: number[];
  axis?: number;
  data?: Uint8Array; // a constant
}

export interface OpSpec {
  builtin: number; // tfl.BuiltinOperator
  custom?: string;
  inputs: number[];
  outputs: number[];
  // builtin_options; the builder writes the table for the op's kind
  conv?: { padding?: tfl.Padding; stride?: number; dilation?: number; activation?: tfl.ActivationFunctionType; depthMultiplier?: number };
  softmaxBeta?: number;
}

export interface ModelSpec {
  tensors: TensorSpec[];
  ops: OpSpec[];
  inputs: number[];
  outputs: number[];
  // Hostile layouts: the operators vector names each operator table this
  // many times (shared offsets), as no converter writes.
  opRepeat?: number;
}

export function buildTflite(spec: ModelSpec): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  // Buffers: 0 is the empty sentinel; each constant gets its own.
  const bufferOffsets: number[] = [tfl.Buffer.createBuffer(b, 0, 0n, 0n)];
  const tensorOffsets = spec.tensors.map((t) => {
    let bufferIndex = 0;
    if (t.data) {
      b.startVector(1, t.data.length, 16);
      for (let i = t.data.length - 1; i >= 0; i--) b.addInt8(t.data[i]!);
      const dataVec = b.endVector();
      bufferOffsets.push(tfl.Buffer.createBuffer(b, dataVec, 0n, 0n));
      bufferIndex = bufferOffsets.length - 1;
    }
    const name = b.createString(t.name);
    const shape = tfl.Tensor.createShapeVector(b, t.shape);
    let quant = 0;
    if (t.scale) {
      const scale = tfl.QuantizationParameters.createScaleVector(b, t.scale);
      const zp = tfl.QuantizationParameters.createZeroPointVector(b, (t.zeroPoint ?? t.scale.map(() => 0)).map(BigInt));
      quant = tfl.QuantizationParameters.createQuantizationParameters(b, 0, 0, scale, zp, t.axis ?? 0);
    }
    tfl.Tensor.startTensor(b);
    tfl.Tensor.addShape(b, shape);
    tfl.Tensor.addType(b, t.type ?? tfl.TensorType.INT8);
    tfl.Tensor.addBuffer(b, bufferIndex);
    tfl.Tensor.addName(b, name);
    if (quant) tfl.Tensor.addQuantization(b, quant);
    return tfl.Tensor.endTensor(b);
  });

  const codes: number[] = [];
  const codeOffsets: number[] = [];
  const codeIndex = (op: OpSpec): number => {
    const key = op.custom ? -1 - codes.length : op.builtin;
    const found = codes.indexOf(key);
    if (found >= 0) return found;
    const custom = op.custom ? b.createString(op.custom) : 0;
    tfl.OperatorCode.startOperatorCode(b);
    // As converters write it: the byte field saturates at 127.
    tfl.OperatorCode.addDeprecatedBuiltinCode(b, Math.min(op.builtin, 127));
    if (custom) tfl.OperatorCode.addCustomCode(b, custom);
    tfl.OperatorCode.addVersion(b, 1);
    tfl.OperatorCode.addBuiltinCode(b, op.builtin);
    codeOffsets.push(tfl.OperatorCode.endOperatorCode(b));
    codes.push(key);
    return codes.length - 1;
  };

  const opOffsets = spec.ops.map((op) => {
    let optType = tfl.BuiltinOptions.NONE;
    let opt = 0;
    const c = op.conv ?? {};
    if (op.builtin === tfl.BuiltinOperator.CONV_2D) {
      optType = tfl.BuiltinOptions.Conv2DOptions;
      opt = tfl.Conv2DOptions.createConv2DOptions(b, c.padding ?? tfl.Padding.VALID, c.stride ?? 1, c.stride ?? 1,
        c.activation ?? tfl.ActivationFunctionType.NONE, c.dilation ?? 1, c.dilation ?? 1);
    } else if (op.builtin === tfl.BuiltinOperator.DEPTHWISE_CONV_2D) {
      optType = tfl.BuiltinOptions.DepthwiseConv2DOptions;
      opt = tfl.DepthwiseConv2DOptions.createDepthwiseConv2DOptions(b, c.padding ?? tfl.Padding.VALID, c.stride ?? 1,
        c.stride ?? 1, c.depthMultiplier ?? 1, c.activation ?? tfl.ActivationFunctionType.NONE, c.dilation ?? 1, c.dilation ?? 1);
    } else if (op.builtin === tfl.BuiltinOperator.FULLY_CONNECTED) {
      optType = tfl.BuiltinOptions.FullyConnectedOptions;
      opt = tfl.FullyConnectedOptions.createFullyConnectedOptions(b, c.activation ?? tfl.ActivationFunctionType.NONE,
        tfl.FullyConnectedOptionsWeightsFormat.DEFAULT, false);
    } else if (op.builtin === tfl.BuiltinOperator.SOFTMAX) {
      optType = tfl.BuiltinOptions.SoftmaxOptions;
      opt = tfl.SoftmaxOptions.createSoftmaxOptions(b, op.softmaxBeta ?? 1);
    }
    const idx = codeIndex(op);
    const inputs = tfl.Operator.createInputsVector(b, op.inputs);
    const outputs = tfl.Operator.createOutputsVector(b, op.outputs);
    return tfl.Operator.createOperator(b, idx, inputs, outputs, optType, opt);
  });

  const tensors = tfl.SubGraph.createTensorsVector(b, tensorOffsets);
  const inputs = tfl.SubGraph.createInputsVector(b, spec.inputs);
  const outputs = tfl.SubGraph.createOutputsVector(b, spec.outputs);
  const operators = tfl.SubGraph.createOperatorsVector(b, opOffsets.flatMap((o) => Array<number>(spec.opRepeat ?? 1).fill(o)));
  const sgName = b.createString('main');
  const sg = tfl.SubGraph.createSubGraph(b, tensors, inputs, outputs, operators, sgName);
  const model = tfl.Model.createModel(
    b, 3,
    tfl.Model.createOperatorCodesVector(b, codeOffsets),
    tfl.Model.createSubgraphsVector(b, [sg]),
    b.createString('xstrain test model'),
    tfl.Model.createBuffersVector(b, bufferOffsets),
  );
  tfl.Model.finishModelBuffer(b, model);
  return b.asUint8Array().slice();
}

export const int8Bytes = (values: number[]) => Uint8Array.from(values, (v) => v & 0xff);
export const int32Bytes = (values: number[]) => new Uint8Array(Int32Array.from(values).buffer);

// A one-layer int8 model: x int8[1,4] -> FULLY_CONNECTED (w [2,4], b [2]) -> y int8[1,2].
export function tinyFcSpec(): ModelSpec {
  return {
    tensors: [
      { name: 'x', shape: [1, 4], scale: [0.05], zeroPoint: [-3] },
      { name: 'w', shape: [2, 4], scale: [0.01], zeroPoint: [0], data: int8Bytes([1, 2, 3, 4, -1, -2, -3, -4]) },
      { name: 'b', type: tfl.TensorType.INT32, shape: [2], scale: [0.0005], data: int32Bytes([10, -10]) },
      { name: 'y', shape: [1, 2], scale: [0.1], zeroPoint: [2] },
    ],
    ops: [{ builtin: tfl.BuiltinOperator.FULLY_CONNECTED, inputs: [0, 1, 2], outputs: [3] }],
    inputs: [0],
    outputs: [3],
  };
}
