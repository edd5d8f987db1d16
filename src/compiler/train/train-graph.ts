// The training graph: one training step (forward, loss, backward, updates)
// as a list of kernel calls over named tensors, derived at compile time from
// an int8 Graph, the way micrograd's backward() walks a graph, but ahead of
// time. Each op names exactly the tensors it reads and writes, with the byte
// sizes of the real kernels' formats (native/README.md):
//   activations int8; masks 1 bit per element; activation gradients int8
//   plus one int32 exponent cell; weight and bias gradients int32; scratch
//   from the kernels' *ScratchBytes functions; LQM state `bits` per weight.
// Frozen weights, biases and the requantisation / learning-rate tables stay
// in flash (home 'flash', no arena); updated weights and biases, optimizer
// state and the RNG cell live in the arena for the whole step.
//
// Per-op backward rules (gy: gradient of the op's output):
//   fused ReLU/ReLU6   activation_s8_backward(mask, gy), in place on gy
//   conv2d/depthwise/FC  gx = *_backward_input(gy, W); the weight gradient
//                      reads gy and the saved input (or its channel slice);
//                      the bias gradient reads gy only
//   average_pool/mean  gx = average_pool_s8_backward(gy) (mean: a whole-map pool)
//   add                both inputs receive gy
//   reshape            an alias: the same buffer, forward and backward
//   fork               a tensor read by several ops sums their gradients
//                      with add_s8_grad_sum
// The builder emits the backward of every op and the updates the
// LayerUpdates ask for; prune.ts then removes what no update needs.
//
// Updates (`reorder`):
//   false  PyTorch's loss.backward(); optimizer.step(): every weight and bias
//          gradient is an int32 buffer that lives until the update phase
//          after the whole backward.
//   true   each update runs where its gradient is produced: FC weights with
//          the fused fully_connected_s8_backward_weight_{sgd,lqm}, conv and
//          depthwise weights with {conv2d,depthwise_conv2d}_s8_backward_weight_{sgd,lqm}
//          (no gradient buffer: their gradient tile is on the stack); biases
//          as the bias gradient followed at once by sgd_s32_update. Still
//          `modelled` (no kernel): a conv or depthwise update that reads a
//          saved channel slice against whole weights (modelled with a
//          one-channel int32 gradient tile).
// The input gradient of a layer is computed before its update (it must see
// the old weights).
//
// numeric 'fp32' builds the same step the way PyTorch holds it, for the
// baseline figure: every tensor float32, all weights in RAM, no masks (the
// activation backward reads the saved output), no exponent cells, no scratch.

import { type DType, dtypeBytes } from '../../core/arena.js';
import { convGeometry } from '../../core/conv-geometry.js';
import { type Graph, GraphError, type GraphOp, tensorElements } from '../../core/graph.js';
import {
  type ChannelBlock, type ConvShape, type DepthwiseConv2dShape, avgPoolBackwardScratchBytes, conv2dBackwardInputScratchBytes,
  depthwiseConv2dBackwardInputRowsScratchBytes, depthwiseConv2dBackwardInputScratchBytes, fcBackwardInputRowsScratchBytes,
  fcBackwardInputScratchBytes, lqmStateBytes,
} from '../../core/kernels.js';
import { defaultLqm } from '../../core/mlp.js';
import type { PoolDims } from '../../core/reference/average-pool.js';
import { type HeadOption, prepareHead } from './head.js';
import { isLayerOp, type TrainableLayer, trainableLayers } from './layers.js';
import type { LayerUpdate } from './scheme.js';

export type Numeric = 'int8' | 'fp32';
export type Optimizer = 'sgd' | 'lqm';
export type Phase = 'forward' | 'loss' | 'backward' | 'update';

export type TensorRole =
  | 'input' // the sample, written by the host before the step
  | 'label'
  | 'activation' // a forward output (saved when a backward op reads it)
  | 'saved_slice' // input channels of an activation kept for a sparse weight update
  | 'mask' // 1-bit ReLU/ReLU6 mask written by the forward kernel
  | 'weight' // trainable weights (arena)
  | 'bias' // trainable bias (arena)
  | 'optimizer_state' // LQM momentum
  | 'rng' // the stochastic-rounding state cell
  | 'constant' // flash: frozen weights/biases, requantisation and learning-rate tables
  | 'gradient' // activation gradient
  | 'gradient_exp' // its exponent cell
  | 'weight_gradient'
  | 'bias_gradient'
  | 'scratch'
  | 'metric'; // p(label), for the loss

export interface TrainTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly bytes: number;
  readonly role: TensorRole;
  readonly home: 'arena' | 'flash';
  readonly persistent: boolean; // carries state to the next step (weights, bias, optimizer state, rng)
  // The model tensor it holds (activations: the root of a reshape alias
  // chain; weights and biases), or null (gradients, tables, cells).
  readonly source: number | null;
  // Only input channels [begin, end) (the last axis) of `source`: a saved
  // slice of an activation, the trained or the frozen part of a sliced
  // weight. Absent: the whole tensor.
  readonly channels?: readonly [number, number];
}

export interface TrainOp {
  readonly name: string;
  readonly kernel: string; // the C kernel it calls (native/core)
  readonly modelled: boolean; // true: no such kernel yet; the op is a memory model of it
  readonly phase: Phase;
  readonly layer: number | null; // trainable-layer index (scheme numbering)
  readonly reads: readonly number[];
  readonly writes: readonly number[]; // persistent tensors updated in place appear in both
  readonly optional: readonly number[]; // writes the kernel may skip (a null tensor)
  readonly scratch: readonly number[]; // live during this op only
  readonly inPlace: readonly (readonly [number, number])[]; // [write, read] that may share one buffer
  // What lowering to kernel calls needs (src/compiler/train/lower.ts): the
  // model op this op derives from (a position in TrainGraph.model's ops, as
  // TrainTensor.source is a model tensor; null for the loss, gradient sums
  // and row-tiled runs, whose ops are in `tiled`), and the kernel's tensor
  // arguments by name (a subset of reads/writes/scratch; an optional write
  // that pruning drops disappears from here too).
  readonly source: number | null;
  readonly slots: Readonly<Record<string, number>>;
  // Per inPlace pair: bytes the read starts above the write in their shared
  // buffer (a row-tiled op's output trailing its input, tile.ts); absent: 0.
  readonly inPlaceShift?: readonly number[];
  readonly tiled?: TiledForward; // a row-tiled run of forward ops (tile.ts)
}

// A run of forward ops computed in row bands by one op (src/core/tiled-block.ts
// on the kernels): what a runtime needs to rebuild the same band plan with
// planSegment(segmentFromGraph(model, sources, { keep, masks }), bandRows).
// The op's slots name its whole tensors: the segment's external inputs
// in0, in1, ... (in segment value order), its output y, the kept
// intermediates keep0, ... (in `keep` order), the masks mask0, ... (in
// `masks` order) and the band scratch.
export interface TiledForward {
  readonly sources: readonly number[]; // positions in model.ops, in order
  readonly keep: readonly number[]; // model tensors written whole (read outside the run)
  readonly masks: readonly number[]; // positions whose ReLU mask is written
  readonly bandRows: number;
  readonly bands: number;
  readonly order: 'forward' | 'reverse'; // band order (in place: the order inPlaceShift assumed)
  readonly macs: number; // with recomputed halo rows
  readonly untiledMacs: number;
}

export interface TrainGraph {
  readonly name: string;
  readonly numeric: Numeric;
  readonly optimizer: Optimizer;
  readonly reorder: boolean;
  readonly tensors: readonly TrainTensor[];
  readonly ops: readonly TrainOp[]; // the schedule: step s runs ops[s]
  readonly inputs: readonly number[]; // written by the host before step 0 (sample, label)
  readonly outputs: readonly number[]; // what the step leaves behind: updated parameters, state, rng, metric
  readonly layers: readonly TrainableLayer[];
  readonly updates: readonly LayerUpdate[];
  // The graph the step trains: the model after prepareHead (no softmax,
  // maybe a new classifier). TrainTensor.source, TrainOp.source and
  // TiledForward index into it.
  readonly model: Graph;
  readonly logits: number; // the model's logits tensor (graph index)
}

export interface TrainGraphOptions {
  head?: HeadOption; // default 'keep'
  // One LayerUpdate per trainable layer of the graph after the head is
  // prepared (scheme.ts resolveScheme / fullUpdate), or a function of them.
  updates: readonly LayerUpdate[] | ((layers: readonly TrainableLayer[]) => LayerUpdate[]);
  reorder: boolean;
  optimizer?: Optimizer; // weights; biases always use SGD. Default 'sgd'
  lqmBits?: number; // LQM state bits per weight, default 5
  numeric?: Numeric; // default 'int8'
  // A conv whose weights update only in input channels [0, n) keeps just
  // that slice in the arena, [out][kh][kw][n]; the other channels stay in
  // flash as their own [out][kh][kw][in - n] tensor, and the forward and
  // the input gradient read both (fully_connected_s8_{forward,backward_input}_split
  // for a pointwise conv; modelled for a kxk conv). LQM state covers the
  // slice. Default false: the whole weight tensor is in the arena.
  sliceWeights?: boolean;
  // Input gradients of FC, pointwise and depthwise layers with one row of
  // int32 scratch (two passes, bit-identical) instead of the whole tensor's.
  rowScratch?: boolean;
}

interface GradRef {
  data: number;
  exp: number | null; // null in fp32
}

// Per-layer geometry for the kernels' size functions.
function convShape(g: Graph, op: Extract<GraphOp, { kind: 'conv2d' | 'depthwise_conv2d' }>): ConvShape & DepthwiseConv2dShape {
  const x = g.tensors[op.inputs[0]!]!, w = g.tensors[op.inputs[1]!]!;
  const [batch, inH, inW, inC] = x.shape as [number, number, number, number];
  const [kH, kW] = [w.shape[1]!, w.shape[2]!];
  const geo = convGeometry(inH, inW, kH, kW, op.strideH, op.strideW, op.padding);
  const outC = op.kind === 'conv2d' ? w.shape[0]! : w.shape[3]!;
  const depthMultiplier = op.kind === 'depthwise_conv2d' ? op.depthMultiplier : 1;
  return { batch, inH, inW, inC, outC, kH, kW, strideH: op.strideH, strideW: op.strideW, depthMultiplier, ...geo };
}

function poolDims(g: Graph, op: Extract<GraphOp, { kind: 'average_pool2d' | 'mean' }>): PoolDims {
  const x = g.tensors[op.inputs[0]!]!;
  const [batches, inH, inW, channels] = x.shape as [number, number, number, number];
  if (op.kind === 'mean') {
    return { batches, inH, inW, channels, outH: 1, outW: 1, filterH: inH, filterW: inW, strideH: inH, strideW: inW, padH: 0, padW: 0 };
  }
  const geo = convGeometry(inH, inW, op.filterH, op.filterW, op.strideH, op.strideW, op.padding);
  return { batches, inH, inW, channels, ...geo, filterH: op.filterH, filterW: op.filterW, strideH: op.strideH, strideW: op.strideW };
}

const sameBlock = (a: ChannelBlock, l: TrainableLayer): boolean =>
  a.ocBegin === 0 && a.ocEnd === l.outC && a.icBegin === 0 && a.icEnd === l.inC;

class Builder {
  readonly tensors: TrainTensor[] = [];
  readonly ops: TrainOp[] = [];
  private readonly constants = new Map<string, number>();

  tensor(name: string, dtype: DType, shape: readonly number[], role: TensorRole, home: 'arena' | 'flash' = 'arena', persistent = false,
    source: number | null = null, channels?: readonly [number, number]): number {
    let n = 1;
    for (const d of shape) n *= d;
    const bytes = n * dtypeBytes[dtype];
    return this.tensors.push({ name, dtype, shape: [...shape], bytes, role, home, persistent, source, ...(channels ? { channels } : {}) }) - 1;
  }

  // A flash table (requantisation, learning rate, weight-scale mantissa), once per name.
  constant(name: string, dtype: DType, n: number): number {
    const have = this.constants.get(name);
    if (have !== undefined) return have;
    const t = this.tensor(name, dtype, [n], 'constant', 'flash');
    this.constants.set(name, t);
    return t;
  }

  op(o: Omit<TrainOp, 'optional' | 'scratch' | 'inPlace' | 'modelled' | 'source' | 'slots'> &
    Partial<Pick<TrainOp, 'optional' | 'scratch' | 'inPlace' | 'modelled' | 'source' | 'slots'>>): void {
    this.ops.push({ optional: [], scratch: [], inPlace: [], modelled: false, source: null, slots: {}, ...o });
  }
}

export function buildTrainGraph(source: Graph, opts: TrainGraphOptions): TrainGraph {
  const numeric = opts.numeric ?? 'int8';
  const optimizer = opts.optimizer ?? 'sgd';
  const lqmBits = opts.lqmBits ?? defaultLqm.bits;
  const fp32 = numeric === 'fp32';
  const { graph: g, logits: logitsIndex, classes } = prepareHead(source, opts.head ?? 'keep');
  if (g.inputs.length !== 1) throw new GraphError(`model "${g.name}" has ${g.inputs.length} inputs; training takes one`);
  const layers = trainableLayers(g);
  const updates = typeof opts.updates === 'function' ? opts.updates(layers) : opts.updates;
  if (updates.length !== layers.length) {
    throw new GraphError(`model "${g.name}" has ${layers.length} trainable layers, got ${updates.length} layer updates`);
  }
  const layerAt = new Map(layers.map((l) => [l.op, l]));
  const b = new Builder();
  const actType: DType = fp32 ? 'float32' : 'int8';
  const gradSuffix = fp32 ? '_f32' : '_s8';

  // ---- tensors of the source graph ----
  // Reshapes alias: every graph tensor maps to the root it shares bytes with.
  const rootOf = g.tensors.map((_, i) => i);
  const find = (i: number): number => (rootOf[i] === i ? i : (rootOf[i] = find(rootOf[i]!)));
  for (const op of g.ops) if (op.kind === 'reshape') rootOf[op.outputs[0]!] = find(op.inputs[0]!);
  const act = new Map<number, number>(); // graph root -> train tensor
  const activation = (gi: number, role: TensorRole = 'activation'): number => {
    const r = find(gi);
    let t = act.get(r);
    if (t === undefined) {
      const gt = g.tensors[r]!;
      t = b.tensor(gt.name, actType, gt.shape, role, 'arena', false, r);
      act.set(r, t);
    }
    return t;
  };
  const input = activation(g.inputs[0]!, 'input');
  const label = b.tensor('label', 'int32', [1], 'label');
  let rng: number | null = null;
  const rngCell = (): number => (rng ??= b.tensor('rng', 'int32', [1], 'rng', 'arena', true));
  const params = new Map<number, number>(); // graph tensor -> train tensor (weights, biases)
  const param = (gi: number, role: 'weight' | 'bias', trainable: boolean): number => {
    let t = params.get(gi);
    if (t === undefined) {
      const gt = g.tensors[gi]!;
      const inArena = trainable || fp32; // PyTorch holds every parameter in RAM
      const dtype: DType = fp32 ? 'float32' : role === 'weight' ? 'int8' : 'int32';
      t = b.tensor(gt.name, dtype, gt.shape, inArena ? role : 'constant', inArena ? 'arena' : 'flash', inArena, gi);
      params.set(gi, t);
    }
    return t;
  };

  // Layers whose updated weight slice is split from the frozen channels.
  const frozenPart = new Map<number, number>(); // layer -> flash tensor of the frozen input channels
  const sliced = (l: TrainableLayer): ChannelBlock | null => {
    const blk = updates[l.layer]!.weights;
    if (!opts.sliceWeights || fp32 || !blk || l.kind !== 'conv2d') return null;
    return blk.icBegin === 0 && blk.icEnd < l.inC && blk.ocBegin === 0 && blk.ocEnd === l.outC ? blk : null;
  };
  // A depthwise layer on one input channel runs as a conv2d (runner.ts), on
  // its weights transposed to OHWI in flash; when its weights train, they
  // stay in the model's (1, kh, kw, out) layout in the arena and every
  // kernel of the layer is the depthwise one.
  const familyOf = (l: TrainableLayer): string =>
    l.kind === 'depthwise_conv2d' && l.inC === 1 && l.depthMultiplier > 1 && !updates[l.layer]!.weights ? 'conv2d' : l.kind;
  const pointwiseOp = (op: GraphOp): boolean => op.kind === 'conv2d' && g.tensors[op.inputs[1]!]!.shape[1] === 1 &&
    g.tensors[op.inputs[1]!]!.shape[2] === 1 && op.strideH === 1 && op.strideW === 1;

  // ---- forward ----
  const savedInput = new Map<number, number>(); // layer -> tensor its weight gradient reads
  const masks = new Map<number, number>(); // op position -> mask tensor
  const maskSlot = (mask: number | null): Record<string, number> => (mask === null ? {} : { mask });
  g.ops.forEach((op, pos) => {
    if (op.kind === 'reshape') return;
    if (op.kind === 'softmax') throw new GraphError(`operator ${op.index} (softmax) is not the last operator; training cannot differentiate it`);
    const y = activation(op.outputs[0]!);
    const yt = b.tensors[y]!;
    const mask = !fp32 && 'activation' in op && op.activation !== 'none'
      ? b.tensor(`${yt.name}.mask`, 'uint8', [Math.ceil(tensorElements(g.tensors[op.outputs[0]!]!) / 8)], 'mask')
      : null;
    if (mask !== null) masks.set(pos, mask);
    const outs = mask === null ? [y] : [y, mask];
    const optional = mask === null ? [] : [mask];
    const l = layerAt.get(pos);
    if (l && isLayerOp(op)) {
      const u = updates[l.layer]!;
      const x = activation(op.inputs[0]!);
      // A sparse weight update keeps only its input channels: copied out
      // while x is alive, so x itself can die at its last forward reader.
      if (u.weights && u.weights.icEnd - u.weights.icBegin < l.inC) {
        const nic = u.weights.icEnd - u.weights.icBegin;
        const xt = b.tensors[x]!;
        const shape = l.kind === 'fully_connected' ? [xt.shape[0]!, nic] : [...xt.shape.slice(0, -1), nic];
        const xs = b.tensor(`${xt.name}[..., ${u.weights.icBegin}:${u.weights.icEnd}]`, actType, shape, 'saved_slice', 'arena', false,
          xt.source, [u.weights.icBegin, u.weights.icEnd]);
        b.op({
          name: `save input channels L${l.layer}`, kernel: `channel_slice${gradSuffix}`, modelled: fp32, phase: 'forward', layer: l.layer,
          reads: [x], writes: [xs], source: pos, slots: { x, out: xs },
        });
        savedInput.set(l.layer, xs);
      } else savedInput.set(l.layer, x);
      const slice = sliced(l);
      let w: number, split = '', modelled = false;
      if (slice) {
        const gw = g.tensors[op.inputs[1]!]!;
        const [o, kh, kw] = gw.shape as [number, number, number, number];
        const wi = op.inputs[1]!;
        w = b.tensor(`${gw.name}[..., 0:${slice.icEnd}]`, 'int8', [o, kh, kw, slice.icEnd], 'weight', 'arena', true, wi, [0, slice.icEnd]);
        params.set(wi, w);
        frozenPart.set(l.layer, b.tensor(`${gw.name}[..., ${slice.icEnd}:${l.inC}]`, 'int8', [o, kh, kw, l.inC - slice.icEnd], 'constant', 'flash',
          false, wi, [slice.icEnd, l.inC]));
        split = '_split';
        modelled = !pointwiseOp(op);
      } else w = param(op.inputs[1]!, 'weight', u.weights !== null);
      const hasBias = op.inputs[2] !== undefined && op.inputs[2] >= 0;
      const bias = hasBias ? param(op.inputs[2]!, 'bias', u.bias) : null;
      const tables = fp32 ? [] : [b.constant(`${l.name}.multiplier`, 'int32', l.outC), b.constant(`${l.name}.shift`, 'int32', l.outC)];
      const kernel = fp32 ? `${l.kind}_f32_forward` : l.kind === 'fully_connected' ? 'fully_connected_s8_forward'
        : slice ? `${modelled ? 'conv2d' : 'fully_connected'}_s8_forward_split`
        : `${familyOf(l)}_s8_forward${split}`;
      const tableSlots: Record<string, number> = fp32 ? {} : { multiplier: tables[0]!, shift: tables[1]! };
      const frozen = slice ? frozenPart.get(l.layer)! : null;
      b.op({
        name: `forward L${l.layer} (${l.kind})`, kernel, modelled, phase: 'forward', layer: l.layer, source: pos,
        reads: [x, w, ...(frozen === null ? [] : [frozen]), ...(bias === null ? [] : [bias]), ...tables], writes: outs, optional,
        slots: { x, w, ...(frozen === null ? {} : { wFrozen: frozen }), ...(bias === null ? {} : { bias }), ...tableSlots, y, ...maskSlot(mask) },
      });
      return;
    }
    const reads = op.kind === 'add' ? [activation(op.inputs[0]!), activation(op.inputs[1]!)] : [activation(op.inputs[0]!)];
    const kernel = op.kind === 'average_pool2d' ? 'average_pool' : op.kind;
    b.op({
      name: `forward op${op.index} (${op.kind})`, kernel: `${kernel}${gradSuffix}_forward`, phase: 'forward', layer: null, reads,
      writes: outs, optional, source: pos, slots: { x: reads[0]!, ...(reads.length > 1 ? { x2: reads[1]! } : {}), y, ...maskSlot(mask) },
    });
  });

  // ---- loss ----
  const logits = activation(logitsIndex);
  const gradTensor = (name: string, shape: readonly number[]): GradRef => ({
    data: b.tensor(`grad(${name})`, actType, shape, 'gradient'),
    exp: fp32 ? null : b.tensor(`grad(${name}).exp`, 'int32', [1], 'gradient_exp'),
  });
  const gradRefs = (r: GradRef): number[] => (r.exp === null ? [r.data] : [r.data, r.exp]);
  const gradSlots = (name: string, r: GradRef): Record<string, number> =>
    r.exp === null ? { [name]: r.data } : { [name]: r.data, [`${name}Exp`]: r.exp };
  const gLogits = gradTensor(b.tensors[logits]!.name, b.tensors[logits]!.shape);
  const metric = b.tensor(fp32 ? 'loss' : 'p_label_q16', fp32 ? 'float32' : 'int32', [1], 'metric');
  b.op({
    name: `loss (softmax cross-entropy, ${classes} classes)`, kernel: `softmax_xent${gradSuffix}_backward`, phase: 'loss', layer: null,
    reads: [logits, label], writes: [...gradRefs(gLogits), metric], optional: [metric],
    slots: { logits, label, grad: gLogits.data, ...(gLogits.exp === null ? {} : { gradExp: gLogits.exp }), metric },
  });

  // ---- backward ----
  // Gradient contributions per activation; summed when the producer's
  // backward runs (every reader of a tensor comes after its producer).
  const contributions = new Map<number, GradRef[]>([[logits, [gLogits]]]);
  const contribute = (t: number, gr: GradRef) => {
    const list = contributions.get(t);
    if (list) list.push(gr);
    else contributions.set(t, [gr]);
  };
  const pendingUpdates: (() => void)[] = [];
  const gradientOf = (t: number): GradRef | null => {
    const list = contributions.get(t);
    if (!list || list.length === 0) return null;
    let acc = list[0]!;
    for (let i = 1; i < list.length; i++) {
      const name = b.tensors[t]!.name;
      const sum = gradTensor(`${name}#${i}`, b.tensors[t]!.shape);
      b.op({
        name: `sum gradients of ${name}`, kernel: fp32 ? 'add_f32' : 'add_s8_grad_sum', phase: 'backward', layer: null,
        reads: [...gradRefs(acc), ...gradRefs(list[i]!)], writes: gradRefs(sum),
        slots: { ...gradSlots('a', acc), ...gradSlots('b', list[i]!), ...gradSlots('out', sum) },
      });
      acc = sum;
    }
    return acc;
  };

  for (let pos = g.ops.length - 1; pos >= 0; pos--) {
    const op = g.ops[pos]!;
    if (op.kind === 'reshape') continue;
    const y = activation(op.outputs[0]!);
    let gy = gradientOf(y);
    if (gy === null) continue; // nothing downstream reaches the loss
    const l = layerAt.get(pos);
    const who = l ? `L${l.layer} (${l.kind})` : `op${op.index} (${op.kind})`;
    if ('activation' in op && op.activation !== 'none') {
      // ReLU/ReLU6 backward: zero the gradient where the forward clamped,
      // in place (the kernel writes its input). PyTorch's threshold_backward
      // reads the saved output and allocates a new gradient.
      const out = b.tensor(`${b.tensors[gy.data]!.name}*mask`, actType, b.tensors[gy.data]!.shape, 'gradient');
      b.op({
        name: `activation backward ${who}`, kernel: fp32 ? 'relu_f32_backward' : 'activation_s8_backward', phase: 'backward',
        layer: l?.layer ?? null, reads: [fp32 ? y : masks.get(pos)!, gy.data], writes: [out], inPlace: fp32 ? [] : [[out, gy.data]],
        source: pos, slots: { mask: fp32 ? y : masks.get(pos)!, grad: gy.data, out },
      });
      gy = { data: out, exp: gy.exp };
    }
    if (l && isLayerOp(op)) {
      const x = activation(op.inputs[0]!);
      backwardLayer(l, op, x, gy, who);
    } else if (op.kind === 'average_pool2d' || op.kind === 'mean') {
      const x = activation(op.inputs[0]!);
      const gx = gradTensor(b.tensors[x]!.name, b.tensors[x]!.shape);
      const scratch = fp32 ? [] : [b.tensor(`scratch backward ${who}`, 'uint8', [avgPoolBackwardScratchBytes(poolDims(g, op))], 'scratch')];
      b.op({
        name: `backward ${who}`, kernel: `average_pool${gradSuffix}_backward`, phase: 'backward', layer: null,
        reads: gradRefs(gy), writes: gradRefs(gx), scratch, source: pos,
        slots: { ...gradSlots('gy', gy), ...gradSlots('gx', gx), ...(scratch.length ? { scratch: scratch[0]! } : {}) },
      });
      contribute(x, gx);
    } else if (op.kind === 'add') {
      contribute(activation(op.inputs[0]!), gy);
      contribute(activation(op.inputs[1]!), gy);
    } else {
      throw new GraphError(`operator ${op.index} (${op.kind}): no backward rule`);
    }
  }

  function backwardLayer(l: TrainableLayer, op: Extract<GraphOp, { kind: 'conv2d' | 'depthwise_conv2d' | 'fully_connected' }>, x: number, gy: GradRef, who: string): void {
    const u = updates[l.layer]!;
    const w = params.get(op.inputs[1]!)!;
    const bias = op.inputs[2] !== undefined && op.inputs[2] >= 0 ? params.get(op.inputs[2]!)! : null;
    const xt = b.tensors[x]!;
    const family = familyOf(l);
    // Input gradient (pruned later when nothing below needs it). With
    // rowScratch, FC, pointwise and depthwise layers use the kernels with one
    // row of scratch (*_backward_input_rows); a sliced layer always does (it
    // is the kernel that reads the split weights).
    {
      const gx = gradTensor(xt.name, xt.shape);
      const frozen = frozenPart.get(l.layer);
      const fcLike = l.kind === 'fully_connected' || pointwiseOp(op);
      const rowsKernel = !fp32 && (frozen !== undefined || (opts.rowScratch === true && (fcLike || (l.kind === 'depthwise_conv2d' && family === 'depthwise_conv2d'))));
      let kernel = `${family}${gradSuffix}_backward_input`, modelled = false;
      let scratchBytes = 0;
      if (!fp32) {
        const rows = xt.shape.reduce((a, d) => a * d, 1) / l.inC;
        const fc = { rows, inFeatures: l.inC, outFeatures: l.outC };
        const s = l.kind === 'fully_connected' ? null : convShape(g, op as Extract<GraphOp, { kind: 'conv2d' | 'depthwise_conv2d' }>);
        if (rowsKernel && (fcLike || frozen !== undefined)) {
          kernel = fcLike ? 'fully_connected_s8_backward_input_rows' : 'conv2d_s8_backward_input_split';
          modelled = !fcLike; // a sliced kxk conv: no such kernel yet
          scratchBytes = fcLike ? fcBackwardInputRowsScratchBytes(fc) : conv2dBackwardInputScratchBytes(s!);
        } else if (rowsKernel) {
          kernel = 'depthwise_conv2d_s8_backward_input_rows';
          scratchBytes = depthwiseConv2dBackwardInputRowsScratchBytes(s!);
        } else if (l.kind === 'fully_connected') scratchBytes = fcBackwardInputScratchBytes(fc);
        else scratchBytes = l.kind === 'conv2d' ? conv2dBackwardInputScratchBytes(s!) : depthwiseConv2dBackwardInputScratchBytes(s!);
      }
      const scratch = fp32 ? [] : [b.tensor(`scratch backward_input ${who}`, 'uint8', [scratchBytes], 'scratch')];
      const wscale = fp32 ? [] : [b.constant(`${l.name}.wscale_q15`, 'int16', l.outC)];
      b.op({
        name: `backward_input ${who}`, kernel, modelled, phase: 'backward', layer: l.layer,
        reads: [...gradRefs(gy), w, ...(frozen === undefined ? [] : [frozen]), ...wscale], writes: gradRefs(gx), scratch, source: l.op,
        slots: { ...gradSlots('gy', gy), w, ...(frozen === undefined ? {} : { wFrozen: frozen }), ...(wscale.length ? { wscale: wscale[0]! } : {}),
          ...gradSlots('gx', gx), ...(scratch.length ? { scratch: scratch[0]! } : {}) },
      });
      contribute(x, gx);
    }
    // A 1x1 stride-1 convolution is a fully-connected layer over its pixels
    // (the C kernels call the FC path for it): its fused update exists.
    const pointwise = op.kind === 'conv2d' && l.kH === 1 && l.kW === 1 && op.strideH === 1 && op.strideW === 1;
    if (u.weights) weightUpdate(l, u.weights, w, gy, family, who, pointwise);
    if (u.bias && bias !== null) biasUpdate(l, bias, gy, family, who);
  }

  function weightUpdate(l: TrainableLayer, blk: ChannelBlock, w: number, gy: GradRef, family: string, who: string, pointwise: boolean): void {
    const xs = savedInput.get(l.layer)!;
    const savedFull = activation(g.ops[l.op]!.inputs[0]!);
    const noc = blk.ocEnd - blk.ocBegin, nic = blk.icEnd - blk.icBegin;
    const perChannel = l.kind === 'depthwise_conv2d' ? l.kH * l.kW : l.kH * l.kW * nic; // gradient elements per output channel
    const partial = sameBlock(blk, l) ? '' : ` [oc ${blk.ocBegin}:${blk.ocEnd}, ic ${blk.icBegin}:${blk.icEnd}]`;
    const lqm = optimizer === 'lqm' && !fp32;
    const isSliced = frozenPart.has(l.layer);
    const perOut = isSliced ? l.kH * l.kW * blk.icEnd : l.weightElements / l.outC; // weights per output channel in the arena
    const state = lqm
      ? [b.tensor(`${b.tensors[w]!.name}.lqm_state`, 'uint8', [lqmStateBytes(lqmBits, l.outC, perOut)], 'optimizer_state', 'arena', true)]
      : [];
    const tables = fp32 ? [] : lqm ? [b.constant(`${l.name}.lqm_shift`, 'int32', l.outC)]
      : [b.constant(`${l.name}.lr_w.multiplier`, 'int32', l.outC), b.constant(`${l.name}.lr_w.shift`, 'int32', l.outC)];
    const rngT = fp32 ? [] : [rngCell()];
    const opt = fp32 ? 'sgd' : optimizer;
    // The existing weight-gradient kernels read the input over the weights'
    // whole input-channel range: a saved channel slice fits them only when
    // the weights are sliced to the same channels (sliceWeights). Otherwise
    // the op models a kernel that reads a slice against whole weights.
    const readsSlice = xs !== savedFull && !isSliced;
    const updateSlots = {
      ...(tables.length === 2 ? { lrMultiplier: tables[0]!, lrShift: tables[1]! } : tables.length === 1 ? { lqmShift: tables[0]! } : {}),
      w, ...(state.length ? { state: state[0]! } : {}), ...(rngT.length ? { rng: rngT[0]! } : {}),
    };
    if (opts.reorder) {
      // The update fused into the op that produces the gradient: the FC
      // kernels (also for a pointwise conv that keeps its whole input, since
      // they read the full [rows][in] input), the conv and depthwise SGD and
      // LQM kernels (their gradient tile on the stack; LQM state packed as
      // the FC kernel's, one field per weight). A sliced pointwise weight is
      // an FC over the saved slice: [out][n] x [rows][n]. What has no kernel
      // (a slice read against whole weights) is modelled with one output
      // channel's int32 gradient as scratch.
      const fc = !fp32 && (l.kind === 'fully_connected' || (pointwise && (xs === savedFull || isSliced)));
      const modelled = fp32 || readsSlice;
      const tile = fc || fp32 || !modelled ? [] : [b.tensor(`scratch weight-gradient tile ${who}`, 'int32', [perChannel], 'scratch')];
      b.op({
        name: `backward_weight+${opt} ${who}${partial}`, kernel: `${fc ? 'fully_connected' : family}${gradSuffix}_backward_weight_${opt}`, modelled,
        phase: 'backward', layer: l.layer, reads: [...gradRefs(gy), xs, ...tables, w, ...state, ...rngT],
        writes: [w, ...state, ...rngT], scratch: tile, source: l.op,
        slots: { ...gradSlots('gy', gy), x: xs, ...updateSlots, ...(tile.length ? { tile: tile[0]! } : {}) },
      });
      return;
    }
    const gw = b.tensor(`grad(${b.tensors[w]!.name})${partial}`, fp32 ? 'float32' : 'int32', [noc * perChannel], 'weight_gradient');
    b.op({
      name: `backward_weight ${who}${partial}`, kernel: `${family}${gradSuffix}_backward_weight`, modelled: readsSlice, phase: 'backward', layer: l.layer,
      reads: [gy.data, xs], writes: [gw], source: l.op, slots: { gy: gy.data, x: xs, gw },
    });
    const kernel = fp32 ? 'sgd_f32_update' : lqm ? 'lqm_s8_update' : 'sgd_s8_update';
    pendingUpdates.push(() => b.op({
      // sgd_s8_update/lqm_s8_update take [out][in] weights: a conv's OHWI is
      // [out][kh*kw*in], where an input-channel block is not one range.
      name: `update weights ${who}`, kernel, phase: 'update', layer: l.layer,
      modelled: l.kind === 'depthwise_conv2d' || (l.kind === 'conv2d' && l.kH * l.kW > 1 && blk.icEnd - blk.icBegin < l.inC && !isSliced),
      reads: [gw, ...(gy.exp === null ? [] : [gy.exp]), ...tables, w, ...state, ...rngT], writes: [w, ...state, ...rngT],
      source: l.op, slots: { gw, ...(gy.exp === null ? {} : { gwExp: gy.exp }), ...updateSlots },
    }));
  }

  function biasUpdate(l: TrainableLayer, bias: number, gy: GradRef, family: string, who: string): void {
    const gb = b.tensor(`grad(${b.tensors[bias]!.name})`, fp32 ? 'float32' : 'int32', [l.outC], 'bias_gradient');
    b.op({
      name: `backward_bias ${who}`, kernel: `${family}${gradSuffix}_backward_bias`, phase: 'backward', layer: l.layer, reads: [gy.data],
      writes: [gb], source: l.op, slots: { gy: gy.data, gb },
    });
    const tables = fp32 ? [] : [b.constant(`${b.tensors[bias]!.name}.lr_b.multiplier`, 'int32', l.outC), b.constant(`${b.tensors[bias]!.name}.lr_b.shift`, 'int32', l.outC)];
    const rngT = fp32 ? [] : [rngCell()];
    const update = (phase: Phase) => b.op({
      name: `update bias ${who}`, kernel: fp32 ? 'sgd_f32_update' : 'sgd_s32_update', phase, layer: l.layer,
      reads: [gb, ...(gy.exp === null ? [] : [gy.exp]), ...tables, bias, ...rngT], writes: [bias, ...rngT], source: l.op,
      slots: {
        gb, ...(gy.exp === null ? {} : { gbExp: gy.exp }), ...(tables.length ? { lrMultiplier: tables[0]!, lrShift: tables[1]! } : {}),
        bias, ...(rngT.length ? { rng: rngT[0]! } : {}),
      },
    });
    if (opts.reorder) update('backward');
    else pendingUpdates.push(() => update('update'));
  }

  // ---- optimizer.step() (no reordering) ----
  for (const u of pendingUpdates) u();

  const outputs = b.tensors.flatMap((t, i) => (t.persistent || t.role === 'metric' ? [i] : []));
  return {
    name: g.name, numeric, optimizer, reorder: opts.reorder, tensors: b.tensors, ops: b.ops, inputs: [input, label], outputs,
    layers, updates, model: g, logits: logitsIndex,
  };
}
