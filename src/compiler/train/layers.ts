// The trainable layers of a graph, in the numbering a sparse-update scheme
// uses: every convolution (conv2d and depthwise_conv2d) and every
// fully-connected layer, in forward (execution) order, 0-based. The
// classifier is the last one. This is the order torchvision's
// `model.modules()` lists a MobileNetV2's Conv2d/Linear layers (depthwise
// convolutions count as layers), so a scheme written against the PyTorch
// model indexes the same layers here.

import { type Graph, GraphError, type GraphOp, type GraphTensor, tensorElements } from '../../core/graph.js';

export type LayerKind = 'conv2d' | 'depthwise_conv2d' | 'fully_connected';

export interface TrainableLayer {
  layer: number; // index in the scheme's numbering
  op: number; // position in graph.ops
  kind: LayerKind;
  name: string; // the weight tensor's name
  // Channels as the sparse update sees them. Fully-connected: in = input
  // features, kH = kW = 1. Depthwise: outC = inC * depthMultiplier.
  inC: number;
  outC: number;
  kH: number;
  kW: number;
  depthMultiplier: number; // 1 unless depthwise
  weightElements: number;
  hasBias: boolean;
}

export function isLayerOp(op: GraphOp): op is Extract<GraphOp, { kind: LayerKind }> {
  return op.kind === 'conv2d' || op.kind === 'depthwise_conv2d' || op.kind === 'fully_connected';
}

function tensor(g: Graph, i: number, what: string): GraphTensor {
  const t = g.tensors[i];
  if (!t) throw new GraphError(`${what}: tensor ${i} does not exist`);
  return t;
}

export function trainableLayers(g: Graph): TrainableLayer[] {
  const layers: TrainableLayer[] = [];
  g.ops.forEach((op, pos) => {
    if (!isLayerOp(op)) return;
    const what = `operator ${op.index} (${op.kind})`;
    const x = tensor(g, op.inputs[0]!, what), w = tensor(g, op.inputs[1]!, what);
    const hasBias = op.inputs[2] !== undefined && op.inputs[2] >= 0;
    let inC: number, outC: number, kH = 1, kW = 1, mult = 1;
    if (op.kind === 'fully_connected') {
      [outC, inC] = [w.shape[0]!, w.shape[w.shape.length - 1]!];
    } else if (op.kind === 'conv2d') {
      [outC, kH, kW, inC] = w.shape as [number, number, number, number];
    } else {
      inC = x.shape[3]!;
      [kH, kW, outC] = [w.shape[1]!, w.shape[2]!, w.shape[3]!];
      mult = op.depthMultiplier;
    }
    layers.push({
      layer: layers.length, op: pos, kind: op.kind, name: w.name, inC, outC, kH, kW, depthMultiplier: mult,
      weightElements: tensorElements(w), hasBias,
    });
  });
  return layers;
}
