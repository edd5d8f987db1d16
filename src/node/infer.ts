// Node adapter: one forward pass of an imported model on any of the four
// places. node: the C core through the addon; xs: the compiled TypeScript
// runner on the project's XS host (the model travels as a graph blob);
// cortex-m4 / rv32: the runner's kernel calls recorded as a trace and
// replayed by the bare-metal image under QEMU (weights written to its flash
// region, the output read back).

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeGraph } from '../core/graph-blob.js';
import type { Graph } from '../core/graph.js';
import { Kernels } from '../core/kernels.js';
import { ForwardRunner } from '../core/runner.js';
import { TraceDispatch } from '../core/trace-dispatch.js';
import { NodeDispatch, repoRoot } from './addon.js';
import { runTrace, type BaremetalTarget } from './qemu.js';

export const targets = ['node', 'xs', 'cortex-m4', 'rv32'] as const;
export type Target = (typeof targets)[number];

export interface InferResult {
  output: Int8Array;
  // Instructions per kernel call (bare-metal targets only), in step order.
  instructions?: number[];
}

export function inferNode(runner: ForwardRunner, input: Uint8Array): InferResult {
  const k = new Kernels(new NodeDispatch(new ArrayBuffer(runner.arenaBytes), new ArrayBuffer(runner.flashBytes)));
  runner.load(k);
  return { output: runner.run(k, input) };
}

// The trace of one forward pass: flash the constants, write the input, run,
// read the output.
export function recordInference(runner: ForwardRunner, input: Uint8Array): Uint8Array {
  const d = new TraceDispatch(runner.arenaBytes);
  const k = new Kernels(d);
  runner.load(k);
  runner.writeInput(k, input);
  runner.invoke(k);
  d.writer.read(runner.output.offset, runner.output.bytes);
  return d.writer.end();
}

export async function inferBaremetal(runner: ForwardRunner, input: Uint8Array, target: BaremetalTarget): Promise<InferResult> {
  const r = await runTrace(target, recordInference(runner, input), { timeoutMs: 300_000 });
  const failed = r.parsed.calls.find((c) => c.status !== 0);
  if (r.exitCode !== 0 || r.parsed.errors.length || failed || r.parsed.reads.length !== 1) {
    const why = failed ? `kernel call ${failed.index} (op ${failed.op}) returned status ${failed.status}` : r.parsed.errors.join('; ');
    throw new Error(`${target}: the image exited with ${r.exitCode}${why ? `: ${why}` : ''}\n${r.stderr.slice(0, 500)}`);
  }
  const b = r.parsed.reads[0]!.bytes;
  return { output: new Int8Array(b.buffer, b.byteOffset, b.length), instructions: r.parsed.calls.map((c) => c.instructions) };
}

export async function inferXs(graph: Graph, input: Uint8Array): Promise<InferResult> {
  const xs = join(repoRoot, 'out', 'xs', 'xst-xs'), main = join(repoRoot, 'out', 'ts', 'xs', 'main.js');
  if (!existsSync(xs) || !existsSync(main)) throw new Error('XS host or compiled TypeScript missing: run npm run setup');
  const dir = await mkdtemp(join(tmpdir(), 'xstrain-infer-'));
  try {
    const blob = join(dir, 'model.xstg'), inp = join(dir, 'input.bin');
    await writeFile(blob, encodeGraph(graph));
    await writeFile(inp, input);
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(xs, [main, 'infer', blob, inp], { encoding: 'utf8', maxBuffer: 1 << 24, timeout: 300_000 }, (e, out, err) =>
        e ? reject(new Error(`xs: ${e.message}\n${out}${err}`)) : resolve(out)),
    );
    const line = stdout.split('\n').find((l) => l.startsWith('{"output"'));
    if (!line) throw new Error(`xs: no output line in\n${stdout.slice(0, 500)}`);
    return { output: Int8Array.from((JSON.parse(line) as { output: number[] }).output) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function infer(graph: Graph, input: Uint8Array, target: Target): Promise<InferResult> {
  if (target === 'xs') return inferXs(graph, input);
  const runner = new ForwardRunner(graph);
  if (target === 'node') return inferNode(runner, input);
  return inferBaremetal(runner, input, target);
}
