// Row-tiled forward of a chain of convolutions (MCUNetV2's patch-based
// inference, Lin et al. 2021, by full-width rows): an inverted-residual block
// (1x1 expansion + ReLU6, kxk depthwise + ReLU6, 1x1 projection, residual
// add) or any straight run of conv2d / depthwise / add ops is computed band by
// band of its output rows. Only a band of each intermediate tensor (the
// expansion, the depthwise output, ...) exists at a time, in one scratch
// block; the segment's inputs and its output are whole tensors.
//
// Each band runs the same C kernels on sub-tensors: a band of output rows
// [a, b) of a kxk stride-s convolution with top pad p reads the input rows
// [max(0, a*s - p), min(inH, (b-1)*s - p + k)) and is called with that many
// input rows, b - a output rows and top pad p - a*s + (first row read): the
// kernels skip out-of-image taps, so a band at the top or the bottom of the
// tensor sees exactly the padding the whole tensor sees, and an interior band
// sees none. The halo rows an intermediate band needs beyond the previous
// band are recomputed (as MCUNetV2 does), so the result is bit-identical to
// the untiled forward (host-tests/tiled-block.test.ts); recomputation costs
// MACs, which planSegment reports.
//
// ReLU masks: a step whose kernel arguments carry a mask writes the mask bits
// of its band at the band's element offset (recomputed rows write the same
// bits again), so a backward that reads masks can still follow a tiled
// forward. That needs every band to start on a byte of the mask: rows of
// w*c elements with w*c a multiple of 8.
//
// In place: the output of a segment may overlap one of its inputs when that
// input dies at the segment. Bands in order: band b writes output rows that
// the input rows still to be read by bands b, b+1, ... must not meet;
// inPlaceShift gives the smallest shift (bytes) of the input's start above
// the output's start that guarantees it, so the pair needs
// max(shift + input, output) bytes instead of input + output. Bands in
// reverse order mirror it (the output above the input). A segment of one
// depthwise op is the in-place depthwise: the dispatcher refuses a call
// whose output overlaps its input, so the op runs one output row band at a
// time with the output two input rows below its input (3x3 stride 1, one
// row per band; half a row at stride 2): no recomputation, no copy, no line
// buffer.
//
// Batch 1 only (a training step's batch). Platform-free.

import type { Tensor } from './arena.js';
import { convGeometry } from './conv-geometry.js';
import { type Graph, GraphError, type GraphOp } from './graph.js';
import type { Kernels } from './kernels.js';
import { type ForwardCall, type LoweringContext, lowerForwardOp } from './lowering.js';
import { planLifetimes } from './planner.js';

// A tensor the segment touches: [1, h, w, c] int8. External values are
// whole tensors (the segment's inputs, its output, anything read outside);
// the others exist only as bands in the scratch block.
export interface SegmentValue {
  name: string;
  tensor?: number; // the graph tensor (segmentFromGraph)
  h: number;
  w: number;
  c: number;
  external: boolean;
}

export interface WindowStep {
  kind: 'conv2d' | 'depthwise_conv2d';
  input: number; // value index
  output: number;
  kH: number;
  strideH: number;
  padH: number; // top
  macsPerRow: number; // multiply-accumulates per output row
  mask: boolean; // writes its ReLU mask
}

export interface AddStep {
  kind: 'add';
  inputs: readonly [number, number];
  output: number;
  mask: boolean;
}

export type SegmentStep = WindowStep | AddStep;

// The geometry of a segment: all a memory plan needs.
export interface SegmentShape {
  values: SegmentValue[];
  steps: SegmentStep[]; // in execution order; each value is written by at most one step
  output: number; // the last step's output (external)
}

export interface SegmentBand {
  // Rows [lo, hi) of each value this band computes (or reads, for values
  // produced outside the segment); [0, 0) when the band does not touch it.
  rows: (readonly [number, number])[];
}

export interface SegmentPlan {
  bandRows: number; // output rows per band (the last band may have fewer)
  bands: SegmentBand[];
  capacity: number[]; // rows of each banded value's buffer (0 for external values)
  offsets: number[]; // byte offset of each banded value's buffer in the scratch block (-1: external)
  scratchBytes: number;
  macs: number; // with recomputed halo rows
  untiledMacs: number; // the same ops on whole tensors
}

export class SegmentError extends GraphError {}

const rowBytes = (v: SegmentValue): number => v.w * v.c;

function stepInputs(s: SegmentStep): number[] {
  return s.kind === 'add' ? [...s.inputs] : [s.input];
}

// Input rows [lo, hi) a window step reads for its output rows [a, b).
function windowRows(s: WindowStep, inH: number, a: number, b: number): [number, number] {
  return [Math.max(0, a * s.strideH - s.padH), Math.min(inH, (b - 1) * s.strideH - s.padH + s.kH)];
}

function checkShape(shape: SegmentShape): void {
  const V = shape.values.length;
  const producer = new Array<number>(V).fill(-1);
  shape.steps.forEach((s, i) => {
    for (const v of [...stepInputs(s), s.output]) {
      if (!Number.isInteger(v) || v < 0 || v >= V) throw new SegmentError(`segment step ${i} (${s.kind}) names value ${v}; the segment has ${V}`);
    }
    for (const v of stepInputs(s)) {
      if (!shape.values[v]!.external && (producer[v]! < 0)) {
        throw new SegmentError(`segment step ${i} (${s.kind}) reads "${shape.values[v]!.name}" before any step writes it`);
      }
    }
    if (producer[s.output]! >= 0) throw new SegmentError(`segment value "${shape.values[s.output]!.name}" is written by steps ${producer[s.output]} and ${i}`);
    producer[s.output] = i;
    const o = shape.values[s.output]!;
    if (s.kind === 'add') {
      for (const v of s.inputs) {
        const x = shape.values[v]!;
        if (x.h !== o.h || x.w !== o.w || x.c !== o.c) {
          throw new SegmentError(`segment add "${o.name}": input "${x.name}" is ${x.h}x${x.w}x${x.c}, output ${o.h}x${o.w}x${o.c}`);
        }
      }
    } else {
      const x = shape.values[s.input]!;
      if (s.padH < 0 || s.padH >= s.kH || (o.h - 1) * s.strideH - s.padH > x.h - 1) {
        throw new SegmentError(`segment ${s.kind} "${o.name}": ${o.h} output rows, kernel ${s.kH}, stride ${s.strideH} and pad ${s.padH} do not fit ${x.h} input rows`);
      }
    }
  });
  const last = shape.steps.at(-1);
  if (!last || last.output !== shape.output || !shape.values[shape.output]!.external) {
    throw new SegmentError('a segment needs at least one step, and its output must be the last step\'s external output');
  }
  shape.values.forEach((v, i) => {
    if (!v.external && producer[i]! < 0) throw new SegmentError(`segment value "${v.name}" is banded but no step writes it`);
  });
}

// Band plan for `bandRows` output rows per band: the rows each band needs of
// every value (back from the output through each step's window), the band
// buffers (each sized for its largest band, placed in one scratch block by
// lifetime over the steps of one band), and the MACs.
export function planSegment(shape: SegmentShape, bandRows: number, align = 16): SegmentPlan {
  checkShape(shape);
  const out = shape.values[shape.output]!;
  if (!Number.isInteger(bandRows) || bandRows < 1) throw new SegmentError(`band height ${bandRows} must be a positive integer`);
  const B = Math.min(bandRows, out.h);
  const V = shape.values.length;
  const bands: SegmentBand[] = [];
  for (let a = 0; a < out.h; a += B) {
    const rows: [number, number][] = shape.values.map(() => [0, 0]);
    rows[shape.output] = [a, Math.min(out.h, a + B)];
    for (let i = shape.steps.length - 1; i >= 0; i--) {
      const s = shape.steps[i]!;
      const [lo, hi] = rows[s.output]!;
      if (lo >= hi) continue;
      for (const v of stepInputs(s)) {
        const need = s.kind === 'add' ? [lo, hi] : windowRows(s, shape.values[v]!.h, lo, hi);
        const r = rows[v]!;
        rows[v] = r[0] >= r[1] ? [need[0]!, need[1]!] : [Math.min(r[0], need[0]!), Math.max(r[1], need[1]!)];
      }
    }
    bands.push({ rows });
  }
  if (bands.length > 1) {
    shape.steps.forEach((s) => {
      const o = shape.values[s.output]!;
      if (s.mask && rowBytes(o) % 8) {
        throw new SegmentError(`segment step "${o.name}" writes a mask, but its rows of ${o.w}x${o.c} elements do not start on mask bytes; ` +
          'tile only where w*c is a multiple of 8');
      }
    });
  }
  const capacity = new Array<number>(V).fill(0);
  for (const b of bands) b.rows.forEach(([lo, hi], v) => (capacity[v] = Math.max(capacity[v]!, hi - lo)));
  // Band buffers by lifetime within one band: written at its step, read up to its last reader.
  const banded = shape.values.flatMap((v, i) => (v.external ? [] : [i]));
  const life = banded.map((v) => {
    const first = shape.steps.findIndex((s) => s.output === v);
    let last = first;
    shape.steps.forEach((s, i) => stepInputs(s).includes(v) && (last = Math.max(last, i)));
    return { bytes: capacity[v]! * rowBytes(shape.values[v]!), first, last };
  });
  const placed = planLifetimes(life, align);
  const offsets = new Array<number>(V).fill(-1);
  banded.forEach((v, k) => (offsets[v] = placed.offsets[k]!));
  let macs = 0, untiledMacs = 0;
  for (const s of shape.steps) {
    if (s.kind === 'add') continue;
    untiledMacs += shape.values[s.output]!.h * s.macsPerRow;
    for (const b of bands) macs += (b.rows[s.output]![1] - b.rows[s.output]![0]) * s.macsPerRow;
  }
  shape.values.forEach((v, i) => v.external && (capacity[i] = 0));
  return { bandRows: B, bands, capacity, offsets, scratchBytes: banded.length ? placed.peak : 0, macs, untiledMacs };
}

// In place: where the segment's external input `input` may start relative
// to its output's start (bytes, a multiple of align) when the two share
// memory. Bands in order ('forward'): band b writes output bytes
// [0, end_b) from the output's start, and every byte of the input that a
// band >= b reads must lie above them: the smallest such shift (>= 0, the
// output trails below the input). Bands in reverse ('reverse'): band b
// writes [start_b, ...) and every input byte a band <= b reads must lie
// below start_b: the largest such shift (the output leads above the input).
// Alternating the two keeps a chain of in-place segments from drifting.
export type BandOrder = 'forward' | 'reverse';

export function inPlaceShift(shape: SegmentShape, plan: SegmentPlan, input: number, order: BandOrder = 'forward', align = 16): number {
  const x = shape.values[input];
  if (!x || !x.external || shape.steps.some((s) => s.output === input)) {
    throw new SegmentError(`in-place: value ${input} is not an input of the segment`);
  }
  const out = shape.values[shape.output]!, rx = rowBytes(x), ry = rowBytes(out);
  const reads = plan.bands.map((b) => {
    let lo = Infinity, hi = -Infinity;
    for (const s of shape.steps) {
      const [a, e] = b.rows[s.output]!;
      if (a >= e || !stepInputs(s).includes(input)) continue;
      const [r0, r1] = s.kind === 'add' ? [a, e] : windowRows(s, x.h, a, e);
      lo = Math.min(lo, r0);
      hi = Math.max(hi, r1);
    }
    return [lo * rx, hi * rx] as const;
  });
  const n = plan.bands.length;
  if (order === 'forward') {
    let shift = 0, suffix = Infinity;
    for (let b = n - 1; b >= 0; b--) {
      suffix = Math.min(suffix, reads[b]![0]);
      shift = Math.max(shift, plan.bands[b]!.rows[shape.output]![1] * ry - suffix);
    }
    return Math.ceil(shift / align) * align;
  }
  let shift = Infinity, prefix = -Infinity;
  for (let b = 0; b < n; b++) {
    prefix = Math.max(prefix, reads[b]![1]);
    shift = Math.min(shift, plan.bands[b]!.rows[shape.output]![0] * ry - prefix);
  }
  return Math.floor(shift / align) * align;
}

// Bytes a segment's input and output need together, the input starting
// `shift` bytes above the output's start (negative: below).
export function inPlaceBytes(shape: SegmentShape, input: number, shift: number): number {
  const x = shape.values[input]!, y = shape.values[shape.output]!;
  return Math.max(shift + x.h * rowBytes(x), y.h * rowBytes(y)) - Math.min(0, shift);
}

// ---- from a Graph ----------------------------------------------------------------

// The segment of graph ops at `positions` (conv2d, depthwise_conv2d, add, in
// execution order). Values: every activation they touch; external when
// produced outside the positions, when it is the last op's output, or when
// listed in `keep` (read outside: it is written whole, band by band).
// `masks`: graph op positions whose ReLU mask the segment writes.
export function segmentFromGraph(g: Graph, positions: readonly number[], opts: { keep?: ReadonlySet<number>; masks?: ReadonlySet<number> } = {}): SegmentShape {
  const values: SegmentValue[] = [];
  const index = new Map<number, number>();
  const produced = new Set(positions.map((p) => g.ops[p]!.outputs[0]!));
  const lastOut = g.ops[positions.at(-1)!]!.outputs[0]!;
  const value = (t: number): number => {
    let i = index.get(t);
    if (i === undefined) {
      const gt = g.tensors[t]!;
      if (gt.shape.length !== 4 || gt.shape[0] !== 1) throw new SegmentError(`segment tensor "${gt.name}" is [${gt.shape}]; tiling needs [1, h, w, c]`);
      const external = !produced.has(t) || t === lastOut || (opts.keep?.has(t) ?? false);
      i = values.push({ name: gt.name, tensor: t, h: gt.shape[1]!, w: gt.shape[2]!, c: gt.shape[3]!, external }) - 1;
      index.set(t, i);
    }
    return i;
  };
  const steps: SegmentStep[] = positions.map((p) => {
    const op: GraphOp = g.ops[p]!;
    const mask = opts.masks?.has(p) ?? false;
    if (op.kind === 'add') return { kind: 'add', inputs: [value(op.inputs[0]!), value(op.inputs[1]!)], output: value(op.outputs[0]!), mask };
    if (op.kind !== 'conv2d' && op.kind !== 'depthwise_conv2d') throw new SegmentError(`operator ${op.index} (${op.kind}) cannot be tiled by rows`);
    if (op.dilationH !== 1 || op.dilationW !== 1) throw new SegmentError(`operator ${op.index}: dilation is not supported`);
    const input = value(op.inputs[0]!), output = value(op.outputs[0]!);
    const w = g.tensors[op.inputs[1]!]!.shape;
    const [kH, kW] = [w[1]!, w[2]!];
    const x = values[input]!, y = values[output]!;
    const geo = convGeometry(x.h, x.w, kH, kW, op.strideH, op.strideW, op.padding);
    if (geo.outH !== y.h || geo.outW !== y.w) throw new SegmentError(`operator ${op.index}: output [${y.h}, ${y.w}] does not match its geometry`);
    const perTap = op.kind === 'conv2d' ? x.c : 1;
    return { kind: op.kind, input, output, kH, strideH: op.strideH, padH: geo.padH, macsPerRow: y.w * y.c * kH * kW * perTap, mask };
  });
  return { values, steps, output: value(lastOut) };
}

// ---- running a segment ---------------------------------------------------------------

// The whole-tensor kernel call of each op at `positions`, as the forward
// lowering (lowering.ts) makes it in `ctx`, with the op's mask (or none):
// the calls a TiledSegment replays band by band. Only the shapes of the
// banded values' tensors matter (each band gets its own views), so `ctx`
// may give them any placement.
export function segmentCalls(ctx: LoweringContext, positions: readonly number[], mask: (position: number) => Tensor | null = () => null): ForwardCall[] {
  return positions.map((p) => {
    const op = ctx.graph.ops[p]!;
    const call = lowerForwardOp(ctx, op, mask(p)).call;
    if (!call) throw new SegmentError(`operator ${op.index} (${op.kind}) has no kernel call that runs by rows`);
    return call;
  });
}

export interface SegmentBinding {
  // The whole tensor of each external value (null for banded values).
  tensors: readonly (Tensor | null)[];
  // Per step: the kernel and its arguments for the whole tensors (as
  // lowering.ts lowers the op, segmentCalls; a depthwise op on one input
  // channel may be a conv2d call). Their input/output tensors are replaced band by band;
  // a mask, when present, is the whole mask tensor.
  calls: readonly ForwardCall[];
  scratch: Tensor | null; // at least plan.scratchBytes; null when nothing is banded
  order?: BandOrder; // default 'forward'; in place, the order inPlaceShift assumed
}

export class TiledSegment {
  constructor(readonly shape: SegmentShape, readonly plan: SegmentPlan, readonly binding: SegmentBinding) {
    const { tensors, calls, scratch } = binding;
    if (tensors.length !== shape.values.length || calls.length !== shape.steps.length) {
      throw new SegmentError(`segment binding has ${tensors.length} tensors and ${calls.length} calls; the shape has ${shape.values.length} values and ${shape.steps.length} steps`);
    }
    shape.values.forEach((v, i) => {
      const t = tensors[i];
      if (v.external && (!t || t.bytes !== v.h * rowBytes(v))) throw new SegmentError(`segment value "${v.name}" needs a whole ${v.h}x${v.w}x${v.c} tensor`);
    });
    if (plan.scratchBytes > 0 && (!scratch || scratch.bytes < plan.scratchBytes)) {
      throw new SegmentError(`segment scratch has ${scratch?.bytes ?? 0} bytes, the band plan needs ${plan.scratchBytes}`);
    }
    shape.steps.forEach((s, i) => {
      const c = calls[i]!;
      if ((s.kind === 'add') !== (c.kind === 'add')) throw new SegmentError(`segment step ${i} is ${s.kind} but its call is ${c.kind}`);
      if (!!c.args.mask !== s.mask) throw new SegmentError(`segment step ${i}: the shape ${s.mask ? 'writes' : 'writes no'} mask, the call ${c.args.mask ? 'has' : 'has no'} mask tensor`);
    });
  }

  // Rows [lo, hi) of value v as a tensor, in band b.
  private view(v: number, b: SegmentBand, lo: number, hi: number): Tensor {
    const sv = this.shape.values[v]!;
    const base = sv.external ? this.binding.tensors[v]!.offset : this.binding.scratch!.offset + this.plan.offsets[v]! + (lo - b.rows[v]![0]) * rowBytes(sv);
    const at = sv.external ? base + lo * rowBytes(sv) : base;
    return { name: `${sv.name}[${lo}:${hi}]`, dtype: 'int8', shape: [1, hi - lo, sv.w, sv.c], offset: at, bytes: (hi - lo) * rowBytes(sv) };
  }

  private maskView(mask: Tensor | null, v: number, lo: number, hi: number): Tensor | null {
    if (!mask) return null;
    const sv = this.shape.values[v]!;
    const n = (hi - lo) * rowBytes(sv);
    return { ...mask, name: `${mask.name}[${lo}:${hi}]`, shape: [Math.ceil(n / 8)], offset: mask.offset + (lo * rowBytes(sv)) / 8, bytes: Math.ceil(n / 8) };
  }

  runBand(k: Kernels, band: number): void {
    const b = this.plan.bands[band]!;
    this.shape.steps.forEach((s, i) => {
      const [a, e] = b.rows[s.output]!;
      if (a >= e) return;
      const c = this.binding.calls[i]!;
      const output = this.view(s.output, b, a, e), mask = this.maskView(c.args.mask, s.output, a, e);
      if (s.kind === 'add') {
        if (c.kind !== 'add') return;
        const [x1, x2] = s.inputs;
        k.addForward({ ...c.args, n: (e - a) * rowBytes(this.shape.values[s.output]!), input1: this.view(x1, b, a, e), input2: this.view(x2, b, a, e), output, mask });
        return;
      }
      const [lo, hi] = windowRows(s, this.shape.values[s.input]!.h, a, e);
      const geo = { inH: hi - lo, outH: e - a, padH: s.padH - a * s.strideH + lo, input: this.view(s.input, b, lo, hi), output, mask };
      if (c.kind === 'conv2d') k.conv2dForward({ ...c.args, ...geo });
      else if (c.kind === 'depthwise_conv2d') k.depthwiseConv2dForward({ ...c.args, ...geo });
    });
  }

  run(k: Kernels): void {
    const n = this.plan.bands.length;
    if (this.binding.order === 'reverse') for (let b = n - 1; b >= 0; b--) this.runBand(k, b);
    else for (let b = 0; b < n; b++) this.runBand(k, b);
  }
}
