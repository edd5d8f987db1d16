// Sparse-update schemes (Lin et al. 2022, DESIGN.md §1): which layers'
// biases and weights a training step updates. Declarative and validated;
// `resolveScheme` turns a scheme into one `LayerUpdate` per trainable layer.
//
// Layer numbering (layers.ts): convolutions (conv2d and depthwise) and
// fully-connected layers in forward order, 0-based, counted on the training
// graph (after the head is replaced, so the classifier is the last layer).
//
//   biasLayers  the last k layers update their biases (0 <= k <= layers);
//               layers without a bias are skipped.
//   weights     layers whose weights update, each with the fraction `ratio`
//               in (0, 1] or the count `channels` of its input channels
//               (the first floor(ratio * in) channels, at least one, as the
//               reference's int(in * ratio); all output channels).
//               Depthwise layers: a depthwise weight joins one input channel
//               to `depthMultiplier` output channels, so the range is the
//               first channels of both. Neither given: all channels.
//   classifier  always updated, weights and bias, all channels.

import type { ChannelBlock } from '../../core/kernels.js';
import type { TrainableLayer } from './layers.js';

export interface WeightUpdateSpec {
  layer: number;
  ratio?: number;
  channels?: number;
}

export interface SparseUpdateScheme {
  biasLayers: number;
  weights: readonly WeightUpdateSpec[];
  classifier?: 'always'; // documentation: the classifier always updates
}

// What one layer updates: a channel block of its weights (null: frozen)
// and/or its bias (all output channels).
export interface LayerUpdate {
  weights: ChannelBlock | null;
  bias: boolean;
}

export class SchemeError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
  }
}

const describe = (l: TrainableLayer): string => `layer ${l.layer} (${l.kind} "${l.name}")`;

// Every problem of the scheme against these layers, as messages a user can
// act on; empty when the scheme is valid.
export function checkScheme(layers: readonly TrainableLayer[], scheme: SparseUpdateScheme): string[] {
  const problems: string[] = [];
  const L = layers.length;
  const numbering = 'convolutions and fully-connected layers in forward order, 0-based';
  if (L === 0) return ['the graph has no trainable layers (conv2d, depthwise_conv2d or fully_connected)'];
  if (!Number.isInteger(scheme.biasLayers) || scheme.biasLayers < 0 || scheme.biasLayers > L) {
    problems.push(`biasLayers is ${scheme.biasLayers}; the graph has ${L} layers (${numbering}), so it must be an integer in [0, ${L}]`);
  }
  if (scheme.classifier !== undefined && scheme.classifier !== 'always') {
    problems.push(`classifier is ${String(scheme.classifier)}; the classifier always updates (leave it out or write 'always')`);
  }
  if (!Array.isArray(scheme.weights)) {
    problems.push('weights must be an array of { layer, ratio?, channels? }');
    return problems;
  }
  const seen = new Map<number, number>();
  scheme.weights.forEach((w, i) => {
    const at = `weights[${i}]`;
    if (!Number.isInteger(w.layer) || w.layer < 0 || w.layer >= L) {
      problems.push(`${at}.layer is ${w.layer}, outside [0, ${L - 1}] (${numbering})`);
      return;
    }
    const layer = layers[w.layer]!;
    if (w.layer === L - 1) {
      problems.push(`${at}.layer ${w.layer} is the classifier, which always updates fully; remove it from weights`);
      return;
    }
    const prev = seen.get(w.layer);
    if (prev !== undefined) problems.push(`${at}.layer ${w.layer} is listed twice (also weights[${prev}])`);
    seen.set(w.layer, i);
    if (w.ratio !== undefined && w.channels !== undefined) {
      problems.push(`${at} gives both ratio and channels for ${describe(layer)}; give one`);
    }
    if (w.ratio !== undefined && !(typeof w.ratio === 'number' && w.ratio > 0 && w.ratio <= 1)) {
      problems.push(`${at}.ratio is ${w.ratio}; it must be in (0, 1]`);
    }
    if (w.channels !== undefined && (!Number.isInteger(w.channels) || w.channels < 1 || w.channels > layer.inC)) {
      problems.push(`${at}.channels is ${w.channels}; ${describe(layer)} has ${layer.inC} input channels, so it must be an integer in [1, ${layer.inC}]`);
    }
  });
  return problems;
}

// Input channels a weight update covers.
function inputChannels(l: TrainableLayer, w: WeightUpdateSpec): number {
  if (w.channels !== undefined) return w.channels;
  if (w.ratio !== undefined) return Math.max(1, Math.floor(w.ratio * l.inC)); // int(in * ratio), as the reference
  return l.inC;
}

function fullBlock(l: TrainableLayer): ChannelBlock {
  return { ocBegin: 0, ocEnd: l.outC, icBegin: 0, icEnd: l.inC };
}

function block(l: TrainableLayer, w: WeightUpdateSpec): ChannelBlock {
  const nic = inputChannels(l, w);
  if (l.kind === 'depthwise_conv2d') return { ocBegin: 0, ocEnd: nic * l.depthMultiplier, icBegin: 0, icEnd: nic };
  return { ocBegin: 0, ocEnd: l.outC, icBegin: 0, icEnd: nic };
}

// One LayerUpdate per layer; throws SchemeError listing every problem.
export function resolveScheme(layers: readonly TrainableLayer[], scheme: SparseUpdateScheme): LayerUpdate[] {
  const problems = checkScheme(layers, scheme);
  if (problems.length) throw new SchemeError(problems);
  const L = layers.length;
  const updates: LayerUpdate[] = layers.map((l) => ({ weights: null, bias: l.hasBias && l.layer >= L - scheme.biasLayers }));
  for (const w of scheme.weights) updates[w.layer]!.weights = block(layers[w.layer]!, w);
  const head = layers[L - 1]!;
  updates[L - 1] = { weights: fullBlock(head), bias: head.hasBias };
  return updates;
}

// Full backpropagation: every layer's weights (all channels) and bias.
export function fullUpdate(layers: readonly TrainableLayer[]): LayerUpdate[] {
  return layers.map((l) => ({ weights: fullBlock(l), bias: l.hasBias }));
}
