// The one kernel interface of the TypeScript core.
//
// `Kernels` takes typed, named tensors, checks every shape against the op's
// dims (a mismatch is an Error naming the tensor and both sizes), encodes the
// call as int32 arguments and hands it to a `Dispatch`: the C core through
// Node-API or xsmc, the TypeScript reference kernels, or a trace recorder for
// the bare-metal images. All of them execute the same argument layout.

import { type Tensor, type DType, dtypeBytes, elementCount } from './arena.js';
import { Op, type OpId, opName } from './ops.js';
import type { PoolDims } from './reference/average-pool.js';
import type { AddQuantParams } from './tflite-params.js';

export interface Dispatch {
  readonly name: string;
  // Runs op on the arena; throws an Error when the core reports a status.
  call(op: OpId, args: Int32Array): void;
  // Copies bytes into the arena at offset.
  write(offset: number, bytes: Uint8Array): void;
  // Copies bytes out of the arena (not available when only recording).
  read(offset: number, length: number): Uint8Array;
  // The C plan validator (xst_plan_validate), where the Dispatch is the C
  // core: [status, section, index] for blob and an arena of arenaCapacity.
  validatePlan?(blob: Uint8Array, arenaCapacity: number): readonly [number, number, number];
  // Where the Dispatch runs whole plans in C (xst_plan_run; the XS glue):
  // validates blob as validatePlan does and, when valid, returns the plan
  // bound to this Dispatch's arena. The ops then run from the blob (the
  // plan's flash section read in place) and PlanRuntime keeps no decoded op
  // list. The blob must stay as it is while the binding is used.
  bindPlan?(blob: Uint8Array, arenaCapacity: number): PlanBinding;
}

export interface PlanBinding {
  status: readonly [number, number, number]; // as validatePlan's
  // Runs TRAIN (0) or INFER (1): -1 when every op ran, else the failed op's
  // index with its core status.
  run(which: 0 | 1): { failed: number; status: number };
}

export interface FcShape {
  rows: number;
  inFeatures: number;
  outFeatures: number;
}

export interface ChannelBlock {
  ocBegin: number;
  ocEnd: number;
  icBegin: number;
  icEnd: number;
}

export interface FcForwardArgs extends FcShape {
  inputOffset: number;
  outputOffset: number;
  actMin: number;
  actMax: number;
  input: Tensor;
  weights: Tensor;
  bias: Tensor | null;
  output: Tensor;
  mask: Tensor | null;
  multiplier: Tensor;
  shift: Tensor;
}

export interface FcBackwardInputArgs extends FcShape {
  wscaleMantissa: Tensor;
  wscaleExp: number;
  gradOut: Tensor;
  gradOutExp: Tensor;
  weights: Tensor;
  gradIn: Tensor;
  gradInExp: Tensor;
  scratch: Tensor;
}

export interface FcBackwardBiasArgs extends FcShape {
  ocBegin: number;
  ocEnd: number;
  gradOut: Tensor;
  gradBias: Tensor;
}

export interface FcBackwardWeightArgs extends FcShape, ChannelBlock {
  inputOffset: number;
  gradOut: Tensor;
  input: Tensor;
  gradWeights: Tensor;
}

export interface FcBackwardWeightSgdArgs extends FcShape, ChannelBlock {
  inputOffset: number;
  gradOut: Tensor;
  gradOutExp: Tensor;
  input: Tensor;
  lrMultiplier: Tensor;
  lrShift: Tensor;
  weights: Tensor;
  rng: Tensor;
}

export interface SgdS8UpdateArgs extends ChannelBlock {
  inFeatures: number;
  outFeatures: number;
  grad: Tensor;
  gradExp: Tensor;
  lrMultiplier: Tensor;
  lrShift: Tensor;
  weights: Tensor;
  rng: Tensor;
}

export interface SgdS32UpdateArgs {
  outFeatures: number;
  ocBegin: number;
  ocEnd: number;
  grad: Tensor;
  gradExp: Tensor;
  lrMultiplier: Tensor;
  lrShift: Tensor;
  bias: Tensor;
  rng: Tensor;
}

export interface SoftmaxXentArgs {
  classes: number;
  logits: Tensor;
  log2eScaleQ16: number;
  label: Tensor;
  grad: Tensor;
  gradExp: Tensor;
  pLabelQ16: Tensor | null;
}

// ---- depthwise conv2d (native/core/depthwise_conv2d_s8.c) ----
// input (batch, inH, inW, inC) NHWC int8, weights (1, kH, kW, outC) with
// outC = inC * depthMultiplier (oc = ic * depthMultiplier + m), output
// (batch, outH, outW, outC); padH/padW are the top/left pads.
export interface DepthwiseConv2dShape {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  depthMultiplier: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
}

export interface DepthwiseConv2dForwardArgs extends DepthwiseConv2dShape {
  inputOffset: number;
  outputOffset: number;
  actMin: number;
  actMax: number;
  input: Tensor;
  weights: Tensor;
  bias: Tensor | null;
  output: Tensor;
  mask: Tensor | null;
  multiplier: Tensor;
  shift: Tensor;
}

export interface DepthwiseConv2dBackwardInputArgs extends DepthwiseConv2dShape {
  wscaleMantissa: Tensor;
  wscaleExp: number;
  gradOut: Tensor;
  gradOutExp: Tensor;
  weights: Tensor;
  gradIn: Tensor;
  gradInExp: Tensor;
  scratch: Tensor;
}

export interface DepthwiseConv2dBackwardBiasArgs extends DepthwiseConv2dShape {
  ocBegin: number;
  ocEnd: number;
  gradOut: Tensor;
  gradBias: Tensor;
}

// Sparse update: only an output-channel range; each depthwise weight
// connects one output channel to one input channel (oc / depthMultiplier).
// gradWeights is int32 (kH, kW, ocEnd - ocBegin), the weights' layout.
export interface DepthwiseConv2dBackwardWeightArgs extends DepthwiseConv2dShape {
  ocBegin: number;
  ocEnd: number;
  inputOffset: number;
  gradOut: Tensor;
  input: Tensor;
  gradWeights: Tensor;
}

// Fused weight gradient + integer SGD per channel (op 38): for each output
// channel of the range, each tap in order, the gradient of
// depthwiseConv2dBackwardWeight and the update of sgdS8Update with the
// channel's learning rate. weights: the whole int8 (1, kH, kW, outC) tensor.
export interface DepthwiseConv2dBackwardWeightSgdArgs extends DepthwiseConv2dShape, FusedWeightUpdateTensors {
  ocBegin: number;
  ocEnd: number;
  lrMultiplier: Tensor; // int32 [outC]
  lrShift: Tensor; // int32 [outC]
}

// Scratch bytes of depthwise_conv2d_s8_backward_input (native/core).
export function depthwiseConv2dBackwardInputScratchBytes(s: DepthwiseConv2dShape): number {
  return s.batch * s.inH * s.inW * s.inC * 4 + s.inC * s.depthMultiplier * 2;
}
// ---- end depthwise conv2d ----

// Scratch bytes of fully_connected_s8_backward_input (native/core).
export function fcBackwardInputScratchBytes(s: FcShape): number {
  return s.rows * s.inFeatures * 4 + s.outFeatures * 2;
}

// ---- split weights, row-scratch input gradients (ops 33-35) ----
// A layer trained in input channels [0, split) only: wLo (out, split) in the
// arena, wHi (out, in - split) frozen in flash (null when split = in).
// Results are those of fcForward / fcBackwardInput on [wLo | wHi] and of
// depthwiseConv2dBackwardInput; the *Rows input gradients need one row of
// scratch and compute every sum twice.
export interface FcForwardSplitArgs extends Omit<FcForwardArgs, 'weights'> {
  split: number;
  wLo: Tensor;
  wHi: Tensor | null;
}

export interface FcBackwardInputRowsArgs extends Omit<FcBackwardInputArgs, 'weights'> {
  split: number;
  wLo: Tensor;
  wHi: Tensor | null;
}

export function fcBackwardInputRowsScratchBytes(s: FcShape): number {
  return s.inFeatures * 4 + s.outFeatures * 2;
}

export function depthwiseConv2dBackwardInputRowsScratchBytes(s: DepthwiseConv2dShape): number {
  return s.inW * s.inC * 4 + s.inC * s.depthMultiplier * 2;
}

// ---- saved input channels (op 36) ----
// Channels [begin, end) of an int8 activation (rows, channels), copied to
// (rows, end - begin): the part of a layer's input its sparse weight update
// reads, kept while the whole activation dies.
export interface ChannelSliceArgs {
  rows: number;
  channels: number;
  begin: number;
  end: number;
  input: Tensor;
  output: Tensor;
}

export class KernelArgumentError extends Error {}

// A 4-aligned scratch tensor of at least `needs` bytes.
function expectScratch(op: OpId, scratch: Tensor, needs: number): void {
  if (scratch.bytes < needs || scratch.offset % 4) {
    throw new KernelArgumentError(`${opName[op]}: scratch tensor "${scratch.name}" has ${scratch.bytes} bytes, needs ${needs} (4-aligned)`);
  }
}

// Weights split at input channel S: [O][S] in w_lo (the trained slice) and
// [O][I-S] in w_hi (the frozen rest), which must be given when S < I.
function expectSplitWeights(op: OpId, wLo: Tensor, wHi: Tensor | null | undefined, O: number, I: number, S: number): void {
  expectDims(op, 'split', S, 1, I);
  expectTensor(op, 'w_lo', wLo, 'int8', O * S, `${O}x${S}`);
  if (S < I || wHi) {
    if (!wHi) throw new KernelArgumentError(`${opName[op]}: split ${S} < in_features ${I} needs the w_hi tensor`);
    expectTensor(op, 'w_hi', wHi, 'int8', O * (I - S), `${O}x${I - S}`);
  }
}

function expectTensor(op: OpId, role: string, t: Tensor, dtype: DType, count: number, dims: string): void {
  const want = count * dtypeBytes[dtype];
  if (t.dtype !== dtype || t.bytes !== want || elementCount(t.shape) * dtypeBytes[t.dtype] !== t.bytes) {
    throw new KernelArgumentError(
      `${opName[op]}: ${role} tensor "${t.name}" is ${t.dtype}[${t.shape.join('x')}] (${t.bytes} bytes), ` +
        `expected ${dtype}[${dims}] (${want} bytes)`,
    );
  }
}

function expectDims(op: OpId, what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new KernelArgumentError(`${opName[op]}: ${what} is ${value}, expected an integer in [${min}, ${max}]`);
  }
}

function expectBlock(op: OpId, s: { inFeatures: number; outFeatures: number }, b: ChannelBlock): void {
  if (!(b.ocBegin >= 0 && b.ocBegin < b.ocEnd && b.ocEnd <= s.outFeatures)) {
    throw new KernelArgumentError(
      `${opName[op]}: output-channel range [${b.ocBegin}, ${b.ocEnd}) is not inside [0, ${s.outFeatures})`,
    );
  }
  if (!(b.icBegin >= 0 && b.icBegin < b.icEnd && b.icEnd <= s.inFeatures)) {
    throw new KernelArgumentError(
      `${opName[op]}: input-channel range [${b.icBegin}, ${b.icEnd}) is not inside [0, ${s.inFeatures})`,
    );
  }
}

function expectShape(op: OpId, s: FcShape): void {
  expectDims(op, 'rows', s.rows, 1, 65535);
  expectDims(op, 'in_features', s.inFeatures, 1, 65536);
  expectDims(op, 'out_features', s.outFeatures, 1, 1 << 20);
}


// ---- conv2d (native/core/conv2d_s8.c) ---------------------------------------
// NHWC activations, OHWI weights, explicit top/left padding (see
// src/core/conv-geometry.ts for SAME/VALID). Geometry rules as in xst.h.

export interface ConvShape {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padH: number; // top
  padW: number; // left
}

export interface Conv2dForwardArgs extends ConvShape {
  inputOffset: number;
  outputOffset: number;
  actMin: number;
  actMax: number;
  input: Tensor;
  weights: Tensor;
  bias: Tensor | null;
  output: Tensor;
  mask: Tensor | null;
  multiplier: Tensor;
  shift: Tensor;
}

export interface Conv2dBackwardInputArgs extends ConvShape {
  wscaleMantissa: Tensor;
  wscaleExp: number;
  gradOut: Tensor;
  gradOutExp: Tensor;
  weights: Tensor;
  gradIn: Tensor;
  gradInExp: Tensor;
  scratch: Tensor;
}

export interface Conv2dBackwardBiasArgs extends ConvShape {
  ocBegin: number;
  ocEnd: number;
  gradOut: Tensor;
  gradBias: Tensor;
}

export interface Conv2dBackwardWeightArgs extends ConvShape, ChannelBlock {
  inputOffset: number;
  gradOut: Tensor;
  input: Tensor;
  gradWeights: Tensor; // int32 (noc, kH, kW, nic)
}

// Fused weight gradient + integer SGD (op 37): the gradient of
// conv2dBackwardWeight applied at once, element by element in (c, ky, kx, i)
// order, with the update of sgdS8Update and the channel's learning rate (QAS
// folded in on the host). weights: the whole int8 (outC, kH, kW, inC) tensor.
export interface Conv2dBackwardWeightSgdArgs extends ConvShape, ChannelBlock, FusedWeightUpdateTensors {
  lrMultiplier: Tensor; // int32 [outC]
  lrShift: Tensor; // int32 [outC]
}

// What every fused conv / depthwise weight update (ops 37-40) reads and
// updates besides its optimizer's tables and state. weights: the whole int8
// tensor, (outC, kH, kW, inC) or (1, kH, kW, outC).
export interface FusedWeightUpdateTensors {
  inputOffset: number;
  gradOut: Tensor;
  gradOutExp: Tensor;
  input: Tensor;
  weights: Tensor;
  rng: Tensor;
}

// Scratch bytes of conv2d_s8_backward_input (native/core).
export function conv2dBackwardInputScratchBytes(s: ConvShape): number {
  return s.batch * s.inH * s.inW * s.inC * 4 + s.outC * 2;
}

const convDimArgs = (s: ConvShape): number[] => [
  s.batch, s.inH, s.inW, s.inC, s.outH, s.outW, s.outC, s.kH, s.kW, s.strideH, s.strideW, s.padH, s.padW,
];

function expectConvShape(op: OpId, s: ConvShape): void {
  const MAX = 1 << 24, ELEMS = 2147483647;
  for (const [what, v] of [['batch', s.batch], ['in_h', s.inH], ['in_w', s.inW], ['in_c', s.inC],
    ['out_h', s.outH], ['out_w', s.outW], ['k_h', s.kH], ['k_w', s.kW], ['stride_h', s.strideH],
    ['stride_w', s.strideW]] as const) {
    expectDims(op, what, v, 1, MAX);
  }
  expectDims(op, 'out_c', s.outC, 1, 1 << 20);
  expectDims(op, 'pad_h', s.padH, 0, s.kH - 1);
  expectDims(op, 'pad_w', s.padW, 0, s.kW - 1);
  for (const [axis, o, st, p, n] of [['out_h', s.outH, s.strideH, s.padH, s.inH], ['out_w', s.outW, s.strideW, s.padW, s.inW]] as const) {
    if ((o - 1) * st - p >= n) {
      throw new KernelArgumentError(
        `${opName[op]}: ${axis} ${o} with stride ${st} and padding ${p} puts the last window outside the input (${n}); ` +
          'compute out/pad with convGeometry()',
      );
    }
  }
  expectDims(op, 'k_h*k_w*in_c', s.kH * s.kW * s.inC, 1, 65536);
  expectDims(op, 'batch*in_h*in_w*in_c', s.batch * s.inH * s.inW * s.inC, 1, ELEMS);
  expectDims(op, 'batch*out_h*out_w*out_c', s.batch * s.outH * s.outW * s.outC, 1, ELEMS);
  expectDims(op, 'out_c*k_h*k_w*in_c', s.outC * s.kH * s.kW * s.inC, 1, ELEMS);
}

// ---- depthwise conv2d shape checks (the C kernel's limits) ----
function expectDwShape(op: OpId, s: DepthwiseConv2dShape): void {
  const dims: [string, number][] = [
    ['batch', s.batch], ['in_h', s.inH], ['in_w', s.inW], ['in_c', s.inC], ['out_h', s.outH], ['out_w', s.outW],
    ['depth_multiplier', s.depthMultiplier], ['k_h', s.kH], ['k_w', s.kW], ['stride_h', s.strideH],
    ['stride_w', s.strideW],
  ];
  for (const [what, v] of dims) expectDims(op, what, v, 1, 1 << 24);
  expectDims(op, 'pad_h', s.padH, 0, s.kH - 1);
  expectDims(op, 'pad_w', s.padW, 0, s.kW - 1);
  expectDims(op, 'k_h*k_w', s.kH * s.kW, 1, 65536);
  expectDims(op, 'out_c (in_c*depth_multiplier)', s.inC * s.depthMultiplier, 1, 1 << 24);
  for (const [axis, out, stride, pad, inn] of [['h', s.outH, s.strideH, s.padH, s.inH], ['w', s.outW, s.strideW, s.padW, s.inW]] as const) {
    const last = (out - 1) * stride - pad;
    if (last > inn - 1) {
      throw new KernelArgumentError(
        `${opName[op]}: the last output window along ${axis} starts at ${last} = (out_${axis}-1)*stride_${axis}-pad_${axis}, ` +
          `outside the input (in_${axis} = ${inn}); out_${axis} ${out} is too large for this geometry`,
      );
    }
  }
}

function expectDwOcRange(op: OpId, s: DepthwiseConv2dShape, ocBegin: number, ocEnd: number): void {
  const oc = s.inC * s.depthMultiplier;
  if (!(Number.isInteger(ocBegin) && Number.isInteger(ocEnd) && ocBegin >= 0 && ocBegin < ocEnd && ocEnd <= oc)) {
    throw new KernelArgumentError(`${opName[op]}: output-channel range [${ocBegin}, ${ocEnd}) is not inside [0, ${oc})`);
  }
}

function dwDimArgs(s: DepthwiseConv2dShape): number[] {
  return [s.batch, s.inH, s.inW, s.inC, s.outH, s.outW, s.depthMultiplier, s.kH, s.kW, s.strideH, s.strideW,
    s.padH, s.padW];
}
// ---- end depthwise conv2d shape checks ----

const off = (t: Tensor | null): number => (t ? t.offset : -1);
// ---- average pool, global mean, add, softmax (native/core/average_pool_s8.c,
// add_s8.c, softmax_s8.c) ----

// A pooling window sweep over NHWC int8 (TFLite PoolParams, explicit
// top/left padding: SAME/VALID become padH/padW on the host).
export type PoolShape = PoolDims;

export interface AvgPoolForwardArgs extends PoolShape {
  actMin: number;
  actMax: number;
  input: Tensor;
  output: Tensor;
  mask: Tensor | null;
}

export interface AvgPoolBackwardArgs extends PoolShape {
  gradOut: Tensor;
  gradOutExp: Tensor;
  gradIn: Tensor;
  gradInExp: Tensor;
  scratch: Tensor;
}

export interface MeanForwardArgs {
  batches: number;
  h: number;
  w: number;
  channels: number;
  inputZeroPoint: number;
  multiplier: number;
  shift: number;
  outputZeroPoint: number;
  input: Tensor;
  output: Tensor;
}

export interface AddForwardArgs extends AddQuantParams {
  n: number;
  actMin: number;
  actMax: number;
  input1: Tensor;
  input2: Tensor;
  output: Tensor;
  mask: Tensor | null;
}

export interface GradAddArgs {
  n: number;
  a: Tensor;
  aExp: Tensor;
  b: Tensor;
  bExp: Tensor;
  output: Tensor;
  outputExp: Tensor;
}

export interface SoftmaxForwardArgs {
  rows: number;
  depth: number;
  inputMultiplier: number;
  inputLeftShift: number;
  diffMin: number;
  input: Tensor;
  output: Tensor;
}

// Scratch bytes of average_pool_s8_backward (native/core).
export function avgPoolBackwardScratchBytes(s: PoolShape): number {
  return s.batches * s.inH * s.inW * s.channels * 4;
}

// The same checks as the C core (average_pool_s8.c check_dims): every
// window holds an in-image tap, the window area is at most 65536.
function expectPoolShape(op: OpId, s: PoolShape): void {
  const MAX = 1 << 24;
  expectDims(op, 'batches', s.batches, 1, MAX);
  expectDims(op, 'in_h', s.inH, 1, MAX);
  expectDims(op, 'in_w', s.inW, 1, MAX);
  expectDims(op, 'channels', s.channels, 1, MAX);
  expectDims(op, 'filter_h', s.filterH, 1, MAX);
  expectDims(op, 'filter_w', s.filterW, 1, Math.floor(65536 / s.filterH));
  expectDims(op, 'stride_h', s.strideH, 1, MAX);
  expectDims(op, 'stride_w', s.strideW, 1, MAX);
  expectDims(op, 'pad_h', s.padH, 0, s.filterH - 1);
  expectDims(op, 'pad_w', s.padW, 0, s.filterW - 1);
  // the last window must start inside the image
  expectDims(op, 'out_h', s.outH, 1, Math.floor((s.inH - 1 + s.padH) / s.strideH) + 1);
  expectDims(op, 'out_w', s.outW, 1, Math.floor((s.inW - 1 + s.padW) / s.strideW) + 1);
}

const poolArgs = (s: PoolShape): number[] => [s.batches, s.inH, s.inW, s.channels, s.outH, s.outW, s.filterH,
  s.filterW, s.strideH, s.strideW, s.padH, s.padW];

// ---- end of average pool, global mean, add, softmax ----



// ---- log-quantized momentum (native/core/lqm_s8.c, ops 24-26) ----
// LQM scalars (see src/core/reference/lqm.ts and xst.h): state bits per
// parameter, momentum exponent window [emin, emax] in weight LSBs, decay shift.
export interface LqmSettings {
  bits: number;
  emin: number;
  emax: number;
  decay: number;
}

export interface LqmS8UpdateArgs extends ChannelBlock, LqmSettings {
  inFeatures: number;
  outFeatures: number;
  grad: Tensor; // int32 (noc, nic)
  gradExp: Tensor;
  lqmShift: Tensor; // int32 [out]: eta and the QAS factor as one exponent
  state: Tensor; // uint8 [ceil(bits*out*in/8)]
  weights: Tensor;
  rng: Tensor;
}

export interface FcBackwardWeightLqmArgs extends FcShape, ChannelBlock, LqmSettings {
  inputOffset: number;
  gradOut: Tensor;
  gradOutExp: Tensor;
  input: Tensor;
  lqmShift: Tensor;
  state: Tensor;
  weights: Tensor;
  rng: Tensor;
}

// Op 26: the same with an int16 master copy, master = 256 w + residual in
// 1/256 LSB (native/core/xst.h); w, the int8 weights the forward reads, stays
// round(master / 256). residual: int8 [out, in], zeros = master exactly w.
export interface FcBackwardWeightLqm16Args extends FcBackwardWeightLqmArgs {
  residual: Tensor;
}

// Ops 39-40: the fused conv / depthwise weight gradient of ops 37-38 with
// the update of lqmS8Update (element order as ops 37-38). state: the packed
// momentum of the whole weight tensor, one field per weight at the weight's
// index (lqmStateBytes(bits, outC, kH*kW*inC), depthwise (bits, outC, kH*kW)).
interface LqmUpdateTensors extends LqmSettings {
  lqmShift: Tensor; // int32 [outC]: eta and the QAS factor as one exponent
  state: Tensor;
}

export interface Conv2dBackwardWeightLqmArgs extends ConvShape, ChannelBlock, FusedWeightUpdateTensors, LqmUpdateTensors {}

export interface DepthwiseConv2dBackwardWeightLqmArgs extends DepthwiseConv2dShape, FusedWeightUpdateTensors, LqmUpdateTensors {
  ocBegin: number;
  ocEnd: number;
}

// Bytes of the packed LQM state of an (out, in) weight tensor.
export function lqmStateBytes(bits: number, outFeatures: number, inFeatures: number): number {
  return Math.ceil((bits * outFeatures * inFeatures) / 8);
}

function expectLqm(op: OpId, p: LqmSettings): void {
  expectDims(op, 'bits', p.bits, 2, 5);
  expectDims(op, 'emin', p.emin, -24, 0);
  expectDims(op, `emax (window of a ${p.bits}-bit state from emin ${p.emin})`, p.emax, p.emin,
    Math.min(6, p.emin + 2 ** (p.bits - 1) - 2));
  expectDims(op, 'decay', p.decay, 0, 15);
}

function expectLqmState(op: OpId, p: LqmSettings, state: Tensor, out: number, inF: number): void {
  const n = lqmStateBytes(p.bits, out, inF);
  if (state.bytes !== n) {
    throw new KernelArgumentError(
      `${opName[op]}: state tensor "${state.name}" has ${state.bytes} bytes, expected ${n} ` +
        `(${p.bits} bits x ${out}x${inF} parameters)`,
    );
  }
}

function expectResidual(op: OpId, residual: Tensor, weights: Tensor, state: Tensor, out: number, inF: number): void {
  const n = out * inF;
  if (residual.dtype !== 'int8' || residual.bytes !== n || elementCount(residual.shape) !== n) {
    throw new KernelArgumentError(
      `${opName[op]}: residual tensor "${residual.name}" is ${residual.dtype}[${residual.shape.join('x')}] ` +
        `(${residual.bytes} bytes), expected int8[${out}x${inF}] (${n} bytes: one low byte per weight, ` +
        `master = 256 w + residual)`,
    );
  }
  for (const [role, t] of [['weights', weights], ['state', state]] as const) {
    if (residual.offset < t.offset + t.bytes && t.offset < residual.offset + residual.bytes) {
      throw new KernelArgumentError(
        `${opName[op]}: residual tensor "${residual.name}" [${residual.offset}, ${residual.offset + residual.bytes}) ` +
          `overlaps the ${role} tensor "${t.name}" [${t.offset}, ${t.offset + t.bytes}); the op writes both`,
      );
    }
  }
}
// ---- end of log-quantized momentum ----
// ---- optimizer baselines (native/core/optim_f32.c, optim_s16.c) ----
// fp32: float32 parameter and state vectors of n elements, hyper-parameters
// passed as float32 (their bits travel in int32 args). int16: parameters
// real = q * 2^paramExp, gradient int32 + exponent cell, lr as Q31
// multiplier + shift, stochastic rounding with the xorshift32 cell.

export interface SgdF32UpdateArgs {
  n: number;
  lr: number;
  grad: Tensor; // float32[n]
  param: Tensor; // float32[n], updated in place
}

export interface MomentumF32UpdateArgs extends SgdF32UpdateArgs {
  momentum: number;
  velocity: Tensor; // float32[n]
}

export interface AdamF32UpdateArgs extends SgdF32UpdateArgs {
  beta1: number;
  beta2: number;
  eps: number;
  m: Tensor; // float32[n]
  v: Tensor; // float32[n]
  betaPowers: Tensor; // float32[2]: beta1^t, beta2^t (1, 1 before the first step)
}

export interface S16OptimHyper {
  paramExp: number; // [-64, 64]
  stateExp: number; // velocity exponent (momentum), [-64, 64]
  lrMultiplier: number; // Q31 >= 0
  lrShift: number; // [-62, 62]
  momentumQ15: number; // [0, 32767]
}

export interface SgdS16UpdateArgs {
  n: number;
  paramExp: number;
  lrMultiplier: number;
  lrShift: number;
  grad: Tensor; // int32[n]
  gradExp: Tensor; // cell
  param: Tensor; // int16[n]
  rng: Tensor; // cell
}

export interface MomentumS16UpdateArgs extends SgdS16UpdateArgs {
  velocityExp: number;
  momentumQ15: number;
  velocity: Tensor; // int16[n]
}

// A hyper-parameter as the C receives it (float32): finite and in range.
export function checkF32Hyper(op: string, name: string, v: number, min = -Infinity, max = Infinity, maxOpen = false): void {
  const x = Math.fround(v);
  if (typeof v !== 'number' || !Number.isFinite(x) || x < min || (maxOpen ? x >= max : x > max)) {
    const range = min === -Infinity ? 'a finite float32' : `a float32 in [${min}, ${max}${maxOpen ? ')' : ']'}`;
    throw new KernelArgumentError(`${op}: ${name} is ${v}${x !== v ? ` (float32 ${x})` : ''}, expected ${range}`);
  }
}

export function checkS16Hyper(op: string, p: S16OptimHyper): void {
  const int = (name: string, v: number, lo: number, hi: number) => {
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new KernelArgumentError(`${op}: ${name} is ${v}, expected an integer in [${lo}, ${hi}]`);
    }
  };
  int('param_exp', p.paramExp, -64, 64);
  int('state_exp', p.stateExp, -64, 64);
  int('lr_multiplier', p.lrMultiplier, 0, 2147483647);
  int('lr_shift', p.lrShift, -62, 62);
  int('momentum_q15', p.momentumQ15, 0, 32767);
}

// The int32 arg carrying float32 v. (A fresh buffer per call: module-level
// objects are frozen when Moddable preloads src/core.)
export function f32Arg(v: number): number {
  return new Int32Array(Float32Array.of(v).buffer)[0]!;
}
// ---- end optimizer baselines (types) ----

// The part every int8 forward with a fused activation shares (FC, conv2d,
// depthwise): bias, output, mask and the per-channel requantisation tables
// are checked, then the argument tail they all pass in the same order.
interface ForwardTail {
  inputOffset: number;
  outputOffset: number;
  actMin: number;
  actMax: number;
  input: Tensor;
  weights: Tensor;
  bias: Tensor | null;
  output: Tensor;
  mask: Tensor | null;
  multiplier: Tensor;
  shift: Tensor;
}

function forwardTail(op: OpId, a: ForwardTail, channels: number, outputs: number, outDims: string): number[] {
  const O = channels, Y = outputs;
  if (a.bias) expectTensor(op, 'bias', a.bias, 'int32', O, `${O}`);
  expectTensor(op, 'output', a.output, 'int8', Y, outDims);
  if (a.mask) expectTensor(op, 'mask', a.mask, 'uint8', Math.ceil(Y / 8), `${Math.ceil(Y / 8)}`);
  expectTensor(op, 'multiplier', a.multiplier, 'int32', O, `${O}`);
  expectTensor(op, 'shift', a.shift, 'int32', O, `${O}`);
  expectDims(op, 'input_offset', a.inputOffset, -127, 128);
  expectDims(op, 'output_offset', a.outputOffset, -128, 127);
  expectDims(op, 'act_min', a.actMin, -128, 127);
  expectDims(op, 'act_max', a.actMax, a.actMin, 127);
  return [a.inputOffset, a.outputOffset, a.actMin, a.actMax, a.input.offset, a.weights.offset, off(a.bias),
    a.output.offset, off(a.mask), a.multiplier.offset, a.shift.offset];
}

export class Kernels {
  constructor(readonly dispatch: Dispatch) {}

  write(t: Tensor, bytes: Uint8Array): void {
    if (bytes.length !== t.bytes) {
      throw new KernelArgumentError(`write: tensor "${t.name}" has ${t.bytes} bytes, got ${bytes.length}`);
    }
    this.dispatch.write(t.offset, bytes);
  }

  writeInt32(t: Tensor, values: ArrayLike<number>): void {
    const v = Int32Array.from(values);
    this.write(t, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }

  writeInt16(t: Tensor, values: ArrayLike<number>): void {
    const v = Int16Array.from(values);
    this.write(t, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }

  read(t: Tensor): Uint8Array {
    return this.dispatch.read(t.offset, t.bytes);
  }

  readInt8(t: Tensor): Int8Array {
    const b = this.read(t);
    return new Int8Array(b.buffer, b.byteOffset, b.byteLength);
  }

  readInt32(t: Tensor): Int32Array {
    const b = this.read(t).slice();
    return new Int32Array(b.buffer, 0, b.byteLength >> 2);
  }

  fcForward(a: FcForwardArgs): void {
    const op = Op.FcForward;
    expectShape(op, a);
    const { rows: R, inFeatures: I, outFeatures: O } = a;
    expectTensor(op, 'input', a.input, 'int8', R * I, `${R}x${I}`);
    expectTensor(op, 'weights', a.weights, 'int8', O * I, `${O}x${I}`);
    this.dispatch.call(op, Int32Array.of(R, I, O, ...forwardTail(op, a, O, R * O, `${R}x${O}`)));
  }

  fcBackwardInput(a: FcBackwardInputArgs): void {
    const op = Op.FcBackwardInput;
    expectShape(op, a);
    const { rows: R, inFeatures: I, outFeatures: O } = a;
    expectTensor(op, 'wscale mantissa', a.wscaleMantissa, 'int16', O, `${O}`);
    expectTensor(op, 'grad_out', a.gradOut, 'int8', R * O, `${R}x${O}`);
    expectTensor(op, 'grad_out exponent', a.gradOutExp, 'int32', 1, '1');
    expectTensor(op, 'weights', a.weights, 'int8', O * I, `${O}x${I}`);
    expectTensor(op, 'grad_in', a.gradIn, 'int8', R * I, `${R}x${I}`);
    expectTensor(op, 'grad_in exponent', a.gradInExp, 'int32', 1, '1');
    expectScratch(op, a.scratch, fcBackwardInputScratchBytes(a));
    expectDims(op, 'wscale exponent', a.wscaleExp, -64, 64);
    this.dispatch.call(
      op,
      Int32Array.of(R, I, O, a.wscaleMantissa.offset, a.wscaleExp, a.gradOut.offset, a.gradOutExp.offset,
        a.weights.offset, a.gradIn.offset, a.gradInExp.offset, a.scratch.offset),
    );
  }

  fcForwardSplit(a: FcForwardSplitArgs): void {
    const op = Op.FcForwardSplit;
    expectShape(op, a);
    const { rows: R, inFeatures: I, outFeatures: O, split: S } = a;
    expectTensor(op, 'input', a.input, 'int8', R * I, `${R}x${I}`);
    expectSplitWeights(op, a.wLo, a.wHi, O, I, S);
    const tail = forwardTail(op, { ...a, weights: a.wLo }, O, R * O, `${R}x${O}`);
    // forwardTail: offsets, acts, in, w, bias, out, mask, multiplier, shift
    this.dispatch.call(op, Int32Array.of(R, I, O, S, ...tail.slice(0, 5), a.wLo.offset, S < I ? a.wHi!.offset : -1, ...tail.slice(6)));
  }

  fcBackwardInputRows(a: FcBackwardInputRowsArgs): void {
    const op = Op.FcBackwardInputRows;
    expectShape(op, a);
    const { rows: R, inFeatures: I, outFeatures: O, split: S } = a;
    expectTensor(op, 'wscale mantissa', a.wscaleMantissa, 'int16', O, `${O}`);
    expectTensor(op, 'grad_out', a.gradOut, 'int8', R * O, `${R}x${O}`);
    expectTensor(op, 'grad_out exponent', a.gradOutExp, 'int32', 1, '1');
    expectSplitWeights(op, a.wLo, a.wHi, O, I, S);
    expectTensor(op, 'grad_in', a.gradIn, 'int8', R * I, `${R}x${I}`);
    expectTensor(op, 'grad_in exponent', a.gradInExp, 'int32', 1, '1');
    expectScratch(op, a.scratch, fcBackwardInputRowsScratchBytes(a));
    expectDims(op, 'wscale exponent', a.wscaleExp, -64, 64);
    this.dispatch.call(op, Int32Array.of(R, I, O, S, a.wscaleMantissa.offset, a.wscaleExp, a.gradOut.offset, a.gradOutExp.offset,
      a.wLo.offset, S < I ? a.wHi!.offset : -1, a.gradIn.offset, a.gradInExp.offset, a.scratch.offset));
  }

  fcBackwardBias(a: FcBackwardBiasArgs): void {
    const op = Op.FcBackwardBias;
    expectShape(op, a);
    expectBlock(op, a, { ocBegin: a.ocBegin, ocEnd: a.ocEnd, icBegin: 0, icEnd: a.inFeatures });
    const n = a.ocEnd - a.ocBegin;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', a.rows * a.outFeatures, `${a.rows}x${a.outFeatures}`);
    expectTensor(op, 'grad_bias', a.gradBias, 'int32', n, `${n}`);
    this.dispatch.call(
      op,
      Int32Array.of(a.rows, a.inFeatures, a.outFeatures, a.ocBegin, a.ocEnd, a.gradOut.offset, a.gradBias.offset),
    );
  }

  fcBackwardWeight(a: FcBackwardWeightArgs): void {
    const op = Op.FcBackwardWeight;
    expectShape(op, a);
    expectBlock(op, a, a);
    const { rows: R, inFeatures: I, outFeatures: O } = a;
    const noc = a.ocEnd - a.ocBegin, nic = a.icEnd - a.icBegin;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', R * O, `${R}x${O}`);
    expectTensor(op, 'input', a.input, 'int8', R * I, `${R}x${I}`);
    expectTensor(op, 'grad_weights', a.gradWeights, 'int32', noc * nic, `${noc}x${nic}`);
    expectDims(op, 'input_offset', a.inputOffset, -127, 128);
    this.dispatch.call(
      op,
      Int32Array.of(R, I, O, a.ocBegin, a.ocEnd, a.icBegin, a.icEnd, a.inputOffset, a.gradOut.offset,
        a.input.offset, a.gradWeights.offset),
    );
  }

  fcBackwardWeightSgd(a: FcBackwardWeightSgdArgs): void {
    const op = Op.FcBackwardWeightSgd;
    expectShape(op, a);
    expectBlock(op, a, a);
    const { rows: R, inFeatures: I, outFeatures: O } = a;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', R * O, `${R}x${O}`);
    expectTensor(op, 'grad_out exponent', a.gradOutExp, 'int32', 1, '1');
    expectTensor(op, 'input', a.input, 'int8', R * I, `${R}x${I}`);
    expectTensor(op, 'lr multiplier', a.lrMultiplier, 'int32', O, `${O}`);
    expectTensor(op, 'lr shift', a.lrShift, 'int32', O, `${O}`);
    expectTensor(op, 'weights', a.weights, 'int8', O * I, `${O}x${I}`);
    expectTensor(op, 'rng state', a.rng, 'int32', 1, '1');
    expectDims(op, 'input_offset', a.inputOffset, -127, 128);
    this.dispatch.call(
      op,
      Int32Array.of(R, I, O, a.ocBegin, a.ocEnd, a.icBegin, a.icEnd, a.inputOffset, a.gradOut.offset,
        a.gradOutExp.offset, a.input.offset, a.lrMultiplier.offset, a.lrShift.offset, a.weights.offset,
        a.rng.offset),
    );
  }

  sgdS8Update(a: SgdS8UpdateArgs): void {
    const op = Op.SgdS8Update;
    expectDims(op, 'in_features', a.inFeatures, 1, 1 << 24);
    expectDims(op, 'out_features', a.outFeatures, 1, 1 << 24);
    expectBlock(op, a, a);
    const noc = a.ocEnd - a.ocBegin, nic = a.icEnd - a.icBegin;
    expectTensor(op, 'grad', a.grad, 'int32', noc * nic, `${noc}x${nic}`);
    expectTensor(op, 'grad exponent', a.gradExp, 'int32', 1, '1');
    expectTensor(op, 'lr multiplier', a.lrMultiplier, 'int32', a.outFeatures, `${a.outFeatures}`);
    expectTensor(op, 'lr shift', a.lrShift, 'int32', a.outFeatures, `${a.outFeatures}`);
    expectTensor(op, 'weights', a.weights, 'int8', a.outFeatures * a.inFeatures, `${a.outFeatures}x${a.inFeatures}`);
    expectTensor(op, 'rng state', a.rng, 'int32', 1, '1');
    this.dispatch.call(
      op,
      Int32Array.of(a.inFeatures, a.outFeatures, a.ocBegin, a.ocEnd, a.icBegin, a.icEnd, a.grad.offset,
        a.gradExp.offset, a.lrMultiplier.offset, a.lrShift.offset, a.weights.offset, a.rng.offset),
    );
  }

  sgdS32Update(a: SgdS32UpdateArgs): void {
    const op = Op.SgdS32Update;
    expectDims(op, 'out_features', a.outFeatures, 1, 1 << 24);
    expectBlock(op, { inFeatures: 1, outFeatures: a.outFeatures }, { ocBegin: a.ocBegin, ocEnd: a.ocEnd, icBegin: 0, icEnd: 1 });
    const n = a.ocEnd - a.ocBegin;
    expectTensor(op, 'grad', a.grad, 'int32', n, `${n}`);
    expectTensor(op, 'grad exponent', a.gradExp, 'int32', 1, '1');
    expectTensor(op, 'lr multiplier', a.lrMultiplier, 'int32', a.outFeatures, `${a.outFeatures}`);
    expectTensor(op, 'lr shift', a.lrShift, 'int32', a.outFeatures, `${a.outFeatures}`);
    expectTensor(op, 'bias', a.bias, 'int32', a.outFeatures, `${a.outFeatures}`);
    expectTensor(op, 'rng state', a.rng, 'int32', 1, '1');
    this.dispatch.call(
      op,
      Int32Array.of(a.outFeatures, a.ocBegin, a.ocEnd, a.grad.offset, a.gradExp.offset, a.lrMultiplier.offset,
        a.lrShift.offset, a.bias.offset, a.rng.offset),
    );
  }

  // ---- log-quantized momentum (ops 24-26) ----
  lqmS8Update(a: LqmS8UpdateArgs): void {
    const op = Op.LqmS8Update;
    expectDims(op, 'in_features', a.inFeatures, 1, 1 << 24);
    expectDims(op, 'out_features', a.outFeatures, 1, 1 << 24);
    expectBlock(op, a, a);
    expectLqm(op, a);
    const noc = a.ocEnd - a.ocBegin, nic = a.icEnd - a.icBegin;
    expectTensor(op, 'grad', a.grad, 'int32', noc * nic, `${noc}x${nic}`);
    expectTensor(op, 'grad exponent', a.gradExp, 'int32', 1, '1');
    expectTensor(op, 'lqm shift', a.lqmShift, 'int32', a.outFeatures, `${a.outFeatures}`);
    expectLqmState(op, a, a.state, a.outFeatures, a.inFeatures);
    expectTensor(op, 'weights', a.weights, 'int8', a.outFeatures * a.inFeatures, `${a.outFeatures}x${a.inFeatures}`);
    expectTensor(op, 'rng state', a.rng, 'int32', 1, '1');
    this.dispatch.call(
      op,
      Int32Array.of(a.inFeatures, a.outFeatures, a.ocBegin, a.ocEnd, a.icBegin, a.icEnd, a.grad.offset,
        a.gradExp.offset, a.lqmShift.offset, a.bits, a.emin, a.emax, a.decay, a.state.offset, a.state.bytes,
        a.weights.offset, a.rng.offset),
    );
  }

  fcBackwardWeightLqm(a: FcBackwardWeightLqmArgs): void {
    const op = Op.FcBackwardWeightLqm;
    this.dispatch.call(op, Int32Array.from([...this.fcLqmArgs(op, a), a.rng.offset]));
  }

  // LQM with an int16 master copy (op 26): the checks and arguments of op 25
  // plus the residual tensor.
  fcBackwardWeightLqm16(a: FcBackwardWeightLqm16Args): void {
    const op = Op.FcBackwardWeightLqm16;
    const args = this.fcLqmArgs(op, a);
    expectResidual(op, a.residual, a.weights, a.state, a.outFeatures, a.inFeatures);
    this.dispatch.call(op, Int32Array.from([...args, a.residual.offset, a.rng.offset]));
  }

  // Ops 25-26: the checks and the arguments up to the weights.
  private fcLqmArgs(op: OpId, a: FcBackwardWeightLqmArgs): number[] {
    expectShape(op, a);
    expectBlock(op, a, a);
    expectLqm(op, a);
    const { rows: R, inFeatures: I, outFeatures: O } = a;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', R * O, `${R}x${O}`);
    expectTensor(op, 'grad_out exponent', a.gradOutExp, 'int32', 1, '1');
    expectTensor(op, 'input', a.input, 'int8', R * I, `${R}x${I}`);
    expectTensor(op, 'lqm shift', a.lqmShift, 'int32', O, `${O}`);
    expectLqmState(op, a, a.state, O, I);
    expectTensor(op, 'weights', a.weights, 'int8', O * I, `${O}x${I}`);
    expectTensor(op, 'rng state', a.rng, 'int32', 1, '1');
    expectDims(op, 'input_offset', a.inputOffset, -127, 128);
    return [R, I, O, a.ocBegin, a.ocEnd, a.icBegin, a.icEnd, a.inputOffset, a.gradOut.offset, a.gradOutExp.offset,
      a.input.offset, a.lqmShift.offset, a.bits, a.emin, a.emax, a.decay, a.state.offset, a.state.bytes,
      a.weights.offset];
  }
  // ---- end of log-quantized momentum ----

  channelSlice(a: ChannelSliceArgs): void {
    const op = Op.ChannelSlice;
    expectDims(op, 'rows', a.rows, 1, 1 << 24);
    expectDims(op, 'channels', a.channels, 1, 1 << 24);
    if (!(Number.isInteger(a.begin) && Number.isInteger(a.end) && a.begin >= 0 && a.begin < a.end && a.end <= a.channels)) {
      throw new KernelArgumentError(`${opName[op]}: channel range [${a.begin}, ${a.end}) is not inside [0, ${a.channels})`);
    }
    const n = a.end - a.begin;
    expectTensor(op, 'input', a.input, 'int8', a.rows * a.channels, `${a.rows}x${a.channels}`);
    expectTensor(op, 'output', a.output, 'int8', a.rows * n, `${a.rows}x${n}`);
    this.dispatch.call(op, Int32Array.of(a.rows, a.channels, a.begin, a.end, a.input.offset, a.output.offset));
  }

  activationBackward(n: number, mask: Tensor, grad: Tensor): void {
    const op = Op.ActivationBackward;
    expectDims(op, 'n', n, 1, 1 << 24);
    expectTensor(op, 'mask', mask, 'uint8', Math.ceil(n / 8), `${Math.ceil(n / 8)}`);
    expectTensor(op, 'grad', grad, 'int8', n, `${n}`);
    this.dispatch.call(op, Int32Array.of(n, mask.offset, grad.offset));
  }

  softmaxXentBackward(a: SoftmaxXentArgs): void {
    const op = Op.SoftmaxXentBackward;
    expectDims(op, 'classes', a.classes, 1, 128);
    expectDims(op, 'log2e_scale_q16', a.log2eScaleQ16, 1, 1 << 23);
    expectTensor(op, 'logits', a.logits, 'int8', a.classes, `${a.classes}`);
    expectTensor(op, 'label', a.label, 'int32', 1, '1');
    expectTensor(op, 'grad', a.grad, 'int8', a.classes, `${a.classes}`);
    expectTensor(op, 'grad exponent', a.gradExp, 'int32', 1, '1');
    if (a.pLabelQ16) expectTensor(op, 'p_label', a.pLabelQ16, 'int32', 1, '1');
    this.dispatch.call(
      op,
      Int32Array.of(a.classes, a.logits.offset, a.log2eScaleQ16, a.label.offset, a.grad.offset, a.gradExp.offset,
        off(a.pLabelQ16)),
    );
  }

  // ---- conv2d ----------------------------------------------------------------

  conv2dBackwardInputScratchBytes(s: ConvShape): number {
    return conv2dBackwardInputScratchBytes(s);
  }

  conv2dForward(a: Conv2dForwardArgs): void {
    const op = Op.Conv2dForward;
    expectConvShape(op, a);
    const X = a.batch * a.inH * a.inW * a.inC, Y = a.batch * a.outH * a.outW * a.outC, O = a.outC;
    expectTensor(op, 'input', a.input, 'int8', X, `${a.batch}x${a.inH}x${a.inW}x${a.inC}`);
    expectTensor(op, 'weights', a.weights, 'int8', O * a.kH * a.kW * a.inC, `${O}x${a.kH}x${a.kW}x${a.inC}`);
    this.dispatch.call(op, Int32Array.of(...convDimArgs(a), ...forwardTail(op, a, O, Y, `${a.batch}x${a.outH}x${a.outW}x${O}`)));
  }

  conv2dBackwardInput(a: Conv2dBackwardInputArgs): void {
    const op = Op.Conv2dBackwardInput;
    expectConvShape(op, a);
    const O = a.outC;
    expectDims(op, 'out_c*ceil(k_h/stride_h)*ceil(k_w/stride_w)',
      O * Math.ceil(a.kH / a.strideH) * Math.ceil(a.kW / a.strideW), 1, 1 << 24);
    expectTensor(op, 'wscale mantissa', a.wscaleMantissa, 'int16', O, `${O}`);
    expectTensor(op, 'grad_out', a.gradOut, 'int8', a.batch * a.outH * a.outW * O, `${a.batch}x${a.outH}x${a.outW}x${O}`);
    expectTensor(op, 'grad_out exponent', a.gradOutExp, 'int32', 1, '1');
    expectTensor(op, 'weights', a.weights, 'int8', O * a.kH * a.kW * a.inC, `${O}x${a.kH}x${a.kW}x${a.inC}`);
    expectTensor(op, 'grad_in', a.gradIn, 'int8', a.batch * a.inH * a.inW * a.inC, `${a.batch}x${a.inH}x${a.inW}x${a.inC}`);
    expectTensor(op, 'grad_in exponent', a.gradInExp, 'int32', 1, '1');
    expectScratch(op, a.scratch, conv2dBackwardInputScratchBytes(a));
    expectDims(op, 'wscale exponent', a.wscaleExp, -64, 64);
    this.dispatch.call(
      op,
      Int32Array.of(...convDimArgs(a), a.wscaleMantissa.offset, a.wscaleExp, a.gradOut.offset, a.gradOutExp.offset,
        a.weights.offset, a.gradIn.offset, a.gradInExp.offset, a.scratch.offset),
    );
  }

  conv2dBackwardBias(a: Conv2dBackwardBiasArgs): void {
    const op = Op.Conv2dBackwardBias;
    expectConvShape(op, a);
    expectDims(op, 'batch*out_h*out_w', a.batch * a.outH * a.outW, 1, 1 << 23);
    expectBlock(op, { inFeatures: a.inC, outFeatures: a.outC }, { ocBegin: a.ocBegin, ocEnd: a.ocEnd, icBegin: 0, icEnd: a.inC });
    const n = a.ocEnd - a.ocBegin;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', a.batch * a.outH * a.outW * a.outC,
      `${a.batch}x${a.outH}x${a.outW}x${a.outC}`);
    expectTensor(op, 'grad_bias', a.gradBias, 'int32', n, `${n}`);
    this.dispatch.call(op, Int32Array.of(...convDimArgs(a), a.ocBegin, a.ocEnd, a.gradOut.offset, a.gradBias.offset));
  }

  conv2dBackwardWeight(a: Conv2dBackwardWeightArgs): void {
    const op = Op.Conv2dBackwardWeight;
    expectConvShape(op, a);
    expectDims(op, 'batch*out_h*out_w', a.batch * a.outH * a.outW, 1, 65535);
    expectBlock(op, { inFeatures: a.inC, outFeatures: a.outC }, a);
    const noc = a.ocEnd - a.ocBegin, nic = a.icEnd - a.icBegin;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', a.batch * a.outH * a.outW * a.outC,
      `${a.batch}x${a.outH}x${a.outW}x${a.outC}`);
    expectTensor(op, 'input', a.input, 'int8', a.batch * a.inH * a.inW * a.inC, `${a.batch}x${a.inH}x${a.inW}x${a.inC}`);
    expectTensor(op, 'grad_weights', a.gradWeights, 'int32', noc * a.kH * a.kW * nic, `${noc}x${a.kH}x${a.kW}x${nic}`);
    expectDims(op, 'input_offset', a.inputOffset, -127, 128);
    this.dispatch.call(
      op,
      Int32Array.of(...convDimArgs(a), a.ocBegin, a.ocEnd, a.icBegin, a.icEnd, a.inputOffset, a.gradOut.offset,
        a.input.offset, a.gradWeights.offset),
    );
  }

  conv2dBackwardWeightSgd(a: Conv2dBackwardWeightSgdArgs): void {
    const op = Op.Conv2dBackwardWeightSgd;
    const head = this.convWeightUpdateArgs(op, a);
    expectTensor(op, 'lr multiplier', a.lrMultiplier, 'int32', a.outC, `${a.outC}`);
    expectTensor(op, 'lr shift', a.lrShift, 'int32', a.outC, `${a.outC}`);
    this.dispatch.call(op, Int32Array.of(...head, a.lrMultiplier.offset, a.lrShift.offset, a.weights.offset, a.rng.offset));
  }

  conv2dBackwardWeightLqm(a: Conv2dBackwardWeightLqmArgs): void {
    const op = Op.Conv2dBackwardWeightLqm;
    const head = this.convWeightUpdateArgs(op, a);
    expectLqm(op, a);
    expectTensor(op, 'lqm shift', a.lqmShift, 'int32', a.outC, `${a.outC}`);
    expectLqmState(op, a, a.state, a.outC, a.kH * a.kW * a.inC);
    this.dispatch.call(op, Int32Array.of(...head, a.lqmShift.offset, a.bits, a.emin, a.emax, a.decay, a.state.offset,
      a.state.bytes, a.weights.offset, a.rng.offset));
  }

  // Ops 37 and 39: the checks of the gradient's tensors, the weights and the
  // rng, and the arguments up to grad_out's input.
  private convWeightUpdateArgs(op: OpId, a: ConvShape & ChannelBlock & FusedWeightUpdateTensors): number[] {
    expectConvShape(op, a);
    expectDims(op, 'batch*out_h*out_w', a.batch * a.outH * a.outW, 1, 65535);
    expectBlock(op, { inFeatures: a.inC, outFeatures: a.outC }, a);
    const O = a.outC;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', a.batch * a.outH * a.outW * O, `${a.batch}x${a.outH}x${a.outW}x${O}`);
    expectTensor(op, 'grad_out exponent', a.gradOutExp, 'int32', 1, '1');
    expectTensor(op, 'input', a.input, 'int8', a.batch * a.inH * a.inW * a.inC, `${a.batch}x${a.inH}x${a.inW}x${a.inC}`);
    expectTensor(op, 'weights', a.weights, 'int8', O * a.kH * a.kW * a.inC, `${O}x${a.kH}x${a.kW}x${a.inC}`);
    expectTensor(op, 'rng state', a.rng, 'int32', 1, '1');
    expectDims(op, 'input_offset', a.inputOffset, -127, 128);
    return [...convDimArgs(a), a.ocBegin, a.ocEnd, a.icBegin, a.icEnd, a.inputOffset, a.gradOut.offset, a.gradOutExp.offset,
      a.input.offset];
  }

  // ---- depthwise conv2d ----
  depthwiseConv2dForward(a: DepthwiseConv2dForwardArgs): void {
    const op = Op.DepthwiseConv2dForward;
    expectDwShape(op, a);
    const OC = a.inC * a.depthMultiplier, IN = a.batch * a.inH * a.inW * a.inC, OUT = a.batch * a.outH * a.outW * OC;
    expectTensor(op, 'input', a.input, 'int8', IN, `${a.batch}x${a.inH}x${a.inW}x${a.inC}`);
    expectTensor(op, 'weights', a.weights, 'int8', a.kH * a.kW * OC, `1x${a.kH}x${a.kW}x${OC}`);
    this.dispatch.call(op, Int32Array.of(...dwDimArgs(a), ...forwardTail(op, a, OC, OUT, `${a.batch}x${a.outH}x${a.outW}x${OC}`)));
  }

  depthwiseConv2dBackwardInput(a: DepthwiseConv2dBackwardInputArgs): void {
    this.dwBackwardInput(Op.DepthwiseConv2dBackwardInput, a, depthwiseConv2dBackwardInputScratchBytes(a));
  }

  // The same call as depthwiseConv2dBackwardInput with a one-row scratch.
  depthwiseConv2dBackwardInputRows(a: DepthwiseConv2dBackwardInputArgs): void {
    this.dwBackwardInput(Op.DepthwiseConv2dBackwardInputRows, a, depthwiseConv2dBackwardInputRowsScratchBytes(a));
  }

  // Both depthwise input-gradient ops: one argument list, one set of checks;
  // they differ only in the scratch they need (sb bytes).
  private dwBackwardInput(op: OpId, a: DepthwiseConv2dBackwardInputArgs, sb: number): void {
    expectDwShape(op, a);
    const OC = a.inC * a.depthMultiplier, IN = a.batch * a.inH * a.inW * a.inC, OUT = a.batch * a.outH * a.outW * OC;
    expectTensor(op, 'wscale mantissa', a.wscaleMantissa, 'int16', OC, `${OC}`);
    expectTensor(op, 'grad_out', a.gradOut, 'int8', OUT, `${a.batch}x${a.outH}x${a.outW}x${OC}`);
    expectTensor(op, 'grad_out exponent', a.gradOutExp, 'int32', 1, '1');
    expectTensor(op, 'weights', a.weights, 'int8', a.kH * a.kW * OC, `1x${a.kH}x${a.kW}x${OC}`);
    expectTensor(op, 'grad_in', a.gradIn, 'int8', IN, `${a.batch}x${a.inH}x${a.inW}x${a.inC}`);
    expectTensor(op, 'grad_in exponent', a.gradInExp, 'int32', 1, '1');
    expectScratch(op, a.scratch, sb);
    expectDims(op, 'wscale exponent', a.wscaleExp, -64, 64);
    this.dispatch.call(
      op,
      Int32Array.of(...dwDimArgs(a), a.wscaleMantissa.offset, a.wscaleExp, a.gradOut.offset, a.gradOutExp.offset,
        a.weights.offset, a.gradIn.offset, a.gradInExp.offset, a.scratch.offset),
    );
  }

  depthwiseConv2dBackwardBias(a: DepthwiseConv2dBackwardBiasArgs): void {
    const op = Op.DepthwiseConv2dBackwardBias;
    expectDwShape(op, a);
    expectDwOcRange(op, a, a.ocBegin, a.ocEnd);
    expectDims(op, 'batch*out_h*out_w', a.batch * a.outH * a.outW, 1, 1 << 23);
    const OC = a.inC * a.depthMultiplier, n = a.ocEnd - a.ocBegin;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', a.batch * a.outH * a.outW * OC, `${a.batch}x${a.outH}x${a.outW}x${OC}`);
    expectTensor(op, 'grad_bias', a.gradBias, 'int32', n, `${n}`);
    this.dispatch.call(op, Int32Array.of(...dwDimArgs(a), a.ocBegin, a.ocEnd, a.gradOut.offset, a.gradBias.offset));
  }

  depthwiseConv2dBackwardWeight(a: DepthwiseConv2dBackwardWeightArgs): void {
    const op = Op.DepthwiseConv2dBackwardWeight;
    expectDwShape(op, a);
    expectDwOcRange(op, a, a.ocBegin, a.ocEnd);
    expectDims(op, 'batch*out_h*out_w', a.batch * a.outH * a.outW, 1, 65535);
    const OC = a.inC * a.depthMultiplier, n = a.ocEnd - a.ocBegin;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', a.batch * a.outH * a.outW * OC, `${a.batch}x${a.outH}x${a.outW}x${OC}`);
    expectTensor(op, 'input', a.input, 'int8', a.batch * a.inH * a.inW * a.inC, `${a.batch}x${a.inH}x${a.inW}x${a.inC}`);
    expectTensor(op, 'grad_weights', a.gradWeights, 'int32', a.kH * a.kW * n, `${a.kH}x${a.kW}x${n}`);
    expectDims(op, 'input_offset', a.inputOffset, -127, 128);
    this.dispatch.call(
      op,
      Int32Array.of(...dwDimArgs(a), a.ocBegin, a.ocEnd, a.inputOffset, a.gradOut.offset, a.input.offset,
        a.gradWeights.offset),
    );
  }
  depthwiseConv2dBackwardWeightSgd(a: DepthwiseConv2dBackwardWeightSgdArgs): void {
    const op = Op.DepthwiseConv2dBackwardWeightSgd;
    const head = this.dwWeightUpdateArgs(op, a);
    const OC = a.inC * a.depthMultiplier;
    expectTensor(op, 'lr multiplier', a.lrMultiplier, 'int32', OC, `${OC}`);
    expectTensor(op, 'lr shift', a.lrShift, 'int32', OC, `${OC}`);
    this.dispatch.call(op, Int32Array.of(...head, a.lrMultiplier.offset, a.lrShift.offset, a.weights.offset, a.rng.offset));
  }

  depthwiseConv2dBackwardWeightLqm(a: DepthwiseConv2dBackwardWeightLqmArgs): void {
    const op = Op.DepthwiseConv2dBackwardWeightLqm;
    const head = this.dwWeightUpdateArgs(op, a);
    const OC = a.inC * a.depthMultiplier;
    expectLqm(op, a);
    expectTensor(op, 'lqm shift', a.lqmShift, 'int32', OC, `${OC}`);
    expectLqmState(op, a, a.state, OC, a.kH * a.kW);
    this.dispatch.call(op, Int32Array.of(...head, a.lqmShift.offset, a.bits, a.emin, a.emax, a.decay, a.state.offset,
      a.state.bytes, a.weights.offset, a.rng.offset));
  }

  // Ops 38 and 40: the checks of the gradient's tensors, the weights and the
  // rng, and the arguments up to grad_out's input.
  private dwWeightUpdateArgs(op: OpId, a: DepthwiseConv2dShape & FusedWeightUpdateTensors & { ocBegin: number; ocEnd: number }): number[] {
    expectDwShape(op, a);
    expectDwOcRange(op, a, a.ocBegin, a.ocEnd);
    expectDims(op, 'batch*out_h*out_w', a.batch * a.outH * a.outW, 1, 65535);
    const OC = a.inC * a.depthMultiplier;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', a.batch * a.outH * a.outW * OC, `${a.batch}x${a.outH}x${a.outW}x${OC}`);
    expectTensor(op, 'grad_out exponent', a.gradOutExp, 'int32', 1, '1');
    expectTensor(op, 'input', a.input, 'int8', a.batch * a.inH * a.inW * a.inC, `${a.batch}x${a.inH}x${a.inW}x${a.inC}`);
    expectTensor(op, 'weights', a.weights, 'int8', a.kH * a.kW * OC, `1x${a.kH}x${a.kW}x${OC}`);
    expectTensor(op, 'rng state', a.rng, 'int32', 1, '1');
    expectDims(op, 'input_offset', a.inputOffset, -127, 128);
    return [...dwDimArgs(a), a.ocBegin, a.ocEnd, a.inputOffset, a.gradOut.offset, a.gradOutExp.offset, a.input.offset];
  }
  // ---- end depthwise conv2d ----

  // ---- average pool, global mean, add, softmax ----

  avgPoolForward(a: AvgPoolForwardArgs): void {
    const op = Op.AvgPoolForward;
    expectPoolShape(op, a);
    const I = a.batches * a.inH * a.inW * a.channels, O = a.batches * a.outH * a.outW * a.channels;
    expectTensor(op, 'input', a.input, 'int8', I, `${a.batches}x${a.inH}x${a.inW}x${a.channels}`);
    expectTensor(op, 'output', a.output, 'int8', O, `${a.batches}x${a.outH}x${a.outW}x${a.channels}`);
    if (a.mask) expectTensor(op, 'mask', a.mask, 'uint8', Math.ceil(O / 8), `${Math.ceil(O / 8)}`);
    expectDims(op, 'act_min', a.actMin, -128, 127);
    expectDims(op, 'act_max', a.actMax, a.actMin, 127);
    this.dispatch.call(op, Int32Array.of(...poolArgs(a), a.actMin, a.actMax, a.input.offset, a.output.offset, off(a.mask)));
  }

  avgPoolBackward(a: AvgPoolBackwardArgs): void {
    const op = Op.AvgPoolBackward;
    expectPoolShape(op, a);
    const I = a.batches * a.inH * a.inW * a.channels, O = a.batches * a.outH * a.outW * a.channels;
    expectTensor(op, 'grad_out', a.gradOut, 'int8', O, `${a.batches}x${a.outH}x${a.outW}x${a.channels}`);
    expectTensor(op, 'grad_out exponent', a.gradOutExp, 'int32', 1, '1');
    expectTensor(op, 'grad_in', a.gradIn, 'int8', I, `${a.batches}x${a.inH}x${a.inW}x${a.channels}`);
    expectTensor(op, 'grad_in exponent', a.gradInExp, 'int32', 1, '1');
    expectScratch(op, a.scratch, avgPoolBackwardScratchBytes(a));
    this.dispatch.call(op, Int32Array.of(...poolArgs(a), a.gradOut.offset, a.gradOutExp.offset, a.gradIn.offset,
      a.gradInExp.offset, a.scratch.offset));
  }

  meanForward(a: MeanForwardArgs): void {
    const op = Op.MeanForward;
    expectDims(op, 'batches', a.batches, 1, 1 << 24);
    expectDims(op, 'h', a.h, 1, 1 << 24);
    expectDims(op, 'w', a.w, 1, Math.floor(65536 / a.h));
    expectDims(op, 'channels', a.channels, 1, 1 << 24);
    expectTensor(op, 'input', a.input, 'int8', a.batches * a.h * a.w * a.channels, `${a.batches}x${a.h}x${a.w}x${a.channels}`);
    expectTensor(op, 'output', a.output, 'int8', a.batches * a.channels, `${a.batches}x1x1x${a.channels}`);
    expectDims(op, 'input zero point', a.inputZeroPoint, -128, 127);
    expectDims(op, 'output zero point', a.outputZeroPoint, -128, 127);
    expectDims(op, 'multiplier', a.multiplier, 0, 2147483647);
    expectDims(op, 'shift', a.shift, -31, 30);
    this.dispatch.call(op, Int32Array.of(a.batches, a.h, a.w, a.channels, a.inputZeroPoint, a.multiplier, a.shift,
      a.outputZeroPoint, a.input.offset, a.output.offset));
  }

  addForward(a: AddForwardArgs): void {
    const op = Op.AddForward;
    expectDims(op, 'n', a.n, 1, 1 << 24);
    expectTensor(op, 'input1', a.input1, 'int8', a.n, `${a.n}`);
    expectTensor(op, 'input2', a.input2, 'int8', a.n, `${a.n}`);
    expectTensor(op, 'output', a.output, 'int8', a.n, `${a.n}`);
    if (a.mask) expectTensor(op, 'mask', a.mask, 'uint8', Math.ceil(a.n / 8), `${Math.ceil(a.n / 8)}`);
    expectDims(op, 'input1_offset', a.input1Offset, -127, 128);
    expectDims(op, 'input2_offset', a.input2Offset, -127, 128);
    expectDims(op, 'output_offset', a.outputOffset, -128, 127);
    expectDims(op, 'left_shift', a.leftShift, 0, 22);
    for (const [what, m, sh] of [['input1', a.input1Multiplier, a.input1Shift], ['input2', a.input2Multiplier,
      a.input2Shift], ['output', a.outputMultiplier, a.outputShift]] as const) {
      expectDims(op, `${what} multiplier`, m, 0, 2147483647);
      expectDims(op, `${what} shift`, sh, -31, 0);
    }
    expectDims(op, 'act_min', a.actMin, -128, 127);
    expectDims(op, 'act_max', a.actMax, a.actMin, 127);
    this.dispatch.call(op, Int32Array.of(a.n, a.input1Offset, a.input1Multiplier, a.input1Shift, a.input2Offset,
      a.input2Multiplier, a.input2Shift, a.leftShift, a.outputOffset, a.outputMultiplier, a.outputShift, a.actMin,
      a.actMax, a.input1.offset, a.input2.offset, a.output.offset, off(a.mask)));
  }

  gradAdd(a: GradAddArgs): void {
    const op = Op.GradAdd;
    expectDims(op, 'n', a.n, 1, 1 << 24);
    expectTensor(op, 'a', a.a, 'int8', a.n, `${a.n}`);
    expectTensor(op, 'a exponent', a.aExp, 'int32', 1, '1');
    expectTensor(op, 'b', a.b, 'int8', a.n, `${a.n}`);
    expectTensor(op, 'b exponent', a.bExp, 'int32', 1, '1');
    expectTensor(op, 'output', a.output, 'int8', a.n, `${a.n}`);
    expectTensor(op, 'output exponent', a.outputExp, 'int32', 1, '1');
    this.dispatch.call(op, Int32Array.of(a.n, a.a.offset, a.aExp.offset, a.b.offset, a.bExp.offset, a.output.offset,
      a.outputExp.offset));
  }

  softmaxForward(a: SoftmaxForwardArgs): void {
    const op = Op.SoftmaxForward;
    expectDims(op, 'rows', a.rows, 1, 1 << 24);
    expectDims(op, 'depth', a.depth, 1, 511);
    expectTensor(op, 'input', a.input, 'int8', a.rows * a.depth, `${a.rows}x${a.depth}`);
    expectTensor(op, 'output', a.output, 'int8', a.rows * a.depth, `${a.rows}x${a.depth}`);
    expectDims(op, 'input multiplier', a.inputMultiplier, 0, 2147483647);
    expectDims(op, 'input left shift', a.inputLeftShift, 0, 31);
    expectDims(op, 'diff_min', a.diffMin, -Math.floor(2147483647 / 2 ** a.inputLeftShift), 0);
    this.dispatch.call(op, Int32Array.of(a.rows, a.depth, a.inputMultiplier, a.inputLeftShift, a.diffMin,
      a.input.offset, a.output.offset));
  }

  // ---- optimizer baselines (ops 28-32) ----
  sgdF32Update(a: SgdF32UpdateArgs): void {
    const op = Op.SgdF32Update;
    expectDims(op, 'n', a.n, 1, 1 << 24);
    checkF32Hyper(opName[op], 'lr', a.lr);
    expectTensor(op, 'grad', a.grad, 'float32', a.n, `${a.n}`);
    expectTensor(op, 'param', a.param, 'float32', a.n, `${a.n}`);
    this.dispatch.call(op, Int32Array.of(a.n, f32Arg(a.lr), a.grad.offset, a.param.offset));
  }

  momentumF32Update(a: MomentumF32UpdateArgs): void {
    const op = Op.MomentumF32Update;
    expectDims(op, 'n', a.n, 1, 1 << 24);
    checkF32Hyper(opName[op], 'lr', a.lr);
    checkF32Hyper(opName[op], 'momentum', a.momentum);
    expectTensor(op, 'grad', a.grad, 'float32', a.n, `${a.n}`);
    expectTensor(op, 'velocity state', a.velocity, 'float32', a.n, `${a.n}`);
    expectTensor(op, 'param', a.param, 'float32', a.n, `${a.n}`);
    this.dispatch.call(op, Int32Array.of(a.n, f32Arg(a.lr), f32Arg(a.momentum), a.grad.offset, a.velocity.offset,
      a.param.offset));
  }

  adamF32Update(a: AdamF32UpdateArgs): void {
    const op = Op.AdamF32Update;
    expectDims(op, 'n', a.n, 1, 1 << 24);
    checkF32Hyper(opName[op], 'lr', a.lr);
    checkF32Hyper(opName[op], 'beta1', a.beta1, 0, 1, true);
    checkF32Hyper(opName[op], 'beta2', a.beta2, 0, 1, true);
    checkF32Hyper(opName[op], 'eps', a.eps);
    if (!(Math.fround(a.eps) > 0)) throw new KernelArgumentError(`${opName[op]}: eps is ${a.eps}, expected a float32 > 0`);
    expectTensor(op, 'grad', a.grad, 'float32', a.n, `${a.n}`);
    expectTensor(op, 'm state', a.m, 'float32', a.n, `${a.n}`);
    expectTensor(op, 'v state', a.v, 'float32', a.n, `${a.n}`);
    expectTensor(op, 'beta powers state', a.betaPowers, 'float32', 2, '2');
    expectTensor(op, 'param', a.param, 'float32', a.n, `${a.n}`);
    this.dispatch.call(op, Int32Array.of(a.n, f32Arg(a.lr), f32Arg(a.beta1), f32Arg(a.beta2), f32Arg(a.eps),
      a.grad.offset, a.m.offset, a.v.offset, a.betaPowers.offset, a.param.offset));
  }

  sgdS16Update(a: SgdS16UpdateArgs): void {
    const op = Op.SgdS16Update;
    expectDims(op, 'n', a.n, 1, 1 << 24);
    checkS16Hyper(opName[op], { ...a, stateExp: 0, momentumQ15: 0 });
    expectTensor(op, 'grad', a.grad, 'int32', a.n, `${a.n}`);
    expectTensor(op, 'grad exponent', a.gradExp, 'int32', 1, '1');
    expectTensor(op, 'param', a.param, 'int16', a.n, `${a.n}`);
    expectTensor(op, 'rng state', a.rng, 'int32', 1, '1');
    this.dispatch.call(op, Int32Array.of(a.n, a.paramExp, a.lrMultiplier, a.lrShift, a.grad.offset, a.gradExp.offset,
      a.param.offset, a.rng.offset));
  }

  momentumS16Update(a: MomentumS16UpdateArgs): void {
    const op = Op.MomentumS16Update;
    expectDims(op, 'n', a.n, 1, 1 << 24);
    checkS16Hyper(opName[op], { ...a, stateExp: a.velocityExp });
    expectTensor(op, 'grad', a.grad, 'int32', a.n, `${a.n}`);
    expectTensor(op, 'grad exponent', a.gradExp, 'int32', 1, '1');
    expectTensor(op, 'velocity state', a.velocity, 'int16', a.n, `${a.n}`);
    expectTensor(op, 'param', a.param, 'int16', a.n, `${a.n}`);
    expectTensor(op, 'rng state', a.rng, 'int32', 1, '1');
    this.dispatch.call(op, Int32Array.of(a.n, a.paramExp, a.velocityExp, a.lrMultiplier, a.lrShift, a.momentumQ15,
      a.grad.offset, a.gradExp.offset, a.velocity.offset, a.param.offset, a.rng.offset));
  }
  // ---- end optimizer baselines ----
}

// Offsets at or above FLASH_BASE refer to the read-only region beside the
// arena (frozen weights stay in flash on a device): native/core/xst.h.
export const FLASH_BASE = 0x40000000;

// A Dispatch over an in-memory arena and an optional read-only region
// (Node addon, XS glue, reference): the subclass supplies call(); writes and
// reads are plain copies into whichever region the offset names. Writing the
// flash region is the host's "flashing" step; kernels cannot write it.
export abstract class BufferDispatch implements Dispatch {
  abstract readonly name: string;
  readonly bytes: Uint8Array;
  readonly flashBytes: Uint8Array | null;

  constructor(readonly arena: ArrayBuffer, readonly flash: ArrayBuffer | null = null) {
    this.bytes = new Uint8Array(arena);
    this.flashBytes = flash ? new Uint8Array(flash) : null;
  }

  abstract call(op: OpId, args: Int32Array): void;

  // The region and the offset inside it of [offset, offset + length).
  protected region(offset: number, length: number): { buf: Uint8Array; at: number } {
    const flash = offset >= FLASH_BASE;
    const buf = flash ? this.flashBytes : this.bytes;
    const at = flash ? offset - FLASH_BASE : offset;
    if (!buf || at < 0 || at + length > buf.length) {
      throw new RangeError(
        `${this.name}: bytes [${at}, ${at + length}) are outside the ${flash ? 'flash' : 'arena'} region ` +
          `(${buf ? buf.length : 0} bytes)`,
      );
    }
    return { buf, at };
  }

  write(offset: number, bytes: Uint8Array): void {
    const r = this.region(offset, bytes.length);
    r.buf.set(bytes, r.at);
  }

  read(offset: number, length: number): Uint8Array {
    const r = this.region(offset, length);
    return r.buf.slice(r.at, r.at + length);
  }
}
