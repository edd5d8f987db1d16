// person_detect (MobileNetV1-0.25, 96x96x1, the on-device training paper's
// VWW task) per layer on Cortex-M4F (DSP and portable) and RV32: the forward
// pass through the runner (weights in flash, as on a device), and for every
// convolution the backward kernels (input gradient, full weight gradient,
// bias gradient) on the layer's real shapes and weights. Instruction counts
// from QEMU (exact). Returns rows for bench/results/kernels.json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ArenaLayout, type Tensor } from '../src/core/arena.js';
import { convGeometry } from '../src/core/conv-geometry.js';
import { importTflite } from '../src/compiler/tflite/import.js';
import type { Graph, GraphOp } from '../src/core/graph.js';
import {
  FLASH_BASE, Kernels, conv2dBackwardInputScratchBytes, depthwiseConv2dBackwardInputScratchBytes,
} from '../src/core/kernels.js';
import { weightScaleMantissa } from '../src/core/quant.js';
import { Xorshift32 } from '../src/core/rng.js';
import { ForwardRunner } from '../src/core/runner.js';
import { TraceDispatch } from '../src/core/trace-dispatch.js';
import { repoRoot } from '../src/node/addon.js';
import { recordInference } from '../src/node/infer.js';
import { runTrace } from '../src/node/qemu.js';

export const TARGETS = ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const;
type Target = (typeof TARGETS)[number];

export interface LayerRow {
  model: 'person_detect';
  layer: number; // graph op index
  op: string;
  pass: 'forward' | 'backward_input' | 'backward_weight' | 'backward_bias';
  shape: string;
  target: Target;
  macs: number;
  instructions: number;
  instructionsPerMac: number | null;
}

const ARENA = 200 * 1024; // the images' arena capacity

function shapeOf(g: Graph, op: GraphOp): string {
  const x = g.tensors[op.inputs[0]!]!.shape, y = g.tensors[op.outputs[0]!]!.shape;
  if (op.kind === 'conv2d' || op.kind === 'depthwise_conv2d') {
    const w = g.tensors[op.inputs[1]!]!.shape;
    return `${x.slice(1).join('x')} -> ${y.slice(1).join('x')}, ${w[1]}x${w[2]} s${op.strideH}${op.kind === 'depthwise_conv2d' ? ` m${op.depthMultiplier}` : ''}`;
  }
  return `${x.slice(1).join('x')} -> ${y.slice(1).join('x')}`;
}

interface BackwardCall { layer: number; op: string; pass: LayerRow['pass']; shape: string; macs: number }

// One trace per target with every convolution's backward kernels; the arena
// is laid out anew per layer (ARENA records), weights go to flash.
function recordBackward(g: Graph): { trace: Uint8Array; calls: BackwardCall[] } {
  const d = new TraceDispatch(ARENA);
  const k = new Kernels(d);
  const r = new Xorshift32(5);
  const rand = (t: Tensor) => k.write(t, Uint8Array.from({ length: t.bytes }, () => r.next() & 0xff));
  const calls: BackwardCall[] = [];
  let flashTop = 0;
  for (const op of g.ops) {
    if (op.kind !== 'conv2d' && op.kind !== 'depthwise_conv2d') continue;
    const xg = g.tensors[op.inputs[0]!]!, yg = g.tensors[op.outputs[0]!]!, wg = g.tensors[op.inputs[1]!]!;
    const [batch, inH, inW, inC] = xg.shape as [number, number, number, number];
    const [, outH, outW, outC] = yg.shape as [number, number, number, number];
    const kH = wg.shape[1]!, kW = wg.shape[2]!;
    const { padH, padW } = convGeometry(inH, inW, kH, kW, op.strideH, op.strideW, op.padding);
    const geo = { batch, inH, inW, inC, outH, outW, kH, kW, strideH: op.strideH, strideW: op.strideW, padH, padW };
    const dw = op.kind === 'depthwise_conv2d';
    const shape = shapeOf(g, op);
    const macs = batch * outH * outW * outC * kH * kW * (dw ? 1 : inC);
    const F = new ArenaLayout(1 << 20, FLASH_BASE);
    // Flash grows across layers (the model's weights all live there).
    F.alloc('pad', 'uint8', [flashTop]);
    const w = F.alloc('w', 'int8', wg.shape);
    flashTop = w.offset - FLASH_BASE + w.bytes;
    k.write(w, wg.data!);
    const m = weightScaleMantissa(wg.quant!.scale.length === 1 ? new Array<number>(outC).fill(wg.quant!.scale[0]!) : wg.quant!.scale);
    // Input gradient: its own arena layout (the scratch of early layers is large).
    d.writer.arena(ARENA);
    const L = new ArenaLayout(ARENA);
    const gy = L.alloc('gy', 'int8', yg.shape), gyExp = L.cell('gy.exp');
    const gx = L.alloc('gx', 'int8', xg.shape), gxExp = L.cell('gx.exp');
    const ws = L.alloc('wscale', 'int16', [outC]);
    rand(gy);
    k.writeInt32(gyExp, [-10]);
    k.writeInt16(ws, m.mantissa);
    // Weight and bias gradients: a second layout over the same arena.
    const L2 = new ArenaLayout(ARENA);
    const x = L2.alloc('x', 'int8', xg.shape), gy2 = L2.alloc('gy', 'int8', yg.shape);
    const gb = L2.alloc('gb', 'int32', [outC]);
    // The full weight gradient of the deep 1x1 layers (256x256 int32) does not
    // fit the arena (the reason for the sparse update): measure a block of
    // output channels that does.
    const perOc = dw ? kH * kW : kH * kW * inC;
    const ocN = Math.min(outC, Math.floor((96 * 1024) / (4 * perOc)));
    const gw = L2.alloc('gw', 'int32', [ocN * perOc]);
    const second = () => {
      rand(x);
      rand(gy2);
    };
    const inputOffset = -xg.quant!.zeroPoint[0]!;
    if (!dw) {
      const s = { ...geo, outC };
      if (inC > 1) {
        const scratch = L.alloc('scratch', 'uint8', [conv2dBackwardInputScratchBytes(s)]);
        k.conv2dBackwardInput({ ...s, wscaleMantissa: ws, wscaleExp: m.exp, gradOut: gy, gradOutExp: gyExp, weights: w, gradIn: gx, gradInExp: gxExp, scratch });
        calls.push({ layer: op.index, op: 'conv2d_s8_backward_input', pass: 'backward_input', shape, macs });
      }
      second();
      k.conv2dBackwardWeight({ ...s, ocBegin: 0, ocEnd: ocN, icBegin: 0, icEnd: inC, inputOffset, gradOut: gy2, input: x, gradWeights: gw });
      calls.push({ layer: op.index, op: 'conv2d_s8_backward_weight', pass: 'backward_weight', shape: `${shape}${ocN < outC ? `, block ${ocN} of ${outC} out channels` : ''}`, macs: (macs / outC) * ocN });
      k.conv2dBackwardBias({ ...s, ocBegin: 0, ocEnd: outC, gradOut: gy2, gradBias: gb });
      calls.push({ layer: op.index, op: 'conv2d_s8_backward_bias', pass: 'backward_bias', shape, macs: batch * outH * outW * outC });
    } else {
      const s = { ...geo, depthMultiplier: op.depthMultiplier };
      if (op.index !== 0) { // the first layer's input is the image: no gradient needed
        const scratch = L.alloc('scratch', 'uint8', [depthwiseConv2dBackwardInputScratchBytes(s)]);
        k.depthwiseConv2dBackwardInput({ ...s, wscaleMantissa: ws, wscaleExp: m.exp, gradOut: gy, gradOutExp: gyExp, weights: w, gradIn: gx, gradInExp: gxExp, scratch });
        calls.push({ layer: op.index, op: 'depthwise_conv2d_s8_backward_input', pass: 'backward_input', shape, macs });
      }
      second();
      k.depthwiseConv2dBackwardWeight({ ...s, ocBegin: 0, ocEnd: ocN, inputOffset, gradOut: gy2, input: x, gradWeights: gw });
      calls.push({ layer: op.index, op: 'depthwise_conv2d_s8_backward_weight', pass: 'backward_weight', shape: `${shape}${ocN < outC ? `, block ${ocN} of ${outC} out channels` : ''}`, macs: (macs / outC) * ocN });
      k.depthwiseConv2dBackwardBias({ ...s, ocBegin: 0, ocEnd: outC, gradOut: gy2, gradBias: gb });
      calls.push({ layer: op.index, op: 'depthwise_conv2d_s8_backward_bias', pass: 'backward_bias', shape, macs: batch * outH * outW * outC });
    }
  }
  return { trace: d.writer.end(), calls };
}

export async function benchPersonDetect(): Promise<{ layers: LayerRow[]; wholeForward: Record<Target, number>; totals: Record<string, unknown> }> {
  const g = importTflite(new Uint8Array(readFileSync(join(repoRoot, 'models', 'person_detect.tflite'))), 'person_detect');
  const runner = new ForwardRunner(g);
  const input = Uint8Array.from({ length: runner.input.bytes }, (_, i) => (i * 37) & 0xff);
  const fwdTrace = recordInference(runner, input);
  const bwd = recordBackward(g);
  const layers: LayerRow[] = [];
  const wholeForward = {} as Record<Target, number>;
  const kernelSteps = runner.steps.filter((s) => s.kind !== 'reshape');
  for (const target of TARGETS) {
    const f = await runTrace(target, fwdTrace, { timeoutMs: 600_000 });
    if (f.exitCode !== 0 || f.parsed.calls.length !== kernelSteps.length) {
      throw new Error(`${target}: person_detect forward trace failed (exit ${f.exitCode}): ${f.parsed.errors.join('; ')}`);
    }
    wholeForward[target] = f.parsed.calls.reduce((a, c) => a + c.instructions, 0);
    kernelSteps.forEach((s, i) => {
      const n = f.parsed.calls[i]!.instructions;
      const op = g.ops.find((o) => o.index === s.index)!;
      layers.push({ model: 'person_detect', layer: s.index, op: s.kind, pass: 'forward', shape: shapeOf(g, op), target,
        macs: s.macs, instructions: n, instructionsPerMac: s.macs ? +(n / s.macs).toFixed(2) : null });
    });
    const b = await runTrace(target, bwd.trace, { timeoutMs: 600_000 });
    if (b.exitCode !== 0 || b.parsed.calls.length !== bwd.calls.length) {
      throw new Error(`${target}: person_detect backward trace failed (exit ${b.exitCode}): ${b.parsed.errors.join('; ')}`);
    }
    bwd.calls.forEach((c, i) => {
      const n = b.parsed.calls[i]!.instructions;
      layers.push({ model: 'person_detect', layer: c.layer, op: c.op, pass: c.pass, shape: c.shape, target, macs: c.macs,
        instructions: n, instructionsPerMac: +(n / c.macs).toFixed(2) });
    });
  }
  const totals: Record<string, unknown> = { forwardMacs: runner.macs };
  for (const target of TARGETS) {
    const sum = (pass: LayerRow['pass']) => layers.filter((l) => l.target === target && l.pass === pass).reduce((a, l) => a + l.instructions, 0);
    totals[target] = {
      forwardInstructions: wholeForward[target],
      forwardInstructionsPerMac: +(wholeForward[target] / runner.macs).toFixed(2),
      backwardInputInstructions: sum('backward_input'),
      backwardWeightInstructions: sum('backward_weight'),
      backwardBiasInstructions: sum('backward_bias'),
    };
  }
  return { layers, wholeForward, totals };
}
