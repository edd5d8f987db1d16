// Pruning the backward graph (Lin et al. 2022: "the backward graph is
// pruned"): dead-code elimination from what the step must leave behind
// (the updated parameters, optimizer state, RNG cell, the loss metric).
// An op survives when something it writes is read by a surviving later op
// or is such an output; a mask or other optional output nobody reads is
// dropped from its op (the kernel gets a null tensor). Tensors no op touches
// disappear. The effects the scheme asks for follow:
//   - the backward stops at the earliest layer anything updates (the input
//     gradient of that layer has no reader);
//   - no gradient for frozen weights (the builder never emits one);
//   - an activation is kept only while a surviving backward op reads it
//     (bias-only layers read none; sparse weight updates read a slice);
//   - masks are written only where a gradient passes through the activation.

import { GraphError } from '../../core/graph.js';
import type { TrainGraph, TrainOp } from './train-graph.js';

// Non-persistent tensors are written once (the builder emits SSA form), so
// one reverse sweep decides every op.
export function pruneBackward(tg: TrainGraph): TrainGraph {
  const needed = new Set<number>(tg.outputs);
  tg.tensors.forEach((t, i) => t.persistent && needed.add(i));
  const keep: TrainOp[] = [];
  for (let s = tg.ops.length - 1; s >= 0; s--) {
    const op = tg.ops[s]!;
    if (!op.writes.some((t) => needed.has(t))) continue;
    const dropped = op.optional.filter((t) => !needed.has(t));
    const writes = op.writes.filter((t) => !dropped.includes(t));
    const slots = Object.fromEntries(Object.entries(op.slots).filter(([, t]) => !dropped.includes(t)));
    keep.push({
      ...op, writes, optional: op.optional.filter((t) => !dropped.includes(t)), inPlace: op.inPlace.filter(([w]) => writes.includes(w)), slots,
    });
    for (const t of op.reads) needed.add(t);
  }
  keep.reverse();
  return renumber({ ...tg, ops: keep });
}

// Drops tensors no op references and renumbers the rest in order (also
// after tiling, tile.ts, whose banded intermediates are no longer tensors).
export function renumber(tg: TrainGraph): TrainGraph {
  const used = new Set<number>(tg.inputs);
  for (const op of tg.ops) for (const t of [...op.reads, ...op.writes, ...op.scratch]) used.add(t);
  const map = new Map<number, number>();
  const tensors = tg.tensors.filter((_, i) => used.has(i) && (map.set(i, map.size), true));
  const m = (t: number): number => map.get(t)!;
  const ops = tg.ops.map((op) => ({
    ...op, reads: op.reads.map(m), writes: op.writes.map(m), optional: op.optional.map(m), scratch: op.scratch.map(m),
    inPlace: op.inPlace.map(([w, r]) => [m(w), m(r)] as const),
    slots: Object.fromEntries(Object.entries(op.slots).map(([k, t]) => [k, m(t)])),
  }));
  return { ...tg, tensors, ops, inputs: tg.inputs.map(m), outputs: tg.outputs.filter((t) => used.has(t)).map(m) };
}

// Ops that write something nobody reads afterwards and that is not an
// output of the step: every one is a pruning failure.
export function deadOps(tg: TrainGraph): { step: number; op: string; tensor: string }[] {
  const out = new Set(tg.outputs);
  const lastRead = new Array<number>(tg.tensors.length).fill(-1);
  tg.ops.forEach((op, s) => op.reads.forEach((t) => (lastRead[t] = s)));
  const dead: { step: number; op: string; tensor: string }[] = [];
  tg.ops.forEach((op, s) => {
    if (op.writes.length === 0) dead.push({ step: s, op: op.name, tensor: '(writes nothing)' });
    for (const t of op.writes) {
      if (out.has(t) || tg.tensors[t]!.persistent) continue;
      if (lastRead[t]! <= s) dead.push({ step: s, op: op.name, tensor: tg.tensors[t]!.name });
    }
  });
  return dead;
}

export function assertNoDeadOps(tg: TrainGraph): void {
  const dead = deadOps(tg);
  if (dead.length) {
    throw new GraphError(`training graph "${tg.name}" has ${dead.length} unused outputs after pruning: ` +
      dead.slice(0, 5).map((d) => `step ${d.step} ${d.op} writes ${d.tensor}`).join('; '));
  }
}
