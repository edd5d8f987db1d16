// Inverted-residual networks (MobileNetV2, MCUNet) from a block list: the
// layer table (convolutions in forward order, shapes, parameter counts,
// activation sizes) and a seeded int8 Graph of it, so memory and speed can be
// measured on the paper's networks without their trained weights.
// Host-side compiler code; platform-free TypeScript.
//
// The network, as the reference code builds it (tiny-training's OFA
// MobileNetV2 / ProxylessNAS nets and its mcu_models configs):
//   stem: 3x3 stride-2 conv + ReLU6
//   per block: [1x1 expansion conv + ReLU6] (absent when expand = 1)
//              kxk depthwise conv (the block's stride) + ReLU6
//              1x1 projection conv, linear
//              + the block input when stride 1, in = out and expand > 1
//   [1x1 feature-mix conv + ReLU6] (absent in the reference's w0.35 nets)
//   global average pool, classifier (fully connected to the classes)
// Convolutions are numbered from 0 in that order, which is the order of the
// reference's get_all_conv_ops (every nn.Conv2d module, in definition order =
// forward order); its sparse-update schemes name layers by this index.
//
// Weights: He-uniform, then each convolution's output channels are
// normalised on seeded uniform-noise calibration images as a folded batch
// norm would (w *= g/sigma, b = beta - mu*g/sigma, seeded g in [0.5, 1.5]),
// so every layer sees unit-scale inputs, as in a trained network with BN
// folded in. beta is in [0.5, 1.5] before a ReLU6 (most units active) and in
// [-0.5, 0.5] before a linear output: with centred pre-activations (beta
// around 0) the random network is chaotic enough that int8 rounding errors
// grow layer by layer to 65-85% of the logits of MBV2-w0.35-128 (RMS, relative
// to their spread); with the shift they stay near 10%. The classifier is
// He-uniform with zero bias. That float32 network (buildFloatNetwork) is
// then quantised by the compiler's post-training quantisation
// (src/compiler/quantize) with the same images as calibration set: ReLU6
// outputs [0, min(6, max)], others [min, max] widened by 1/8, input fixed at
// scale 1/128; per-channel symmetric int8 weights, int32 biases at
// s_in*s_w, per-tensor asymmetric int8 activations, as TFLite does.
// Only exact IEEE operations (no Math.log/exp), so every engine builds the
// same bytes. Padding is TFLite SAME: the output sizes of PyTorch's padding
// (k-1)/2, but a stride-2 layer on an even input pads bottom/right only.

import type { FusedActivation, Graph, GraphOp, GraphTensor } from '../../core/graph.js';
import { Xorshift32 } from '../../core/rng.js';
import { floatOp } from '../quantize/float-forward.js';
import { quantizeGraph, type QuantizeOptions } from '../quantize/quantize.js';

export class ArchError extends Error {
  override name = 'ArchError';
}

export interface BlockSpec {
  expand: number; // expansion ratio t; hidden channels = round(in * t); 1: no expansion conv
  out: number; // output channels
  kernel: number; // depthwise kernel size (odd)
  stride: number; // stride of the depthwise conv
}

export interface NetworkSpec {
  name: string;
  resolution: number; // input height = width
  inputChannels: number;
  stem: number; // output channels of the 3x3 stride-2 first conv
  blocks: BlockSpec[];
  featureMix: number | null; // channels of the 1x1 conv before pooling; null: none
  classes: number;
}

export type ConvRole = 'stem' | 'expand' | 'depthwise' | 'project' | 'feature_mix';

export interface ConvLayer {
  index: number; // 0-based, forward order (the reference's conv index)
  name: string; // "stem", "block3.expand", "block3.depthwise", "block3.project", "feature_mix"
  role: ConvRole;
  block: number; // inverted-residual block, 0-based; -1 for the stem and the feature mix
  kind: 'conv2d' | 'depthwise_conv2d';
  inC: number;
  outC: number;
  kernel: number;
  stride: number;
  inH: number;
  inW: number;
  outH: number;
  outW: number;
  activation: FusedActivation; // relu6, or none for a projection
  residual: boolean; // a projection whose output is added to the block input
  weightCount: number; // conv: outC*k*k*inC; depthwise: k*k*C
  biasCount: number;
  inputBytes: number; // int8 activation elements, batch 1
  outputBytes: number;
  macs: number;
}

export interface ClassifierLayer {
  name: string;
  inFeatures: number;
  outFeatures: number;
  weightCount: number;
  biasCount: number;
  macs: number;
}

export interface NetworkLayers {
  spec: NetworkSpec;
  convs: ConvLayer[];
  classifier: ClassifierLayer;
  params: number; // weights + biases of every conv and the classifier
  weightCount: number;
  macs: number;
  largestActivation: { name: string; bytes: number }; // largest int8 activation tensor
}

const isPosInt = (v: number) => Number.isInteger(v) && v > 0;

export function checkSpec(spec: NetworkSpec): void {
  const bad = (what: string) => {
    throw new ArchError(`network "${spec.name}": ${what}`);
  };
  if (!isPosInt(spec.resolution)) bad(`resolution ${spec.resolution} must be a positive integer`);
  if (!isPosInt(spec.inputChannels)) bad(`input channels ${spec.inputChannels} must be a positive integer`);
  if (!isPosInt(spec.stem)) bad(`stem channels ${spec.stem} must be a positive integer`);
  if (!isPosInt(spec.classes)) bad(`classes ${spec.classes} must be a positive integer`);
  if (spec.featureMix !== null && !isPosInt(spec.featureMix)) bad(`feature-mix channels ${spec.featureMix} must be a positive integer or null`);
  if (spec.blocks.length === 0) bad('it has no blocks');
  spec.blocks.forEach((b, i) => {
    if (!(b.expand >= 1) || !Number.isFinite(b.expand)) bad(`block ${i} has expansion ratio ${b.expand}; it must be at least 1`);
    if (!isPosInt(b.out)) bad(`block ${i} has ${b.out} output channels`);
    if (!isPosInt(b.kernel) || b.kernel % 2 === 0) bad(`block ${i} has kernel size ${b.kernel}; it must be odd`);
    if (!isPosInt(b.stride)) bad(`block ${i} has stride ${b.stride}`);
  });
}

// The layer table of a network, computed from the spec alone.
export function networkLayers(spec: NetworkSpec): NetworkLayers {
  checkSpec(spec);
  const convs: ConvLayer[] = [];
  const conv = (
    name: string, role: ConvRole, block: number, inC: number, outC: number, kernel: number, stride: number,
    inH: number, inW: number, activation: FusedActivation, residual = false,
  ): { h: number; w: number } => {
    const depthwise = role === 'depthwise';
    const outH = Math.ceil(inH / stride), outW = Math.ceil(inW / stride); // SAME
    const weightCount = depthwise ? kernel * kernel * outC : outC * kernel * kernel * inC;
    convs.push({
      index: convs.length, name, role, block, kind: depthwise ? 'depthwise_conv2d' : 'conv2d', inC, outC, kernel, stride,
      inH, inW, outH, outW, activation, residual, weightCount, biasCount: outC, inputBytes: inH * inW * inC,
      outputBytes: outH * outW * outC, macs: outH * outW * (depthwise ? outC * kernel * kernel : outC * kernel * kernel * inC),
    });
    return { h: outH, w: outW };
  };
  let { h, w } = conv('stem', 'stem', -1, spec.inputChannels, spec.stem, 3, 2, spec.resolution, spec.resolution, 'relu6');
  let c = spec.stem;
  spec.blocks.forEach((b, i) => {
    const hidden = Math.round(c * b.expand);
    if (b.expand !== 1) ({ h, w } = conv(`block${i}.expand`, 'expand', i, c, hidden, 1, 1, h, w, 'relu6'));
    ({ h, w } = conv(`block${i}.depthwise`, 'depthwise', i, hidden, hidden, b.kernel, b.stride, h, w, 'relu6'));
    const residual = b.stride === 1 && c === b.out && b.expand > 1;
    ({ h, w } = conv(`block${i}.project`, 'project', i, hidden, b.out, 1, 1, h, w, 'none', residual));
    c = b.out;
  });
  if (spec.featureMix !== null) {
    ({ h, w } = conv('feature_mix', 'feature_mix', -1, c, spec.featureMix, 1, 1, h, w, 'relu6'));
    c = spec.featureMix;
  }
  const classifier: ClassifierLayer = {
    name: 'classifier', inFeatures: c, outFeatures: spec.classes, weightCount: c * spec.classes, biasCount: spec.classes,
    macs: c * spec.classes,
  };
  let largest = { name: 'input', bytes: convs[0]!.inputBytes };
  for (const l of convs) if (l.outputBytes > largest.bytes) largest = { name: l.name, bytes: l.outputBytes };
  const weightCount = convs.reduce((a, l) => a + l.weightCount, 0) + classifier.weightCount;
  const params = weightCount + convs.reduce((a, l) => a + l.biasCount, 0) + classifier.biasCount;
  const macs = convs.reduce((a, l) => a + l.macs, 0) + classifier.macs;
  return { spec, convs, classifier, params, weightCount, macs, largestActivation: largest };
}

// ---- seeded float network ------------------------------------------------------

export interface BuildOptions {
  seed: number; // weights and calibration images
  calibrationImages?: number; // seeded uniform-noise images for BN folding and ranges (default: defaultCalibrationImages)
}

// A float feature map batch, NHWC.
interface Maps {
  n: number;
  h: number;
  w: number;
  c: number;
  v: Float64Array;
}

// Uniform in [-1, 1) from the generator (exact: a 32-bit integer over 2^31).
const uniform = (rng: Xorshift32) => rng.next() / 2 ** 31 - 1;
const f32 = Math.fround;
const bytes = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const floatTensor = (name: string, shape: number[], data: Float32Array | null = null): GraphTensor =>
  ({ name, dtype: 'float32', shape, quant: null, data: data && bytes(data) });

const weightShape = (l: ConvLayer) => (l.kind === 'depthwise_conv2d' ? [1, l.kernel, l.kernel, l.outC] : [l.outC, l.kernel, l.kernel, l.inC]);

function convOp(l: ConvLayer, index: number, inputs: number[], outputs: number[], activation: FusedActivation): GraphOp {
  const common = {
    index, inputs, outputs, padding: 'same' as const, strideH: l.stride, strideW: l.stride, dilationH: 1, dilationW: 1, activation,
  };
  return l.kind === 'depthwise_conv2d' ? { ...common, kind: 'depthwise_conv2d', depthMultiplier: 1 } : { ...common, kind: 'conv2d' };
}

// The layer's convolution of a batch (no bias, no activation), by the
// quantiser's float reference forward.
function convBatch(l: ConvLayer, x: Maps, weights: Float32Array): Maps {
  const tensors = [
    floatTensor('x', [x.n, l.inH, l.inW, l.inC]), floatTensor('w', weightShape(l), weights), floatTensor('y', [x.n, l.outH, l.outW, l.outC]),
  ];
  const op = convOp(l, 0, [0, 1, -1], [2], 'none');
  const v = floatOp({ name: l.name, tensors, ops: [op], inputs: [0], outputs: [2] }, op, () => x.v);
  return { n: x.n, h: l.outH, w: l.outW, c: l.outC, v };
}

// Input quantisation of the int8 network: images in [-1, 1), q = round(x * 128).
const INPUT_QUANT = { scale: 1 / 128, zeroPoint: 0 };

// How the seeded networks are quantised (see the header).
export const NETWORK_QUANTIZE_OPTIONS: QuantizeOptions = { inputQuant: INPUT_QUANT, margin: 1 / 8 };

// Enough images that the smallest feature map gives each channel at least
// 256 samples for its batch-norm statistics and range (8 to 64 images).
export function defaultCalibrationImages(layers: NetworkLayers): number {
  const smallest = Math.min(...layers.convs.map((l) => l.outH * l.outW));
  return Math.min(64, Math.max(8, Math.ceil(256 / smallest)));
}

export interface FloatNetwork {
  graph: Graph; // float32: input float32 [1][res][res][inputChannels] in [-1, 1), output float32 logits [1][classes]
  calibration: Float32Array[]; // the seeded images the batch norms were folded on, one per sample
}

// The seeded float32 Graph of the network, before quantisation, with its
// calibration images. Same tensors, names and ops as buildNetwork's graph.
export function buildFloatNetwork(spec: NetworkSpec, opts: BuildOptions): FloatNetwork {
  const layers = networkLayers(spec);
  const rng = new Xorshift32(opts.seed);
  const images = opts.calibrationImages ?? defaultCalibrationImages(layers);
  if (!isPosInt(images)) throw new ArchError(`calibration images ${images} must be a positive integer`);
  const imageRng = new Xorshift32((opts.seed ^ 0x5bd1e995) >>> 0);
  const pixels = spec.resolution ** 2 * spec.inputChannels;
  const calibration = Array.from({ length: images }, () => Float32Array.from({ length: pixels }, () => ((imageRng.next() & 0xff) - 128) / 128));
  let x: Maps = { n: images, h: spec.resolution, w: spec.resolution, c: spec.inputChannels, v: new Float64Array(images * pixels) };
  calibration.forEach((img, i) => x.v.set(img, i * pixels));

  const tensors: GraphTensor[] = [];
  const ops: GraphOp[] = [];
  const tensor = (t: GraphTensor) => tensors.push(t) - 1;
  let xt = tensor(floatTensor('input', [1, spec.resolution, spec.resolution, spec.inputChannels]));
  const input = xt;
  let blockInput = { maps: x, t: xt }, block = -1;
  for (const l of layers.convs) {
    if (l.block !== block) [blockInput, block] = [{ maps: x, t: xt }, l.block]; // a block's first conv reads the block input
    const fanIn = l.kind === 'depthwise_conv2d' ? l.kernel * l.kernel : l.kernel * l.kernel * l.inC;
    const a = Math.sqrt(6 / fanIn); // He-uniform: variance 2 / fan_in
    const weights = Float32Array.from({ length: l.weightCount }, () => a * uniform(rng));
    const y = convBatch(l, x, weights);
    // Fold a batch norm computed on the calibration batch into weights and bias.
    const bias = new Float32Array(l.outC);
    const count = y.v.length / l.outC;
    const perOut = l.kind === 'depthwise_conv2d' ? 1 : l.kernel * l.kernel * l.inC;
    for (let oc = 0; oc < l.outC; oc++) {
      let s = 0, s2 = 0;
      for (let i = oc; i < y.v.length; i += l.outC) s += y.v[i]!;
      const mu = s / count;
      for (let i = oc; i < y.v.length; i += l.outC) s2 += (y.v[i]! - mu) ** 2;
      const sigma = Math.sqrt(s2 / count) || 1;
      const g = 1 + 0.5 * uniform(rng), beta = (l.activation === 'relu6' ? 1 : 0) + 0.5 * uniform(rng);
      const k = g / sigma;
      if (l.kind === 'depthwise_conv2d') for (let p = 0; p < l.kernel * l.kernel; p++) weights[p * l.outC + oc] = f32(weights[p * l.outC + oc]! * k);
      else for (let j = 0; j < perOut; j++) weights[oc * perOut + j] = f32(weights[oc * perOut + j]! * k);
      bias[oc] = f32(beta - mu * k);
      // The next layer's input for the statistics (the float32 graph's own
      // activations differ from these in the last bits only).
      for (let i = oc; i < y.v.length; i += l.outC) {
        const v = (y.v[i]! - mu) * k + beta;
        y.v[i] = l.activation === 'relu6' ? Math.min(6, Math.max(0, v)) : v;
      }
    }
    const w = tensor(floatTensor(`${l.name}.weights`, weightShape(l), weights));
    const b = tensor(floatTensor(`${l.name}.bias`, [l.outC], bias));
    const out = tensor(floatTensor(`${l.name}.output`, [1, l.outH, l.outW, l.outC]));
    ops.push(convOp(l, ops.length, [xt, w, b], [out], l.activation));
    [x, xt] = [y, out];
    if (l.residual) {
      for (let i = 0; i < y.v.length; i++) y.v[i]! += blockInput.maps.v[i]!;
      const sum = tensor(floatTensor(`block${l.block}.add`, [1, l.outH, l.outW, l.outC]));
      ops.push({ index: ops.length, kind: 'add', inputs: [blockInput.t, xt], outputs: [sum], activation: 'none' });
      xt = sum;
    }
  }
  // Global average pool, flatten, classifier (He-uniform, zero bias).
  const [, h, w, c] = tensors[xt]!.shape as [number, number, number, number];
  const pooled = tensor(floatTensor('pool.output', [1, 1, 1, c]));
  ops.push({
    index: ops.length, kind: 'average_pool2d', inputs: [xt], outputs: [pooled], padding: 'valid', strideH: 1, strideW: 1,
    filterH: h, filterW: w, activation: 'none',
  });
  const shape = tensor({ name: 'flatten.shape', dtype: 'int32', shape: [2], quant: null, data: bytes(Int32Array.of(1, c)) });
  const flat = tensor(floatTensor('flatten.output', [1, c]));
  ops.push({ index: ops.length, kind: 'reshape', inputs: [pooled, shape], outputs: [flat] });
  const { inFeatures: I, outFeatures: O } = layers.classifier;
  const a = Math.sqrt(6 / I);
  const fw = tensor(floatTensor('classifier.weights', [O, I], Float32Array.from({ length: O * I }, () => a * uniform(rng))));
  const fb = tensor(floatTensor('classifier.bias', [O], new Float32Array(O)));
  const logits = tensor(floatTensor('logits', [1, O]));
  ops.push({ index: ops.length, kind: 'fully_connected', inputs: [flat, fw, fb], outputs: [logits], activation: 'none', keepNumDims: false });
  return { graph: { name: spec.name, tensors, ops, inputs: [input], outputs: [logits] }, calibration };
}

// A seeded int8 Graph of the network: input int8 [1][res][res][inputChannels]
// (scale 1/128, zero point 0), output int8 logits [1][classes]. The k-th
// conv2d/depthwise_conv2d op of the graph is convolution k of networkLayers,
// and its weight tensor is named "<layer name>.weights".
export function buildNetwork(spec: NetworkSpec, opts: BuildOptions): Graph {
  const { graph, calibration } = buildFloatNetwork(spec, opts);
  return quantizeGraph(graph, calibration, NETWORK_QUANTIZE_OPTIONS);
}
