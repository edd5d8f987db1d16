// Runs a graph step by step on the C kernels and on the TypeScript reference
// kernels, checking each step's output against the other engine (bit for
// bit) and against float64 math on the dequantised inputs of that step.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Graph } from '../../src/core/graph.js';
import { Kernels } from '../../src/core/kernels.js';
import { ReferenceDispatch } from '../../src/core/reference/dispatch.js';
import type { ForwardRunner } from '../../src/core/runner.js';
import { NodeDispatch, repoRoot } from '../../src/node/addon.js';
import { dequantize, floatOp, quantize } from './float-graph.js';

export function kernelsFor(runner: ForwardRunner, engine: 'c' | 'ref'): Kernels {
  const a = new ArrayBuffer(runner.arenaBytes), f = new ArrayBuffer(runner.flashBytes);
  const k = new Kernels(engine === 'c' ? new NodeDispatch(a, f) : new ReferenceDispatch(a, f));
  runner.load(k);
  return k;
}

// Returns how many outputs differ from float64 (each by at most 1 LSB, asserted).
export function checkLayers(graph: Graph, runner: ForwardRunner, inputs: Uint8Array[]): { outputs: number; off: number } {
  const c = kernelsFor(runner, 'c'), ref = kernelsFor(runner, 'ref');
  let outputs = 0, off = 0;
  for (const input of inputs) {
    runner.writeInput(c, input);
    runner.writeInput(ref, input);
    const real = (t: number) => dequantize(graph.tensors[t]!, c.readInt8(runner.tensors[t]!));
    runner.steps.forEach((step, s) => {
      const op = graph.ops[s]!;
      // The oracle reads this step's inputs before the step overwrites anything.
      const expected = quantize(graph.tensors[op.outputs[0]!]!, floatOp(graph, op, real));
      step.run(c);
      step.run(ref);
      const out = runner.tensors[op.outputs[0]!]!;
      const got = c.readInt8(out);
      expect(Array.from(ref.readInt8(out)), `step ${s} (${op.kind}): C vs reference`).toEqual(Array.from(got));
      for (let i = 0; i < got.length; i++) {
        const d = Math.abs(got[i]! - expected[i]!);
        expect(d, `step ${s} (${op.kind}) output ${i}: ${got[i]} vs float64 ${expected[i]}`).toBeLessThanOrEqual(1);
        if (d) off++;
      }
      outputs += got.length;
    });
  }
  return { outputs, off };
}

// Measured figures a test asserts bounds on, written to out/model-figures/
// so the notes quote what the test run measured.
export function recordFigures(name: string, figures: Record<string, number>): void {
  const dir = join(repoRoot, 'out', 'model-figures');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(figures, null, 1) + '\n');
}
