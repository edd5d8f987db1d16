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
// buffer (the runtime copies before masking). A row-tiled forward op
// (tile.ts) declares its output over a dying input with a shift: the buffer
// holds both, the input `shift` bytes above the output's start.
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

// A buffer whose members sit at fixed shifts and have their own lifetimes
// (a row-tiled op's output trailing its dying input): each member occupies
// [offset + rel, + bytes) during [first, last] only. Other buffers are one
// rectangle, their bytes over their whole lifetime.
interface Rect {
  rel: number;
  bytes: number;
  first: number;
  last: number;
}

type Buffer = PlannedBuffer & { rects?: readonly Rect[] };

const rectsOf = (b: Buffer): readonly Rect[] => b.rects ?? [{ rel: 0, bytes: b.bytes, first: b.first, last: b.last }];

// First-fit of buffers in the given order; same rule as planner.ts (the
// lowest aligned offset where the buffer meets nothing live at the same
// time). A buffer of several rectangles moves up past whatever one of its
// rectangles meets until none meets anything.
function firstFit(buffers: readonly Buffer[], order: readonly number[], align: number): { offsets: number[]; peak: number } {
  const offsets = new Array<number>(buffers.length).fill(-1);
  const placed: { s: number; e: number; first: number; last: number }[] = [];
  let peak = 0;
  for (const i of order) {
    const b = buffers[i]!;
    const rects = rectsOf(b);
    let at = 0;
    if (rects.length === 1) {
      const busy = placed.filter((p) => p.first <= b.last && b.first <= p.last).sort((x, y) => x.s - y.s);
      for (const { s, e } of busy) {
        if (at + b.bytes <= s) break;
        at = Math.max(at, Math.ceil(e / align) * align);
      }
    } else {
      const near = placed.filter((p) => p.first <= b.last && b.first <= p.last);
      for (let moved = true; moved;) {
        moved = false;
        for (const r of rects) {
          const hit = near.find((p) => p.first <= r.last && r.first <= p.last && at + r.rel < p.e && p.s < at + r.rel + r.bytes);
          if (hit) {
            at = Math.ceil((hit.e - r.rel) / align) * align;
            moved = true;
          }
        }
      }
    }
    offsets[i] = at;
    for (const r of rects) placed.push({ s: at + r.rel, e: at + r.rel + r.bytes, first: r.first, last: r.last });
    peak = Math.max(peak, at + b.bytes);
  }
  return { offsets, peak };
}

function place(buffers: readonly Buffer[], align: number): { offsets: number[]; peak: number } {
  const idx = buffers.map((_, i) => i);
  let best = buffers.some((b) => b.rects)
    ? firstFit(buffers, [...idx].sort((a, c) => buffers[c]!.bytes - buffers[a]!.bytes || a - c), align)
    : planLifetimes(buffers, align);
  const span = (b: PlannedBuffer) => b.last - b.first + 1;
  const orders = [
    // long-lived and large first: the persistent block settles at the bottom
    [...idx].sort((a, c) => buffers[c]!.bytes * span(buffers[c]!) - buffers[a]!.bytes * span(buffers[a]!) || a - c),
    // by birth, then largest: stacks allocations the way the schedule makes them
    [...idx].sort((a, c) => buffers[a]!.first - buffers[c]!.first || buffers[c]!.bytes - buffers[a]!.bytes || a - c),
  ];
  // What lives through the whole step (parameters, optimizer state) as one
  // block at the bottom, then the rest largest first or by birth: the
  // transients then share one region above it.
  const last = Math.max(...buffers.map((b) => b.last));
  const whole = (b: PlannedBuffer) => (b.first === 0 && b.last === last ? 0 : 1);
  orders.push(
    [...idx].sort((a, c) => whole(buffers[a]!) - whole(buffers[c]!) || buffers[c]!.bytes - buffers[a]!.bytes || a - c),
    [...idx].sort((a, c) => whole(buffers[a]!) - whole(buffers[c]!) || buffers[a]!.first - buffers[c]!.first ||
      buffers[c]!.bytes - buffers[a]!.bytes || a - c),
  );
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

  // In-place sharing: union-find over [write, read] pairs whose read dies
  // there, each member at a shift from its set's root (a row-tiled op's
  // output starts `inPlaceShift` bytes below its input, tile.ts). A shifted
  // pair may also consume a step input (the sample) and be larger than it.
  const parent = tg.tensors.map((_, i) => i);
  const delta = tg.tensors.map(() => 0); // offset of i from parent[i]
  const find = (i: number): number => {
    const p = parent[i]!;
    if (p === i) return i;
    const r = find(p);
    delta[i]! += delta[p]!;
    parent[i] = r;
    return r;
  };
  const inPlace: [number, number][] = [];
  const rigid = new Set<number>(); // members of groups joined by a shifted pair
  tg.ops.forEach((op, s) => {
    op.inPlace.forEach(([w, r], k) => {
      const tw = tg.tensors[w]!, tr = tg.tensors[r]!;
      const shift = op.inPlaceShift?.[k] ?? 0;
      const shifted = op.inPlaceShift !== undefined;
      if (end[r] === s && !tr.persistent && (shifted || (!tg.inputs.includes(r) && tw.bytes <= tr.bytes)) && tw.home === 'arena' && tr.home === 'arena') {
        const rw = find(w), rr = find(r);
        if (rw === rr) return;
        // want offset(r) - offset(w) = shift
        parent[rw] = rr;
        delta[rw] = delta[r]! - shift - delta[w]!;
        inPlace.push([w, r]);
        if (shifted) rigid.add(w).add(r);
      }
    });
  });

  const arena = tg.tensors.flatMap((t, i) => (t.home === 'arena' ? [i] : []));
  for (const i of arena) {
    if (!Number.isFinite(first[i]!)) throw new Error(`planArena: tensor "${tg.tensors[i]!.name}" is in the arena but no op uses it`);
  }
  const bufferOf = new Map<number, number>();
  const buffers: (Buffer & { offset: number; members: number[] })[] = [];
  const lowest = new Map<number, number>(); // root -> smallest member shift
  for (const i of arena) {
    const root = find(i);
    lowest.set(root, Math.min(lowest.get(root) ?? 0, delta[i]!));
  }
  const shiftOf = (i: number): number => delta[i]! - lowest.get(find(i))!;
  for (const i of arena) {
    const root = find(i);
    let k = bufferOf.get(root);
    if (k === undefined) {
      k = buffers.push({ bytes: 0, first: Infinity, last: -Infinity, offset: -1, members: [] }) - 1;
      bufferOf.set(root, k);
    }
    const buf = buffers[k]!;
    buf.bytes = Math.max(buf.bytes, shiftOf(i) + tg.tensors[i]!.bytes);
    buf.first = Math.min(buf.first, first[i]!);
    buf.last = Math.max(buf.last, end[i]!);
    buf.members.push(i);
  }
  for (const b of buffers) {
    if (b.members.some((i) => rigid.has(i))) b.rects = b.members.map((i) => ({ rel: shiftOf(i), bytes: tg.tensors[i]!.bytes, first: first[i]!, last: end[i]! }));
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
    return { tensor: i, name: t.name, role: t.role, saved: saved(i), bytes: t.bytes, first: first[i]!, last: end[i]!, buffer: k, offset: buffers[k]!.offset + shiftOf(i) };
  });

  // Live bytes per step: a buffer of several rectangles counts the extent of
  // the ones live at that step.
  const liveBytes = new Array<number>(S).fill(0);
  const liveExtent = (b: Buffer, s: number): number => {
    if (!b.rects) return b.bytes;
    const on = b.rects.filter((r) => r.first <= s && s <= r.last);
    return on.length ? Math.max(...on.map((r) => r.rel + r.bytes)) - Math.min(...on.map((r) => r.rel)) : 0;
  };
  for (const b of buffers) for (let s = b.first; s <= b.last; s++) liveBytes[s]! += liveExtent(b, s);
  let peakStep = 0;
  for (let s = 1; s < S; s++) if (liveBytes[s]! > liveBytes[peakStep]!) peakStep = s;
  // One entry per buffer live at the peak (its largest member names it).
  const peakTensors: PeakTensor[] = buffers
    .filter((b) => b.first <= peakStep && peakStep <= b.last && liveExtent(b, peakStep) > 0)
    .map((b) => {
      const live = b.members.filter((i) => first[i]! <= peakStep && peakStep <= end[i]!);
      const i = (live.length ? live : b.members).reduce((a, c) => (tg.tensors[c]!.bytes > tg.tensors[a]!.bytes ? c : a));
      const t = tg.tensors[i]!;
      const name = b.rects && live.length > 1 ? live.map((m) => tg.tensors[m]!.name).join(' over ') : t.name;
      return { name, bytes: liveExtent(b, peakStep), role: t.role, saved: saved(i) };
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
