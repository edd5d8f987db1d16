// The conv2d / depthwise conv2d part of npm run bench:kernels (bench/kernels.ts
// calls convBench once): instructions per MAC of person_detect's first
// convolution (3x3 stride 2 SAME, 96x96x1 -> 48x48x8) and of its 3x3
// depthwise layers (depth multiplier 1, SAME) on Cortex-M4F with the DSP
// paths, Cortex-M4F portable and RV32IMC, next to the CMSIS-NN anchors
// (QEMU instruction counts, Cortex-M4F, GCC 12 -O2); plus backward_input and
// backward_weight (full block) of the convolution and three depthwise layers
// (48x48x8 s1, person_detect's 48x48x16 s2 and 6x6x128).
// MACs are nominal: out_h*out_w*out_c*k_h*k_w*in_c (padding taps included,
// as the anchors count them).
import { ArenaLayout, type Tensor } from '../src/core/arena.js';
import { convGeometry } from '../src/core/conv-geometry.js';
import { Kernels, conv2dBackwardInputScratchBytes, depthwiseConv2dBackwardInputScratchBytes } from '../src/core/kernels.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import { Xorshift32 } from '../src/core/rng.js';
import { TraceDispatch } from '../src/core/trace-dispatch.js';
import { runTrace } from '../src/node/qemu.js';

export interface ConvBenchRow {
  op: string; target: string; shape: string; macs: number; instructions: number;
  instructionsPerMac: number; cmsisNnInstructionsPerMac?: number;
}

const ARENA = 200 * 1024; // the images' capacity (48x48x16's backward_input scratch alone is 144 KB)
const TARGETS = ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const;

interface Layer {
  kind: 'conv' | 'dw'; h: number; w: number; c: number; oc: number; stride: number; cmsis: number; backward: boolean;
}
const LAYERS: Layer[] = [
  { kind: 'conv', h: 96, w: 96, c: 1, oc: 8, stride: 2, cmsis: 14.0, backward: true },
  { kind: 'dw', h: 48, w: 48, c: 8, oc: 8, stride: 1, cmsis: 8.5, backward: true },
  { kind: 'dw', h: 48, w: 48, c: 16, oc: 16, stride: 2, cmsis: 8.9, backward: true },
  { kind: 'dw', h: 24, w: 24, c: 32, oc: 32, stride: 1, cmsis: 8.5, backward: false },
  { kind: 'dw', h: 12, w: 12, c: 64, oc: 64, stride: 1, cmsis: 8.5, backward: false },
  { kind: 'dw', h: 6, w: 6, c: 128, oc: 128, stride: 1, cmsis: 8.5, backward: true },
  { kind: 'dw', h: 3, w: 3, c: 256, oc: 256, stride: 1, cmsis: 8.9, backward: false },
];
// The anchors give 8.5-8.9 for the depthwise layers as a range; the per-layer
// figures above are that range's ends, not separate measurements.

interface Case { op: string; shape: string; macs: number; cmsis?: number }

function record(l: Layer): { trace: Uint8Array; cases: Case[] } {
  const g = convGeometry(l.h, l.w, 3, 3, l.stride, l.stride, 'same');
  const s = { batch: 1, inH: l.h, inW: l.w, inC: l.c, outH: g.outH, outW: g.outW, kH: 3, kW: 3,
    strideH: l.stride, strideW: l.stride, padH: g.padH, padW: g.padW };
  const conv = { ...s, outC: l.oc };
  const dw = { ...s, depthMultiplier: 1 };
  const L = new ArenaLayout(ARENA);
  const nIn = l.h * l.w * l.c, nOut = g.outH * g.outW * l.oc, nW = 9 * l.c * (l.kind === 'conv' ? l.oc : 1);
  const t = {
    x: L.alloc('x', 'int8', [nIn]), w: L.alloc('w', 'int8', [nW]), b: L.alloc('b', 'int32', [l.oc]),
    y: L.alloc('y', 'int8', [nOut]), mask: L.alloc('mask', 'uint8', [Math.ceil(nOut / 8)]),
    mult: L.alloc('mult', 'int32', [l.oc]), shift: L.alloc('shift', 'int32', [l.oc]),
  };
  const d = new TraceDispatch(ARENA);
  const k = new Kernels(d);
  const r = new Xorshift32(13);
  const bytes = (x: Tensor) => Uint8Array.from({ length: x.bytes }, () => r.next() & 0xff);
  k.write(t.x, bytes(t.x));
  k.write(t.w, bytes(t.w));
  k.writeInt32(t.b, Array.from({ length: l.oc }, () => r.int(-5000, 5000)));
  const q = quantizeMultiplier(0.002);
  k.writeInt32(t.mult, new Array(l.oc).fill(q.multiplier));
  k.writeInt32(t.shift, new Array(l.oc).fill(q.shift));
  const macs = nOut * 9 * (l.kind === 'conv' ? l.c : 1);
  const shape = `3x3 s${l.stride} SAME ${l.h}x${l.w}x${l.c} -> ${g.outH}x${g.outW}x${l.oc}`;
  const fwd = { inputOffset: 128, outputOffset: -128, actMin: -128, actMax: 127, input: t.x, weights: t.w,
    bias: t.b, output: t.y, mask: t.mask, multiplier: t.mult, shift: t.shift };
  const name = l.kind === 'conv' ? 'conv2d_s8' : 'depthwise_conv2d_s8';
  const cases: Case[] = [{ op: `${name}_forward`, shape, macs, cmsis: l.cmsis }];
  if (l.kind === 'conv') k.conv2dForward({ ...conv, ...fwd });
  else k.depthwiseConv2dForward({ ...dw, ...fwd });
  if (l.backward) {
    // grad_out reuses the forward output, grad_in the input (backward_weight
    // runs first): person_detect's 48x48x16 layer fits the arena that way.
    const ws = L.alloc('ws', 'int16', [l.oc]), go: Tensor = { ...t.y, name: 'go' }, goExp = L.cell('go.exp');
    const gi: Tensor = { ...t.x, name: 'gi' }, giExp = L.cell('gi.exp'), gw = L.alloc('gw', 'int32', [nW]);
    const sb = l.kind === 'conv' ? conv2dBackwardInputScratchBytes(conv) : depthwiseConv2dBackwardInputScratchBytes(dw);
    const scratch = L.alloc('scratch', 'uint8', [sb]);
    k.writeInt16(ws, Array.from({ length: l.oc }, () => r.int(8000, 32767)));
    k.write(go, bytes(go));
    k.writeInt32(goExp, [-10]);
    const bi = { wscaleMantissa: ws, wscaleExp: -7, gradOut: go, gradOutExp: goExp, weights: t.w, gradIn: gi, gradInExp: giExp, scratch };
    const bw = { ocBegin: 0, ocEnd: l.oc, inputOffset: 128, gradOut: go, input: t.x, gradWeights: gw };
    if (l.kind === 'conv') {
      k.conv2dBackwardWeight({ ...conv, ...bw, icBegin: 0, icEnd: l.c });
      k.conv2dBackwardInput({ ...conv, ...bi });
    } else {
      k.depthwiseConv2dBackwardWeight({ ...dw, ...bw });
      k.depthwiseConv2dBackwardInput({ ...dw, ...bi });
    }
    cases.push({ op: `${name}_backward_weight`, shape: `${shape}, full block`, macs }, { op: `${name}_backward_input`, shape, macs });
  }
  return { trace: d.writer.end(), cases };
}

/** Runs the conv/depthwise cases on the three images, prints a table, returns the rows. */
export async function convBench(): Promise<ConvBenchRow[]> {
  const rows: ConvBenchRow[] = [];
  // CONV_BENCH_ONLY=dw48x48x16 (kind + h x w x c) runs that layer alone.
  const only = process.env.CONV_BENCH_ONLY;
  for (const l of LAYERS.filter((x) => !only || `${x.kind}${x.h}x${x.w}x${x.c}` === only)) {
    const { trace, cases } = record(l);
    for (const target of TARGETS) {
      const res = await runTrace(target, trace);
      if (res.exitCode !== 0 || res.parsed.calls.length !== cases.length) {
        throw new Error(`${target}: conv bench trace failed (exit ${res.exitCode}): ${res.parsed.errors.join('; ')}`);
      }
      cases.forEach((c, i) => {
        const n = res.parsed.calls[i]!.instructions;
        rows.push({ op: c.op, target, shape: c.shape, macs: c.macs, instructions: n, instructionsPerMac: +(n / c.macs).toFixed(2),
          ...(c.cmsis !== undefined ? { cmsisNnInstructionsPerMac: c.cmsis } : {}) });
      });
    }
  }
  const pad = (s: string | number, n: number) => String(s).padEnd(n);
  const per = (op: string, shape: string, target: string) =>
    rows.find((r) => r.op === op && r.shape === shape && r.target === target)?.instructionsPerMac ?? '-';
  console.log('\nconv instructions/MAC' + ' '.repeat(71) + 'M4 DSP    M4 portable  RV32     CMSIS-NN (M4)');
  for (const r of rows.filter((x) => x.target === 'cortex-m4')) {
    console.log(pad(`${r.op.replace('_s8', '')} ${r.shape}`, 92) + pad(per(r.op, r.shape, 'cortex-m4'), 10) +
      pad(per(r.op, r.shape, 'cortex-m4-portable'), 13) + pad(per(r.op, r.shape, 'rv32'), 9) + (r.cmsisNnInstructionsPerMac ?? '-'));
  }
  return rows;
}

// Run alone: npx tsx bench/kernels-conv.ts
if (process.argv[1]?.endsWith('kernels-conv.ts')) await convBench();
