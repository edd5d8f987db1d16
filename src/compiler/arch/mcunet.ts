// MCUNet's "mcunet-5fps" ImageNet backbone (Lin et al. 2020), the second
// network of the Tiny Training paper, as its reference config
// (tiny-training algorithm/assets/mcu_models/mcunet-5fps.pkl) defines it:
// 128x128 input, stem 16, 14 inverted-residual blocks with per-block kernel
// sizes and expansion ratios, no feature-mix conv, 42 convolutions
// (0-based indices as MobileNetV2's; its 99 KB scheme updates the weights of
// 21, 24, 27, 30, 36, 39: the expansion convs of blocks 7-10, 12 and 13).

import type { Graph } from '../../core/graph.js';
import { type BlockSpec, type BuildOptions, buildNetwork, type NetworkSpec } from './inverted-residual.js';

// [expansion, output channels, depthwise kernel, stride] per block.
const MCUNET_5FPS: readonly (readonly [number, number, number, number])[] = [
  [1, 8, 3, 1],
  [4, 16, 3, 2],
  [3, 16, 3, 1],
  [3, 24, 7, 2],
  [5, 24, 3, 1],
  [5, 40, 3, 2],
  [4, 40, 7, 1],
  [4, 48, 5, 1],
  [3, 48, 3, 1],
  [4, 48, 3, 1],
  [5, 96, 7, 2],
  [4, 96, 5, 1],
  [4, 96, 5, 1],
  [6, 160, 3, 1],
];

export function mcunet5fpsSpec(o: { classes: number; resolution?: number }): NetworkSpec {
  const resolution = o.resolution ?? 128;
  const blocks: BlockSpec[] = MCUNET_5FPS.map(([expand, out, kernel, stride]) => ({ expand, out, kernel, stride }));
  return { name: `mcunet-5fps-r${resolution}-c${o.classes}`, resolution, inputChannels: 3, stem: 16, blocks, featureMix: null, classes: o.classes };
}

export function buildMcunet5fps(o: { classes: number; resolution?: number } & BuildOptions): Graph {
  return buildNetwork(mcunet5fpsSpec(o), o);
}
