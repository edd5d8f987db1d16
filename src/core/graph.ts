// The model graph: what the TFLite importer produces and what the forward
// runner and (later) the training compiler consume. Platform-free: it holds
// TFLite-level facts (float scales, padding kinds, fused activations), not
// kernel parameters; lowering to kernel calls happens in runner.ts.
//
// Layouts follow TFLite: activations NHWC, conv weights OHWI
// [out][kh][kw][in], depthwise weights [1][kh][kw][in*multiplier],
// fully-connected weights [out][in], biases int32 [out].

export type GraphDType = 'int8' | 'uint8' | 'int16' | 'int32' | 'float32';

export interface GraphQuant {
  scale: number[]; // float32 values as stored, one per channel or one
  zeroPoint: number[];
  axis: number; // quantized_dimension (per-channel axis); 0 when per-tensor
}

export interface GraphTensor {
  name: string;
  dtype: GraphDType;
  shape: number[];
  quant: GraphQuant | null;
  // Constant bytes (little-endian, exactly elements * dtype size), or null
  // for activations and graph inputs.
  data: Uint8Array | null;
}

export type Padding = 'same' | 'valid';
export type FusedActivation = 'none' | 'relu' | 'relu6';

interface OpBase {
  index: number; // operator index in the source subgraph, for messages
  // Tensor indices; -1 for an absent optional input (a conv without bias).
  inputs: number[];
  outputs: number[];
}

export interface Conv2dOp extends OpBase {
  kind: 'conv2d'; // inputs: x, weights, bias|-1
  padding: Padding;
  strideH: number;
  strideW: number;
  dilationH: number;
  dilationW: number;
  activation: FusedActivation;
}

export interface DepthwiseConv2dOp extends OpBase {
  kind: 'depthwise_conv2d'; // inputs: x, weights, bias|-1
  padding: Padding;
  strideH: number;
  strideW: number;
  dilationH: number;
  dilationW: number;
  depthMultiplier: number;
  activation: FusedActivation;
}

export interface FullyConnectedOp extends OpBase {
  kind: 'fully_connected'; // inputs: x, weights, bias|-1
  activation: FusedActivation;
  keepNumDims: boolean;
}

export interface AveragePool2dOp extends OpBase {
  kind: 'average_pool2d';
  padding: Padding;
  strideH: number;
  strideW: number;
  filterH: number;
  filterW: number;
  activation: FusedActivation;
}

export interface MeanOp extends OpBase {
  kind: 'mean'; // inputs: x, axes (constant int32)
  keepDims: boolean;
}

export interface AddOp extends OpBase {
  kind: 'add';
  activation: FusedActivation;
}

export interface ReshapeOp extends OpBase {
  kind: 'reshape'; // inputs: x, shape (constant int32) or none
}

export interface SoftmaxOp extends OpBase {
  kind: 'softmax';
  beta: number;
}

export type GraphOp =
  | Conv2dOp
  | DepthwiseConv2dOp
  | FullyConnectedOp
  | AveragePool2dOp
  | MeanOp
  | AddOp
  | ReshapeOp
  | SoftmaxOp;

export type GraphOpKind = GraphOp['kind'];

export interface Graph {
  name: string;
  tensors: GraphTensor[];
  ops: GraphOp[]; // in execution order
  inputs: number[];
  outputs: number[];
}

export class GraphError extends Error {}

export function tensorElements(t: GraphTensor): number {
  let n = 1;
  for (const d of t.shape) n *= d;
  return n;
}
