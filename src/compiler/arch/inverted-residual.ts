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
// He-uniform with zero bias. Activation ranges are calibrated on the same
// images (ReLU6 outputs [0, min(6, max)], others [min, max] widened by 1/8),
// then everything is quantised as TFLite does: per-channel symmetric int8
// weights, int32 biases at s_in*s_w, per-tensor asymmetric int8 activations.
// Only exact IEEE operations (no Math.log/exp), so every engine builds the
// same bytes. Padding is TFLite SAME: the output sizes of PyTorch's padding
// (k-1)/2, but a stride-2 layer on an even input pads bottom/right only.

import type { FusedActivation, Graph, GraphOp, GraphQuant, GraphTensor } from '../../core/graph.js';
import { Xorshift32 } from '../../core/rng.js';

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

// ---- seeded float network and calibration ------------------------------------

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

// Conv (OHWI weights) or depthwise (weights [kh][kw][c]) with TFLite SAME
// padding, no bias, no activation.
function convFloat(x: Maps, l: ConvLayer, wt: Float64Array): Maps {
  const { n, h: H, w: W, c: C } = x;
  const { outH: OH, outW: OW, outC: OC, kernel: K, stride: S } = l;
  const padT = Math.floor(Math.max((OH - 1) * S + K - H, 0) / 2);
  const padL = Math.floor(Math.max((OW - 1) * S + K - W, 0) / 2);
  const y = new Float64Array(n * OH * OW * OC);
  const dw = l.kind === 'depthwise_conv2d';
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < OH; oy++)
      for (let ox = 0; ox < OW; ox++) {
        const o = ((b * OH + oy) * OW + ox) * OC;
        for (let ky = 0; ky < K; ky++) {
          const iy = oy * S - padT + ky;
          if (iy < 0 || iy >= H) continue;
          for (let kx = 0; kx < K; kx++) {
            const ix = ox * S - padL + kx;
            if (ix < 0 || ix >= W) continue;
            const i = ((b * H + iy) * W + ix) * C;
            if (dw) {
              const wo = (ky * K + kx) * OC;
              for (let oc = 0; oc < OC; oc++) y[o + oc]! += x.v[i + oc]! * wt[wo + oc]!;
            } else {
              for (let oc = 0; oc < OC; oc++) {
                const wo = ((oc * K + ky) * K + kx) * C;
                let s = 0;
                for (let ic = 0; ic < C; ic++) s += x.v[i + ic]! * wt[wo + ic]!;
                y[o + oc]! += s;
              }
            }
          }
        }
      }
  return { n, h: OH, w: OW, c: OC, v: y };
}

interface Range {
  lo: number;
  hi: number;
}

function rangeOf(v: Float64Array): Range {
  let lo = 0, hi = 0; // the range always holds 0 (TFLite's rule for asymmetric quantisation)
  for (const x of v) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return { lo, hi };
}

interface FloatConv {
  layer: ConvLayer;
  weights: Float64Array; // OHWI, or [kh][kw][c] for depthwise
  bias: Float64Array;
  output: Range; // calibrated range of the (activated) output
  add: Range | null; // calibrated range of the residual sum that follows, if any
}

interface FloatNetwork {
  input: GraphQuant;
  convs: FloatConv[];
  classifier: { weights: Float64Array; bias: Float64Array; output: Range };
}

// Input quantisation: images in [-1, 1), q = round(x * 128).
const INPUT_QUANT: GraphQuant = { scale: [1 / 128], zeroPoint: [0], axis: 0 };

// Enough images that the smallest feature map gives each channel at least
// 256 samples for its batch-norm statistics and range (8 to 64 images).
export function defaultCalibrationImages(layers: NetworkLayers): number {
  const smallest = Math.min(...layers.convs.map((l) => l.outH * l.outW));
  return Math.min(64, Math.max(8, Math.ceil(256 / smallest)));
}

function seededFloatNetwork(layers: NetworkLayers, opts: BuildOptions): FloatNetwork {
  const rng = new Xorshift32(opts.seed);
  const images = opts.calibrationImages ?? defaultCalibrationImages(layers);
  if (!isPosInt(images)) throw new ArchError(`calibration images ${images} must be a positive integer`);
  const { spec } = layers;
  const imageRng = new Xorshift32((opts.seed ^ 0x5bd1e995) >>> 0);
  let x: Maps = {
    n: images, h: spec.resolution, w: spec.resolution, c: spec.inputChannels,
    v: Float64Array.from({ length: images * spec.resolution ** 2 * spec.inputChannels }, () => ((imageRng.next() & 0xff) - 128) / 128),
  };
  const convs: FloatConv[] = [];
  let blockInput = x, block = -1;
  for (const l of layers.convs) {
    if (l.block !== block) [blockInput, block] = [x, l.block]; // a block's first conv reads the block input
    const fanIn = l.kind === 'depthwise_conv2d' ? l.kernel * l.kernel : l.kernel * l.kernel * l.inC;
    const a = Math.sqrt(6 / fanIn); // He-uniform: variance 2 / fan_in
    const weights = Float64Array.from({ length: l.weightCount }, () => a * uniform(rng));
    const y = convFloat(x, l, weights);
    // Fold a batch norm computed on the calibration batch into weights and bias.
    const bias = new Float64Array(l.outC);
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
      if (l.kind === 'depthwise_conv2d') for (let p = 0; p < l.kernel * l.kernel; p++) weights[p * l.outC + oc]! *= k;
      else for (let j = 0; j < perOut; j++) weights[oc * perOut + j]! *= k;
      bias[oc] = beta - mu * k;
      for (let i = oc; i < y.v.length; i += l.outC) {
        const v = (y.v[i]! - mu) * k + beta;
        y.v[i] = l.activation === 'relu6' ? Math.min(6, Math.max(0, v)) : v;
      }
    }
    const output = rangeOf(y.v);
    let add: Range | null = null;
    if (l.residual) {
      for (let i = 0; i < y.v.length; i++) y.v[i]! += blockInput.v[i]!;
      add = rangeOf(y.v);
    }
    convs.push({ layer: l, weights, bias, output, add });
    x = y;
  }
  // Global average pool, then the classifier (He-uniform, zero bias).
  const pooled = new Float64Array(x.n * x.c);
  for (let b = 0; b < x.n; b++)
    for (let p = 0; p < x.h * x.w; p++)
      for (let c = 0; c < x.c; c++) pooled[b * x.c + c]! += x.v[(b * x.h * x.w + p) * x.c + c]! / (x.h * x.w);
  const { inFeatures: I, outFeatures: O } = layers.classifier;
  const a = Math.sqrt(6 / I);
  const weights = Float64Array.from({ length: O * I }, () => a * uniform(rng));
  const logits = new Float64Array(x.n * O);
  for (let b = 0; b < x.n; b++)
    for (let o = 0; o < O; o++) {
      let s = 0;
      for (let i = 0; i < I; i++) s += pooled[b * I + i]! * weights[o * I + i]!;
      logits[b * O + o] = s;
    }
  return { input: INPUT_QUANT, convs, classifier: { weights, bias: new Float64Array(O), output: rangeOf(logits) } };
}

// ---- quantisation and graph assembly --------------------------------------------

const f32 = Math.fround;

// Per-tensor asymmetric int8 from a real range (which holds 0).
function activationQuant(r: Range, activation: FusedActivation): GraphQuant {
  let lo = r.lo, hi = r.hi;
  if (activation === 'relu6') {
    lo = 0;
    hi = Math.min(6, hi);
  } else {
    const margin = (hi - lo) / 8;
    lo -= margin;
    hi += margin;
  }
  if (!(hi - lo > 1e-6)) hi = lo + 1e-6 * 255;
  const scale = f32((hi - lo) / 255);
  const zeroPoint = Math.max(-128, Math.min(127, Math.round(-128 - lo / scale)));
  return { scale: [scale], zeroPoint: [zeroPoint], axis: 0 };
}

// Per-channel symmetric int8 along the axis whose index is (element / inner) % channels.
function quantizeWeights(w: Float64Array, channels: number, inner: number): { data: Int8Array; scales: number[] } {
  const max = new Float64Array(channels);
  for (let i = 0; i < w.length; i++) {
    const c = Math.floor(i / inner) % channels;
    max[c] = Math.max(max[c]!, Math.abs(w[i]!));
  }
  const scales = Array.from(max, (m) => f32((m || 1) / 127));
  const data = Int8Array.from(w, (v, i) => Math.max(-127, Math.min(127, Math.round(v / scales[Math.floor(i / inner) % channels]!))));
  return { data, scales };
}

// int32 at s_in * s_w (the kernels' accumulator scale); the stored scales are
// float32, as in a .tflite file.
function quantizeBias(b: Float64Array, sIn: number, sW: number[]): { data: Int32Array; quant: GraphQuant } {
  const data = Int32Array.from(b, (v, c) => Math.round(v / (sIn * sW[c]!)));
  const scale = sW.map((s) => f32(sIn * s));
  return { data, quant: { scale, zeroPoint: scale.map(() => 0), axis: 0 } };
}

const bytes = (a: Int8Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

// A seeded int8 Graph of the network: input int8 [1][res][res][inputChannels]
// (scale 1/128, zero point 0), output int8 logits [1][classes]. The k-th
// conv2d/depthwise_conv2d op of the graph is convolution k of networkLayers,
// and its weight tensor is named "<layer name>.weights".
export function buildNetwork(spec: NetworkSpec, opts: BuildOptions): Graph {
  const layers = networkLayers(spec);
  const net = seededFloatNetwork(layers, opts);
  const tensors: GraphTensor[] = [];
  const ops: GraphOp[] = [];
  const tensor = (t: GraphTensor) => tensors.push(t) - 1;
  const activation = (name: string, shape: number[], quant: GraphQuant) => tensor({ name, dtype: 'int8', shape, quant, data: null });
  const qOf = (t: number) => tensors[t]!.quant!;

  let x = activation('input', [1, spec.resolution, spec.resolution, spec.inputChannels], net.input);
  const input = x;
  let blockInput = x, block = -1;
  for (const fc of net.convs) {
    const l = fc.layer;
    if (l.block !== block) [blockInput, block] = [x, l.block];
    const dw = l.kind === 'depthwise_conv2d';
    const wq = dw ? quantizeWeights(fc.weights, l.outC, 1) : quantizeWeights(fc.weights, l.outC, l.kernel * l.kernel * l.inC);
    const w = tensor({
      name: `${l.name}.weights`, dtype: 'int8', shape: dw ? [1, l.kernel, l.kernel, l.outC] : [l.outC, l.kernel, l.kernel, l.inC],
      quant: { scale: wq.scales, zeroPoint: wq.scales.map(() => 0), axis: dw ? 3 : 0 }, data: bytes(wq.data),
    });
    const bq = quantizeBias(fc.bias, qOf(x).scale[0]!, wq.scales);
    const b = tensor({ name: `${l.name}.bias`, dtype: 'int32', shape: [l.outC], quant: bq.quant, data: bytes(bq.data) });
    const y = activation(`${l.name}.output`, [1, l.outH, l.outW, l.outC], activationQuant(fc.output, l.activation));
    const common = {
      index: ops.length, inputs: [x, w, b], outputs: [y], padding: 'same' as const, strideH: l.stride, strideW: l.stride,
      dilationH: 1, dilationW: 1, activation: l.activation,
    };
    ops.push(dw ? { ...common, kind: 'depthwise_conv2d', depthMultiplier: 1 } : { ...common, kind: 'conv2d' });
    x = y;
    if (fc.add) {
      const sum = activation(`block${l.block}.add`, [1, l.outH, l.outW, l.outC], activationQuant(fc.add, 'none'));
      ops.push({ index: ops.length, kind: 'add', inputs: [blockInput, x], outputs: [sum], activation: 'none' });
      x = sum;
    }
  }
  // Global average pool (output quantised as its input, as TFLite requires),
  // flatten, classifier.
  const [, h, w, c] = tensors[x]!.shape as [number, number, number, number];
  const pooled = activation('pool.output', [1, 1, 1, c], qOf(x));
  ops.push({
    index: ops.length, kind: 'average_pool2d', inputs: [x], outputs: [pooled], padding: 'valid', strideH: 1, strideW: 1,
    filterH: h, filterW: w, activation: 'none',
  });
  const shape = tensor({ name: 'flatten.shape', dtype: 'int32', shape: [2], quant: null, data: bytes(Int32Array.of(1, c)) });
  const flat = activation('flatten.output', [1, c], qOf(x));
  ops.push({ index: ops.length, kind: 'reshape', inputs: [pooled, shape], outputs: [flat] });
  const cl = layers.classifier;
  const wq = quantizeWeights(net.classifier.weights, cl.outFeatures, cl.inFeatures);
  const fw = tensor({
    name: 'classifier.weights', dtype: 'int8', shape: [cl.outFeatures, cl.inFeatures],
    quant: { scale: wq.scales, zeroPoint: wq.scales.map(() => 0), axis: 0 }, data: bytes(wq.data),
  });
  const bq = quantizeBias(net.classifier.bias, qOf(flat).scale[0]!, wq.scales);
  const fb = tensor({ name: 'classifier.bias', dtype: 'int32', shape: [cl.outFeatures], quant: bq.quant, data: bytes(bq.data) });
  const logits = activation('logits', [1, cl.outFeatures], activationQuant(net.classifier.output, 'none'));
  ops.push({ index: ops.length, kind: 'fully_connected', inputs: [flat, fw, fb], outputs: [logits], activation: 'none', keepNumDims: false });
  return { name: spec.name, tensors, ops, inputs: [input], outputs: [logits] };
}
