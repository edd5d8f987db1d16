// The scheme search (src/compiler/train/search.ts):
//  - solveBudget against an independent brute force over every selection
//    (at most one item per group) on seeded random tables, and a table
//    whose answer is known by hand;
//  - fitBudget with made-up planners whose peak is not additive: above the
//    additive estimate it repairs until the planner fits the selection,
//    below it fills; the classifier alone above the budget is an error;
//  - splitForSearch: each class's held-out share, disjoint and seeded; a
//    class of one sample is an error;
//  - on a small MobileNetV2 (w0.35, 32x32, a new 5-class head) fine-tuned
//    on MNIST digits 5-9: the baseline's noise from three sample orders;
//    the chosen scheme, compiled again independently, fits the budget by
//    the real planner at two budgets, counts only gains above the noise,
//    and its expected gain is the best measured on the combinations probed
//    together (with every gain counted, more than one); a budget below
//    the classifier alone is a clear error before any probe; the same seed
//    measures the same table and picks the same scheme;
//  - trainedModel: a plan compiled from the trained model infers as the
//    runtime that trained it.
// Probes are short (50 steps, 100 eval images): the test checks the
// machinery, bench/scheme-search.ts the choices.
import { describe, expect, it } from 'vitest';
import { buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import { compilePlan } from '../src/compiler/train/lower.js';
import {
  type BudgetItem, type LabelledSample, type SearchOptions, SearchError, chooseScheme, fitBudget, formatSearch, measureContributions, searchScheme,
  solveBudget, splitForSearch,
} from '../src/compiler/train/search.js';
import { trainedModel } from '../src/compiler/train/trained-model.js';
import { PlanRuntime } from '../src/core/plan-runtime.js';
import { Xorshift32 } from '../src/core/rng.js';
import { NodeDispatch } from '../src/node/addon.js';
import { digitIndices, loadMnist, mnistRgb, quantizeImage } from '../src/node/mnist.js';

// ---- the solver ---------------------------------------------------------------------

// The best total gain over every selection of at most one item per group
// within the capacity (items with any gain: the brute force does not know
// the solver skips non-positive ones).
function bruteForce(items: readonly BudgetItem[], capacity: number): number {
  const groups = [...new Set(items.map((it) => it.group))].map((g) => items.filter((it) => it.group === g));
  let best = 0;
  const walk = (g: number, gain: number, bytes: number): void => {
    if (bytes > capacity) return;
    if (g === groups.length) {
      best = Math.max(best, gain);
      return;
    }
    walk(g + 1, gain, bytes);
    for (const it of groups[g]!) walk(g + 1, gain + it.gain, bytes + it.bytes);
  };
  walk(0, 0, 0);
  return best;
}

function checkSelection(items: readonly BudgetItem[], chosen: readonly number[], capacity: number): { gain: number; bytes: number } {
  const groups = chosen.map((i) => items[i]!.group);
  expect(new Set(groups).size, `one item per group: ${groups}`).toBe(groups.length);
  const bytes = chosen.reduce((a, i) => a + items[i]!.bytes, 0);
  expect(bytes).toBeLessThanOrEqual(capacity);
  return { gain: chosen.reduce((a, i) => a + items[i]!.gain, 0), bytes };
}

function randomTable(rng: Xorshift32): { items: BudgetItem[]; capacity: number } {
  const items: BudgetItem[] = [];
  const groups = rng.int(1, 6);
  for (let g = 0; g < groups; g++) {
    const n = rng.int(1, 4);
    for (let k = 0; k < n; k++) items.push({ group: g === 0 ? 'bias' : `layer ${g}`, gain: rng.int(-3, 12), bytes: rng.int(0, 400) });
  }
  return { items, capacity: rng.int(0, 900) };
}

describe('solveBudget: the budgeted selection', () => {
  it('a table whose answer is known: the two cheaper options beat the one that fills the budget', () => {
    const items: BudgetItem[] = [
      { group: 'bias', gain: 5, bytes: 600 }, // alone the best gain per item
      { group: 'bias', gain: 2, bytes: 200 },
      { group: 'layer 40', gain: 4, bytes: 400 },
      { group: 'layer 40', gain: 6, bytes: 900 }, // over the capacity with anything
      { group: 'layer 45', gain: -2, bytes: 0 }, // free but harmful: never chosen
    ];
    // capacity 1000: {bias 600 + layer40 400} = 9 beats {layer40 900} = 6 and {bias 200 + layer40 400} = 6
    expect(solveBudget(items, 1000, 1)).toEqual([0, 2]);
    expect(solveBudget(items, 999, 1)).toEqual([1, 2]); // 600 + 400 no longer fits: 2 + 4 = 6 in 600 B ties layer40-900's 6 in 900 B: fewer bytes
    expect(solveBudget(items, 199, 1)).toEqual([]);
    // rounding to 16-byte units never lets a selection pass the capacity
    expect(solveBudget([{ group: 'a', gain: 1, bytes: 17 }], 31)).toEqual([]);
    expect(solveBudget([{ group: 'a', gain: 1, bytes: 17 }], 32)).toEqual([0]);
  });

  it('finds the optimum of an independent brute force on 400 seeded random tables', () => {
    const rng = new Xorshift32(2024);
    for (let t = 0; t < 400; t++) {
      const { items, capacity } = randomTable(rng);
      const chosen = solveBudget(items, capacity, 1);
      const got = checkSelection(items, chosen, capacity);
      expect(got.gain, `table ${t}: ${JSON.stringify({ items, capacity, chosen })}`).toBe(bruteForce(items, capacity));
    }
  });
});

describe('fitBudget: verification by the planner', () => {
  const items: BudgetItem[] = [
    { group: 'bias', gain: 3, bytes: 300 },
    { group: 'layer 1', gain: 4, bytes: 500 },
    { group: 'layer 1', gain: 6, bytes: 800 },
    { group: 'layer 2', gain: 2, bytes: 200 },
    { group: 'layer 3', gain: 1, bytes: 400 },
  ];
  const base = 1000;
  const sum = (c: readonly number[]) => c.reduce((a, i) => a + items[i]!.bytes, 0);

  it('repairs when the real peak is above the additive estimate, until the planner fits it', () => {
    const calls: number[][] = [];
    const superAdditive = (c: readonly number[]) => {
      calls.push([...c]);
      return base + sum(c) + (c.length > 1 ? 150 * c.length : 0);
    };
    for (const budget of [1000, 1300, 1500, 1800, 2000, 2400]) {
      const notes: string[] = [];
      const r = fitBudget(items, budget, base, superAdditive, { granule: 1, notes });
      expect(r.bytes, `budget ${budget}: ${notes.join('; ')}`).toBeLessThanOrEqual(budget);
      expect(r.bytes).toBe(r.chosen.length ? superAdditive(r.chosen) : base);
      checkSelection(items, r.chosen, budget - base);
    }
    // 1500: the additive solution {bias, layer 2} = 5 in 500 B needs 1000 + 500 + 300 > 1500: repaired
    const notes: string[] = [];
    const r = fitBudget(items, 1500, base, superAdditive, { granule: 1, notes });
    expect(notes.some((n) => n.startsWith('repair'))).toBe(true);
    expect(r.bytes).toBeLessThanOrEqual(1500);
  });

  it('fills when the real peak is below the additive estimate', () => {
    // the options share one region: the peak is the largest one's, not the sum
    const shared = (c: readonly number[]) => base + Math.max(0, ...c.map((i) => items[i]!.bytes));
    const notes: string[] = [];
    const r = fitBudget(items, 1800, base, shared, { granule: 1, notes });
    // additive: within 800 B the best is {bias, layer1-500} = 7; sharing lets every group in (6 + 3 + 2 + 1 = 12 in 800 B)
    expect(r.chosen.map((i) => items[i]!.gain).reduce((a, b) => a + b, 0)).toBe(12);
    expect(r.bytes).toBe(1800);
    expect(notes.some((n) => n.startsWith('fill'))).toBe(true);
  });

  it('the classifier alone over the budget is an error', () => {
    expect(() => fitBudget(items, 999, base, () => base)).toThrow(SearchError);
  });
});

describe('splitForSearch: probe training and eval samples', () => {
  // 3 classes of 9, 4 and 2 samples; each sample's input holds its index
  const labels = [0, 1, 0, 2, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 1];
  const samples: LabelledSample[] = labels.map((label, i) => ({ input: Int8Array.of(i), label }));

  it('holds out max(1, floor(count / 4)) of each class, disjoint, everything used, the same for the same seed', () => {
    for (const seed of [1, 2, 77]) {
      const { train, eval: held } = splitForSearch(samples, seed);
      const count = (set: readonly LabelledSample[], c: number) => set.filter((s) => s.label === c).length;
      expect([0, 1, 2].map((c) => count(held, c))).toEqual([2, 1, 1]);
      expect([0, 1, 2].map((c) => count(train, c))).toEqual([7, 3, 1]);
      const ids = [...train, ...held].map((s) => s.input[0]!);
      expect(new Set(ids).size).toBe(samples.length);
      expect(splitForSearch(samples, seed)).toEqual({ train, eval: held });
    }
    const ids = (seed: number) => splitForSearch(samples, seed).eval.map((s) => s.input[0]);
    expect(ids(1)).not.toEqual(ids(2)); // the seed chooses them
  });

  it('a class of one sample is an error that says how many it needs', () => {
    expect(() => splitForSearch([...samples, { input: Int8Array.of(99), label: 5 }], 1))
      .toThrow(new SearchError('class 5 has one sample; every class needs at least 2 (one to train the probes, one to score them): ' +
        'add samples (a few dozen per class give a less noisy search)'));
  });
});

// ---- on a small MobileNetV2 and MNIST -------------------------------------------------

const DIGITS = [5, 6, 7, 8, 9];

function transferData() {
  const train = loadMnist('train');
  const sample = (i: number) => ({ input: quantizeImage(mnistRgb(train, i)), label: DIGITS.indexOf(train.labels[i]!) });
  const idx = digitIndices(train, DIGITS, 300, 11).map(sample);
  return { train: idx.slice(0, 200), eval: idx.slice(200) };
}

describe('scheme search on MobileNetV2-w0.35-32, MNIST 5-9 with a new head', () => {
  const model = buildMobileNetV2({ width: 0.35, resolution: 32, classes: 10, seed: 1 });
  const data = transferData();
  const options: SearchOptions = {
    compile: { head: { classes: 5, seed: 3 }, reorder: true, sliceWeights: true, rowScratch: true, tile: true, lr: 2 ** -8, lrBias: 2 ** -8 },
    dispatch: (arena, flash) => new NodeDispatch(new ArrayBuffer(arena), new ArrayBuffer(flash)),
    steps: 50,
    seed: 5,
    ratios: [0.5, 1],
    biasChoices: [5, 17],
    weightLayers: [0, 42, 43, 45, 48],
  };
  const MEASURED = 40 * 1024;
  const table = measureContributions(model, data, MEASURED, options);

  it('measures the baseline and every option (a slice of the 3x3 stem has no split kernel: unsupported)', () => {
    const byOption = Object.fromEntries(table.rows.map((r) => [r.option, r]));
    expect(Object.keys(byOption)).toEqual(['bias 5', 'bias 17', 'weight 0 r=1', 'weight 0 r=0.5', 'weight 42 r=1', 'weight 42 r=0.5',
      'weight 43 r=1', 'weight 43 r=0.5', 'weight 45 r=1', 'weight 45 r=0.5', 'weight 48 r=1', 'weight 48 r=0.5']);
    expect(byOption['weight 0 r=1']!.status).toBe('probed'); // the fused 3x3 conv weight update (op 37)
    expect(byOption['weight 0 r=0.5']!.status).toBe('unsupported'); // conv2d_s8_forward_split does not exist
    expect(byOption['weight 43 r=1']!.status).toBe('probed'); // depthwise: the fused depthwise update (op 38)
    for (const r of table.rows.filter((x) => x.status === 'probed')) {
      expect(r.bytes!).toBeGreaterThan(0);
      expect(r.gain).toBe(r.probe!.correct - table.baseline.correct);
    }
    // more channels cost more arena
    expect(byOption['weight 48 r=1']!.bytes!).toBeGreaterThan(byOption['weight 48 r=0.5']!.bytes!);
    expect(table.probes).toBe(3 + table.rows.filter((r) => r.status === 'probed').length); // the baseline in three sample orders
    expect(table.baseline.repeats.length).toBe(2);
    const all = [table.baseline.probe, ...table.baseline.repeats].map((p) => p.correct);
    const mean = all.reduce((x, y) => x + y, 0) / 3;
    expect(table.baseline.correct).toBeCloseTo(mean, 9);
    expect(table.baseline.sd).toBeCloseTo(Math.sqrt(all.reduce((x, y) => x + (y - mean) ** 2, 0) / 2), 9);
  });

  for (const [budget, noise] of [[16 * 1024, 1], [MEASURED, 1], [MEASURED, 0]] as const) {
    it(`the chosen scheme fits ${budget} B by the real planner, compiled again independently (gains above ${noise} sd counted)`, () => {
      const r = chooseScheme(model, data, table, budget, { ...options, noise });
      const again = compilePlan(model, { ...options.compile, scheme: r.scheme });
      expect(again.plan.arenaBytes).toBe(r.bytes);
      expect(r.bytes).toBeLessThanOrEqual(budget);
      const chosen = r.table.filter((x) => x.chosen);
      for (const x of chosen) expect(x.gain!).toBeGreaterThan(r.threshold);
      expect(r.additiveGain).toBeCloseTo(chosen.reduce((a, x) => a + x.gain!, 0) / data.eval.length, 12);
      // the expected gain is the one measured on the chosen combination (none chosen: 0)
      const combo = r.combinations.find((c) => JSON.stringify(c.scheme) === JSON.stringify(r.scheme));
      expect(r.expectedGain).toBe(chosen.length ? combo!.gain! / data.eval.length : 0);
      for (const c of r.combinations) if (c.gain !== null) expect(c.gain).toBeLessThanOrEqual(r.expectedGain * data.eval.length + 1e-9);
      expect(formatSearch(r)).toContain(`scheme: ${JSON.stringify(r.scheme)}`);
      if (noise === 0) expect(r.combinations.length, 'options probed together').toBeGreaterThan(1);
    });
  }

  it('a budget below the classifier alone is an error that says what it needs, before any probe', () => {
    const probes: string[] = [];
    const below = table.baseline.arenaBytes - 16;
    expect(() => searchScheme(model, data, below, { ...options, onProbe: (r) => probes.push(r.option) }))
      .toThrow(new SearchError(`budget ${below} B is below the ${table.baseline.arenaBytes} B of arena that training the classifier alone ` +
        'needs (every scheme trains it); raise the budget, or use a smaller model or input'));
    expect(probes).toEqual([]);
    expect(() => chooseScheme(model, data, table, below, options)).toThrow(SearchError);
    expect(() => chooseScheme(model, data, table, MEASURED + 16, options)).toThrow(/measured for/);
  });

  it('is deterministic: the same seed measures the same table and picks the same scheme', () => {
    const again = measureContributions(model, data, MEASURED, options);
    expect(again.rows).toEqual(table.rows);
    expect(again.baseline).toEqual(table.baseline);
    const [a, b] = [chooseScheme(model, data, again, MEASURED, options), chooseScheme(model, data, table, MEASURED, options)];
    expect(a.scheme).toEqual(b.scheme);
    expect(a.combinations).toEqual(b.combinations);
  });
});

describe('trainedModel', () => {
  it('a plan compiled from the trained model infers as the runtime that trained it (sliced weights included)', () => {
    const model = buildMobileNetV2({ width: 0.35, resolution: 32, classes: 10, seed: 1 });
    const data = transferData();
    const o = { reorder: true, sliceWeights: true, rowScratch: true, lr: 2 ** -8, lrBias: 2 ** -8 } as const;
    const c = compilePlan(model, { ...o, head: { classes: 5, seed: 3 }, scheme: { biasLayers: 8, weights: [{ layer: 48, ratio: 0.5 }, { layer: 50 }] } });
    const dispatch = () => new NodeDispatch(new ArrayBuffer(c.plan.arenaBytes), new ArrayBuffer(c.plan.flash.length));
    const rt = PlanRuntime.load(dispatch(), c.blob);
    const before = Array.from(rt.infer(data.eval[0]!.input));
    for (const s of data.train.slice(0, 20)) rt.step(s.input, s.label);
    const after = data.eval.slice(0, 3).map((s) => Array.from(rt.infer(s.input)));
    expect(after[0]).not.toEqual(before); // it trained
    const trained = trainedModel(c, (offset, bytes) => rt.dispatch.read(offset, bytes));
    const c2 = compilePlan(trained, { ...o, head: 'keep', scheme: { biasLayers: 0, weights: [] } });
    const rt2 = PlanRuntime.load(new NodeDispatch(new ArrayBuffer(c2.plan.arenaBytes), new ArrayBuffer(c2.plan.flash.length)), c2.blob);
    expect(data.eval.slice(0, 3).map((s) => Array.from(rt2.infer(s.input)))).toEqual(after);
  });
});
