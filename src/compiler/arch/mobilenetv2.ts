// MobileNetV2 (Sandler et al. 2018) with a width multiplier and input size,
// as the Tiny Training reference builds it for its MCU models (OFA's
// MobileNetV2; its "mbv2-w0.35" config): stem 32*w, the (t, c, n, s) table
// below with channels rounded by _make_divisible(c*w, 8), ReLU6 after the
// stem, expansion and depthwise convs, linear projections, residual adds
// where stride 1, in = out and t > 1.
//
// The reference's w0.35 network has no 1x1 feature-mix conv before the
// pooling (its config "mcu-mbv2-w0.35-nomix"): the classifier reads the 112
// channels of the last block. That is the default here, so convolution k is
// the reference's conv k (0-based, 51 convolutions for MBV2: stem, block 0's
// depthwise and projection, then expand/depthwise/project for blocks 1-16).
// featureMix: true adds torchvision's last 1x1 conv to 1280 channels (kept at
// 1280 for w <= 1, scaled above), as convolution 51.
//
// Its 99 KB sparse-update scheme (compilation/mcu_ir_gen.py), in these
// indices: the weights of convolutions 27, 30, ..., 48, the expansion convs
// of blocks 9-16, and the biases of the last 25 convolutions: 26-50 in the
// reference's training code (algorithm/core/utils/partial_backward.py),
// whose classifier is a Linear; its compiler builds the classifier as a 1x1
// conv and counts it among the convolutions (52), so there the last 25
// include the classifier, which every scheme updates anyway.

import type { Graph } from '../../core/graph.js';
import {
  ArchError, type BlockSpec, type BuildOptions, buildFloatNetwork, buildNetwork, type FloatNetwork, type NetworkLayers, networkLayers,
  type NetworkSpec,
} from './inverted-residual.js';

export { ArchError, buildFloatNetwork, buildNetwork, networkLayers };
export type { BlockSpec, BuildOptions, ConvLayer, ConvRole, FloatNetwork, NetworkLayers, NetworkSpec } from './inverted-residual.js';

// The tf-slim / torchvision rounding: nearest multiple of divisor, at least
// divisor, never more than 10% below v.
export function makeDivisible(v: number, divisor = 8): number {
  let n = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}

// (t, c, n, s): expansion, base output channels, repeats, stride of the first.
export const MOBILENETV2_STAGES: readonly (readonly [number, number, number, number])[] = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

export interface MobileNetV2Options {
  width: number; // width multiplier (0.35 for the paper's network)
  resolution: number; // input height = width (128)
  classes: number;
  featureMix?: boolean; // torchvision's 1x1 conv to 1280 before pooling (default false, as the reference)
  // MCUNet/OFA-style per-block choices, one per block (17): depthwise kernel
  // sizes (default 3) and expansion ratios (default the table's t; block 0
  // must stay 1).
  kernels?: readonly number[];
  expands?: readonly number[];
}

export function mobileNetV2Spec(o: MobileNetV2Options): NetworkSpec {
  if (!(o.width > 0) || !Number.isFinite(o.width)) throw new ArchError(`MobileNetV2: width multiplier ${o.width} must be positive`);
  const blocks: BlockSpec[] = [];
  for (const [t, c, n, s] of MOBILENETV2_STAGES) {
    for (let i = 0; i < n; i++) blocks.push({ expand: t, out: makeDivisible(c * o.width), kernel: 3, stride: i === 0 ? s : 1 });
  }
  for (const [what, list] of [['kernels', o.kernels], ['expands', o.expands]] as const) {
    if (list && list.length !== blocks.length) {
      throw new ArchError(`MobileNetV2: ${what} has ${list.length} entries; give one per block (${blocks.length})`);
    }
  }
  if (o.expands && o.expands[0] !== 1) throw new ArchError('MobileNetV2: block 0 has no expansion conv; its expansion ratio must be 1');
  blocks.forEach((b, i) => {
    b.kernel = o.kernels?.[i] ?? b.kernel;
    b.expand = o.expands?.[i] ?? b.expand;
  });
  const featureMix = o.featureMix ? (o.width > 1 ? makeDivisible(1280 * o.width) : 1280) : null;
  const custom = o.kernels || o.expands ? '-custom' : '';
  return {
    name: `mbv2-w${o.width}-r${o.resolution}-c${o.classes}${o.featureMix ? '-mix' : ''}${custom}`,
    resolution: o.resolution, inputChannels: 3, stem: makeDivisible(32 * o.width), blocks, featureMix, classes: o.classes,
  };
}

export function mobileNetV2Layers(o: MobileNetV2Options): NetworkLayers {
  return networkLayers(mobileNetV2Spec(o));
}

// A seeded int8 MobileNetV2, e.g. buildMobileNetV2({ width: 0.35, resolution: 128, classes: 10, seed: 1 }).
export function buildMobileNetV2(o: MobileNetV2Options & BuildOptions): Graph {
  return buildNetwork(mobileNetV2Spec(o), o);
}

// The same network in float32 before quantisation, with its calibration
// images: quantizeGraph(graph, calibration, NETWORK_QUANTIZE_OPTIONS) is
// buildMobileNetV2's graph.
export function buildFloatMobileNetV2(o: MobileNetV2Options & BuildOptions): FloatNetwork {
  return buildFloatNetwork(mobileNetV2Spec(o), o);
}
