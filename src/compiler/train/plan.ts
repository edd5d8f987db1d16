// Static memory plan of a training step: the lifetime of every arena tensor
// over the schedule (step s runs ops[s]), in-place sharing where the
// aliasing rules allow, offsets from the lifetime planner, and a report of
// the peak.
//
// Lifetimes (inclusive steps):
//   persistent (trainable weights and biases, optimizer state, rng): the
//     whole step, [0, last];
//   inputs (sample, label): from 0 to their last reader;
//   scratch: its op's step only;
//   everything else: from the op that writes it to its last reader; the
//     loss metric to the end.
// In place: an op's [write, read] pair shares one buffer when the read dies
// at that op (activation_s8_backward is the one kernel whose output may
// overwrite its input, native/README.md); otherwise the write gets its own
// buffer (the runtime copies before masking).
//
// Placement: the deterministic first-fit of planner.ts (largest first, as
// TFLite Micro's greedy planner), and the same first-fit over two other
// deterministic orders; the smallest arena wins (ties: the planner.ts one).

import { type PlannedBuffer, planLifetimes } from '../../core/planner.js';
import type { Phase, TensorRole, TrainGraph } from './train-graph.js';

export interface PlannedTensor {
  tensor: number; // id in the training graph
  name: string;
  role: TensorRole;
  saved: boolean; // an activation/input read by the backward or the update phase
  bytes: number;
  first: number;
  last: number;
  buffer: number;
  offset: number;
}

export interface PeakTensor {
  name: string;
  bytes: number;
  role: TensorRole;
  saved: boolean;
}

export interface MemoryReport {
  model: string;
  arenaBytes: number; // what the placement needs
  peakLiveBytes: number; // the most bytes live at one step (a lower bound on any placement)
  peakStep: number; // the first step where peakLiveBytes are live
  peakOp: string;
  peakPhase: Phase;
  peakTensors: PeakTensor[]; // live at peakStep, largest first (buffers shared in place counted once)
  peakByRole: Partial<Record<TensorRole | 'saved_activation', number>>;
  // The most bytes live during each phase: a forward peak above the
  // backward's is the inference peak, which only a tiled forward lowers.
  phasePeaks: Partial<Record<Phase, { bytes: number; step: number }>>;
  persistentBytes: number; // trainable parameters, optimizer state, rng
  steps: number;
}

export interface ArenaPlan {
  graph: TrainGraph;
  align: number;
  tensors: PlannedTensor[]; // arena tensors only (flash tensors cost no arena)
  buffers: (PlannedBuffer & { offset: number; members: number[] })[];
  inPlace: [number, number][]; // [write, read] pairs that share a buffer
  liveBytes: number[]; // per step
  report: MemoryReport;
}

export interface PlanOptions {
  align?: number; // byte alignment of every offset, default 16 (as the forward runner)
}

// First-fit of buffers in the given order; same rule as planner.ts.
function firstFit(buffers: readonly PlannedBuffer[], order: readonly number[], align: number): { offsets: number[]; peak: number } {
  const offsets = new Array<number>(buffers.length).fill(-1);
  const placed: number[] = [];
  let peak = 0;
  for (const i of order) {
    const b = buffers[i]!;
    const busy = placed
      .filter((j) => buffers[j]!.first <= b.last && b.first <= buffers[j]!.last)
      .map((j) => [offsets[j]!, offsets[j]! + buffers[j]!.bytes] as const)
      .sort((x, y) => x[0] - y[0]);
    let at = 0;
    for (const [s, e] of busy) {
      if (at + b.bytes <= s) break;
      at = Math.max(at, Math.ceil(e / align) * align);
    }
    offsets[i] = at;
    placed.push(i);
    peak = Math.max(peak, at + b.bytes);
  }
  return { offsets, peak };
}

function place(buffers: readonly PlannedBuffer[], align: number): { offsets: number[]; peak: number } {
  let best = planLifetimes(buffers, align);
  const idx = buffers.map((_, i) => i);
  const span = (b: PlannedBuffer) => b.last - b.first + 1;
  const orders = [
    // long-lived and large first: the persistent block settles at the bottom
    [...idx].sort((a, c) => buffers[c]!.bytes * span(buffers[c]!) - buffers[a]!.bytes * span(buffers[a]!) || a - c),
    // by birth, then largest: stacks allocations the way the schedule makes them
    [...idx].sort((a, c) => buffers[a]!.first - buffers[c]!.first || buffers[c]!.bytes - buffers[a]!.bytes || a - c),
  ];
  for (const order of orders) {
    const p = firstFit(buffers, order, align);
    if (p.peak < best.peak) best = p;
  }
  return best;
}

export function planArena(tg: TrainGraph, options: PlanOptions = {}): ArenaPlan {
  const align = options.align ?? 16;
  const S = tg.ops.length;
  const last = S - 1;
  const T = tg.tensors.length;
  const first = new Array<number>(T).fill(Infinity), end = new Array<number>(T).fill(-Infinity);
  const touch = (t: number, s: number) => {
    first[t] = Math.min(first[t]!, s);
    end[t] = Math.max(end[t]!, s);
  };
  const lastReadPhase = new Array<Phase | null>(T).fill(null);
  tg.ops.forEach((op, s) => {
    for (const t of op.reads) {
      touch(t, s);
      lastReadPhase[t] = op.phase;
    }
    for (const t of [...op.writes, ...op.scratch]) touch(t, s);
  });
  for (const t of tg.inputs) touch(t, 0);
  for (const t of tg.outputs) touch(t, last);
  tg.tensors.forEach((t, i) => {
    if (t.persistent) {
      first[i] = 0;
      end[i] = last;
    }
  });

  // In-place sharing: union-find over [write, read] pairs whose read dies there.
  const parent = tg.tensors.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  const inPlace: [number, number][] = [];
  tg.ops.forEach((op, s) => {
    for (const [w, r] of op.inPlace) {
      const tw = tg.tensors[w]!, tr = tg.tensors[r]!;
      if (end[r] === s && !tr.persistent && !tg.inputs.includes(r) && tw.bytes <= tr.bytes && tw.home === 'arena' && tr.home === 'arena') {
        parent[find(w)] = find(r);
        inPlace.push([w, r]);
      }
    }
  });

  const arena = tg.tensors.flatMap((t, i) => (t.home === 'arena' ? [i] : []));
  for (const i of arena) {
    if (!Number.isFinite(first[i]!)) throw new Error(`planArena: tensor "${tg.tensors[i]!.name}" is in the arena but no op uses it`);
  }
  const bufferOf = new Map<number, number>();
  const buffers: (PlannedBuffer & { offset: number; members: number[] })[] = [];
  for (const i of arena) {
    const root = find(i);
    let k = bufferOf.get(root);
    if (k === undefined) {
      k = buffers.push({ bytes: 0, first: Infinity, last: -Infinity, offset: -1, members: [] }) - 1;
      bufferOf.set(root, k);
    }
    const buf = buffers[k]!;
    buf.bytes = Math.max(buf.bytes, tg.tensors[i]!.bytes);
    buf.first = Math.min(buf.first, first[i]!);
    buf.last = Math.max(buf.last, end[i]!);
    buf.members.push(i);
  }
  const placement = place(buffers, align);
  buffers.forEach((b, k) => (b.offset = placement.offsets[k]!));

  const saved = (i: number): boolean => {
    const t = tg.tensors[i]!;
    const p = lastReadPhase[i];
    return (t.role === 'activation' || t.role === 'input' || t.role === 'saved_slice') && (p === 'backward' || p === 'update');
  };
  const tensors: PlannedTensor[] = arena.map((i) => {
    const t = tg.tensors[i]!, k = bufferOf.get(find(i))!;
    return { tensor: i, name: t.name, role: t.role, saved: saved(i), bytes: t.bytes, first: first[i]!, last: end[i]!, buffer: k, offset: buffers[k]!.offset };
  });

  const liveBytes = new Array<number>(S).fill(0);
  for (const b of buffers) for (let s = b.first; s <= b.last; s++) liveBytes[s]! += b.bytes;
  let peakStep = 0;
  for (let s = 1; s < S; s++) if (liveBytes[s]! > liveBytes[peakStep]!) peakStep = s;
  // One entry per buffer live at the peak (its largest member names it).
  const peakTensors: PeakTensor[] = buffers
    .filter((b) => b.first <= peakStep && peakStep <= b.last)
    .map((b) => {
      const live = b.members.filter((i) => first[i]! <= peakStep && peakStep <= end[i]!);
      const i = (live.length ? live : b.members).reduce((a, c) => (tg.tensors[c]!.bytes > tg.tensors[a]!.bytes ? c : a));
      const t = tg.tensors[i]!;
      return { name: t.name, bytes: b.bytes, role: t.role, saved: saved(i) };
    })
    .sort((a, c) => c.bytes - a.bytes || (a.name < c.name ? -1 : 1));
  const peakByRole: MemoryReport['peakByRole'] = {};
  for (const p of peakTensors) {
    const key = p.saved && p.role !== 'saved_slice' ? 'saved_activation' : p.role;
    peakByRole[key] = (peakByRole[key] ?? 0) + p.bytes;
  }
  const phasePeaks: MemoryReport['phasePeaks'] = {};
  tg.ops.forEach((o, s) => {
    const p = phasePeaks[o.phase];
    if (!p || liveBytes[s]! > p.bytes) phasePeaks[o.phase] = { bytes: liveBytes[s]!, step: s };
  });
  const persistentBytes = arena.reduce((a, i) => a + (tg.tensors[i]!.persistent ? tg.tensors[i]!.bytes : 0), 0);
  const op = tg.ops[peakStep]!;
  return {
    graph: tg, align, tensors, buffers, inPlace, liveBytes,
    report: {
      model: tg.name, arenaBytes: placement.peak, peakLiveBytes: liveBytes[peakStep]!, peakStep, peakOp: op.name,
      peakPhase: op.phase, peakTensors, peakByRole, phasePeaks, persistentBytes, steps: S,
    },
  };
}
