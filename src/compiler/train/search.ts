// Automatic sparse-update scheme search: the "contribution analysis" of Lin
// et al. 2022 (§3.2 of the paper; its public code picks schemes by hand).
// Given a model, fine-tune data and an arena budget, choose the scheme with
// the most expected accuracy gain that the real planner fits in the budget.
//
//  1. Baseline: the classifier alone (every scheme trains it) is compiled
//     and probed: a short fine-tuning run from the model's start (same head
//     initialisation, same samples in the same order), then accuracy on the
//     held-out samples. Its arena is the least any scheme needs: a budget
//     below it is an error.
//  2. Options, each alone on top of the classifier:
//       bias k     the biases of the last k layers (the scheme's biasLayers,
//                  counted with the classifier), for k on a grid;
//       weight i,r the weights of layer i at input-channel ratio r.
//     Each is compiled and lowered (its bytes: the arena it adds to the
//     baseline's, by the real planner); one the kernels cannot run is
//     listed as unsupported, one whose own bytes exceed the budget as over
//     budget; the rest are probed like the baseline. Its gain is its
//     probe's correct eval samples minus the baseline's (the paper's
//     Δacc_b,k and Δacc_W,i,r, counted in eval samples). The baseline is
//     probed with several sample orders: gains count against the mean of
//     its correct counts, and one not above `noise` times their standard
//     deviation is not counted (measured: one order's baseline was 8
//     samples in 100 below the other two, which made every option look
//     good against it).
//  3. Selection (`solveBudget`): at most one option per group (the bias
//     options are one group, each layer's ratios another), maximising the
//     sum of gains with the sum of bytes within the budget less the
//     baseline: a multiple-choice knapsack, solved exactly by dynamic
//     programming over bytes (in units of the planner's 16-byte alignment).
//     Options with no gain above the noise are never chosen. This assumes
//     gains and bytes add up; the paper assumes the same of gains.
//  4. Verification (`fitBudget`): bytes do not add up (the peak is a
//     maximum over the step; options share the backward path down to their
//     layer), so the selection is compiled by the real planner. Over the
//     budget: solve again within the selection's own estimate less the
//     overshoot, so the next selection differs (repair), and as a last
//     resort drop options, least gain per byte first, until
//     it fits (the classifier alone fits: step 1). Under the budget: try a
//     few more options (or larger ratios), best gain per byte first, each
//     kept only if the real planner still fits it (fill).
//  5. Verification of the gain (`verify`): gains do not add up either
//     (measured on the bench: tens of small gains summed to more than 100
//     accuracy points, and updating all those layers together trained worse
//     than the classifier alone). The selection's options, best gain per
//     byte first, are probed together as prefixes of 1, 2, 4, ... options
//     and the whole; the prefix with the most correct eval samples is the
//     answer, the classifier alone if none beats it. Its measured gain is
//     the expected gain. (Measured on the same eval samples as the options:
//     a choice among a few candidates, a small optimistic bias.)
//
// Probes cost `steps` training steps and one pass over the eval samples
// each; compile and probe counts are in the result. The runtime is a
// Dispatch the caller gives (the C addon on Node), so this module stays
// platform-free.

import type { Graph } from '../../core/graph.js';
import type { Dispatch } from '../../core/kernels.js';
import { PlanRuntime } from '../../core/plan-runtime.js';
import { shuffledIndices } from '../../core/rng.js';
import type { CompileOptions } from './compile.js';
import { prepareHead } from './head.js';
import { trainableLayers } from './layers.js';
import { type CompiledPlan, type LowerOptions, LoweringError, compilePlan } from './lower.js';
import type { SparseUpdateScheme, WeightUpdateSpec } from './scheme.js';

export interface LabelledSample {
  input: Int8Array; // the plan's input tensor, int8
  label: number;
}

export interface SearchData {
  train: readonly LabelledSample[]; // probes train on these (cycled, shuffled once by the seed)
  eval: readonly LabelledSample[]; // probes are scored on these
}

export type SearchCompileOptions = Omit<CompileOptions, 'scheme'> & LowerOptions;

export interface SearchOptions {
  compile: SearchCompileOptions; // everything but the scheme: head, reorder, tile, ..., lr
  dispatch: (arenaBytes: number, flashBytes: number) => Dispatch; // a fresh runtime for each probe
  steps?: number; // training steps per probe (default 300)
  seed?: number; // order of the training samples (default 1)
  ratios?: readonly number[]; // weight ratios to probe (default [0.25, 0.5, 1])
  biasChoices?: readonly number[]; // biasLayers values to probe (default 1 + 2^j, and all layers)
  weightLayers?: readonly number[]; // layers whose weights may update (default every layer but the classifier)
  baselineRepeats?: number; // baseline probes, each with another sample order: the probe noise (default 3)
  noise?: number; // gains up to noise x the baseline's standard deviation are not counted (default 1)
  verify?: number; // most combination probes when choosing (default 6; 0: trust the additive sum)
  fillTries?: number; // real-planner tries to add options after the selection fits (default 12)
  repairRounds?: number; // re-solves with a smaller capacity before dropping options (default 8)
  onProbe?: (row: SearchRow) => void; // progress: each option as it is measured
}

export interface ProbeResult {
  correct: number; // of data.eval
  accuracy: number;
  loss: number; // mean cross-entropy on data.eval (nats)
}

export interface SearchRow {
  option: string; // "bias 9", "weight 48 r=0.5"
  group: string; // "bias" or "layer 48"
  biasLayers?: number;
  weight?: WeightUpdateSpec;
  arenaBytes: number | null; // the plan's arena with this option alone (null: not compiled)
  bytes: number | null; // arenaBytes less the baseline's
  status: 'probed' | 'unsupported' | 'over budget';
  note?: string;
  probe?: ProbeResult;
  gain?: number; // correct eval samples more than the baseline's mean
  chosen: boolean;
}

export interface Baseline {
  arenaBytes: number;
  probe: ProbeResult; // with the options' sample order
  repeats: ProbeResult[]; // with other sample orders
  correct: number; // mean correct count of probe and repeats: what gains are counted against
  sd: number; // standard deviation of `correct` over probe and repeats (0 with no repeats)
}

// A combination of options probed together (step 5 of the header).
export interface Combination {
  options: string[];
  scheme: SparseUpdateScheme;
  bytes: number; // arena by the real planner
  additiveGain: number; // the options' gains summed (eval samples)
  probe: ProbeResult | null; // null: over the budget, not probed
  gain: number | null; // measured: correct eval samples more than the baseline's mean
}

export interface SearchResult {
  scheme: SparseUpdateScheme;
  // Accuracy points (fraction of data.eval) over the classifier alone:
  // measured on the chosen combination when verified, else the additive sum.
  expectedGain: number;
  additiveGain: number; // the chosen options' gains summed, as a fraction
  bytes: number; // the chosen scheme's arena by the real planner (<= the budget)
  budgetBytes: number;
  evalSamples: number;
  baseline: Baseline;
  threshold: number; // option gains at or below it (eval samples) were not counted
  combinations: Combination[];
  table: SearchRow[];
  compiles: number;
  probes: number;
  notes: string[]; // what repair and fill did
}

export class SearchError extends Error {}

// Labelled samples split into probe training and probe eval samples,
// deterministically: one seeded shuffle of all of them, then in that order
// each sample goes to eval until its class has max(1, floor(evalFraction x
// its count)) there, the rest to training; both keep the shuffled order.
// Every class keeps samples on both sides, so a class with one sample is an
// error (SearchError) that says how many it needs.
export function splitForSearch(samples: readonly LabelledSample[], seed: number, evalFraction = 0.25): SearchData {
  const count = new Map<number, number>();
  for (const s of samples) count.set(s.label, (count.get(s.label) ?? 0) + 1);
  const few = [...count].filter(([, n]) => n < 2).map(([label]) => label).sort((a, b) => a - b);
  if (few.length) {
    throw new SearchError(`class${few.length > 1 ? 'es' : ''} ${few.join(', ')} ha${few.length > 1 ? 've' : 's'} one sample; every class needs at least 2 ` +
      '(one to train the probes, one to score them): add samples (a few dozen per class give a less noisy search)');
  }
  const quota = new Map([...count].map(([label, n]) => [label, Math.max(1, Math.floor(evalFraction * n))]));
  const train: LabelledSample[] = [], evalSet: LabelledSample[] = [];
  for (const i of shuffledIndices(samples.length, seed >>> 0 || 1)) {
    const s = samples[i]!;
    const left = quota.get(s.label)!;
    if (left > 0) {
      evalSet.push(s);
      quota.set(s.label, left - 1);
    } else train.push(s);
  }
  return { train, eval: evalSet };
}

// ---- the budgeted selection ------------------------------------------------------

export interface BudgetItem {
  group: string;
  gain: number;
  bytes: number;
}

// Multiple-choice knapsack: at most one item per group, the largest total
// gain with total bytes <= capacity (bytes counted in units of `granule`,
// rounded up, so a selection never exceeds the capacity). Items with
// gain <= 0 are never chosen. Among selections of the largest gain, the one
// of fewest units; ties between items: the earlier one. Returns the chosen
// items' indices in `items`, ascending.
export function solveBudget(items: readonly BudgetItem[], capacity: number, granule = 16): number[] {
  const cap = Math.floor(Math.max(0, capacity) / granule);
  const units = items.map((it) => Math.ceil(Math.max(0, it.bytes) / granule));
  const groups = new Map<string, number[]>();
  items.forEach((it, i) => {
    if (it.gain > 0 && units[i]! <= cap) groups.set(it.group, [...(groups.get(it.group) ?? []), i]);
  });
  const G = [...groups.values()];
  // best[c]: the largest gain of the groups so far within c units; pick[g][c]: group g's item (-1 none)
  let best = new Float64Array(cap + 1);
  const pick = G.map(() => new Int32Array(cap + 1).fill(-1));
  G.forEach((members, g) => {
    const next = best.slice();
    for (const i of members) {
      const u = units[i]!, v = items[i]!.gain;
      for (let c = u; c <= cap; c++) {
        if (best[c - u]! + v > next[c]!) {
          next[c] = best[c - u]! + v;
          pick[g]![c] = i;
        }
      }
    }
    best = next;
  });
  let c = 0;
  while (best[c]! < best[cap]!) c++; // fewest units reaching the largest gain
  const chosen: number[] = [];
  for (let g = G.length - 1; g >= 0; g--) {
    const i = pick[g]![c]!;
    if (i >= 0) {
      chosen.push(i);
      c -= units[i]!;
    }
  }
  return chosen.sort((a, b) => a - b);
}

// The selection under the real planner: solve, verify with `arenaOf`
// (the arena a selection needs), repair when over, fill when under.
// `baseBytes` (nothing chosen) must fit. Returns the chosen indices and the
// arena they need.
export function fitBudget(items: readonly BudgetItem[], budget: number, baseBytes: number,
  arenaOf: (chosen: readonly number[]) => number,
  o: { granule?: number; repairRounds?: number; fillTries?: number; notes?: string[]; label?: (item: number) => string } = {},
): { chosen: number[]; bytes: number } {
  if (baseBytes > budget) throw new SearchError(`the classifier alone needs ${baseBytes} B of arena, more than the budget of ${budget} B`);
  const granule = o.granule ?? 16, notes = o.notes ?? [], label = o.label ?? ((i: number) => `option ${i}`);
  const gainOf = (s: readonly number[]) => s.reduce((a, i) => a + items[i]!.gain, 0);
  let capacity = budget - baseBytes;
  let chosen = solveBudget(items, capacity, granule);
  let bytes = chosen.length ? arenaOf(chosen) : baseBytes;
  for (let round = 0; bytes > budget && round < (o.repairRounds ?? 8); round++) {
    // below this selection's own estimate by the overshoot: the next selection differs
    capacity = Math.min(capacity, chosen.reduce((a, i) => a + items[i]!.bytes, 0)) - Math.max(bytes - budget, granule);
    notes.push(`repair: ${chosen.length} options need ${bytes} B (additive estimate ${baseBytes + chosen.reduce((a, i) => a + items[i]!.bytes, 0)} B); ` +
      `solving again within ${Math.max(capacity, 0)} B above the classifier`);
    chosen = solveBudget(items, capacity, granule);
    bytes = chosen.length ? arenaOf(chosen) : baseBytes;
  }
  while (bytes > budget) {
    const worst = [...chosen].sort((a, b) => items[a]!.gain / Math.max(items[a]!.bytes, 1) - items[b]!.gain / Math.max(items[b]!.bytes, 1))[0]!;
    chosen = chosen.filter((i) => i !== worst);
    notes.push(`repair: dropped ${label(worst)} (least gain per byte)`);
    bytes = chosen.length ? arenaOf(chosen) : baseBytes;
  }
  // Fill: options whose group adds gain, best gain per additional byte first.
  const inGroup = (s: readonly number[], g: string) => s.find((i) => items[i]!.group === g);
  const extra = (i: number) => {
    const cur = inGroup(chosen, items[i]!.group);
    return cur === undefined ? { gain: items[i]!.gain, bytes: items[i]!.bytes } : { gain: items[i]!.gain - items[cur]!.gain, bytes: items[i]!.bytes - items[cur]!.bytes };
  };
  const tried = new Set<number>(chosen);
  for (let t = 0; t < (o.fillTries ?? 12); t++) {
    const cands = items.map((_, i) => i).filter((i) => !tried.has(i) && items[i]!.bytes <= budget - baseBytes && extra(i).gain > 0)
      .sort((a, b) => extra(b).gain / Math.max(extra(b).bytes, 1) - extra(a).gain / Math.max(extra(a).bytes, 1) || a - b);
    const i = cands[0];
    if (i === undefined) break;
    tried.add(i);
    const cur = inGroup(chosen, items[i]!.group);
    const next = [...chosen.filter((j) => j !== cur), i].sort((a, b) => a - b);
    const need = arenaOf(next);
    if (need <= budget && gainOf(next) > gainOf(chosen)) {
      notes.push(`fill: ${label(i)} fits too (${need} B)`);
      [chosen, bytes] = [next, need];
    }
  }
  return { chosen, bytes };
}

// ---- probes ------------------------------------------------------------------------

// Default grid of biasLayers: 1 + 2^j below the layer count, and all of them
// (1 is the classifier alone, the baseline).
export function defaultBiasChoices(layers: number): number[] {
  const ks: number[] = [];
  for (let k = 2; k < layers; k = 2 * k - 1) ks.push(k);
  return [...ks, layers];
}

function probeRun(c: CompiledPlan, data: SearchData, order: Uint32Array, steps: number,
  dispatch: SearchOptions['dispatch']): ProbeResult {
  const rt = PlanRuntime.load(dispatch(c.plan.arenaBytes, c.plan.flash.length), c.blob);
  for (let s = 0; s < steps; s++) {
    const x = data.train[order[s % order.length]!]!;
    rt.step(x.input, x.label);
  }
  const out = c.plan.io.output;
  const logits = out.offset === c.plan.io.logits.offset; // else the kept softmax's probabilities
  let correct = 0, loss = 0;
  for (const x of data.eval) {
    const y = rt.infer(x.input);
    let arg = 0;
    for (let k = 1; k < y.length; k++) if (y[k]! > y[arg]!) arg = k;
    if (arg === x.label) correct++;
    const v = Array.from(y, (q) => (q - out.zeroPoint) * out.scale);
    if (logits) {
      const m = Math.max(...v);
      loss += m + Math.log(v.reduce((a, z) => a + Math.exp(z - m), 0)) - v[x.label]!;
    } else {
      loss += -Math.log(Math.max(v[x.label]!, 1 / 256));
    }
  }
  const n = data.eval.length;
  return { correct, accuracy: correct / n, loss: loss / n };
}

const schemeOf = (biasLayers: number, weights: readonly WeightUpdateSpec[]): SparseUpdateScheme =>
  ({ biasLayers, weights: [...weights].sort((a, b) => a.layer - b.layer) });

function checkData(data: SearchData): void {
  if (!data.train.length || !data.eval.length) {
    throw new SearchError(`scheme search needs training and eval samples; got ${data.train.length} and ${data.eval.length}`);
  }
}

// What the probes measured (steps 1-2), reusable for any budget up to
// the one it was measured for (options above that were not probed).
export interface ContributionTable {
  budgetBytes: number; // options over this alone were not probed
  evalSamples: number;
  baseline: Baseline;
  rows: SearchRow[];
  compiles: number;
  probes: number;
}

// Compiles and probes of one model, data and options, counted.
class Prober {
  compiles = 0;
  probes = 0;
  constructor(private readonly model: Graph, private readonly data: SearchData, private readonly o: SearchOptions) {}

  compile(scheme: SparseUpdateScheme): CompiledPlan {
    this.compiles++;
    return compilePlan(this.model, { ...this.o.compile, scheme });
  }

  // repeat 0: the sample order of every option; k: another one
  run(c: CompiledPlan, repeat = 0): ProbeResult {
    this.probes++;
    const order = shuffledIndices(this.data.train.length, ((this.o.seed ?? 1) + Math.imul(repeat, 0x9e3779b1)) >>> 0 || 1);
    return probeRun(c, this.data, order, this.o.steps ?? 300, this.o.dispatch);
  }
}

// Steps 1-2 of the header: the baseline and every option's bytes and gain.
export function measureContributions(model: Graph, data: SearchData, budgetBytes: number, o: SearchOptions): ContributionTable {
  checkData(data);
  const L = trainableLayers(prepareHead(model, o.compile.head).graph).length;
  const p = new Prober(model, data, o);
  const compile = (scheme: SparseUpdateScheme) => p.compile(scheme);
  const run = (c: CompiledPlan) => p.run(c);

  const base = compile(schemeOf(0, []));
  const baseBytes = base.plan.arenaBytes;
  checkBudget(budgetBytes, baseBytes);
  const first = run(base);
  const repeats = Array.from({ length: Math.max(0, (o.baselineRepeats ?? 3) - 1) }, (_, k) => p.run(base, k + 1));
  const all = [first, ...repeats].map((r) => r.correct);
  const mean = all.reduce((a, b) => a + b, 0) / all.length;
  const sd = all.length > 1 ? Math.sqrt(all.reduce((a, b) => a + (b - mean) ** 2, 0) / (all.length - 1)) : 0;
  const baseline: Baseline = { arenaBytes: baseBytes, probe: first, repeats, correct: mean, sd };

  const rows: SearchRow[] = [];
  const consider = (row: Omit<SearchRow, 'arenaBytes' | 'bytes' | 'status' | 'chosen'>, scheme: SparseUpdateScheme): SearchRow => {
    let r: SearchRow;
    try {
      const c = compile(scheme);
      const arenaBytes = c.plan.arenaBytes;
      r = { ...row, arenaBytes, bytes: Math.max(0, arenaBytes - baseBytes), status: arenaBytes > budgetBytes ? 'over budget' : 'probed', chosen: false };
      if (r.status === 'probed') {
        r.probe = run(c);
        r.gain = r.probe.correct - baseline.correct;
      }
    } catch (e) {
      if (!(e instanceof LoweringError)) throw e;
      r = { ...row, arenaBytes: null, bytes: null, status: 'unsupported', note: e.message, chosen: false };
    }
    rows.push(r);
    o.onProbe?.(r);
    return r;
  };

  const biasChoices = [...new Set(o.biasChoices ?? defaultBiasChoices(L))].filter((k) => k > 1 && k <= L).sort((a, b) => a - b);
  for (const k of biasChoices) consider({ option: `bias ${k}`, group: 'bias', biasLayers: k }, schemeOf(k, []));
  const ratios = [...new Set(o.ratios ?? [0.25, 0.5, 1])].sort((a, b) => b - a); // the full ratio first
  const layers = o.weightLayers ?? Array.from({ length: L - 1 }, (_, i) => i);
  for (const layer of layers) {
    for (const ratio of ratios) {
      const weight: WeightUpdateSpec = ratio === 1 ? { layer } : { layer, ratio };
      const r = consider({ option: `weight ${layer} r=${ratio}`, group: `layer ${layer}`, weight }, schemeOf(0, [weight]));
      if (r.status === 'unsupported' && ratio === 1) break; // no kernel for this layer's weights at any ratio
    }
  }
  return { budgetBytes, evalSamples: data.eval.length, baseline, rows, compiles: p.compiles, probes: p.probes };
}

function checkBudget(budgetBytes: number, baseBytes: number): void {
  if (!(budgetBytes >= baseBytes)) {
    throw new SearchError(`budget ${budgetBytes} B is below the ${baseBytes} B of arena that training the classifier alone needs ` +
      `(every scheme trains it); raise the budget, or use a smaller model or input`);
  }
}

// Steps 3-5 of the header: the scheme for one budget from a measured table
// (the same data and options it was measured with).
export function chooseScheme(model: Graph, data: SearchData, table: ContributionTable, budgetBytes: number, o: SearchOptions): SearchResult {
  const baseBytes = table.baseline.arenaBytes;
  checkBudget(budgetBytes, baseBytes);
  if (budgetBytes > table.budgetBytes) {
    throw new SearchError(`budget ${budgetBytes} B is above the ${table.budgetBytes} B the contributions were measured for ` +
      '(larger options were not probed); measure again with the larger budget');
  }
  const p = new Prober(model, data, o);
  const threshold = (o.noise ?? 1) * table.baseline.sd;
  const rows = table.rows.map((r) => ({ ...r, chosen: false }));
  const counted = rows.filter((r) => r.status === 'probed' && r.gain! > threshold);
  const items: BudgetItem[] = counted.map((r) => ({ group: r.group, gain: r.gain!, bytes: r.bytes! }));
  const schemeOfItems = (chosen: readonly number[]): SparseUpdateScheme => {
    const bias = chosen.map((i) => counted[i]!.biasLayers).find((k) => k !== undefined) ?? 0;
    return schemeOf(bias, chosen.flatMap((i) => (counted[i]!.weight ? [counted[i]!.weight!] : [])));
  };
  const notes: string[] = [];
  const arenaCache = new Map<string, number>();
  const arenaOf = (chosen: readonly number[]): number => {
    const scheme = schemeOfItems(chosen), key = JSON.stringify(scheme);
    let bytes = arenaCache.get(key);
    if (bytes === undefined) arenaCache.set(key, (bytes = chosen.length ? p.compile(scheme).plan.arenaBytes : baseBytes));
    return bytes;
  };
  const fit = fitBudget(items, budgetBytes, baseBytes, arenaOf, {
    repairRounds: o.repairRounds, fillTries: o.fillTries, notes, label: (i) => counted[i]!.option,
  });
  const additive = (c: readonly number[]) => c.reduce((a, i) => a + items[i]!.gain, 0);

  // 5. Probe the selection's best-per-byte prefixes together; keep the best measured.
  let chosen = fit.chosen, bytes = fit.bytes, gain = additive(chosen);
  const combinations: Combination[] = [];
  const tries = o.verify ?? 6;
  if (tries > 0 && chosen.length) {
    const ranked = [...chosen].sort((a, b) => items[b]!.gain / Math.max(items[b]!.bytes, 1) - items[a]!.gain / Math.max(items[a]!.bytes, 1) || a - b);
    const sizes = new Set<number>();
    for (let n = 1; n < ranked.length && sizes.size < tries - 1; n *= 2) sizes.add(n);
    sizes.add(ranked.length);
    let best: { chosen: number[]; bytes: number; gain: number } = { chosen: [], bytes: baseBytes, gain: 0 };
    for (const n of [...sizes].sort((a, b) => a - b)) {
      const subset = ranked.slice(0, n).sort((a, b) => a - b);
      const scheme = schemeOfItems(subset);
      let arena: number, probe: ProbeResult | null;
      if (n === 1) {
        [arena, probe] = [counted[subset[0]!]!.arenaBytes!, counted[subset[0]!]!.probe!]; // probed alone already, same order
      } else {
        const c = p.compile(scheme);
        arena = c.plan.arenaBytes;
        probe = arena <= budgetBytes ? p.run(c) : null;
      }
      const measured = probe ? probe.correct - table.baseline.correct : null;
      combinations.push({ options: subset.map((i) => counted[i]!.option), scheme, bytes: arena, additiveGain: additive(subset), probe, gain: measured });
      if (measured !== null && measured > best.gain) best = { chosen: subset, bytes: arena, gain: measured };
    }
    if (!best.chosen.length) notes.push('verify: no combination beat the classifier alone; keeping the classifier alone');
    ({ chosen, bytes, gain } = best);
  }
  for (const i of chosen) counted[i]!.chosen = true;
  return {
    scheme: schemeOfItems(chosen), expectedGain: gain / table.evalSamples, additiveGain: additive(chosen) / table.evalSamples, bytes,
    budgetBytes, evalSamples: table.evalSamples, baseline: table.baseline, threshold, combinations, table: rows, compiles: table.compiles + p.compiles,
    probes: table.probes + p.probes, notes,
  };
}

// The whole search (steps 1-5 of the header) for one budget.
export function searchScheme(model: Graph, data: SearchData, budgetBytes: number, o: SearchOptions): SearchResult {
  return chooseScheme(model, data, measureContributions(model, data, budgetBytes, o), budgetBytes, o);
}

// ---- printing ------------------------------------------------------------------------

const kb = (b: number) => `${(b / 1024).toFixed(1)} KB`;

// The table and the chosen scheme, as the CLI prints them.
export function formatSearch(r: SearchResult): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const lines = [
    `scheme search: budget ${r.budgetBytes} B (${kb(r.budgetBytes)}); classifier alone ${r.baseline.arenaBytes} B, ` +
      `eval accuracy ${pct(r.baseline.probe.accuracy)} after the probe` +
      (r.baseline.repeats.length ? ` (${[r.baseline.probe, ...r.baseline.repeats].map((p) => pct(p.accuracy)).join(', ')} ` +
        `over ${r.baseline.repeats.length + 1} sample orders: gains up to ${r.threshold.toFixed(1)} samples not counted)` : ''),
    'option              bytes   accuracy   gain  gain/KB  chosen',
  ];
  for (const row of r.table) {
    const left = row.option.padEnd(18);
    if (row.status !== 'probed') {
      lines.push(`${left} ${String(row.bytes ?? '-').padStart(7)}   ${row.status}${row.status === 'unsupported' ? ' (no kernel)' : ''}`);
      continue;
    }
    const perKb = row.bytes! > 0 ? (row.gain! / (row.bytes! / 1024)).toFixed(2) : row.gain! > 0 ? 'free' : '0';
    lines.push(`${left} ${String(row.bytes).padStart(7)}   ${pct(row.probe!.accuracy).padStart(6)}  ${row.gain!.toFixed(1).padStart(5)}  ` +
      `${perKb.padStart(7)}  ${row.chosen ? 'yes' : row.gain! > r.threshold ? '' : '(noise)'}`);
  }
  for (const note of r.notes) lines.push(note);
  for (const c of r.combinations) {
    lines.push(`together: ${c.options.length} options, ${c.bytes} B: ` +
      (c.gain === null ? 'over the budget' : `gain ${c.gain.toFixed(1)} measured, ${c.additiveGain.toFixed(1)} summed`));
  }
  lines.push(`chosen: ${r.bytes} B of arena (${kb(r.bytes)}), expected gain ${pct(r.expectedGain)} over the classifier alone ` +
    `(${(r.additiveGain * r.evalSamples).toFixed(1)} samples summed over its options; ${r.probes} probes, ${r.compiles} compiles)`);
  lines.push(`scheme: ${JSON.stringify(r.scheme)}`);
  return lines.join('\n');
}
