// Training memory of the real models under the Tiny Training Engine's four
// settings (src/compiler/train/compile.ts trainingMemoryFigures):
//   (a) full backprop, int8, no reordering   (b) sparse scheme, pruned
//   (c) sparse + reordering (fused updates)   (d) fp32 full backprop, held as PyTorch would
// with the peak step and what occupies it. Static analysis only (no kernels
// run): `npx tsx bench/train-memory.ts` prints the table and writes
// bench/results/train-memory.json.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileTraining, trainingMemoryFigures } from '../src/compiler/train/compile.js';
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
  mkdirSync(join(repoRoot, 'bench', 'results'), { recursive: true });
  writeFileSync(join(repoRoot, 'bench', 'results', 'train-memory.json'), `${JSON.stringify(out, null, 1)}\n`);
}

main();
