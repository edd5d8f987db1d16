// npm run bench:kernels — instructions per call and per MAC of the C kernels
// on Cortex-M4F and RV32IMC (QEMU, deterministic instruction counts), and
// host nanoseconds per MAC through the Node addon. Writes
// bench/results/kernels.json: {"ops":[{op, target, shape, macs, instructions, ...}]}.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { arch } from 'node:os';
import { ArenaLayout, type Tensor } from '../src/core/arena.js';
import { Kernels, fcBackwardInputScratchBytes } from '../src/core/kernels.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import { Xorshift32 } from '../src/core/rng.js';
import { TraceDispatch } from '../src/core/trace-dispatch.js';
import { recordMlpTrace } from '../src/core/mlp.js';
import { shuffledIndices } from '../src/core/rng.js';
import { loadMnist } from '../src/node/mnist.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { runTrace } from '../src/node/qemu.js';
import { convBench } from './kernels-conv.js';
import { benchPersonDetect } from './person-detect.js';

const ARENA = 190 * 1024; // below the images' 200 KB capacity
const L = new ArenaLayout(ARENA);
const [I, H, C] = [784, 100, 10];
const BLOCK_IC = 196; // a 25% input-channel block for the unfused weight gradient
const T = {
  x: L.alloc('x', 'int8', [1, I]),
  w1: L.alloc('w1', 'int8', [H, I]),
  b1: L.alloc('b1', 'int32', [H]),
  h: L.alloc('h', 'int8', [1, H]),
  mask: L.alloc('mask', 'uint8', [Math.ceil(H / 8)]),
  w2: L.alloc('w2', 'int8', [C, H]),
  b2: L.alloc('b2', 'int32', [C]),
  logits: L.alloc('logits', 'int8', [1, C]),
  mult1: L.alloc('mult1', 'int32', [H]), shift1: L.alloc('shift1', 'int32', [H]),
  mult2: L.alloc('mult2', 'int32', [C]), shift2: L.alloc('shift2', 'int32', [C]),
  lr1: L.alloc('lr1', 'int32', [H]), lrs1: L.alloc('lrs1', 'int32', [H]),
  ws1: L.alloc('ws1', 'int16', [H]), ws2: L.alloc('ws2', 'int16', [C]),
  gh: L.alloc('gh', 'int8', [1, H]), ghExp: L.cell('gh.exp'),
  gl: L.alloc('gl', 'int8', [1, C]), glExp: L.cell('gl.exp'),
  gx: L.alloc('gx', 'int8', [1, I]), gxExp: L.cell('gx.exp'),
  gb: L.alloc('gb', 'int32', [H]),
  gw: L.alloc('gw', 'int32', [H, BLOCK_IC]),
  label: L.cell('label'), rng: L.cell('rng'), p: L.cell('p'),
  scratch: L.alloc('scratch', 'uint8', [fcBackwardInputScratchBytes({ rows: 1, inFeatures: I, outFeatures: H })]),
};

function init(k: Kernels): void {
  const r = new Xorshift32(7);
  const bytes = (t: Tensor) => Uint8Array.from({ length: t.bytes }, () => r.next() & 0xff);
  for (const t of [T.x, T.w1, T.w2, T.h, T.gh, T.gl, T.mask]) k.write(t, bytes(t));
  k.writeInt32(T.b1, Array.from({ length: H }, () => r.int(-5000, 5000)));
  k.writeInt32(T.b2, Array.from({ length: C }, () => r.int(-5000, 5000)));
  const q = quantizeMultiplier(0.0007), lr = quantizeMultiplier(0.003, -62, 62);
  k.writeInt32(T.mult1, new Array(H).fill(q.multiplier)); k.writeInt32(T.shift1, new Array(H).fill(q.shift));
  k.writeInt32(T.mult2, new Array(C).fill(q.multiplier)); k.writeInt32(T.shift2, new Array(C).fill(q.shift));
  k.writeInt32(T.lr1, new Array(H).fill(lr.multiplier)); k.writeInt32(T.lrs1, new Array(H).fill(lr.shift));
  k.writeInt16(T.ws1, Array.from({ length: H }, () => r.int(16384, 32767)));
  k.writeInt16(T.ws2, Array.from({ length: C }, () => r.int(16384, 32767)));
  k.writeInt32(T.ghExp, [-12]); k.writeInt32(T.glExp, [-7]); k.writeInt32(T.label, [3]); k.writeInt32(T.rng, [12345]);
}

interface Case { op: string; shape: string; macs: number; run(k: Kernels): void }
const fc = { rows: 1 };
const cases: Case[] = [
  { op: 'fully_connected_s8_forward', shape: '1x784 -> 100', macs: I * H, run: (k) => k.fcForward({ ...fc, inFeatures: I, outFeatures: H, inputOffset: 128, outputOffset: -128, actMin: -128, actMax: 127, input: T.x, weights: T.w1, bias: T.b1, output: T.h, mask: T.mask, multiplier: T.mult1, shift: T.shift1 }) },
  { op: 'fully_connected_s8_forward', shape: '1x100 -> 10', macs: H * C, run: (k) => k.fcForward({ ...fc, inFeatures: H, outFeatures: C, inputOffset: 128, outputOffset: 0, actMin: -128, actMax: 127, input: T.h, weights: T.w2, bias: T.b2, output: T.logits, mask: null, multiplier: T.mult2, shift: T.shift2 }) },
  { op: 'fully_connected_s8_backward_input', shape: '1x100 <- 10', macs: H * C, run: (k) => k.fcBackwardInput({ ...fc, inFeatures: H, outFeatures: C, wscaleMantissa: T.ws2, wscaleExp: -3, gradOut: T.gl, gradOutExp: T.glExp, weights: T.w2, gradIn: T.gh, gradInExp: T.ghExp, scratch: T.scratch }) },
  { op: 'fully_connected_s8_backward_input', shape: '1x784 <- 100', macs: I * H, run: (k) => k.fcBackwardInput({ ...fc, inFeatures: I, outFeatures: H, wscaleMantissa: T.ws1, wscaleExp: -8, gradOut: T.gh, gradOutExp: T.ghExp, weights: T.w1, gradIn: T.gx, gradInExp: T.gxExp, scratch: T.scratch }) },
  { op: 'fully_connected_s8_backward_bias', shape: '1x100', macs: H, run: (k) => k.fcBackwardBias({ ...fc, inFeatures: I, outFeatures: H, ocBegin: 0, ocEnd: H, gradOut: T.gh, gradBias: T.gb }) },
  { op: 'fully_connected_s8_backward_weight', shape: `784 -> 100, block 100x${BLOCK_IC}`, macs: H * BLOCK_IC, run: (k) => k.fcBackwardWeight({ ...fc, inFeatures: I, outFeatures: H, ocBegin: 0, ocEnd: H, icBegin: 0, icEnd: BLOCK_IC, inputOffset: 128, gradOut: T.gh, input: T.x, gradWeights: T.gw }) },
  { op: 'fully_connected_s8_backward_weight_sgd', shape: '784 -> 100 (dense, fused update)', macs: I * H, run: (k) => k.fcBackwardWeightSgd({ ...fc, inFeatures: I, outFeatures: H, ocBegin: 0, ocEnd: H, icBegin: 0, icEnd: I, inputOffset: 127, gradOut: T.gh, gradOutExp: T.ghExp, input: T.x, lrMultiplier: T.lr1, lrShift: T.lrs1, weights: T.w1, rng: T.rng }) },
  { op: 'sgd_s8_update', shape: `block 100x${BLOCK_IC}`, macs: H * BLOCK_IC, run: (k) => k.sgdS8Update({ inFeatures: I, outFeatures: H, ocBegin: 0, ocEnd: H, icBegin: 0, icEnd: BLOCK_IC, grad: T.gw, gradExp: T.ghExp, lrMultiplier: T.lr1, lrShift: T.lrs1, weights: T.w1, rng: T.rng }) },
  { op: 'activation_s8_backward', shape: '100', macs: H, run: (k) => k.activationBackward(H, T.mask, T.gh) },
  { op: 'softmax_xent_s8_backward', shape: '10 classes', macs: C, run: (k) => k.softmaxXentBackward({ classes: C, logits: T.logits, log2eScaleQ16: 11819, label: T.label, grad: T.gl, gradExp: T.glExp, pLabelQ16: T.p }) },
];

interface Row { op: string; target: string; shape: string; macs: number; instructions: number | null; instructionsPerMac?: number; nsPerCall?: number; nsPerMac?: number; cmsisNnInstructionsPerMac?: number }
const rows: Row[] = [];
// cortex-m4: the DSP (SMLAD) paths; cortex-m4-portable: the same core built
// with XST_PORTABLE (the C every other target runs).
const TARGETS = ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const;

for (const target of TARGETS) {
  const d = new TraceDispatch(L.used);
  const k = new Kernels(d);
  init(k);
  for (const c of cases) c.run(k);
  const r = await runTrace(target, d.writer.end());
  if (r.exitCode !== 0 || r.parsed.calls.length !== cases.length) {
    throw new Error(`${target}: trace failed (exit ${r.exitCode}): ${r.parsed.errors.join('; ')}`);
  }
  cases.forEach((c, i) => {
    const n = r.parsed.calls[i]!.instructions;
    rows.push({ op: c.op, target, shape: c.shape, macs: c.macs, instructions: n, instructionsPerMac: +(n / c.macs).toFixed(2) });
  });
}

// The CMSIS-NN anchors (instructions/MAC, QEMU, Cortex-M4F, GCC 12 -O2): a
// 1x1 stride-1 convolution over H*W pixels is fully_connected_s8_forward with
// rows = H*W, so all four are the FC forward kernel.
const anchors = [
  { shape: '1x1 conv 6x6x128 -> 256 (rows 36)', rows: 36, inF: 128, outF: 256, cmsis: 1.83 },
  { shape: 'FC 1x784 -> 100', rows: 1, inF: 784, outF: 100, cmsis: 1.94 },
  { shape: '1x1 conv 24x24x32 -> 32 (rows 576)', rows: 576, inF: 32, outF: 32, cmsis: 2.70 },
  { shape: '1x1 conv 48x48x8 -> 16 (rows 2304)', rows: 2304, inF: 8, outF: 16, cmsis: 6.63 },
];
for (const a of anchors) {
  // One arena and trace per anchor (together they exceed the images' arena).
  const AL = new ArenaLayout(ARENA);
  const q = quantizeMultiplier(0.0007);
  const t = {
    x: AL.alloc('x', 'int8', [a.rows, a.inF]), w: AL.alloc('w', 'int8', [a.outF, a.inF]),
    b: AL.alloc('b', 'int32', [a.outF]), y: AL.alloc('y', 'int8', [a.rows, a.outF]),
    mask: AL.alloc('mask', 'uint8', [Math.ceil((a.rows * a.outF) / 8)]),
    mult: AL.alloc('mult', 'int32', [a.outF]), shift: AL.alloc('shift', 'int32', [a.outF]),
  };
  for (const target of TARGETS) {
    const d = new TraceDispatch(AL.used);
    const k = new Kernels(d);
    const r = new Xorshift32(11);
    for (const x of [t.x, t.w]) k.write(x, Uint8Array.from({ length: x.bytes }, () => r.next() & 0xff));
    k.writeInt32(t.b, Array.from({ length: a.outF }, () => r.int(-5000, 5000)));
    k.writeInt32(t.mult, new Array(a.outF).fill(q.multiplier));
    k.writeInt32(t.shift, new Array(a.outF).fill(q.shift));
    k.fcForward({ rows: a.rows, inFeatures: a.inF, outFeatures: a.outF, inputOffset: 128, outputOffset: -128, actMin: -128, actMax: 127, input: t.x, weights: t.w, bias: t.b, output: t.y, mask: t.mask, multiplier: t.mult, shift: t.shift });
    const res = await runTrace(target, d.writer.end());
    if (res.exitCode !== 0 || res.parsed.calls.length !== 1) {
      throw new Error(`${target}: anchor trace failed (exit ${res.exitCode}): ${res.parsed.errors.join('; ')}`);
    }
    const n = res.parsed.calls[0]!.instructions, macs = a.rows * a.inF * a.outF;
    rows.push({ op: 'fully_connected_s8_forward', target, shape: a.shape, macs, instructions: n, instructionsPerMac: +(n / macs).toFixed(2), cmsisNnInstructionsPerMac: a.cmsis });
  }
}

// FC backward at 1x1-convolution shapes (rows = pixels): backward_input and
// the full-block backward_weight, one arena and trace per shape.
const bwdShapes = [
  { shape: '1x1 conv 6x6x128 <- 256 (rows 36)', rows: 36, inF: 128, outF: 256 },
  { shape: '1x1 conv 24x24x32 <- 32 (rows 576)', rows: 576, inF: 32, outF: 32 },
];
for (const a of bwdShapes) {
  for (const which of ['input', 'weight', 'weight_sgd'] as const) {
    const AL = new ArenaLayout(ARENA);
    const s = { rows: a.rows, inFeatures: a.inF, outFeatures: a.outF };
    const t = {
      x: AL.alloc('x', 'int8', [a.rows, a.inF]), w: AL.alloc('w', 'int8', [a.outF, a.inF]),
      g: AL.alloc('g', 'int8', [a.rows, a.outF]), gExp: AL.cell('g.exp'),
      ws: AL.alloc('ws', 'int16', [a.outF]), gx: AL.alloc('gx', 'int8', [a.rows, a.inF]), gxExp: AL.cell('gx.exp'),
      out: which === 'input'
        ? AL.alloc('scratch', 'uint8', [fcBackwardInputScratchBytes(s)])
        : AL.alloc('gw', 'int32', [which === 'weight' ? a.outF : 1, a.inF]),
      lr: AL.alloc('lr', 'int32', [a.outF]), lrs: AL.alloc('lrs', 'int32', [a.outF]), rng: AL.cell('rng'),
    };
    for (const target of TARGETS) {
      const d = new TraceDispatch(AL.used);
      const k = new Kernels(d);
      const r = new Xorshift32(13);
      for (const x of [t.x, t.w, t.g]) k.write(x, Uint8Array.from({ length: x.bytes }, () => r.next() & 0xff));
      k.writeInt16(t.ws, Array.from({ length: a.outF }, () => r.int(16384, 32767)));
      k.writeInt32(t.gExp, [-12]);
      if (which === 'input') {
        k.fcBackwardInput({ ...s, wscaleMantissa: t.ws, wscaleExp: -8, gradOut: t.g, gradOutExp: t.gExp, weights: t.w, gradIn: t.gx, gradInExp: t.gxExp, scratch: t.out });
      } else if (which === 'weight') {
        k.fcBackwardWeight({ ...s, ocBegin: 0, ocEnd: a.outF, icBegin: 0, icEnd: a.inF, inputOffset: 128, gradOut: t.g, input: t.x, gradWeights: t.out });
      } else {
        const lr = quantizeMultiplier(0.003, -62, 62);
        k.writeInt32(t.lr, new Array(a.outF).fill(lr.multiplier)); k.writeInt32(t.lrs, new Array(a.outF).fill(lr.shift));
        k.writeInt32(t.rng, [12345]);
        k.fcBackwardWeightSgd({ ...s, ocBegin: 0, ocEnd: a.outF, icBegin: 0, icEnd: a.inF, inputOffset: 127, gradOut: t.g, gradOutExp: t.gExp, input: t.x, lrMultiplier: t.lr, lrShift: t.lrs, weights: t.w, rng: t.rng });
      }
      const res = await runTrace(target, d.writer.end());
      if (res.exitCode !== 0 || res.parsed.calls.length !== 1) {
        throw new Error(`${target}: backward trace failed (exit ${res.exitCode}): ${res.parsed.errors.join('; ')}`);
      }
      const n = res.parsed.calls[0]!.instructions, macs = a.rows * a.inF * a.outF;
      rows.push({ op: `fully_connected_s8_backward_${which}`, target, shape: a.shape, macs, instructions: n, instructionsPerMac: +(n / macs).toFixed(2) });
    }
  }
}

// A whole training step of the MNIST workload (forward, loss, backward, fused
// updates) on real, sparse data: the mean over the first 200 steps.
const train = loadMnist('train');
const STEPS = 200;
const { trace } = recordMlpTrace(train, shuffledIndices(train.count, 1), STEPS);
for (const target of TARGETS) {
  const r = await runTrace(target, trace);
  if (r.exitCode !== 0) throw new Error(`${target}: MLP trace failed (exit ${r.exitCode})`);
  const total = r.parsed.calls.reduce((a, c) => a + c.instructions, 0);
  rows.push({ op: 'mlp_train_step', target, shape: 'MNIST 784-100-10, batch 1, mean of 200 steps', macs: 3 * (784 * 100 + 100 * 10), instructions: Math.round(total / STEPS) });
}

rows.push(...(await convBench())); // conv2d / depthwise section: bench/kernels-conv.ts

const host = `host-${arch()}`;
const nd = new NodeDispatch(new ArrayBuffer(ARENA));
const nk = new Kernels(nd);
init(nk);
for (const c of cases) {
  const reps = Math.max(20, Math.min(20000, Math.round(2e7 / c.macs)));
  for (let i = 0; i < 5; i++) c.run(nk); // warm up
  const samples: number[] = [];
  for (let s = 0; s < 5; s++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) c.run(nk);
    samples.push(Number(process.hrtime.bigint() - t0) / reps);
  }
  samples.sort((a, b) => a - b);
  const ns = samples[2]!; // median of 5
  rows.push({ op: c.op, target: host, shape: c.shape, macs: c.macs, instructions: null, nsPerCall: Math.round(ns), nsPerMac: +(ns / c.macs).toFixed(3) });
}

const pad = (s: string | number, n: number) => String(s).padEnd(n);
console.log(pad('op', 40) + pad('shape', 36) + pad('target', 20) + pad('MACs', 9) + pad('instr', 10) + 'per MAC');
for (const r of rows) {
  const per = r.instructionsPerMac !== undefined ? `${r.instructionsPerMac} instr` : r.nsPerMac !== undefined ? `${r.nsPerMac} ns` : '';
  console.log(pad(r.op, 40) + pad(r.shape, 36) + pad(r.target, 20) + pad(r.macs, 9) + pad(r.instructions ?? '-', 10) + per);
}

// Instructions per MAC side by side: DSP / portable M4 / RV32 / CMSIS-NN.
const per = (op: string, shape: string, target: string) =>
  rows.find((r) => r.op === op && r.shape === shape && r.target === target)?.instructionsPerMac ?? '-';
const side: { op: string; shape: string; cmsis?: number }[] = [
  ...anchors.map((a) => ({ op: 'fully_connected_s8_forward', shape: a.shape, cmsis: a.cmsis })),
  { op: 'fully_connected_s8_backward_input', shape: '1x784 <- 100' },
  { op: 'fully_connected_s8_backward_weight', shape: `784 -> 100, block 100x${BLOCK_IC}` },
  ...bwdShapes.flatMap((a) => [
    { op: 'fully_connected_s8_backward_input', shape: a.shape },
    { op: 'fully_connected_s8_backward_weight', shape: a.shape },
    { op: 'fully_connected_s8_backward_weight_sgd', shape: a.shape },
  ]),
  { op: 'fully_connected_s8_backward_weight_sgd', shape: '784 -> 100 (dense, fused update)' },
  { op: 'sgd_s8_update', shape: `block 100x${BLOCK_IC}` },
];
console.log('\ninstructions/MAC' + ' '.repeat(60) + 'M4 DSP    M4 portable  RV32     CMSIS-NN (M4)');
for (const s of side) {
  console.log(pad(`${s.op.replace('fully_connected_s8_', 'fc ')} ${s.shape}`, 76) + pad(per(s.op, s.shape, 'cortex-m4'), 10) +
    pad(per(s.op, s.shape, 'cortex-m4-portable'), 13) + pad(per(s.op, s.shape, 'rv32'), 9) + (s.cmsis ?? '-'));
}
// person_detect, layer by layer, forward and backward (bench/person-detect.ts).
const pd = await benchPersonDetect();
console.log('\nperson_detect per layer, instructions/MAC' + ' '.repeat(30) + 'M4 DSP    M4 portable  RV32');
const layerKey = (l: { layer: number; pass: string; op: string }) => `${l.layer} ${l.pass} ${l.op}`;
for (const l of pd.layers.filter((x) => x.target === 'cortex-m4')) {
  const same = (t: string) => pd.layers.find((x) => x.target === t && layerKey(x) === layerKey(l))?.instructionsPerMac ?? '-';
  console.log(pad(`${l.layer} ${l.pass} ${l.shape}`, 72) + pad(l.instructionsPerMac ?? '-', 10) + pad(same('cortex-m4-portable'), 13) + same('rv32'));
}
console.log('person_detect totals', JSON.stringify(pd.totals, null, 1));

const dir = join(repoRoot, 'bench', 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'kernels.json'), JSON.stringify({ note: 'instructions: QEMU -icount, exact and deterministic; nsPerMac: Node addon on this host, median of 5 (noisy)', ops: rows, personDetect: { totals: pd.totals, layers: pd.layers } }, null, 2) + '\n');
console.log(`wrote bench/results/kernels.json (${rows.length} rows)`);
