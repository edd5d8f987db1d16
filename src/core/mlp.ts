// The first workload: an int8 MLP (inputs -> hidden ReLU -> classes) trained
// online, batch 1, with integer SGD and stochastic rounding, entirely through
// the C kernel interface. The same code drives every place the core runs:
// the Node addon, the XS engine, the TypeScript reference and (recorded as a
// trace) the Cortex-M4F and RV32 images.
//
// Quantisation (TFLite int8 conventions):
//   input  x = pixel - 128          scale 1/255, zero point -128
//   fc1    w1 per-channel int8      bias int32 (scale s_x * s_w1[c]), ReLU
//   hidden h                        scale 1/32, zero point -128
//   fc2    w2 per-channel int8      bias int32
//   logits                          scale 1/8, zero point 0
// The SGD learning rate is applied in real units: each channel's integer step
// is lr * grad / s_param, folded into a Q31 multiplier + shift per channel at
// setup (quantisation-aware scaling: no float on the update path).
//
// QAS (Lin et al. 2022) scales the int8-domain gradients: G_W <- G_W s_W^-2
// per output channel, G_b <- G_b (s_W s_x)^-2. The int8-domain weight
// gradient is G_W = dL/dw_real * s_W = g 2^e s_x s_W (g the int32 kernel
// gradient, exponent e), so lr G_W s_W^-2 = lr g 2^e s_x / s_W: exactly the
// per-channel step lr * grad_real / s_W folded into lr_w below (and
// lr G_b (s_W s_x)^-2 = lr g 2^e / (s_x s_W) into lr_b). `qas: false` is the
// ablation: the plain int8-domain gradient, step lr G_W = lr g 2^e s_x s_W.
// LQM (optimizer 'lqm', native/core/lqm_s8.c) has no multiplier: eta and the
// QAS factor become one power-of-two exponent per channel,
// round(log2(lr s_x / s_W[c])) (or round(log2(lr s_x s_W[c])) without QAS);
// `lqmMaster` adds an int16 master copy of the weights (op 26, 1 byte more
// per weight: the steps accumulate at 1/256 LSB instead of being rounded
// stochastically to whole int8 LSBs);
// the biases keep integer SGD with stochastic rounding (int32 has the
// resolution int8 weights lack, and 110 biases are not worth a state).

import { ArenaLayout, type Tensor } from './arena.js';
import { Kernels, type LqmSettings, fcBackwardInputScratchBytes, lqmStateBytes } from './kernels.js';
import { log2eScaleQ16, quantizeMultiplier, weightScaleMantissa } from './quant.js';
import { Xorshift32 } from './rng.js';
import { TraceDispatch } from './trace-dispatch.js';

export interface MlpConfig {
  inputs: number;
  hidden: number;
  classes: number;
  lr: number; // real-valued SGD step for weights
  lrBias: number; // and for biases
  seed: number; // weight init and stochastic rounding
  inputScale: number;
  hiddenScale: number;
  logitScale: number;
  initRange1: number; // initial weights uniform in [-r, r]
  initRange2: number;
  optimizer?: 'sgd' | 'lqm'; // weight update (default 'sgd'); biases always use SGD
  qas?: boolean; // quantisation-aware scaling of the gradients (default true)
  lqm?: LqmSettings; // LQM state bits, exponent window, decay (default defaultLqm)
  // LQM only: keep an int16 master copy of the weights (op 26): one int8
  // residual per weight, master = 256 w + residual; the forward still reads w
  // (= round(master / 256)). Default false.
  lqmMaster?: boolean;
}

// The shipped LQM variant (bench/lqm-variants.ts measures the alternatives).
export const defaultLqm: LqmSettings = { bits: 5, emin: -12, emax: 2, decay: 3 };

export const defaultMlpConfig: MlpConfig = {
  inputs: 784,
  hidden: 100,
  classes: 10,
  lr: 1 / 64,
  lrBias: 1 / 64,
  seed: 20260101,
  inputScale: 1 / 255,
  hiddenScale: 1 / 32,
  logitScale: 1 / 8,
  initRange1: 0.0875, // ~ sqrt(6 / 784)
  initRange2: 0.245, // ~ sqrt(6 / 100)
};

interface FcTensors {
  w: Tensor;
  b: Tensor;
  mult: Tensor;
  shift: Tensor;
  lrW: Tensor;
  lrWShift: Tensor;
  lrB: Tensor;
  lrBShift: Tensor;
  wscale: Tensor;
  gradB: Tensor;
  lqmShift?: Tensor; // LQM only: int32 [out] step exponent
  lqmState?: Tensor; // LQM only: packed momentum state of w
  lqmResidual?: Tensor; // LQM with lqmMaster only: int8 [out, in] low byte of the master copy
}

export interface MlpTensors {
  fc1: FcTensors;
  fc2: FcTensors;
  x: Tensor;
  h: Tensor;
  mask1: Tensor;
  logits: Tensor;
  label: Tensor;
  gLogits: Tensor;
  gLogitsExp: Tensor;
  gHidden: Tensor;
  gHiddenExp: Tensor;
  pLabel: Tensor;
  rng: Tensor;
  scratch: Tensor;
}

export function mlpLayout(cfg: MlpConfig, capacity = defaultCapacity(cfg)): { layout: ArenaLayout; t: MlpTensors; params: { offset: number; bytes: number } } {
  if (cfg.lqmMaster && cfg.optimizer !== 'lqm') {
    throw new Error(`MlpConfig: lqmMaster (the int16 master copy of LQM) needs optimizer 'lqm', not '${cfg.optimizer ?? 'sgd'}'`);
  }
  const L = new ArenaLayout(capacity);
  const { inputs: I, hidden: H, classes: C } = cfg;
  // Trainable parameters first and contiguous: one checksum covers them all.
  const w1 = L.alloc('fc1.weights', 'int8', [H, I]);
  const b1 = L.alloc('fc1.bias', 'int32', [H]);
  const w2 = L.alloc('fc2.weights', 'int8', [C, H]);
  const b2 = L.alloc('fc2.bias', 'int32', [C]);
  const params = { offset: w1.offset, bytes: b2.offset + b2.bytes - w1.offset };
  const fc = (name: string, w: Tensor, b: Tensor, out: number): FcTensors => ({
    w,
    b,
    mult: L.alloc(`${name}.multiplier`, 'int32', [out]),
    shift: L.alloc(`${name}.shift`, 'int32', [out]),
    lrW: L.alloc(`${name}.lr_w.multiplier`, 'int32', [out]),
    lrWShift: L.alloc(`${name}.lr_w.shift`, 'int32', [out]),
    lrB: L.alloc(`${name}.lr_b.multiplier`, 'int32', [out]),
    lrBShift: L.alloc(`${name}.lr_b.shift`, 'int32', [out]),
    wscale: L.alloc(`${name}.wscale_q15`, 'int16', [out]),
    gradB: L.alloc(`${name}.grad_bias`, 'int32', [out]),
  });
  const fc1 = fc('fc1', w1, b1, H);
  const fc2 = fc('fc2', w2, b2, C);
  const t: MlpTensors = {
    fc1,
    fc2,
    x: L.alloc('input', 'int8', [1, I]),
    h: L.alloc('hidden', 'int8', [1, H]),
    mask1: L.alloc('hidden.relu_mask', 'uint8', [Math.ceil(H / 8)]),
    logits: L.alloc('logits', 'int8', [1, C]),
    label: L.cell('label'),
    gLogits: L.alloc('grad.logits', 'int8', [1, C]),
    gLogitsExp: L.cell('grad.logits.exp'),
    gHidden: L.alloc('grad.hidden', 'int8', [1, H]),
    gHiddenExp: L.cell('grad.hidden.exp'),
    pLabel: L.cell('p_label_q16'),
    rng: L.cell('rng'),
    scratch: L.alloc('scratch', 'uint8', [fcBackwardInputScratchBytes({ rows: 1, inFeatures: H, outFeatures: C })]),
  };
  if (cfg.optimizer === 'lqm') {
    const bits = (cfg.lqm ?? defaultLqm).bits;
    for (const [name, f, out, inp] of [['fc1', fc1, H, I], ['fc2', fc2, C, H]] as const) {
      f.lqmShift = L.alloc(`${name}.lqm_shift`, 'int32', [out]);
      f.lqmState = L.alloc(`${name}.lqm_state`, 'uint8', [lqmStateBytes(bits, out, inp)]);
      if (cfg.lqmMaster) f.lqmResidual = L.alloc(`${name}.lqm_residual`, 'int8', [out, inp]);
    }
  }
  return { layout: L, t, params };
}

// Arena bytes of the default layout: SGD 128 KB, LQM 192 KB (+49 KB state),
// LQM with the master copy 256 KB (+78 KB residual).
function defaultCapacity(cfg: MlpConfig): number {
  if (cfg.optimizer !== 'lqm') return 128 * 1024;
  return cfg.lqmMaster ? 256 * 1024 : 192 * 1024;
}

// Per-channel update factors of one output channel (weight scale sW, input
// scale sIn), computed on the host; the device sees only integers.
//  weight: integer step per unit of the int32 weight gradient g 2^e:
//    QAS  lr * (G_W s_W^-2) / g2^e = lr sIn / sW   (G_W = g 2^e sIn sW)
//    off  lr * G_W / g2^e          = lr sIn sW
//  bias:  QAS  lrBias (sW sIn)^-2 * sIn sW = lrBias / (sIn sW);  off lrBias sIn sW
//  lqmShift: the weight factor rounded to a power of two (LQM: a shift),
//    clamped to the kernel's [-64, 64].
export function updateFactors(lr: number, lrBias: number, sIn: number, sW: number, qas: boolean):
  { weight: number; bias: number; lqmShift: number } {
  const weight = qas ? (lr * sIn) / sW : lr * sIn * sW;
  const bias = qas ? lrBias / (sIn * sW) : lrBias * sIn * sW;
  return { weight, bias, lqmShift: Math.max(-64, Math.min(64, Math.round(Math.log2(weight)))) };
}

// Per-channel symmetric int8 weights with 2x headroom (training may grow them).
function initWeights(rng: Xorshift32, out: number, inp: number, range: number): { q: Int8Array; scale: Float64Array } {
  const q = new Int8Array(out * inp);
  const scale = new Float64Array(out);
  const real = new Float64Array(inp);
  for (let c = 0; c < out; c++) {
    let max = 0;
    for (let i = 0; i < inp; i++) {
      real[i] = (range * (rng.int(0, 65535) - 32768)) / 32768;
      max = Math.max(max, Math.abs(real[i]!));
    }
    scale[c] = (2 * max) / 127;
    for (let i = 0; i < inp; i++) q[c * inp + i] = Math.round(real[i]! / scale[c]!);
  }
  return { q, scale };
}

export class MlpTrainer {
  readonly t: MlpTensors;
  readonly layout: ArenaLayout;
  readonly params: { offset: number; bytes: number };
  readonly inputOffset: number;
  private readonly log2eQ16: number;
  private readonly xBytes: Uint8Array;
  private readonly wscaleExps = new Map<FcTensors, number>();

  constructor(readonly k: Kernels, readonly cfg: MlpConfig = defaultMlpConfig, capacity?: number) {
    const { layout, t, params } = mlpLayout(cfg, capacity);
    this.layout = layout;
    this.t = t;
    this.params = params;
    this.inputOffset = 128; // input zero point -128
    this.log2eQ16 = log2eScaleQ16(cfg.logitScale);
    this.xBytes = new Uint8Array(cfg.inputs);
  }

  // Writes initial weights, biases and every constant into the arena.
  init(): void {
    const { cfg, k, t } = this;
    const rng = new Xorshift32(cfg.seed);
    const l1 = initWeights(rng, cfg.hidden, cfg.inputs, cfg.initRange1);
    const l2 = initWeights(rng, cfg.classes, cfg.hidden, cfg.initRange2);
    this.initLayer(t.fc1, l1, cfg.inputScale, cfg.hiddenScale);
    this.initLayer(t.fc2, l2, cfg.hiddenScale, cfg.logitScale);
    k.writeInt32(t.rng, [(cfg.seed ^ 0x5bd1e995) >>> 0 || 1]);
  }

  private initLayer(f: FcTensors, l: { q: Int8Array; scale: Float64Array }, sIn: number, sOut: number): void {
    const { k, cfg } = this;
    const n = l.scale.length;
    k.write(f.w, new Uint8Array(l.q.buffer));
    k.writeInt32(f.b, new Int32Array(n));
    const fwd = Array.from(l.scale, (s) => quantizeMultiplier((sIn * s) / sOut));
    k.writeInt32(f.mult, fwd.map((m) => m.multiplier));
    k.writeInt32(f.shift, fwd.map((m) => m.shift));
    const qas = cfg.qas ?? true;
    const f_ = Array.from(l.scale, (s) => updateFactors(cfg.lr, cfg.lrBias, sIn, s, qas));
    const lrW = f_.map((x) => quantizeMultiplier(x.weight, -62, 62));
    k.writeInt32(f.lrW, lrW.map((m) => m.multiplier));
    k.writeInt32(f.lrWShift, lrW.map((m) => m.shift));
    const lrB = f_.map((x) => quantizeMultiplier(x.bias, -62, 62));
    k.writeInt32(f.lrB, lrB.map((m) => m.multiplier));
    k.writeInt32(f.lrBShift, lrB.map((m) => m.shift));
    if (f.lqmShift && f.lqmState) {
      k.writeInt32(f.lqmShift, f_.map((x) => x.lqmShift));
      k.write(f.lqmState, new Uint8Array(f.lqmState.bytes)); // zero momentum
      if (f.lqmResidual) k.write(f.lqmResidual, new Uint8Array(f.lqmResidual.bytes)); // master = 256 w
    }
    const ws = weightScaleMantissa(l.scale);
    k.writeInt16(f.wscale, ws.mantissa);
    this.wscaleExps.set(f, ws.exp);
  }

  private wscaleExp(f: FcTensors): number {
    const e = this.wscaleExps.get(f);
    if (e === undefined) throw new Error('MlpTrainer: call init() before training');
    return e;
  }

  // Raw 8-bit pixels -> int8 input tensor (zero point -128).
  setInput(pixels: Uint8Array): void {
    const x = this.xBytes;
    for (let i = 0; i < x.length; i++) x[i] = (pixels[i]! - 128) & 0xff;
    this.k.write(this.t.x, x);
  }

  forward(): void {
    const { k, t, cfg } = this;
    k.fcForward({
      rows: 1, inFeatures: cfg.inputs, outFeatures: cfg.hidden, inputOffset: this.inputOffset, outputOffset: -128,
      actMin: -128, actMax: 127, input: t.x, weights: t.fc1.w, bias: t.fc1.b, output: t.h, mask: t.mask1,
      multiplier: t.fc1.mult, shift: t.fc1.shift,
    });
    k.fcForward({
      rows: 1, inFeatures: cfg.hidden, outFeatures: cfg.classes, inputOffset: 128, outputOffset: 0,
      actMin: -128, actMax: 127, input: t.h, weights: t.fc2.w, bias: t.fc2.b, output: t.logits, mask: null,
      multiplier: t.fc2.mult, shift: t.fc2.shift,
    });
  }

  // One online training step on the current input.
  trainStep(pixels: Uint8Array, label: number): void {
    const { k, t, cfg } = this;
    const H = cfg.hidden, C = cfg.classes, I = cfg.inputs;
    this.setInput(pixels);
    k.writeInt32(t.label, [label]);
    this.forward();
    k.softmaxXentBackward({
      classes: C, logits: t.logits, log2eScaleQ16: this.log2eQ16, label: t.label, grad: t.gLogits,
      gradExp: t.gLogitsExp, pLabelQ16: t.pLabel,
    });
    // Gradient into the hidden layer first: it must see fc2's old weights.
    k.fcBackwardInput({
      rows: 1, inFeatures: H, outFeatures: C, wscaleMantissa: t.fc2.wscale, wscaleExp: this.wscaleExp(t.fc2),
      gradOut: t.gLogits, gradOutExp: t.gLogitsExp, weights: t.fc2.w, gradIn: t.gHidden, gradInExp: t.gHiddenExp,
      scratch: t.scratch,
    });
    this.update(t.fc2, t.h, 128, t.gLogits, t.gLogitsExp, H, C);
    k.activationBackward(H, t.mask1, t.gHidden);
    this.update(t.fc1, t.x, this.inputOffset, t.gHidden, t.gHiddenExp, I, H);
  }

  // Fused weight gradient + SGD (no gradient buffer), then the bias.
  private update(f: FcTensors, input: Tensor, inputOffset: number, g: Tensor, gExp: Tensor, inF: number, outF: number): void {
    const { k, t } = this;
    const block = { ocBegin: 0, ocEnd: outF, icBegin: 0, icEnd: inF };
    if (f.lqmShift && f.lqmState) {
      const a = {
        rows: 1, inFeatures: inF, outFeatures: outF, ...block, ...(this.cfg.lqm ?? defaultLqm), inputOffset, gradOut: g,
        gradOutExp: gExp, input, lqmShift: f.lqmShift, state: f.lqmState, weights: f.w, rng: t.rng,
      };
      if (f.lqmResidual) k.fcBackwardWeightLqm16({ ...a, residual: f.lqmResidual });
      else k.fcBackwardWeightLqm(a);
    } else k.fcBackwardWeightSgd({
      rows: 1, inFeatures: inF, outFeatures: outF, ...block, inputOffset, gradOut: g, gradOutExp: gExp, input,
      lrMultiplier: f.lrW, lrShift: f.lrWShift, weights: f.w, rng: t.rng,
    });
    k.fcBackwardBias({ rows: 1, inFeatures: inF, outFeatures: outF, ocBegin: 0, ocEnd: outF, gradOut: g, gradBias: f.gradB });
    k.sgdS32Update({
      outFeatures: outF, ocBegin: 0, ocEnd: outF, grad: f.gradB, gradExp: gExp, lrMultiplier: f.lrB,
      lrShift: f.lrBShift, bias: f.b, rng: t.rng,
    });
  }

  // Class with the largest logit for the given input (first on ties).
  predict(pixels: Uint8Array): number {
    this.setInput(pixels);
    this.forward();
    return argmax(this.k.readInt8(this.t.logits));
  }

  // Class predicted by the last forward pass (before that step's update).
  lastPrediction(): number {
    return argmax(this.k.readInt8(this.t.logits));
  }

  paramBytes(): Uint8Array {
    return this.k.dispatch.read(this.params.offset, this.params.bytes);
  }
}

export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < v.length; j++) if (v[j]! > v[best]!) best = j;
  return best;
}

export interface LabelledImages {
  count: number;
  labels: Uint8Array;
  image(i: number): Uint8Array;
}

// Online training, batch 1, over order[from .. from+steps).
export function trainOnline(
  m: MlpTrainer, data: LabelledImages, order: ArrayLike<number>, from: number, steps: number,
  afterStep?: (step: number) => void,
): void {
  for (let s = from; s < from + steps; s++) {
    const i = order[s]!;
    m.trainStep(data.image(i), data.labels[i]!);
    if (afterStep) afterStep(s + 1);
  }
}

// Fraction of the first `count` images classified correctly.
export function evaluate(m: MlpTrainer, data: LabelledImages, count = data.count): number {
  let ok = 0;
  for (let i = 0; i < count; i++) if (m.predict(data.image(i)) === data.labels[i]) ok++;
  return ok / count;
}

// The same online run recorded as a trace for the bare-metal images: init,
// `steps` training steps, then a CRC record over the trainable parameters
// (and one over each of `alsoCrc`, e.g. optimizer state).
// The arena in the trace is exactly the layout's size.
export function recordMlpTrace(
  data: LabelledImages, order: ArrayLike<number>, steps: number, cfg: MlpConfig = defaultMlpConfig,
  alsoCrc: readonly { offset: number; bytes: number }[] = [],
): { trace: Uint8Array; params: { offset: number; bytes: number }; arenaBytes: number } {
  const probe = mlpLayout(cfg);
  const arenaBytes = Math.ceil(probe.layout.used / 4) * 4;
  const d = new TraceDispatch(arenaBytes);
  const m = new MlpTrainer(new Kernels(d), cfg, arenaBytes);
  m.init();
  trainOnline(m, data, order, 0, steps);
  d.writer.crc(m.params.offset, m.params.bytes);
  for (const t of alsoCrc) d.writer.crc(t.offset, t.bytes);
  return { trace: d.writer.end(), params: m.params, arenaBytes };
}
