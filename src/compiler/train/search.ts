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
//     Δacc_b,k and Δacc_W,i,r, counted in samples so sums are exact).
//  3. Selection (`solveBudget`): at most one option per group (the bias
//     options are one group, each layer's ratios another), maximising the
//     sum of gains with the sum of bytes within the budget less the
//     baseline: a multiple-choice knapsack, solved exactly by dynamic
//     programming over bytes (in units of the planner's 16-byte alignment).
//     Options with no positive gain are never chosen. This assumes gains
//     and bytes add up; the paper assumes the same of gains.
//  4. Verification (`fitBudget`): bytes do not add up (the peak is a
//     maximum over the step; options share the backward path down to their
//     layer), so the selection is compiled by the real planner. Over the
//     budget: solve again within the selection's own estimate less the
//     overshoot, so the next selection differs (repair), and as a last
//     resort drop options, least gain per byte first, until
//     it fits (the classifier alone fits: step 1). Under the budget: try a
//     few more options (or larger ratios), best gain per byte first, each
//     kept only if the real planner still fits it (fill).
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
  fillTries?: number; // see ChooseOptions
  repairRounds?: number;
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
  gain?: number; // correct eval samples more than the baseline
  chosen: boolean;
}

export interface SearchResult {
  scheme: SparseUpdateScheme;
  expectedGain: number; // accuracy points (fraction of data.eval) the chosen options add up to
  bytes: number; // the chosen scheme's arena by the real planner (<= the budget)
  budgetBytes: number;
  baseline: { arenaBytes: number; probe: ProbeResult };
  table: SearchRow[];
  compiles: number;
  probes: number;
  notes: string[]; // what repair and fill did
}

export class SearchError extends Error {}

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
  o: { granule?: number; repairRounds?: number; fillTries?: number; notes?: string[] } = {}): { chosen: number[]; bytes: number } {
  if (baseBytes > budget) throw new SearchError(`the classifier alone needs ${baseBytes} B of arena, more than the budget of ${budget} B`);
  const granule = o.granule ?? 16, notes = o.notes ?? [];
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
    notes.push(`repair: dropped option ${worst} (least gain per byte)`);
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
      notes.push(`fill: option ${i} fits too (${need} B)`);
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

function probe(c: CompiledPlan, data: SearchData, order: Uint32Array, steps: number,
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
  baseline: { arenaBytes: number; probe: ProbeResult };
  rows: SearchRow[];
  compiles: number;
  probes: number;
}

// Steps 1-2 of the header: the baseline and every option's bytes and gain.
export function measureContributions(model: Graph, data: SearchData, budgetBytes: number, o: SearchOptions): ContributionTable {
  checkData(data);
  const steps = o.steps ?? 300, seed = o.seed ?? 1;
  const L = trainableLayers(prepareHead(model, o.compile.head).graph).length;
  const order = shuffledIndices(data.train.length, seed);
  let compiles = 0, probes = 0;
  const compile = (scheme: SparseUpdateScheme): CompiledPlan => {
    compiles++;
    return compilePlan(model, { ...o.compile, scheme });
  };
  const run = (c: CompiledPlan): ProbeResult => {
    probes++;
    return probe(c, data, order, steps, o.dispatch);
  };

  const base = compile(schemeOf(0, []));
  const baseBytes = base.plan.arenaBytes;
  checkBudget(budgetBytes, baseBytes);
  const baseline = { arenaBytes: baseBytes, probe: run(base) };

  const rows: SearchRow[] = [];
  const consider = (row: Omit<SearchRow, 'arenaBytes' | 'bytes' | 'status' | 'chosen'>, scheme: SparseUpdateScheme): SearchRow => {
    let r: SearchRow;
    try {
      const c = compile(scheme);
      const arenaBytes = c.plan.arenaBytes;
      r = { ...row, arenaBytes, bytes: Math.max(0, arenaBytes - baseBytes), status: arenaBytes > budgetBytes ? 'over budget' : 'probed', chosen: false };
      if (r.status === 'probed') {
        r.probe = run(c);
        r.gain = r.probe.correct - baseline.probe.correct;
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
  return { budgetBytes, evalSamples: data.eval.length, baseline, rows, compiles, probes };
}

function checkBudget(budgetBytes: number, baseBytes: number): void {
  if (!(budgetBytes >= baseBytes)) {
    throw new SearchError(`budget ${budgetBytes} B is below the ${baseBytes} B of arena that training the classifier alone needs ` +
      `(every scheme trains it); raise the budget, or use a smaller model or input`);
  }
}

export interface ChooseOptions {
  compile: SearchCompileOptions; // as measured
  fillTries?: number; // real-planner tries to add options after the selection fits (default 12)
  repairRounds?: number; // re-solves with a smaller capacity before dropping options (default 8)
}

// Steps 3-4 of the header: the scheme for one budget from a measured table.
export function chooseScheme(model: Graph, table: ContributionTable, budgetBytes: number, o: ChooseOptions): SearchResult {
  const baseBytes = table.baseline.arenaBytes;
  checkBudget(budgetBytes, baseBytes);
  if (budgetBytes > table.budgetBytes) {
    throw new SearchError(`budget ${budgetBytes} B is above the ${table.budgetBytes} B the contributions were measured for ` +
      '(larger options were not probed); measure again with the larger budget');
  }
  const rows = table.rows.map((r) => ({ ...r, chosen: false }));
  const probed = rows.filter((r) => r.status === 'probed');
  const items: BudgetItem[] = probed.map((r) => ({ group: r.group, gain: r.gain!, bytes: r.bytes! }));
  const schemeOfItems = (chosen: readonly number[]): SparseUpdateScheme => {
    const bias = chosen.map((i) => probed[i]!.biasLayers).find((k) => k !== undefined) ?? 0;
    return schemeOf(bias, chosen.flatMap((i) => (probed[i]!.weight ? [probed[i]!.weight!] : [])));
  };
  let compiles = 0;
  const notes: string[] = [];
  const arenaCache = new Map<string, number>();
  const arenaOf = (chosen: readonly number[]): number => {
    const scheme = schemeOfItems(chosen), key = JSON.stringify(scheme);
    let bytes = arenaCache.get(key);
    if (bytes === undefined) {
      compiles++;
      arenaCache.set(key, (bytes = compilePlan(model, { ...o.compile, scheme }).plan.arenaBytes));
    }
    return bytes;
  };
  const fit = fitBudget(items, budgetBytes, baseBytes, arenaOf, { repairRounds: o.repairRounds, fillTries: o.fillTries, notes });
  for (const i of fit.chosen) probed[i]!.chosen = true;
  const gain = fit.chosen.reduce((a, i) => a + items[i]!.gain, 0);
  return {
    scheme: schemeOfItems(fit.chosen), expectedGain: gain / table.evalSamples, bytes: fit.bytes, budgetBytes, baseline: table.baseline,
    table: rows, compiles: table.compiles + compiles, probes: table.probes, notes,
  };
}

// The whole search (steps 1-4 of the header) for one budget.
export function searchScheme(model: Graph, data: SearchData, budgetBytes: number, o: SearchOptions): SearchResult {
  return chooseScheme(model, measureContributions(model, data, budgetBytes, o), budgetBytes, o);
}

// ---- printing ------------------------------------------------------------------------

const kb = (b: number) => `${(b / 1024).toFixed(1)} KB`;

// The table and the chosen scheme, as the CLI prints them.
export function formatSearch(r: SearchResult): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const lines = [
    `scheme search: budget ${r.budgetBytes} B (${kb(r.budgetBytes)}); classifier alone ${r.baseline.arenaBytes} B, ` +
      `eval accuracy ${pct(r.baseline.probe.accuracy)} after the probe`,
    'option              bytes   accuracy  gain  gain/KB  chosen',
  ];
  for (const row of r.table) {
    const left = row.option.padEnd(18);
    if (row.status !== 'probed') {
      lines.push(`${left} ${String(row.bytes ?? '-').padStart(7)}   ${row.status}${row.status === 'unsupported' ? ' (no kernel)' : ''}`);
      continue;
    }
    const perKb = row.bytes! > 0 ? (row.gain! / (row.bytes! / 1024)).toFixed(2) : row.gain! > 0 ? 'free' : '0';
    lines.push(`${left} ${String(row.bytes).padStart(7)}   ${pct(row.probe!.accuracy).padStart(6)}  ${String(row.gain).padStart(4)}  ` +
      `${perKb.padStart(7)}  ${row.chosen ? 'yes' : ''}`);
  }
  for (const n of r.notes) lines.push(n);
  lines.push(`chosen: ${r.bytes} B of arena (${kb(r.bytes)}), expected gain ${pct(r.expectedGain)} over the classifier alone ` +
    `(${r.probes} probes, ${r.compiles} compiles)`);
  lines.push(`scheme: ${JSON.stringify(r.scheme)}`);
  return lines.join('\n');
}
