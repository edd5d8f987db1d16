// The classifier head of a training graph. A model must end in a classifier
// (fully_connected, or a conv2d whose output is 1x1) optionally followed by
// reshapes and a softmax. Training drops the softmax (the loss reads the
// logits: softmax_xent_s8_backward computes softmax and its gradient in one
// kernel) and, when asked, replaces the classifier by a new fully-connected
// layer of N classes on the same features.

import { type FullyConnectedOp, type Graph, GraphError, type GraphOp, type GraphTensor, tensorElements } from '../../core/graph.js';
import { Xorshift32 } from '../../core/rng.js';

export type HeadOption = 'keep' | { classes: number; seed?: number };

export interface TrainingHead {
  graph: Graph; // the forward of training: ops up to the classifier
  logits: number; // tensor index of the classifier's output
  classes: number;
  replaced: boolean;
}

// softmax_xent_s8_backward takes 1..128 classes.
export const MAX_CLASSES = 128;

export function prepareHead(g: Graph, head: HeadOption = 'keep'): TrainingHead {
  if (g.outputs.length !== 1) {
    throw new GraphError(`model "${g.name}" has ${g.outputs.length} outputs; training needs one classifier output`);
  }
  const producer = new Map<number, number>();
  g.ops.forEach((op, pos) => op.outputs.forEach((t) => producer.set(t, pos)));
  let pos = producer.get(g.outputs[0]!);
  const hint = 'training needs the model to end in a classifier (fully_connected, or conv2d on a 1x1 map), ' +
    'optionally followed by reshape and softmax';
  if (pos !== undefined && g.ops[pos]!.kind === 'softmax') pos = producer.get(g.ops[pos]!.inputs[0]!);
  while (pos !== undefined && g.ops[pos]!.kind === 'reshape') pos = producer.get(g.ops[pos]!.inputs[0]!);
  const cls = pos === undefined ? undefined : g.ops[pos];
  if (pos === undefined || !cls) throw new GraphError(`model "${g.name}": the output is not computed by any operator; ${hint}`);
  const logitsT = g.tensors[cls.outputs[0]!]!;
  const spatial = logitsT.shape.length === 4 ? logitsT.shape[1]! * logitsT.shape[2]! : 1;
  if (!(cls.kind === 'fully_connected' || (cls.kind === 'conv2d' && spatial === 1))) {
    throw new GraphError(`model "${g.name}" ends in operator ${cls.index} (${cls.kind}, output [${logitsT.shape}]); ${hint}`);
  }
  const ops = g.ops.slice(0, pos + 1);
  if (!head || head === 'keep') {
    const classes = tensorElements(logitsT) / logitsT.shape[0]!;
    checkClasses(g, classes);
    return { graph: { ...g, ops, outputs: [cls.outputs[0]!] }, logits: cls.outputs[0]!, classes, replaced: false };
  }
  checkClasses(g, head.classes);
  return replaceClassifier(g, ops, cls, head.classes, head.seed ?? 1);
}

function checkClasses(g: Graph, classes: number): void {
  if (!Number.isInteger(classes) || classes < 1 || classes > MAX_CLASSES) {
    throw new GraphError(`model "${g.name}": ${classes} classes; the softmax cross-entropy kernel takes 1 to ${MAX_CLASSES}`);
  }
}

// A new fully-connected classifier on the old one's input features: int8
// weights uniform in [-r, r], r = sqrt(6 / features) (Glorot), per-channel
// scale r / 63.5 (2x headroom for training to grow them), zero biases,
// the old classifier's output quantisation for the logits.
function replaceClassifier(g: Graph, ops: GraphOp[], old: GraphOp, classes: number, seed: number): TrainingHead {
  const x = g.tensors[old.inputs[0]!]!;
  const batch = x.shape[0]!;
  const features = tensorElements(x) / batch;
  const sx = x.quant?.scale[0];
  const oldLogits = g.tensors[old.outputs[0]!]!;
  if (sx === undefined || !oldLogits.quant) {
    throw new GraphError(`model "${g.name}": the classifier's input or output has no quantisation; cannot build a new int8 head`);
  }
  const r = Math.sqrt(6 / features), scale = r / 63.5;
  const rng = new Xorshift32(seed);
  const w = new Int8Array(classes * features);
  for (let i = 0; i < w.length; i++) w[i] = Math.round(((rng.int(0, 65535) - 32768) / 32768) * 63.5);
  const tensors: GraphTensor[] = [...g.tensors];
  const add = (t: GraphTensor): number => tensors.push(t) - 1;
  const wi = add({
    name: 'classifier/weights', dtype: 'int8', shape: [classes, features],
    quant: { scale: new Array<number>(classes).fill(scale), zeroPoint: new Array<number>(classes).fill(0), axis: 0 },
    data: new Uint8Array(w.buffer),
  });
  const bi = add({
    name: 'classifier/bias', dtype: 'int32', shape: [classes],
    quant: { scale: new Array<number>(classes).fill(sx * scale), zeroPoint: new Array<number>(classes).fill(0), axis: 0 },
    data: new Uint8Array(classes * 4),
  });
  const yi = add({ name: 'classifier/logits', dtype: 'int8', shape: [batch, classes], quant: { ...oldLogits.quant, axis: 0 }, data: null });
  const fc: FullyConnectedOp = {
    kind: 'fully_connected', index: old.index, inputs: [old.inputs[0]!, wi, bi], outputs: [yi], activation: 'none', keepNumDims: false,
  };
  const graph: Graph = { ...g, tensors, ops: [...ops.slice(0, -1), fc], outputs: [yi] };
  return { graph, logits: yi, classes, replaced: true };
}
