// Row-tiled forward (src/core/tiled-block.ts) in the training plan: after
// pruning, a run of forward conv2d / depthwise / add ops whose intermediate
// activations nothing outside the run reads (no backward op: the pruned
// backward keeps at most their masks, which the bands write) becomes one op
// whose transient memory is its band buffers, so the planner sees the real
// peak of a patch-based forward (MCUNetV2). A tiled op may also write its
// output over an input that dies there (inPlaceShift: the in-place
// depthwise, or a block's output over its input).
//
// Segmentation and band heights. Each maximal run of tileable ops is cut into
// segments of at most `maxOps` ops; a segment with band height B costs
//   live(B) = bytes live throughout it that it does not touch (persistent
//             parameters and state, activations saved across it)
//           + its inputs, output and written masks (input and output as one
//             shifted buffer when in place) + its band scratch,
// and B may recompute at most `maxRecompute` times the segment's own MACs.
// Two passes: the smallest achievable maximum of live over the forward
// (bounded below by the rest of the step's peak, which tiling cannot lower,
// and by `budget`), then, under that bound, the fewest in-place segments
// (each fixes two tensors' offsets; chained, they fragment the arena), then
// the least MACs: the smallest band where the peak needs it, larger bands
// (less recomputation) or no tiling where it does not. A segment that is not
// in place and has one band (or no band buffer) stays the plain ops: they
// hold the same bytes.
//
// Band height, measured on MBV2-w0.35-128 with the 99 KB scheme (all
// options, 128,052 B arena): the stem + block 0 segment needs 1-row bands
// (3 stem rows, 1 depthwise row: 4 KB of bands) and computes 2.21x its MACs
// (the stem's rows three times); block 1 also 1 row (1.32x), blocks 2-3
// 8 rows (1.06x, 1.02x), the rest no recomputation: +4.3 M forward MACs
// (+26%). Two-row bands for the first segment would save 1.8 M MACs but need
// 130,336 B live (132,404 B planned): over 128 KB. Recomputing halo rows
// keeps every band call a plain kernel call; a line buffer that keeps them
// would remove the recomputation but needs a row copy per band.

import { dtypeBytes } from '../../core/arena.js';
import { GraphError } from '../../core/graph.js';
import { depthwiseAsConv } from '../../core/lowering.js';
import { type BandOrder, inPlaceBytes, inPlaceShift, planSegment, type SegmentPlan, type SegmentShape, segmentFromGraph } from '../../core/tiled-block.js';
import { renumber } from './prune.js';
import type { TrainGraph, TrainOp } from './train-graph.js';

export interface TileOptions {
  maxRecompute?: number; // extra MACs a segment may spend on halo rows, as a fraction of its own; default 1.5
  maxOps?: number; // ops per segment, default 12 (four inverted-residual blocks)
  bandRows?: readonly number[]; // candidate band heights; default 1, 2, 3, 4, 6, 8, 12, 16, 24, 32 and whole
  // Output over a dying input: 'none', only single depthwise ops ('depthwise'), or any segment ('all', default).
  inPlace?: 'none' | 'depthwise' | 'all';
  // 'step' (default): the forward only needs to stay below the rest of the
  // step's peak; 'forward': the lowest forward peak, whatever the backward needs.
  minimise?: 'step' | 'forward';
  // Live bytes the forward may use anyway (an arena budget): the second pass
  // spends up to it on larger bands (fewer recomputed rows). Default 0.
  budget?: number;
  align?: number;
}

interface Choice {
  live: number;
  own: number; // live minus the background: what the segment itself holds
  macs: number;
  untiledMacs: number;
  plan: SegmentPlan;
  shape: SegmentShape;
  // input: train tensor; shift: where it starts relative to the output, per band order
  inPlace: { input: number; shift: Record<BandOrder, number> } | null;
  trivial: boolean; // one op, one band, not in place: the plain op
}

const DEFAULT_BANDS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32];
const PLAIN_KERNELS = new Set(['conv2d_s8_forward', 'depthwise_conv2d_s8_forward', 'add_s8_forward']);

export function tileForward(tg: TrainGraph, opts: TileOptions = {}): TrainGraph {
  const maxRecompute = opts.maxRecompute ?? 1.5, maxOps = opts.maxOps ?? 12, inPlaceMode = opts.inPlace ?? 'all';
  const align = opts.align ?? 16;
  const g = tg.model;
  const S = tg.ops.length, T = tg.tensors.length;
  // Lifetimes as planArena computes them.
  const first = new Array<number>(T).fill(Infinity), last = new Array<number>(T).fill(-Infinity);
  const touch = (t: number, s: number) => {
    first[t] = Math.min(first[t]!, s);
    last[t] = Math.max(last[t]!, s);
  };
  tg.ops.forEach((op, s) => [...op.reads, ...op.writes, ...op.scratch].forEach((t) => touch(t, s)));
  for (const t of tg.inputs) touch(t, 0);
  for (const t of tg.outputs) touch(t, S - 1);
  tg.tensors.forEach((t, i) => t.persistent && (touch(i, 0), touch(i, S - 1)));
  const readers = tg.tensors.map(() => [] as number[]);
  tg.ops.forEach((op, s) => op.reads.forEach((t) => readers[t]!.push(s)));
  const arenaBytes = (t: number) => (tg.tensors[t]!.home === 'arena' ? tg.tensors[t]!.bytes : 0);
  const live = new Array<number>(S).fill(0);
  tg.tensors.forEach((t, i) => {
    if (t.home !== 'arena' || !Number.isFinite(first[i]!)) return;
    for (let s = first[i]!; s <= last[i]!; s++) live[s]! += t.bytes;
  });

  // Tileable forward ops and the graph tensor <-> train tensor map.
  const trainOf = new Map<number, number>(); // model tensor -> train tensor
  const tileable = tg.ops.map((op) => {
    if (op.phase !== 'forward' || op.source === null || tg.numeric !== 'int8') return false;
    // The band calls are the plain kernels' (a sliced layer's split-weight
    // forward is not one of them: it stays a whole op).
    if (!PLAIN_KERNELS.has(op.kernel)) return false;
    const gop = g.ops[op.source]!;
    if (gop.kind !== 'conv2d' && gop.kind !== 'depthwise_conv2d' && gop.kind !== 'add') return false;
    // The band calls run a depthwise layer on one input channel as a conv2d on
    // its frozen OHWI copy: not one whose weights train (it runs as depthwise).
    if (depthwiseAsConv(g, gop) && op.kernel !== 'conv2d_s8_forward') return false;
    const y = g.tensors[gop.outputs[0]!]!, x = g.tensors[gop.inputs[0]!]!;
    if (y.shape.length !== 4 || y.shape[0] !== 1 || x.shape.length !== 4 || x.shape[0] !== 1) return false;
    trainOf.set(gop.outputs[0]!, op.writes[0]!);
    trainOf.set(gop.inputs[0]!, op.reads[0]!);
    if (gop.kind === 'add') trainOf.set(gop.inputs[1]!, op.reads[1]!);
    return true;
  });
  const maskOf = (s: number): number | null => {
    const op = tg.ops[s]!;
    return op.writes.length > 1 ? op.writes[1]! : null;
  };

  // Candidate segment = schedule steps [i, j] of one run.
  const evaluate = (i: number, j: number, bound: number | null): Choice[] => {
    const steps = Array.from({ length: j - i + 1 }, (_, k) => i + k);
    const inside = new Set(steps);
    const positions = steps.map((s) => tg.ops[s]!.source!);
    const produced = new Map<number, number>(); // train tensor -> step
    for (const s of steps) produced.set(tg.ops[s]!.writes[0]!, s);
    const keep: number[] = [];
    for (const [t, s] of produced) {
      if (s === j) continue;
      if (readers[t]!.some((r) => !inside.has(r)) || tg.outputs.includes(t)) keep.push(t);
    }
    const masks = steps.filter((s) => maskOf(s) !== null);
    const toModel = (t: number) => g.ops[tg.ops[produced.get(t)!]!.source!]!.outputs[0]!;
    let shape: SegmentShape;
    try {
      shape = segmentFromGraph(g, positions, { keep: new Set(keep.map(toModel)), masks: new Set(masks.map((s) => tg.ops[s]!.source!)) });
    } catch {
      return [];
    }
    const touched = new Set<number>();
    for (const s of steps) for (const t of [...tg.ops[s]!.reads, ...tg.ops[s]!.writes]) touched.add(t);
    let background = 0;
    tg.tensors.forEach((t, k) => {
      if (t.home !== 'arena') return;
      if (t.persistent) background += t.bytes;
      else if (!touched.has(k) && first[k]! < i && last[k]! > j) background += t.bytes;
    });
    const valueTensor = shape.values.map((v) => trainOf.get(v.tensor!)!);
    const inputs = shape.values.flatMap((v, k) => (v.external && !steps.some((s) => tg.ops[s]!.writes[0] === valueTensor[k]) ? [k] : []));
    const externalBytes = shape.values.reduce((a, v, k) => a + (v.external ? arenaBytes(valueTensor[k]!) : 0), 0);
    const maskBytes = masks.reduce((a, s) => a + arenaBytes(maskOf(s)!), 0);
    const dying = inputs.filter((k) => {
      const t = valueTensor[k]!;
      return tg.tensors[t]!.home === 'arena' && !tg.tensors[t]!.persistent && last[t]! <= j && !tg.outputs.includes(t);
    });
    const single = steps.length === 1;
    const mayInPlace = inPlaceMode === 'all' || (inPlaceMode === 'depthwise' && single && g.ops[positions[0]!]!.kind === 'depthwise_conv2d');
    const outH = shape.values[shape.output]!.h;
    const heights = [...new Set([...(opts.bandRows ?? DEFAULT_BANDS).filter((b) => b < outH), outH])];
    const choices: Choice[] = [];
    for (const B of heights) {
      let plan: SegmentPlan;
      try {
        plan = planSegment(shape, B, align);
      } catch {
        continue;
      }
      if (B < outH && plan.macs > (1 + maxRecompute) * plan.untiledMacs) continue;
      const plain = background + externalBytes + maskBytes + plan.scratchBytes;
      const base: Choice = { live: plain, own: plain - background, macs: plan.macs, untiledMacs: plan.untiledMacs, plan, shape, inPlace: null, trivial: single && plan.bands.length === 1 };
      choices.push(base);
      if (!mayInPlace) continue;
      for (const k of dying) {
        const shift = { forward: inPlaceShift(shape, plan, k, 'forward', align), reverse: inPlaceShift(shape, plan, k, 'reverse', align) };
        const union = Math.min(inPlaceBytes(shape, k, shift.forward), inPlaceBytes(shape, k, shift.reverse));
        const x = arenaBytes(valueTensor[k]!), y = arenaBytes(valueTensor[shape.output]!);
        const l = plain - x - y + union;
        if (l < base.live) choices.push({ ...base, live: l, own: l - background, inPlace: { input: valueTensor[k]!, shift }, trivial: false });
      }
    }
    return bound === null ? choices : choices.filter((c) => c.live <= bound);
  };

  // Runs of consecutive tileable ops.
  const runs: [number, number][] = [];
  for (let s = 0; s < S; s++) {
    if (!tileable[s]) continue;
    let e = s;
    while (e + 1 < S && tileable[e + 1]) e++;
    runs.push([s, e]);
    s = e;
  }
  const inRun = new Array<boolean>(S).fill(false);
  for (const [a, b] of runs) for (let s = a; s <= b; s++) inRun[s] = true;
  const floor = live.reduce((m, v, s) => (inRun[s] ? m : Math.max(m, v)), 0); // what tiling cannot lower

  // Pass 1: the smallest maximum live per run.
  const cache = new Map<string, Choice[]>();
  const options = (i: number, j: number): Choice[] => {
    const key = `${i},${j}`;
    let c = cache.get(key);
    if (!c) cache.set(key, (c = evaluate(i, j, null)));
    return c;
  };
  let bound = Math.max(opts.budget ?? 0, opts.minimise === 'forward' ? 0 : floor);
  for (const [a, b] of runs) {
    const best = new Array<number>(b - a + 2).fill(Infinity);
    best[0] = 0;
    for (let j = a; j <= b; j++) {
      for (let i = Math.max(a, j - maxOps + 1); i <= j; i++) {
        const prev = best[i - a]!;
        if (!Number.isFinite(prev)) continue;
        for (const c of options(i, j)) best[j - a + 1] = Math.min(best[j - a + 1]!, Math.max(prev, c.live));
      }
    }
    if (!Number.isFinite(best[b - a + 1]!)) throw new GraphError(`tileForward: no segmentation of steps ${a}-${b}`);
    bound = Math.max(bound, best[b - a + 1]!);
  }

  // Pass 2: the least MACs with every segment within the bound.
  const chosen: { i: number; j: number; c: Choice }[] = [];
  for (const [a, b] of runs) {
    // Lexicographic: [in-place segments, MACs, bytes held], summed.
    type Cost = [number, number, number];
    const less = (x: Cost, y: Cost) => x[0] !== y[0] ? x[0] < y[0] : x[1] !== y[1] ? x[1] < y[1] : x[2] < y[2];
    const cost: Cost[] = new Array(b - a + 2).fill([Infinity, Infinity, Infinity]);
    const from: ({ i: number; c: Choice } | null)[] = new Array(b - a + 2).fill(null);
    cost[0] = [0, 0, 0];
    for (let j = a; j <= b; j++) {
      for (let i = Math.max(a, j - maxOps + 1); i <= j; i++) {
        const prev = cost[i - a]!;
        if (!Number.isFinite(prev[0])) continue;
        for (const c of options(i, j)) {
          if (c.live > bound) continue;
          // fewest in-place segments (a shared buffer fixes two tensors'
          // offsets, and chains of them fragment the arena: measured on
          // MBV2-w0.35-128, 128,052 B planned for 128,032 B live, against
          // 130,612 B when in place wherever it saves MACs), then least
          // MACs, then the fewest bytes held (so a segment is tiled where it
          // recomputes nothing but holds less: on MBV2 blocks 4, 5 and 14,
          // which leaves the placement slack: 128,052 B, against 131,124 B
          // with those left as plain ops)
          const v: Cost = [prev[0] + (c.inPlace ? 1 : 0), prev[1] + c.macs, prev[2] + c.own];
          if (less(v, cost[j - a + 1]!)) {
            cost[j - a + 1] = v;
            from[j - a + 1] = { i, c };
          }
        }
      }
    }
    const segs: { i: number; j: number; c: Choice }[] = [];
    for (let j = b; j >= a;) {
      const f = from[j - a + 1]!;
      segs.push({ i: f.i, j, c: f.c });
      j = f.i - 1;
    }
    chosen.push(...segs.reverse());
  }

  // Rewrite: each non-trivial segment becomes one tiled op. In place, the
  // band order whose shift keeps the chain of shared buffers (each output
  // over its dying input over ...) narrowest: a chain that always trails
  // drifts down by every shift, and the planner must keep all of it.
  const tensors = [...tg.tensors];
  const replace = new Map<number, { end: number; op: TrainOp }>();
  const orders = chooseOrders(chosen.flatMap(({ j, c }) => (c.inPlace && !c.trivial
    ? [{ input: c.inPlace.input, output: tg.ops[j]!.writes[0]!, shift: c.inPlace.shift }] : [])), (t) => tg.tensors[t]!.bytes);
  for (const { i, j, c } of chosen) {
    // Not in place and one band (or nothing banded): the plain ops hold the same bytes.
    if (c.trivial || (!c.inPlace && (c.plan.bands.length === 1 || c.plan.scratchBytes === 0))) continue;
    const steps = Array.from({ length: j - i + 1 }, (_, k) => i + k);
    const written = new Set(steps.map((s) => tg.ops[s]!.writes[0]!));
    const reads: number[] = [], writes: number[] = [], optional: number[] = [];
    const add = (list: number[], t: number) => list.includes(t) || list.push(t);
    for (const s of steps) for (const t of tg.ops[s]!.reads) if (!written.has(t)) add(reads, t);
    const out = tg.ops[j]!.writes[0]!;
    add(writes, out);
    const keepTensors = c.shape.values.flatMap((v, k) => (v.external && k !== c.shape.output && c.shape.steps.some((st) => st.output === k) ? [v.tensor!] : []));
    for (const t of keepTensors) add(writes, trainOf.get(t)!);
    for (const s of steps) {
      const m = maskOf(s);
      if (m !== null) {
        add(writes, m);
        add(optional, m);
      }
    }
    const scratch: number[] = [];
    if (c.plan.scratchBytes > 0) {
      scratch.push(tensors.push({
        name: `band scratch ${tg.ops[i]!.name}..${tg.ops[j]!.name}`, dtype: 'uint8', shape: [c.plan.scratchBytes], bytes: c.plan.scratchBytes * dtypeBytes.uint8,
        role: 'scratch', home: 'arena', persistent: false, source: null,
      }) - 1);
    }
    const order: BandOrder = c.inPlace ? orders.get(out)! : 'forward';
    const shift = c.inPlace ? c.inPlace.shift[order] : 0;
    const names = c.shape.values[c.shape.output]!.name;
    const op: TrainOp = {
      name: `tiled forward -> ${names} (${steps.length} ops, ${c.plan.bands.length} bands of ${c.plan.bandRows} rows` +
        `${c.inPlace ? `, in place over ${tg.tensors[c.inPlace.input]!.name}, ${order} order, input at ${shift} B` : ''})`,
      kernel: 'tiled_forward_s8', modelled: false, phase: 'forward', layer: null, reads, writes, optional, scratch,
      inPlace: c.inPlace ? [[out, c.inPlace.input]] : [], ...(c.inPlace ? { inPlaceShift: [shift] } : {}),
      source: null, slots: tiledSlots(c.shape, keepTensors, steps.flatMap((s) => { const m = maskOf(s); return m === null ? [] : [m]; }), scratch[0]),
      tiled: {
        sources: steps.map((s) => tg.ops[s]!.source!), keep: keepTensors, masks: steps.filter((s) => maskOf(s) !== null).map((s) => tg.ops[s]!.source!),
        bandRows: c.plan.bandRows, bands: c.plan.bands.length, order, macs: c.macs, untiledMacs: c.untiledMacs,
      },
    };
    replace.set(i, { end: j, op });
  }
  const ops: TrainOp[] = [];
  for (let s = 0; s < S; s++) {
    const r = replace.get(s);
    if (r) {
      ops.push(r.op);
      s = r.end;
    } else ops.push(tg.ops[s]!);
  }
  // The banded intermediates are no longer tensors of the step.
  return renumber({ ...tg, tensors, ops });

  // A tiled op's kernel arguments by name (TiledForward): the segment's
  // external inputs in0, in1, ..., its output y, the kept intermediates
  // keep0, ..., the masks mask0, ... and the band scratch.
  function tiledSlots(shape: SegmentShape, keep: readonly number[], maskTensors: readonly number[], scratch: number | undefined): Record<string, number> {
    const slots: Record<string, number> = {};
    let inputs = 0;
    shape.values.forEach((v, k) => {
      if (v.external && !shape.steps.some((st) => st.output === k)) slots[`in${inputs++}`] = trainOf.get(v.tensor!)!;
    });
    slots.y = trainOf.get(shape.values[shape.output]!.tensor!)!;
    keep.forEach((t, k) => (slots[`keep${k}`] = trainOf.get(t)!));
    maskTensors.forEach((m, k) => (slots[`mask${k}`] = m));
    if (scratch !== undefined) slots.scratch = scratch;
    return slots;
  }
}

// Band orders of the in-place segments. Each in-place segment fixes where
// its output sits relative to its input; along a chain (input -> output,
// which is the next segment's input -> ...) the offsets add up, and the
// planner must keep the whole chain's extent free for its whole life. Per
// chain, the orders whose extent is smallest (all 2^k for up to 12 links,
// else link by link); ties: the smaller shared buffers.
function chooseOrders(links: { input: number; output: number; shift: Record<BandOrder, number> }[], bytes: (t: number) => number): Map<number, BandOrder> {
  const byInput = new Map(links.map((l) => [l.input, l]));
  const outputs = new Set(links.map((l) => l.output));
  const chosen = new Map<number, BandOrder>();
  for (const head of links.filter((l) => !outputs.has(l.input))) {
    const chain: typeof links = [];
    for (let l: (typeof links)[number] | undefined = head; l; l = byInput.get(l.output)) chain.push(l);
    const evaluate = (orders: BandOrder[]): [number, number] => {
      let at = 0, lo = 0, hi = bytes(chain[0]!.input), unions = 0;
      chain.forEach((l, k) => {
        const sh = l.shift[orders[k]!];
        unions += Math.max(sh + bytes(l.input), bytes(l.output)) - Math.min(0, sh);
        at -= sh;
        lo = Math.min(lo, at);
        hi = Math.max(hi, at + bytes(l.output));
      });
      return [hi - lo, unions];
    };
    const better = (a: [number, number], b: [number, number]) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
    let best: BandOrder[] = chain.map(() => 'forward');
    if (chain.length <= 12) {
      let bestCost = evaluate(best);
      for (let m = 1; m < 1 << chain.length; m++) {
        const o = chain.map((_, k): BandOrder => ((m >> k) & 1 ? 'reverse' : 'forward'));
        const c = evaluate(o);
        if (better(c, bestCost)) [best, bestCost] = [o, c];
      }
    } else {
      for (let k = 0; k < chain.length; k++) {
        const r = [...best.slice(0, k), 'reverse' as const, ...best.slice(k + 1)];
        if (better(evaluate(r.slice(0, k + 1)), evaluate(best.slice(0, k + 1)))) best = r;
      }
    }
    chain.forEach((l, k) => chosen.set(l.output, best[k]!));
  }
  return chosen;
}

// Forward MACs of a training graph's tiled ops: with halo recomputation and without.
export function tiledMacs(tg: TrainGraph): { macs: number; untiledMacs: number; ops: number } {
  let macs = 0, untiledMacs = 0, ops = 0;
  for (const op of tg.ops) {
    if (!op.tiled) continue;
    macs += op.tiled.macs;
    untiledMacs += op.tiled.untiledMacs;
    ops++;
  }
  return { macs, untiledMacs, ops };
}
