// Training memory of the real models under the Tiny Training Engine's four
// settings (src/compiler/train/compile.ts trainingMemoryFigures):
//   (a) full backprop, int8, no reordering   (b) sparse scheme, pruned
//   (c) sparse + reordering (fused updates)   (d) fp32 full backprop, held as PyTorch would
// with the peak step and what occupies it; then MobileNetV2-w0.35-128 with
// the reference's 99 KB scheme, step by step towards a 128 KB arena (row-tiled
// forward, in place, trained weight slices, one-row input-gradient scratch).
// Static analysis only (no kernels run): `npx tsx bench/train-memory.ts`
// prints the tables and writes bench/results/train-memory.json.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import { type CompileOptions, compileTraining, trainingMemoryFigures } from '../src/compiler/train/compile.js';
import type { TrainGraph } from '../src/compiler/train/train-graph.js';
import type { MemoryReport } from '../src/compiler/train/plan.js';
import type { SparseUpdateScheme } from '../src/compiler/train/scheme.js';
import { importTflite } from '../src/compiler/tflite/import.js';
import { repoRoot } from '../src/node/addon.js';

// Layer numbers: convolutions (incl. depthwise) + FC in forward order, 0-based.
export const handSchemes: Record<string, { scheme: SparseUpdateScheme; why: string }> = {
  // MobileNetV1-0.25 (96x96x1): layers 0-26 alternate depthwise/pointwise, 27 is the classifier.
  person_detect: {
    scheme: { biasLayers: 10, weights: [{ layer: 26, ratio: 0.5 }, { layer: 24, ratio: 0.25 }, { layer: 22, ratio: 0.125 }] },
    why: 'biases of the last 10 layers; weights of the last three pointwise convs at 1/2, 1/4, 1/8 of their input channels',
  },
  // depthwise conv 10x8 (1 -> 8 channels, ReLU) then FC 4000 -> 4.
  micro_speech_quantized: {
    scheme: { biasLayers: 2, weights: [] },
    why: "the classifier and the conv's bias",
  },
};

const kb = (n: number): string => `${(n / 1024).toFixed(1)} KB`;

function line(label: string, r: MemoryReport, bytes: number): string {
  const top = r.peakTensors.slice(0, 4).map((t) => `${t.name.replace(/^MobilenetV1\/(MobilenetV1\/)?/, '')} ${kb(t.bytes)} ${t.saved ? 'saved ' : ''}${t.role}`);
  const phases = Object.entries(r.phasePeaks).map(([p, v]) => `${p} ${kb(v.bytes)}`).join(', ');
  return `  ${label.padEnd(28)} ${kb(bytes).padStart(10)}   peak at step ${r.peakStep}/${r.steps} ${r.peakOp} (live by phase: ${phases})\n` +
    `  ${''.padEnd(28)} ${''.padStart(10)}   ${top.join('; ')}`;
}

// MobileNetV2-w0.35 at 128x128 (10 classes) with the reference's 99 KB
// scheme: each step of the attack on a 128 KB arena, SGD and LQM, the peak
// and what occupies it, and what the steps cost in forward MACs.
export const MBV2_99KB: SparseUpdateScheme = {
  biasLayers: 26, // the last 25 convolutions and the classifier
  weights: [27, 30, 33, 36, 39, 42, 45, 48].map((layer, k) => ({ layer, ratio: [1, 1, 1, 1, 1, 0.125, 0.5, 1][k]! })),
};

const MBV2_STEPS: [string, Partial<CompileOptions>][] = [
  ['sparse + reordered', {}],
  ['+ row-tiled forward', { tile: { inPlace: 'none' } }],
  ['+ in-place depthwise', { tile: { inPlace: 'depthwise' } }],
  ['+ in place, any tiled op', { tile: true }],
  ['+ only trained weight slices', { tile: true, sliceWeights: true }],
  ['+ one-row input-gradient scratch', { tile: true, sliceWeights: true, rowScratch: true }],
];

// Forward MACs of a training graph (tiled ops with their recomputed rows) and
// the input-gradient MACs the one-row kernels compute twice.
function stepMacs(tg: TrainGraph): { forward: number; rowsRepeat: number } {
  const g = tg.model;
  let forward = 0, rowsRepeat = 0;
  for (const op of tg.ops) {
    if (op.tiled) forward += op.tiled.macs;
    else if (op.phase === 'forward' && op.source !== null) {
      const gop = g.ops[op.source]!;
      if (gop.kind === 'conv2d' || gop.kind === 'depthwise_conv2d' || gop.kind === 'fully_connected') {
        const y = g.tensors[gop.outputs[0]!]!, w = g.tensors[gop.inputs[1]!]!;
        const outs = y.shape.reduce((a, d) => a * d, 1);
        forward += gop.kind === 'depthwise_conv2d' ? outs * w.shape[1]! * w.shape[2]! : outs * (w.shape.reduce((a, d) => a * d, 1) / w.shape[0]!);
      }
    }
    if (/_backward_input_rows$/.test(op.kernel) && op.layer !== null) {
      const l = tg.layers[op.layer]!, gop = g.ops[l.op]!;
      const y = g.tensors[gop.outputs[0]!]!;
      const outs = y.shape.reduce((a, d) => a * d, 1);
      rowsRepeat += l.kind === 'depthwise_conv2d' ? outs * l.kH * l.kW : outs * l.kH * l.kW * (l.inC);
    }
  }
  return { forward, rowsRepeat };
}

function mbv2Attack(): Record<string, unknown> {
  const g = buildMobileNetV2({ width: 0.35, resolution: 128, classes: 10, seed: 1 });
  console.log(`${g.name}, the reference's 99 KB scheme ${JSON.stringify(MBV2_99KB)}: the 128 KB attack (arena bytes as planned)`);
  console.log(`  ${'step'.padEnd(34)} ${'SGD'.padStart(10)} ${'LQM'.padStart(10)}   SGD: forward / backward live peak, forward MACs; peak and its largest tensors`);
  const rows: Record<string, unknown>[] = [];
  let untiled = 0;
  for (const [step, o] of MBV2_STEPS) {
    const sgd = compileTraining(g, { scheme: MBV2_99KB, reorder: true, ...o });
    const lqm = compileTraining(g, { scheme: MBV2_99KB, reorder: true, optimizer: 'lqm', ...o }).plan.report;
    const r = sgd.plan.report, m = stepMacs(sgd.graph);
    untiled ||= m.forward;
    const fwdOnly = o.tile ? compileTraining(g, { scheme: MBV2_99KB, reorder: true, ...o, tile: { ...(o.tile === true ? {} : o.tile), minimise: 'forward' } }).plan.report : null;
    const top = r.peakTensors.slice(0, 4).map((t) => `${t.name} ${kb(t.bytes)}`).join('; ');
    console.log(`  ${step.padEnd(34)} ${kb(r.arenaBytes).padStart(10)} ${kb(lqm.arenaBytes).padStart(10)}   ` +
      `${kb(r.phasePeaks.forward!.bytes)} / ${kb(r.phasePeaks.backward!.bytes)}` +
      `${fwdOnly ? ` (lowest forward ${kb(fwdOnly.phasePeaks.forward!.bytes)})` : ''}, ${(m.forward / 1e6).toFixed(2)} M MACs` +
      `${m.forward > untiled ? ` (+${((m.forward / untiled - 1) * 100).toFixed(0)}%)` : ''}${m.rowsRepeat ? `, +${(m.rowsRepeat / 1e6).toFixed(2)} M repeated in the backward` : ''}\n` +
      `  ${''.padEnd(34)} ${''.padStart(21)}   peak at ${r.peakOp}: ${top}`);
    rows.push({
      step, sgdArenaBytes: r.arenaBytes, lqmArenaBytes: lqm.arenaBytes, sgdPeakLiveBytes: r.peakLiveBytes, sgdPhasePeaks: r.phasePeaks,
      lowestForwardBytes: fwdOnly?.phasePeaks.forward!.bytes ?? null, persistentBytes: { sgd: r.persistentBytes, lqm: lqm.persistentBytes },
      forwardMacs: m.forward, repeatedBackwardMacs: m.rowsRepeat, peakOp: r.peakOp, peakTensors: r.peakTensors.slice(0, 8),
      lqmPeakOp: lqm.peakOp, lqmPeakTensors: lqm.peakTensors.slice(0, 8),
    });
  }
  const last = MBV2_STEPS.at(-1)![1];
  const final = compileTraining(g, { scheme: MBV2_99KB, reorder: true, ...last });
  console.log('  tiled ops of the last step (band height: the largest that keeps the step under its peak, see tile.ts):');
  for (const op of final.graph.ops) {
    if (op.tiled) console.log(`    ${op.name}: ${(op.tiled.macs / op.tiled.untiledMacs).toFixed(2)}x its MACs`);
  }
  const lqm2 = compileTraining(g, { scheme: MBV2_99KB, reorder: true, optimizer: 'lqm', lqmBits: 2, ...last }).plan.report;
  console.log(`  LQM with 2-bit state (the smallest the kernel takes): ${kb(lqm2.arenaBytes)}\n`);
  return { scheme: MBV2_99KB, steps: rows, lqm2BitArenaBytes: lqm2.arenaBytes };
}

function main(): void {
  const out: Record<string, unknown> = {};
  for (const [model, { scheme, why }] of Object.entries(handSchemes)) {
    const g = importTflite(new Uint8Array(readFileSync(join(repoRoot, 'models', `${model}.tflite`))), model);
    const f = trainingMemoryFigures(g, scheme);
    const lqm = compileTraining(g, { scheme, reorder: true, optimizer: 'lqm' }).plan.report;
    const c = compileTraining(g, { scheme, reorder: true });
    // Weights of partially updated layers that the scheme leaves alone: they
    // sit in the arena only because the kernels update a weight tensor whole.
    const untouched = c.graph.layers.reduce((a, l, i) => {
      const w = c.graph.updates[i]!.weights;
      return a + (w ? l.weightElements - (l.weightElements * (w.icEnd - w.icBegin) * (w.ocEnd - w.ocBegin)) / (l.inC * l.outC) : 0);
    }, 0);
    console.log(`${model}: ${JSON.stringify(scheme)}\n  (${why})`);
    console.log(line('(a) full backprop, int8', f.full, f.full.arenaBytes));
    console.log(line('(b) sparse, pruned', f.sparse, f.sparse.arenaBytes));
    console.log(line('(c) sparse + reordered', f.sparseReordered, f.sparseReordered.arenaBytes));
    console.log(line('(c) with LQM (5 bits/weight)', lqm, lqm.arenaBytes));
    console.log(line('(d) fp32 full, PyTorch-held', f.fp32, f.fp32.peakLiveBytes));
    console.log(`  ratios: full/sparse ${(f.full.arenaBytes / f.sparse.arenaBytes).toFixed(2)}x, sparse/reordered ` +
      `${(f.sparse.arenaBytes / f.sparseReordered.arenaBytes).toFixed(2)}x, fp32/(c) ${(f.fp32.peakLiveBytes / f.sparseReordered.arenaBytes).toFixed(1)}x; ` +
      `(c) persistent ${kb(f.sparseReordered.persistentBytes)}, of which ${kb(untouched)} are weight channels the scheme never updates\n`);
    const brief = (r: MemoryReport) => ({ ...r, peakTensors: r.peakTensors.slice(0, 8) });
    out[model] = {
      scheme, full: brief(f.full), sparse: brief(f.sparse), sparseReordered: brief(f.sparseReordered), sparseReorderedLqm: brief(lqm),
      fp32: brief(f.fp32), untouchedWeightBytes: untouched,
    };
  }
  out['mbv2-w0.35-r128-c10'] = mbv2Attack();
  mkdirSync(join(repoRoot, 'bench', 'results'), { recursive: true });
  writeFileSync(join(repoRoot, 'bench', 'results', 'train-memory.json'), `${JSON.stringify(out, null, 1)}\n`);
}

// Run as a script; imported (bench/memory.ts), it only lends its schemes.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();
