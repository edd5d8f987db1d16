// Lowering a compiled training step (TrainGraph + ArenaPlan) to a plan blob
// (src/core/plan-format.ts): every op becomes the dispatcher call its kernel
// takes, captured by running the op through `Kernels` (which checks every
// shape) on a recording Dispatch; arena tensors get the planner's offsets,
// frozen weights and the derived tables (requantisation, weight scales,
// learning rates) go to the plan's flash section.
//
// Forward ops go through the same per-op lowering as the forward runner
// (src/core/lowering.ts). A row-tiled op (tile.ts) becomes the kernel calls
// of every band: its band plan is rebuilt with tiled-block.ts's planner
// from what the op records, and each band calls the op's kernels on views
// of its whole tensors and of the band scratch at the planned offsets. A
// sliced layer's forward is fully_connected_s8_forward_split (the trained
// channels in the arena, the frozen rest in flash); the saved input
// channels of a sparse update are channel_slice_s8.
//
// The inference op list is the training step's forward (tiled, split, no
// masks and no saved slices) followed by the model's softmax when the head
// is kept, on the training placement: in the step every forward tensor
// lives at least as long, so the training offsets are valid for it (an
// in-place tiled op overwrites its input in both).
//
// Learning rates (QAS, as src/core/mlp.ts): per output channel, the weight
// step lr * s_in / s_w[c] and the bias step lrBias / (s_in * s_w[c]) as Q31
// multiplier + shift; LQM: the weight factor rounded to a power of two.
//
// An op the training graph marks `modelled` (no kernel yet) cannot be
// lowered: the whole list of missing kernels is one error. Weight updates
// with reordering: fully_connected_s8_backward_weight_{sgd,lqm} (FC and
// pointwise layers), conv2d_s8_backward_weight_{sgd,lqm} and
// depthwise_conv2d_s8_backward_weight_{sgd,lqm} (a full update lowers with
// either optimizer).

import { type DType, type Tensor, dtypeBytes } from '../../core/arena.js';
import { type Graph, GraphError, type GraphOp, tensorElements } from '../../core/graph.js';
import { type ChannelBlock, type Dispatch, FLASH_BASE, Kernels, type LqmSettings, lqmStateBytes } from '../../core/kernels.js';
import {
  type LayerOp, type LoweringContext, bytesOf, convShapeOf, convWeights, depthwiseAsConv, depthwiseShape, fcShapeOf,
  lowerForwardOp, poolShapeOf, quantOf, weightScales,
} from '../../core/lowering.js';
import { TiledSegment, planSegment, segmentCalls, segmentFromGraph } from '../../core/tiled-block.js';
import { defaultLqm, updateFactors } from '../../core/mlp.js';
import type { OpId } from '../../core/ops.js';
import { type Plan, type PlanCall, type PlanInit, type PlanRegion, type PlanTensor, encodePlan } from '../../core/plan-format.js';
import { log2eScaleQ16, quantizeMultiplier, weightScaleMantissa } from '../../core/quant.js';
import { type CompileOptions, type CompiledTraining, compileTraining } from './compile.js';
import { isLayerOp, trainableLayers } from './layers.js';
import type { TrainGraph, TrainOp } from './train-graph.js';

export interface LowerOptions {
  lr: number; // real-valued SGD step of the weights
  lrBias: number; // and of the biases
  qas?: boolean; // quantisation-aware scaling (default true)
  // The steps of every layer but the last (the classifier) are lr and
  // lrBias times this (default 1): a new head learns at lr while the
  // pre-trained layers it rests on move more slowly.
  backboneLrFactor?: number;
  lqm?: LqmSettings; // when the graph's optimizer is LQM (default mlp.ts defaultLqm)
  seed?: number; // stochastic-rounding state (default 1)
}

export class LoweringError extends Error {}

// Records the calls instead of running them.
class RecordingDispatch implements Dispatch {
  readonly name = 'plan-recorder';
  readonly calls: PlanCall[] = [];
  call(op: OpId, args: Int32Array): void {
    this.calls.push({ op, args: args.slice() });
  }
  write(): void {
    throw new LoweringError('plan lowering: a kernel call tried to write memory while recording');
  }
  read(): Uint8Array {
    throw new LoweringError('plan lowering: a kernel call tried to read memory while recording');
  }
}

// The read-only region being built, 16-aligned. A table asked for again
// under the same key with the same bytes is placed once (the forward and
// the inference lowering ask for the same requantisation tables).
class FlashBuilder {
  private readonly parts: { at: number; bytes: Uint8Array }[] = [];
  private readonly byKey = new Map<string, { t: Tensor; bytes: Uint8Array }[]>();
  private top = 0;

  place(key: string, name: string, dtype: DType, shape: readonly number[], bytes: Uint8Array): Tensor {
    const same = this.byKey.get(key) ?? [];
    const have = same.find((h) => h.bytes.length === bytes.length && h.bytes.every((b, i) => b === bytes[i]));
    if (have) return { ...have.t, shape: [...shape] };
    const at = Math.ceil(this.top / 16) * 16;
    this.parts.push({ at, bytes });
    this.top = at + bytes.length;
    const t: Tensor = { name, dtype, shape: [...shape], offset: FLASH_BASE + at, bytes: bytes.length };
    this.byKey.set(key, [...same, { t, bytes }]);
    return t;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.top / 16) * 16);
    for (const p of this.parts) out.set(p.bytes, p.at);
    return out;
  }
}

function missingKernels(tg: TrainGraph): string | null {
  const modelled = tg.ops.filter((o) => o.modelled);
  if (!modelled.length) return null;
  const kernels = [...new Set(modelled.map((o) => o.kernel))];
  return `training graph "${tg.name}" needs ${kernels.length === 1 ? 'a kernel that does' : 'kernels that do'} not exist yet: ` +
    kernels.map((k) => `${k} (${modelled.filter((o) => o.kernel === k).map((o) => o.name).join(', ')})`).join('; ') +
    '. Choose a scheme the existing kernels cover: with reorder: true any layer\'s weights update (SGD or LQM); ' +
    'with reorder: false depthwise weights do not update; a ratio below 1 needs a pointwise layer and sliceWeights: true';
}

export function lowerTraining(model: Graph, compiled: CompiledTraining, o: LowerOptions): Plan {
  const { graph: tg, plan: arena } = compiled;
  if (tg.numeric !== 'int8') throw new LoweringError(`training graph "${tg.name}" is ${tg.numeric}; only int8 steps run on the kernels`);
  const missing = missingKernels(tg);
  if (missing) throw new LoweringError(missing);
  const g = tg.model;
  const qas = o.qas ?? true;
  const lqm = o.lqm ?? defaultLqm;
  const flash = new FlashBuilder();

  // ---- placement: graph tensor -> training tensor -> memory -------------------
  const rootOf = model.tensors.map((_, i) => i);
  const find = (i: number): number => (rootOf[i] === i ? i : (rootOf[i] = find(rootOf[i]!)));
  const sameTensors = g.tensors === model.tensors; // the head was kept: the model's softmax still applies at inference
  const inferOps: GraphOp[] = [...g.ops, ...(sameTensors ? model.ops.slice(g.ops.length) : [])];
  for (const op of inferOps) if (op.kind === 'reshape') rootOf[op.outputs[0]!] = find(op.inputs[0]!);
  while (rootOf.length < g.tensors.length) rootOf.push(rootOf.length);
  const bySource = new Map<number, number>(); // model tensor -> the training tensor that holds all of it
  tg.tensors.forEach((t, i) => t.source !== null && !t.channels && bySource.set(t.source, i));
  const offsetOf = new Map(arena.tensors.map((p) => [p.tensor, p.offset]));
  let arenaTop = Math.ceil(arena.report.arenaBytes / 16) * 16;
  const extra = new Map<number, number>(); // inference-only tensors (softmax output) -> offset past the training arena
  let inferring = false;

  const trainTensor = (i: number): Tensor => {
    const t = tg.tensors[i]!;
    if (t.home === 'flash') throw new LoweringError(`plan lowering: "${t.name}" is a flash table, not an arena tensor`);
    const offset = offsetOf.get(i);
    if (offset === undefined) throw new LoweringError(`plan lowering: arena tensor "${t.name}" has no offset in the arena plan`);
    return { name: t.name, dtype: t.dtype, shape: [...t.shape], offset, bytes: t.bytes };
  };
  const slot = (op: TrainOp, name: string): Tensor => {
    const i = op.slots[name];
    if (i === undefined) throw new LoweringError(`plan lowering: ${op.name} (${op.kernel}) has no "${name}" tensor`);
    return trainTensor(i);
  };
  const optSlot = (op: TrainOp, name: string): Tensor | null => (op.slots[name] === undefined ? null : slot(op, name));
  // The initial bytes of a training tensor that holds (channels of) a model tensor.
  const sourceBytes = (i: number): Uint8Array | null => {
    const t = tg.tensors[i]!;
    const data = t.source === null ? null : g.tensors[t.source]!.data;
    if (!data || !t.channels) return data ?? null;
    const [b, e] = t.channels;
    const full = g.tensors[t.source!]!.shape.at(-1)!, n = e - b;
    const out = new Uint8Array((data.length / full) * n);
    for (let r = 0; r < data.length / full; r++) out.set(data.subarray(r * full + b, r * full + e), r * n);
    return out;
  };
  // A flash tensor of the training graph: frozen channels of a sliced weight.
  const flashSlot = (op: TrainOp, name: string): Tensor => {
    const i = op.slots[name];
    const t = i === undefined ? undefined : tg.tensors[i];
    const bytes = i === undefined ? null : sourceBytes(i);
    if (!t || t.home !== 'flash' || !bytes) throw new LoweringError(`plan lowering: ${op.name} (${op.kernel}) has no flash "${name}" tensor`);
    return flash.place(`#${t.source}[${t.channels ?? ''}]`, t.name, t.dtype, t.shape, bytes);
  };
  // Input channels of a layer's weights in the arena: a sliced weight holds [0, n).
  const weightChannels = (op: TrainOp, full: number): number => {
    const c = op.slots.w === undefined ? undefined : tg.tensors[op.slots.w]!.channels;
    return c ? c[1] - c[0] : full;
  };

  const ctx: LoweringContext = {
    graph: g,
    tensor(index, what) {
      const gt = g.tensors[index];
      if (!gt) throw new GraphError(`${what}: tensor ${index} does not exist`);
      const dtype = gt.dtype as DType;
      const t = bySource.get(gt.data ? index : find(index));
      if (t !== undefined && tg.tensors[t]!.home === 'arena') {
        const placed = trainTensor(t);
        return { ...placed, name: gt.name, shape: [...gt.shape], bytes: tensorElements(gt) * dtypeBytes[dtype] };
      }
      if (gt.data) return flash.place(`#${index}`, gt.name, dtype, gt.shape, gt.data);
      if (!inferring) throw new LoweringError(`plan lowering: ${what}: activation "${gt.name}" is not in the training graph`);
      // An activation only inference computes (the softmax output).
      const r = find(index);
      let off = extra.get(r);
      if (off === undefined) {
        off = arenaTop;
        arenaTop = Math.ceil((off + tensorElements(g.tensors[r]!)) / 16) * 16;
        extra.set(r, off);
      }
      return { name: gt.name, dtype, shape: [...gt.shape], offset: off, bytes: tensorElements(gt) * dtypeBytes[dtype] };
    },
    constant: (name, dtype, shape, bytes) => flash.place(name, name, dtype, shape, bytes),
  };

  // ---- per-layer tables ----------------------------------------------------------
  const layerOp = (op: TrainOp): LayerOp => {
    const n = op.source === null ? undefined : g.ops[op.source];
    if (!n || !isLayerOp(n)) throw new LoweringError(`plan lowering: ${op.name} does not belong to a layer`);
    return n;
  };
  const what = (op: TrainOp) => `${op.name} (${op.kernel})`;
  const inputScale = (n: LayerOp, w: string) => quantOf(g.tensors[n.inputs[0]!]!, w).scale[0]!;
  const backbone = o.backboneLrFactor ?? 1;
  if (!(backbone > 0) || !Number.isFinite(backbone)) throw new LoweringError(`plan lowering: backboneLrFactor ${backbone} is not a positive number`);
  const classifier = g.ops[trainableLayers(g).at(-1)?.op ?? -1];
  const lrOf = (n: LayerOp) => (n === classifier ? 1 : backbone);
  const factors = (n: LayerOp, w: string) =>
    weightScales(g, n, w).map((s) => updateFactors(o.lr * lrOf(n), o.lrBias * lrOf(n), inputScale(n, w), s, qas));
  const int32Table = (name: string, values: number[]) => ctx.constant(name, 'int32', [values.length], bytesOf(Int32Array.from(values)));
  const weightName = (n: LayerOp) => g.tensors[n.inputs[1]!]!.name;
  const lrTables = (n: LayerOp, which: 'w' | 'b', w: string) => {
    const f = factors(n, w).map((x) => quantizeMultiplier(which === 'w' ? x.weight : x.bias, -62, 62));
    const base = which === 'w' ? `${weightName(n)}.lr_w` : `${g.tensors[n.inputs[2]!]!.name}.lr_b`;
    return { lrMultiplier: int32Table(`${base}.multiplier`, f.map((m) => m.multiplier)), lrShift: int32Table(`${base}.shift`, f.map((m) => m.shift)) };
  };
  const lqmShiftTable = (n: LayerOp, w: string) => int32Table(`${weightName(n)}.lqm_shift`, factors(n, w).map((x) => x.lqmShift));
  const wscale = (n: LayerOp, w: string) => {
    const ws = weightScaleMantissa(weightScales(g, n, w));
    return { wscaleMantissa: ctx.constant(`${weightName(n)}.wscale_q15`, 'int16', [ws.mantissa.length], bytesOf(ws.mantissa)), wscaleExp: ws.exp };
  };
  const blockOf = (op: TrainOp): ChannelBlock => {
    const u = op.layer === null ? null : tg.updates[op.layer]?.weights;
    if (!u) throw new LoweringError(`plan lowering: ${op.name} updates weights the scheme does not update`);
    return u;
  };
  const inputOffsetOf = (n: LayerOp, w: string) => -quantOf(g.tensors[n.inputs[0]!]!, w).zeroPoint[0]!;
  const lqmCheck = (op: TrainOp, state: Tensor, out: number, inF: number) => {
    if (state.bytes !== lqmStateBytes(lqm.bits, out, inF)) {
      throw new LoweringError(`plan lowering: ${op.name}: LQM state is ${state.bytes} bytes; ${lqm.bits}-bit settings need ` +
        `${lqmStateBytes(lqm.bits, out, inF)} (compile with lqmBits: ${lqm.bits})`);
    }
  };
  // An FC layer, or a pointwise conv as an FC over its pixels: rows, in, out.
  const fcView = (n: LayerOp, w: string) => {
    if (n.kind === 'fully_connected') return fcShapeOf(g, n, w);
    const s = convShapeOf(g, n as Extract<LayerOp, { kind: 'conv2d' }>, w);
    if (n.kind !== 'conv2d' || s.kH !== 1 || s.kW !== 1 || s.strideH !== 1 || s.strideW !== 1) {
      throw new LoweringError(`plan lowering: ${w}: the FC kernels take fully-connected or pointwise conv layers`);
    }
    return { rows: s.batch * s.outH * s.outW, inFeatures: s.inC, outFeatures: s.outC };
  };
  // The same context with some graph tensors placed elsewhere (a tiled op's
  // bands, a sliced layer's weights that no whole tensor holds).
  const withTensors = (over: (index: number) => Tensor | undefined): LoweringContext => ({
    graph: g,
    tensor: (index, what) => over(index) ?? ctx.tensor(index, what),
    constant: ctx.constant,
  });
  const layerOfForward = (op: TrainOp): LayerOp => {
    const n = op.source === null ? undefined : g.ops[op.source];
    if (!n || !isLayerOp(n)) throw new LoweringError(`plan lowering: ${what(op)} does not belong to a layer`);
    return n;
  };

  // ---- forward ops (training: with masks; inference: without) ----------------------
  const lowerForward = (op: TrainOp, k: Kernels, infer: boolean): void => {
    const w = what(op);
    const mask = (name: string) => (infer ? null : optSlot(op, name));
    switch (op.kernel) {
      case 'fully_connected_s8_forward':
      case 'conv2d_s8_forward':
      case 'depthwise_conv2d_s8_forward':
      case 'average_pool_s8_forward':
      case 'mean_s8_forward':
      case 'add_s8_forward': {
        const gop = op.source === null ? null : g.ops[op.source]!;
        if (!gop) throw new LoweringError(`plan lowering: ${w} has no model op`);
        // A depthwise layer on one input channel whose weights train runs as
        // the depthwise kernel on them (train-graph.ts familyOf), else as a
        // conv2d on an OHWI copy in flash.
        const asConv = op.kernel !== 'depthwise_conv2d_s8_forward';
        if (asConv && depthwiseAsConv(g, gop) && tg.tensors[op.slots.w!]!.home === 'arena') {
          throw new LoweringError(`plan lowering: ${w}: a depthwise layer with trained weights must run as ${'depthwise_conv2d_s8_forward'}`);
        }
        lowerForwardOp(ctx, gop, mask('mask'), { depthwiseAsConv: asConv }).run(k);
        return;
      }
      case 'fully_connected_s8_forward_split': {
        // A pointwise conv (an FC over its pixels) whose trained channels
        // [0, split) are in the arena and the rest in flash: the conv's own
        // quantisation (lowering.ts), the weights from the two parts.
        const n = layerOfForward(op);
        const s = fcView(n, w);
        const wLo = slot(op, 'w'), split = weightChannels(op, s.inFeatures);
        const wHi = split < s.inFeatures ? flashSlot(op, 'wFrozen') : null;
        const placeholder: Tensor = { name: `${g.tensors[n.inputs[1]!]!.name} (split)`, dtype: 'int8', shape: [1], offset: 0, bytes: 1 };
        const call = lowerForwardOp(withTensors((i) => (i === n.inputs[1] ? placeholder : undefined)), n, mask('mask')).call;
        if (!call || call.kind !== 'conv2d') throw new LoweringError(`plan lowering: ${w}: a split forward takes a pointwise conv`);
        const a = call.args;
        k.fcForwardSplit({
          ...s, split, inputOffset: a.inputOffset, outputOffset: a.outputOffset, actMin: a.actMin, actMax: a.actMax,
          input: as(a.input, [s.rows, s.inFeatures]), wLo: as(wLo, [s.outFeatures, split]), wHi: wHi && as(wHi, [s.outFeatures, s.inFeatures - split]),
          bias: a.bias, output: as(a.output, [s.rows, s.outFeatures]), mask: a.mask, multiplier: a.multiplier, shift: a.shift,
        });
        return;
      }
      case 'channel_slice_s8': {
        if (infer) return; // only the weight gradient reads it
        const x = slot(op, 'x'), out = slot(op, 'out');
        const t = tg.tensors[op.slots.out!]!;
        const channels = tg.tensors[op.slots.x!]!.shape.at(-1)!;
        if (!t.channels) throw new LoweringError(`plan lowering: ${w}: "${t.name}" does not say which channels it keeps`);
        const rows = x.bytes / channels;
        const [begin, end] = t.channels;
        k.channelSlice({ rows, channels, begin, end, input: as(x, [rows, channels]), output: as(out, [rows, end - begin]) });
        return;
      }
      case 'tiled_forward_s8': {
        const ti = op.tiled;
        if (!ti) throw new LoweringError(`plan lowering: ${w} has no band plan`);
        const masks = infer ? [] : ti.masks;
        const shape = segmentFromGraph(g, ti.sources, { keep: new Set(ti.keep), masks: new Set(masks) });
        const plan = planSegment(shape, ti.bandRows, arena.align);
        if (plan.bands.length !== ti.bands || plan.macs !== ti.macs) {
          throw new LoweringError(`plan lowering: ${w}: the band plan rebuilt here (${plan.bands.length} bands, ${plan.macs} MACs) ` +
            `is not the compiler's (${ti.bands} bands, ${ti.macs} MACs)`);
        }
        // Whole tensors of the external values, by the op's slot names (TiledForward).
        let inputs = 0;
        const whole = shape.values.map((v, i) => {
          if (!v.external) return null;
          const name = i === shape.output ? 'y' : shape.steps.some((st) => st.output === i) ? `keep${ti.keep.indexOf(v.tensor!)}` : `in${inputs++}`;
          return { ...slot(op, name), name: v.name, shape: [1, v.h, v.w, v.c] };
        });
        const byTensor = new Map(shape.values.map((v, i) => [v.tensor!, i]));
        const segCtx = withTensors((index) => {
          const i = byTensor.get(index);
          if (i === undefined) return undefined;
          const v = shape.values[i]!;
          // A banded value: each band gets its own view of the scratch.
          return whole[i] ?? { name: v.name, dtype: 'int8', shape: [1, v.h, v.w, v.c], offset: 0, bytes: v.h * v.w * v.c };
        });
        const calls = segmentCalls(segCtx, ti.sources, (p) => (masks.includes(p) ? slot(op, `mask${ti.masks.indexOf(p)}`) : null));
        new TiledSegment(shape, plan, { tensors: whole, calls, scratch: optSlot(op, 'scratch'), order: ti.order }).run(k);
        return;
      }
      default:
        throw new LoweringError(`plan lowering: ${w}: no lowering for forward kernel ${op.kernel}`);
    }
  };
  const as = (t: Tensor, shape: number[]): Tensor => ({ ...t, shape });

  // ---- the training step ------------------------------------------------------------
  const rec = new RecordingDispatch();
  const k = new Kernels(rec);
  for (const op of tg.ops) {
    const w = what(op);
    if (op.phase === 'forward') {
      lowerForward(op, k, false);
      continue;
    }
    const gop = op.source === null ? null : g.ops[op.source]!;
    switch (op.kernel) {
      case 'softmax_xent_s8_backward': {
        const logits = slot(op, 'logits');
        const classes = logits.bytes;
        k.softmaxXentBackward({
          classes, logits: as(logits, [classes]), log2eScaleQ16: log2eScaleQ16(quantOf(g.tensors[tg.logits]!, w).scale[0]!),
          label: slot(op, 'label'), grad: as(slot(op, 'grad'), [classes]), gradExp: slot(op, 'gradExp'), pLabelQ16: optSlot(op, 'metric'),
        });
        break;
      }
      case 'activation_s8_backward': {
        const grad = slot(op, 'grad'), out = slot(op, 'out');
        if (grad.offset !== out.offset) {
          throw new LoweringError(`plan lowering: ${w}: the masked gradient is not in place (its input is read again later); ` +
            'a copy kernel would be needed');
        }
        k.activationBackward(grad.bytes, slot(op, 'mask'), out);
        break;
      }
      case 'fully_connected_s8_backward_input':
      case 'conv2d_s8_backward_input':
      case 'depthwise_conv2d_s8_backward_input': {
        const n = layerOp(op);
        const grads = { gradOut: slot(op, 'gy'), gradOutExp: slot(op, 'gyExp'), gradIn: slot(op, 'gx'), gradInExp: slot(op, 'gxExp'), scratch: slot(op, 'scratch') };
        const ws = wscale(n, w);
        if (n.kind === 'fully_connected') {
          const s = fcShapeOf(g, n, w);
          k.fcBackwardInput({
            ...s, ...ws, ...grads, gradOut: as(grads.gradOut, [s.rows, s.outFeatures]), gradIn: as(grads.gradIn, [s.rows, s.inFeatures]),
            weights: as(ctx.tensor(n.inputs[1]!, w), [s.outFeatures, s.inFeatures]),
          });
        } else if (op.kernel === 'conv2d_s8_backward_input') {
          const { depthMultiplier: _, ...s } = convShapeOf(g, n, w);
          k.conv2dBackwardInput({ ...s, ...ws, ...grads, weights: convWeights(ctx, n, w) });
        } else {
          k.depthwiseConv2dBackwardInput({ ...depthwiseShape(convShapeOf(g, n, w)), ...ws, ...grads, weights: ctx.tensor(n.inputs[1]!, w) });
        }
        break;
      }
      case 'fully_connected_s8_backward_input_rows': {
        // One row of scratch; a sliced layer's weights in two parts.
        const n = layerOp(op);
        const s = fcView(n, w);
        const split = weightChannels(op, s.inFeatures);
        const sliced = op.slots.wFrozen !== undefined;
        const wLo = sliced ? slot(op, 'w') : ctx.tensor(n.inputs[1]!, w);
        k.fcBackwardInputRows({
          ...s, split, ...wscale(n, w), gradOut: as(slot(op, 'gy'), [s.rows, s.outFeatures]), gradOutExp: slot(op, 'gyExp'),
          wLo: as(wLo, [s.outFeatures, split]), wHi: sliced ? as(flashSlot(op, 'wFrozen'), [s.outFeatures, s.inFeatures - split]) : null,
          gradIn: as(slot(op, 'gx'), [s.rows, s.inFeatures]), gradInExp: slot(op, 'gxExp'), scratch: slot(op, 'scratch'),
        });
        break;
      }
      case 'depthwise_conv2d_s8_backward_input_rows': {
        const n = layerOp(op);
        if (n.kind !== 'depthwise_conv2d') throw new LoweringError(`plan lowering: ${w} is not a depthwise layer`);
        k.depthwiseConv2dBackwardInputRows({
          ...depthwiseShape(convShapeOf(g, n, w)), ...wscale(n, w), gradOut: slot(op, 'gy'), gradOutExp: slot(op, 'gyExp'),
          weights: ctx.tensor(n.inputs[1]!, w), gradIn: slot(op, 'gx'), gradInExp: slot(op, 'gxExp'), scratch: slot(op, 'scratch'),
        });
        break;
      }
      case 'average_pool_s8_backward': {
        if (!gop || (gop.kind !== 'average_pool2d' && gop.kind !== 'mean')) throw new LoweringError(`plan lowering: ${w} is not a pool`);
        k.avgPoolBackward({
          ...poolShapeOf(g, gop, w), gradOut: slot(op, 'gy'), gradOutExp: slot(op, 'gyExp'), gradIn: slot(op, 'gx'),
          gradInExp: slot(op, 'gxExp'), scratch: slot(op, 'scratch'),
        });
        break;
      }
      case 'add_s8_grad_sum': {
        const a = slot(op, 'a');
        k.gradAdd({ n: a.bytes, a, aExp: slot(op, 'aExp'), b: slot(op, 'b'), bExp: slot(op, 'bExp'), output: slot(op, 'out'), outputExp: slot(op, 'outExp') });
        break;
      }
      case 'fully_connected_s8_backward_bias':
      case 'conv2d_s8_backward_bias':
      case 'depthwise_conv2d_s8_backward_bias': {
        const n = layerOp(op);
        const gy = slot(op, 'gy'), gb = slot(op, 'gb');
        if (n.kind === 'fully_connected') {
          const s = fcShapeOf(g, n, w);
          k.fcBackwardBias({ ...s, ocBegin: 0, ocEnd: s.outFeatures, gradOut: as(gy, [s.rows, s.outFeatures]), gradBias: gb });
        } else if (op.kernel === 'conv2d_s8_backward_bias') {
          const { depthMultiplier: _, ...s } = convShapeOf(g, n, w);
          k.conv2dBackwardBias({ ...s, ocBegin: 0, ocEnd: s.outC, gradOut: gy, gradBias: gb });
        } else {
          const s = convShapeOf(g, n, w);
          k.depthwiseConv2dBackwardBias({ ...depthwiseShape(s), ocBegin: 0, ocEnd: s.outC, gradOut: gy, gradBias: gb });
        }
        break;
      }
      case 'sgd_s32_update': {
        const n = layerOp(op);
        const bias = slot(op, 'bias');
        const outC = bias.bytes / 4;
        k.sgdS32Update({
          outFeatures: outC, ocBegin: 0, ocEnd: outC, grad: slot(op, 'gb'), gradExp: slot(op, 'gbExp'), ...lrTables(n, 'b', w),
          bias, rng: slot(op, 'rng'),
        });
        break;
      }
      case 'fully_connected_s8_backward_weight':
      case 'conv2d_s8_backward_weight': {
        const n = layerOp(op);
        const blk = blockOf(op);
        const inputOffset = inputOffsetOf(n, w);
        if (n.kind === 'fully_connected') {
          const s = fcShapeOf(g, n, w);
          k.fcBackwardWeight({
            ...s, ...blk, inputOffset, gradOut: as(slot(op, 'gy'), [s.rows, s.outFeatures]), input: as(slot(op, 'x'), [s.rows, s.inFeatures]),
            gradWeights: slot(op, 'gw'),
          });
        } else if (n.kind === 'conv2d') {
          // A sliced layer: the weights and the saved input have channels [0, n).
          const { depthMultiplier: _, ...s } = convShapeOf(g, n, w);
          const inC = weightChannels(op, s.inC);
          k.conv2dBackwardWeight({ ...s, inC, ...blk, inputOffset, gradOut: slot(op, 'gy'), input: slot(op, 'x'), gradWeights: slot(op, 'gw') });
        } else {
          throw new LoweringError(`plan lowering: ${w}: no weight-gradient lowering for ${n.kind}`);
        }
        break;
      }
      case 'sgd_s8_update':
      case 'lqm_s8_update': {
        const n = layerOp(op);
        const blk = blockOf(op);
        const weights = slot(op, 'w');
        const outF = n.kind === 'fully_connected' ? fcShapeOf(g, n, w).outFeatures : convShapeOf(g, n, w).outC;
        const inF = weights.bytes / outF;
        // OHWI conv weights are [out][kh*kw*in]: whole input channels are one range.
        if (n.kind !== 'fully_connected' && (blk.icBegin !== 0 || blk.icEnd !== weightChannels(op, convShapeOf(g, n, w).inC))) {
          throw new LoweringError(`plan lowering: ${w}: a partial input-channel block of a convolution is not one weight range`);
        }
        const rows = n.kind === 'fully_connected' ? blk : { ...blk, icBegin: 0, icEnd: inF };
        const common = { inFeatures: inF, outFeatures: outF, ...rows, grad: slot(op, 'gw'), gradExp: slot(op, 'gwExp'), weights: as(weights, [outF, inF]), rng: slot(op, 'rng') };
        if (op.kernel === 'sgd_s8_update') k.sgdS8Update({ ...common, ...lrTables(n, 'w', w) });
        else {
          const state = slot(op, 'state');
          lqmCheck(op, state, outF, inF);
          k.lqmS8Update({ ...common, ...lqm, lqmShift: lqmShiftTable(n, w), state });
        }
        break;
      }
      case 'conv2d_s8_backward_weight_sgd':
      case 'conv2d_s8_backward_weight_lqm': {
        // A sliced layer: the weights and the saved input hold channels [0, n).
        const n = layerOp(op);
        if (n.kind !== 'conv2d') throw new LoweringError(`plan lowering: ${w} is not a conv2d layer`);
        const { depthMultiplier: _, ...shape } = convShapeOf(g, n, w);
        const s = { ...shape, inC: weightChannels(op, shape.inC) };
        const common = {
          ...s, ...blockOf(op), inputOffset: inputOffsetOf(n, w), gradOut: slot(op, 'gy'), gradOutExp: slot(op, 'gyExp'),
          input: slot(op, 'x'), weights: slot(op, 'w'), rng: slot(op, 'rng'),
        };
        if (op.kernel.endsWith('_sgd')) k.conv2dBackwardWeightSgd({ ...common, ...lrTables(n, 'w', w) });
        else {
          const state = slot(op, 'state');
          lqmCheck(op, state, s.outC, s.kH * s.kW * s.inC);
          k.conv2dBackwardWeightLqm({ ...common, ...lqm, lqmShift: lqmShiftTable(n, w), state });
        }
        break;
      }
      case 'depthwise_conv2d_s8_backward_weight_sgd':
      case 'depthwise_conv2d_s8_backward_weight_lqm': {
        const n = layerOp(op);
        if (n.kind !== 'depthwise_conv2d') throw new LoweringError(`plan lowering: ${w} is not a depthwise layer`);
        const blk = blockOf(op);
        const s = depthwiseShape(convShapeOf(g, n, w));
        const common = {
          ...s, ocBegin: blk.ocBegin, ocEnd: blk.ocEnd, inputOffset: inputOffsetOf(n, w), gradOut: slot(op, 'gy'),
          gradOutExp: slot(op, 'gyExp'), input: slot(op, 'x'), weights: slot(op, 'w'), rng: slot(op, 'rng'),
        };
        if (op.kernel.endsWith('_sgd')) k.depthwiseConv2dBackwardWeightSgd({ ...common, ...lrTables(n, 'w', w) });
        else {
          const state = slot(op, 'state');
          lqmCheck(op, state, s.inC * s.depthMultiplier, s.kH * s.kW);
          k.depthwiseConv2dBackwardWeightLqm({ ...common, ...lqm, lqmShift: lqmShiftTable(n, w), state });
        }
        break;
      }
      case 'fully_connected_s8_backward_weight_sgd':
      case 'fully_connected_s8_backward_weight_lqm': {
        const n = layerOp(op);
        const full = fcView(n, w);
        const s = { ...full, inFeatures: weightChannels(op, full.inFeatures) }; // a sliced layer: [out][n] x [rows][n]
        const blk = blockOf(op);
        const common = {
          ...s, ...blk, inputOffset: inputOffsetOf(n, w), gradOut: as(slot(op, 'gy'), [s.rows, s.outFeatures]), gradOutExp: slot(op, 'gyExp'),
          input: as(slot(op, 'x'), [s.rows, s.inFeatures]), weights: as(slot(op, 'w'), [s.outFeatures, s.inFeatures]), rng: slot(op, 'rng'),
        };
        if (op.kernel.endsWith('_sgd')) k.fcBackwardWeightSgd({ ...common, ...lrTables(n, 'w', w) });
        else {
          const state = slot(op, 'state');
          lqmCheck(op, state, s.outFeatures, s.inFeatures);
          k.fcBackwardWeightLqm({ ...common, ...lqm, lqmShift: lqmShiftTable(n, w), state });
        }
        break;
      }
      default:
        throw new LoweringError(`plan lowering: ${w}: no lowering for kernel ${op.kernel}`);
    }
  }
  const train = rec.calls.splice(0);

  // ---- inference: the model's forward on the same placement ------------------------
  inferring = true;
  for (const op of tg.ops) if (op.phase === 'forward') lowerForward(op, k, true);
  for (const n of inferOps.slice(g.ops.length)) lowerForwardOp(ctx, n, null).run(k); // the kept softmax
  const infer = rec.calls.splice(0);

  // ---- I/O, initial arena, trainable regions ------------------------------------------
  const gq = (index: number) => quantOf(g.tensors[index]!, 'plan I/O');
  const io = (index: number): PlanTensor => {
    const t = ctx.tensor(index, 'plan I/O');
    return { offset: t.offset, bytes: t.bytes, zeroPoint: gq(index).zeroPoint[0]!, scale: gq(index).scale[0]! };
  };
  const inputIndex = g.inputs[0]!;
  const outputIndex = sameTensors ? model.outputs[0]! : tg.logits;
  const label = trainTensor(tg.inputs[1]!);
  const metric = tg.tensors.findIndex((t) => t.role === 'metric');
  const logits = io(tg.logits);
  const init: PlanInit[] = [];
  const regions: PlanRegion[] = [];
  tg.tensors.forEach((t, i) => {
    if (!t.persistent || t.home !== 'arena') return;
    const placed = trainTensor(i);
    const kind = t.role === 'weight' ? 'weights' : t.role === 'bias' ? 'bias' : t.role === 'optimizer_state' ? 'optimizer_state' : 'rng';
    regions.push({ kind, offset: placed.offset, bytes: placed.bytes });
    if (t.role === 'weight' || t.role === 'bias') {
      const data = sourceBytes(i);
      if (!data || data.length !== t.bytes) throw new LoweringError(`plan lowering: trainable "${t.name}" has no initial values of ${t.bytes} bytes`);
      init.push({ offset: placed.offset, bytes: data.slice() });
    } else if (t.role === 'rng') {
      init.push({ offset: placed.offset, bytes: bytesOf(Int32Array.of(((o.seed ?? 1) ^ 0x5bd1e995) | 0 || 1)).slice() });
    }
    // optimizer state starts at zero: the arena is zeroed at reset
  });
  return {
    arenaBytes: Math.max(arenaTop, 16),
    flash: flash.bytes(),
    init,
    io: {
      input: { ...io(inputIndex), shape: [...g.tensors[inputIndex]!.shape] },
      label: label.offset,
      classes: logits.bytes,
      logits,
      metric: metric < 0 ? -1 : trainTensor(metric).offset,
      output: io(outputIndex),
    },
    train,
    infer,
    trainOps: train.length,
    inferOps: infer.length,
    regions,
  };
}

export interface CompiledPlan {
  compiled: CompiledTraining;
  plan: Plan;
  blob: Uint8Array;
}

// The whole compiler: model + scheme -> training graph -> arena plan -> blob.
export function compilePlan(model: Graph, o: CompileOptions & LowerOptions): CompiledPlan {
  const compiled = compileTraining(model, { ...o, lqmBits: o.lqmBits ?? o.lqm?.bits });
  const plan = lowerTraining(model, compiled, o);
  return { compiled, plan, blob: encodePlan(plan) };
}
