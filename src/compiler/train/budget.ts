// Fitting a training step into an arena budget (`xstrain compile`).
//
// Memory options, cheapest in compute first (each spends instructions to
// save arena; the first that fits is used):
//   1. reordered updates, trained weight slices only (sliceWeights)
//   2. + one-row input-gradient scratch (rowScratch: input-gradient MACs twice)
//   3. + row-tiled forward (tile: halo rows recomputed)
// Level 3 with `tile: true` is the least arena the compiler can plan; the
// final compile first tries `tile: { budget }` (larger bands, fewer
// recomputed rows, where the budget leaves room), a little below the budget
// if placement overshoots it.
//
// The arena a plan needs is the training arena rounded to 16 bytes plus the
// inference-only tensors the lowering places past it (the kept softmax's
// output): measured once by lowering, the same for every scheme of a model.
//
// Over budget: the scheme's updates are removed, costliest first (the one
// whose removal lowers the arena most), until it fits; each round tries
// dropping one weight update, halving one ratio and halving biasLayers. The
// first round is also a list of single changes and what each would need.
//
// Without a scheme: a greedy choice by bytes, from the classifier backwards:
// each layer's bias, then its weights at the largest ratio of 1, 1/2, 1/4,
// 1/8 that fits (if a kernel updates them), stopping at the first bias that
// does not fit. It does not know what an update is worth to accuracy: with
// labelled fine-tune samples the CLI searches by contribution instead
// (search.ts, the analysis of Lin et al.: accuracy gain per byte).
//
// A sound lower bound prunes the search: tiling changes only the forward,
// so the untiled step's live bytes outside the forward bound the tiled
// arena from below.

import type { Graph } from '../../core/graph.js';
import { type CompileOptions, type CompiledTraining, compileTraining } from './compile.js';
import type { HeadOption } from './head.js';
import type { TrainableLayer } from './layers.js';
import { lowerTraining } from './lower.js';
import type { MemoryReport } from './plan.js';
import type { SparseUpdateScheme, WeightUpdateSpec } from './scheme.js';
import type { Optimizer } from './train-graph.js';

export interface FitOptions {
  budget: number; // arena bytes the plan may need
  budgetSource?: string; // where the budget comes from, for messages ("board moddable_four", "--budget 120k")
  head?: HeadOption;
  optimizer?: Optimizer;
  lqmBits?: number;
  align?: number;
}

export interface MemoryLevel {
  name: string;
  options: Pick<CompileOptions, 'reorder' | 'sliceWeights' | 'rowScratch' | 'tile'>;
}

export const MEMORY_LEVELS: readonly MemoryLevel[] = [
  { name: 'reordered updates, trained weight slices', options: { reorder: true, sliceWeights: true } },
  { name: 'reordered updates, trained weight slices, one-row input-gradient scratch', options: { reorder: true, sliceWeights: true, rowScratch: true } },
  {
    name: 'reordered updates, trained weight slices, one-row input-gradient scratch, row-tiled forward',
    options: { reorder: true, sliceWeights: true, rowScratch: true, tile: true },
  },
];

export interface Fitted {
  compiled: CompiledTraining;
  level: MemoryLevel;
  arenaBytes: number; // what the plan will need (training arena + inference-only tensors)
}

export interface SchemeChange {
  change: string; // "drop the weights of layer 48 (conv2d ...)"
  scheme: SparseUpdateScheme;
  arenaBytes: number; // the least the changed scheme needs
}

export class BudgetError extends Error {
  constructor(
    message: string,
    readonly budget: number,
    readonly arenaBytes: number,
    readonly report: MemoryReport,
    readonly changes: readonly SchemeChange[], // single changes, most saving first
    readonly fit: { scheme: SparseUpdateScheme; arenaBytes: number; steps: readonly string[] } | null,
  ) {
    super(message);
  }
}

const fmt = (n: number): string => n.toLocaleString('en-US');
const B = (n: number): string => `${fmt(n)} B`;
const key = (s: SparseUpdateScheme): string => JSON.stringify([s.biasLayers, s.weights.map((w) => [w.layer, w.ratio ?? null, w.channels ?? null])]);

interface Measured {
  level1: CompiledTraining; // untiled, cheapest that still has every backward option
  lowerBound: number; // arena bytes no level can go below
  least: { compiled: CompiledTraining; level: MemoryLevel } | null; // level 3, computed on demand
  lowerable: boolean; // no modelled op (every kernel exists)
}

export class SchemeFitter {
  private readonly cache = new Map<string, Measured>();
  private extra: number | null = null;
  readonly layers: readonly TrainableLayer[];

  constructor(readonly model: Graph, readonly o: FitOptions) {
    this.layers = this.compile({ biasLayers: 0, weights: [] }, MEMORY_LEVELS[0]!).graph.layers;
  }

  private compile(scheme: SparseUpdateScheme | 'full', level: MemoryLevel, tile?: CompileOptions['tile']): CompiledTraining {
    const o = this.o;
    return compileTraining(this.model, {
      scheme, head: o.head, optimizer: o.optimizer, lqmBits: o.lqmBits, align: o.align, ...level.options, ...(tile !== undefined ? { tile } : {}),
    });
  }

  // Bytes the lowering places past the training arena (inference-only
  // tensors): measured on the first plan that lowers.
  private extraBytes(c: CompiledTraining): number {
    if (this.extra === null && !c.graph.ops.some((op) => op.modelled)) {
      const plan = lowerTraining(this.model, c, { lr: 2 ** -10, lrBias: 2 ** -10 });
      this.extra = plan.arenaBytes - Math.ceil(c.plan.report.arenaBytes / 16) * 16;
    }
    return this.extra ?? 0;
  }

  arenaOf(c: CompiledTraining): number {
    return Math.max(Math.ceil(c.plan.report.arenaBytes / 16) * 16 + this.extraBytes(c), 16);
  }

  private measure(scheme: SparseUpdateScheme): Measured {
    const k = key(scheme);
    let m = this.cache.get(k);
    if (!m) {
      const level1 = this.compile(scheme, MEMORY_LEVELS[1]!);
      const r = level1.plan.report;
      const outsideForward = Math.max(0, ...(['loss', 'backward', 'update'] as const).map((p) => r.phasePeaks[p]?.bytes ?? 0));
      m = { level1, lowerBound: outsideForward, least: null, lowerable: !level1.graph.ops.some((op) => op.modelled) };
      this.cache.set(k, m);
    }
    return m;
  }

  private least(scheme: SparseUpdateScheme): { compiled: CompiledTraining; level: MemoryLevel } {
    const m = this.measure(scheme);
    if (!m.least) {
      const level = MEMORY_LEVELS[2]!;
      const tiled = this.compile(scheme, level);
      m.least = this.arenaOf(tiled) < this.arenaOf(m.level1) ? { compiled: tiled, level } : { compiled: m.level1, level: MEMORY_LEVELS[1]! };
    }
    return m.least;
  }

  // The least arena the scheme can be planned in.
  leastArena(scheme: SparseUpdateScheme): number {
    return this.arenaOf(this.least(scheme).compiled);
  }

  fits(scheme: SparseUpdateScheme): boolean {
    const m = this.measure(scheme);
    if (this.arenaOf(m.level1) <= this.o.budget) return true;
    if (m.lowerBound > this.o.budget) return false;
    return this.leastArena(scheme) <= this.o.budget;
  }

  lowerable(scheme: SparseUpdateScheme): boolean {
    return this.measure(scheme).lowerable;
  }

  // The cheapest memory level at which the scheme fits; BudgetError (with
  // suggestions) when none does.
  fit(scheme: SparseUpdateScheme): Fitted {
    const budget = this.o.budget;
    for (const level of MEMORY_LEVELS.slice(0, 2)) {
      const c = level === MEMORY_LEVELS[1] ? this.measure(scheme).level1 : this.compile(scheme, level);
      if (this.arenaOf(c) <= budget) return { compiled: c, level, arenaBytes: this.arenaOf(c) };
    }
    const level = MEMORY_LEVELS[2]!;
    if (this.measure(scheme).lowerBound <= budget) {
      // Larger bands where the budget leaves room, else the least arena. The
      // tiler bounds live bytes and placement adds a little (MBV2-128, 99 KB
      // scheme: a 131,000 B bound places in 132,404 B, 130,000 B in 128,052 B),
      // so the bound steps down. (There, the room buys no MACs: 130,000 B
      // leaves one tiled op that recomputed nothing as plain ops; a 140,000 B
      // bound would cut the tiled ops' MACs from 13.1 M to 8.4 M.)
      const room = budget - this.extraBytes(this.measure(scheme).level1) - 16;
      for (const f of [1, 0.99, 0.98]) {
        const roomy = this.compile(scheme, level, { budget: Math.floor(room * f) });
        if (this.arenaOf(roomy) <= budget) return { compiled: roomy, level, arenaBytes: this.arenaOf(roomy) };
      }
      const least = this.least(scheme);
      if (this.arenaOf(least.compiled) <= budget) return { ...least, arenaBytes: this.arenaOf(least.compiled) };
    }
    throw this.overBudget(scheme);
  }

  // ---- over budget: what to drop ----------------------------------------------------

  private describeLayer(l: number): string {
    const t = this.layers[l]!;
    const kind = t.kind === 'fully_connected' ? 'fully-connected' : t.kind === 'conv2d' ? `conv2d ${t.kH}x${t.kW}` : `depthwise ${t.kH}x${t.kW}`;
    return `layer ${l} (${kind}, ${t.inC} -> ${t.outC}, "${t.name}")`;
  }

  private channels(w: WeightUpdateSpec): number {
    const inC = this.layers[w.layer]!.inC;
    return w.channels ?? (w.ratio !== undefined ? Math.max(1, Math.floor(w.ratio * inC)) : inC);
  }

  // Every single removal from the scheme: drop one weight update, halve one
  // ratio, halve biasLayers. Most training kept first (the tie-break).
  private removals(s: SparseUpdateScheme): { change: string; scheme: SparseUpdateScheme }[] {
    const out: { change: string; scheme: SparseUpdateScheme }[] = [];
    s.weights.forEach((w, i) => {
      if (this.channels(w) <= 1) return;
      const half: WeightUpdateSpec = w.channels !== undefined ? { layer: w.layer, channels: Math.ceil(w.channels / 2) } : { layer: w.layer, ratio: (w.ratio ?? 1) / 2 };
      const was = w.channels !== undefined ? `${w.channels} channels` : `ratio ${w.ratio ?? 1}`;
      const now = half.channels !== undefined ? `${half.channels} channels` : `ratio ${half.ratio}`;
      out.push({ change: `update fewer input channels of ${this.describeLayer(w.layer)}: ${was} -> ${now}`, scheme: { ...s, weights: s.weights.map((x, j) => (j === i ? half : x)) } });
    });
    s.weights.forEach((w, i) => {
      out.push({ change: `drop the weight update of ${this.describeLayer(w.layer)}`, scheme: { ...s, weights: s.weights.filter((_, j) => j !== i) } });
    });
    if (s.biasLayers > 1) {
      const k = Math.floor(s.biasLayers / 2);
      out.push({ change: `update the biases of the last ${k} layers instead of ${s.biasLayers}`, scheme: { ...s, biasLayers: k } });
    }
    return out;
  }

  // The least arena of each candidate, skipping those whose lower bound
  // already exceeds the best found (they cannot be the costliest update),
  // unless `all`. Most saving first; equal: the one listed first.
  private rank(candidates: { change: string; scheme: SparseUpdateScheme }[], all: boolean): SchemeChange[] {
    const usable = candidates.filter((c) => this.lowerable(c.scheme));
    const bound = (i: number) => this.measure(usable[i]!.scheme).lowerBound;
    const order = [...usable.keys()].sort((a, b) => bound(a) - bound(b) || a - b);
    let best = Infinity;
    const ranked: (SchemeChange & { at: number })[] = [];
    for (const i of order) {
      const c = usable[i]!;
      const m = this.measure(c.scheme);
      if (!all && m.lowerBound >= best) continue;
      const bytes = this.arenaOf(m.level1) <= this.o.budget ? this.arenaOf(m.level1) : this.leastArena(c.scheme);
      best = Math.min(best, bytes);
      ranked.push({ ...c, arenaBytes: bytes, at: i });
    }
    return ranked.sort((a, b) => a.arenaBytes - b.arenaBytes || a.at - b.at).map(({ at: _, ...c }) => c);
  }

  // Removes the costliest update until the scheme fits; when some removal
  // already fits, the one listed first of those (it keeps most training).
  private shrink(scheme: SparseUpdateScheme, first: SchemeChange[]): { scheme: SparseUpdateScheme; arenaBytes: number; steps: string[] } | null {
    const steps: string[] = [];
    let s = scheme;
    for (let ranked = first; ranked.length; ranked = this.rank(this.removals(s), false)) {
      const listed = this.removals(s).map((r) => key(r.scheme));
      const fitting = ranked.filter((c) => c.arenaBytes <= this.o.budget).sort((a, b) => listed.indexOf(key(a.scheme)) - listed.indexOf(key(b.scheme)));
      const pick = fitting[0] ?? ranked[0]!;
      steps.push(pick.change);
      s = pick.scheme;
      if (pick.arenaBytes <= this.o.budget) return { scheme: s, arenaBytes: pick.arenaBytes, steps };
    }
    return null;
  }

  overBudget(scheme: SparseUpdateScheme): BudgetError {
    const least = this.least(scheme);
    const need = this.arenaOf(least.compiled);
    const r = least.compiled.plan.report;
    const budget = this.o.budget;
    const changes = this.rank(this.removals(scheme), true);
    const fit = this.shrink(scheme, changes);
    const top = r.peakTensors.slice(0, 5).map((t) => `${t.name} ${B(t.bytes)} (${t.saved && t.role !== 'saved_slice' ? 'saved activation' : t.role.replace('_', ' ')})`);
    const lines = [
      `the plan needs ${B(need)} of arena, the budget is ${B(budget)}${this.o.budgetSource ? ` (${this.o.budgetSource})` : ''}: over by ${B(need - budget)}` +
        ` (with every memory option: ${least.level.name}).`,
      `At the peak (step ${r.peakStep} of ${r.steps}, ${r.peakOp}, ${r.peakPhase}): ${top.join('; ')}.`,
    ];
    if (changes.length) {
      lines.push('Drop, one change at a time (arena it would need):');
      for (const c of changes.slice(0, 6)) lines.push(`  - ${c.change}: ${B(c.arenaBytes)}${c.arenaBytes <= budget ? ' (fits)' : ''}`);
    }
    if (fit) {
      lines.push(`A scheme that fits in ${B(fit.arenaBytes)}, found by removing the costliest update until it fits (${fit.steps.join('; ')}):`);
      lines.push(`  ${JSON.stringify(fit.scheme)}`);
      lines.push('Save it to a file and pass --scheme FILE.');
    } else {
      const classifier = this.leastArena({ biasLayers: 0, weights: [] });
      lines.push(`Even updating only the classifier needs ${B(classifier)} (the forward and the classifier's update): ` +
        'choose a board with a larger arena, or a smaller model or input.');
    }
    return new BudgetError(lines.join('\n'), budget, need, r, changes, fit);
  }

  // ---- no scheme: a greedy choice by bytes --------------------------------------------

  choose(progress?: (line: string) => void): SparseUpdateScheme {
    const L = this.layers.length;
    let s: SparseUpdateScheme = { biasLayers: 1, weights: [] };
    if (!this.fits(s)) throw this.overBudget(s);
    for (let l = L - 2; l >= 0; l--) {
      const withBias: SparseUpdateScheme = { ...s, biasLayers: L - l };
      if (!this.lowerable(withBias) || !this.fits(withBias)) break;
      s = withBias;
      const layer = this.layers[l]!;
      const pointwise = layer.kind === 'fully_connected' || (layer.kind === 'conv2d' && layer.kH === 1 && layer.kW === 1);
      if (pointwise) {
        const tryRatio = (ratio: number): SparseUpdateScheme | null => {
          const t: SparseUpdateScheme = { ...s, weights: [...s.weights, ratio === 1 ? { layer: l } : { layer: l, ratio }] };
          return this.lowerable(t) && this.fits(t) ? t : null;
        };
        // The smallest first: if 1/8 does not fit, no larger ratio does.
        if (tryRatio(0.125)) s = tryRatio(1) ?? tryRatio(0.5) ?? tryRatio(0.25) ?? tryRatio(0.125)!;
      }
      progress?.(`layer ${l}: ${JSON.stringify(s)}`);
    }
    // Then, with what is left of the budget, the whole weights of the
    // spatial (3x3) convs and depthwise layers whose biases train, last
    // layer first, where their kernels exist: a small network can train
    // every layer. (Pointwise layers come first: per byte of arena their
    // updates do the most, the paper's observation.)
    for (let l = L - 2; l >= L - s.biasLayers; l--) {
      const layer = this.layers[l]!;
      const pointwise = layer.kind === 'fully_connected' || (layer.kind === 'conv2d' && layer.kH === 1 && layer.kW === 1);
      if (pointwise || s.weights.some((w) => w.layer === l)) continue;
      const t: SparseUpdateScheme = { ...s, weights: [...s.weights, { layer: l }] };
      if (this.lowerable(t) && this.fits(t)) {
        s = t;
        progress?.(`layer ${l} (all its weights): ${JSON.stringify(s)}`);
      }
    }
    return s;
  }
}
