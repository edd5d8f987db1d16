// The memory report of a compiled training step, for people: the text
// `xstrain compile` prints and writes beside the plan, and a vega-lite chart
// of the arena over the step (x: schedule step, y: arena offset, one
// rectangle per tensor lifetime, coloured by role). The chart is a plain
// spec; src/node/plot.ts renders it to SVG.

import type { TopLevelSpec } from 'vega-lite';
import type { ArenaPlan, MemoryReport } from './plan.js';
import type { SparseUpdateScheme } from './scheme.js';
import type { TensorRole } from './train-graph.js';

const fmt = (n: number): string => n.toLocaleString('en-US');
const B = (n: number): string => `${fmt(n)} B`;

// A tensor's role as the report names it: activations and inputs that the
// backward reads are saved activations.
export function roleLabel(role: TensorRole | 'saved_activation', saved = false): string {
  if (role === 'saved_activation' || (saved && (role === 'activation' || role === 'input'))) return 'saved activation';
  return role.replace(/_/g, ' ');
}

export interface ReportContext {
  title: string; // "mbv2-w0.35-128 (builtin, seeded weights), 10 classes"
  scheme: SparseUpdateScheme;
  schemeOrigin: string; // "from scheme.json", "chosen greedily by bytes ...", "searched by contribution on N fine-tune samples ..."
  optimizer: string;
  memoryOptions: string; // the memory level used (budget.ts)
  planArenaBytes: number; // what the lowered plan needs (the training arena + inference-only tensors)
  budget: number;
  budgetSource: string;
  boardArenaBytes?: number | null; // the board's arena when --budget overrides it
  blobBytes: number;
  flashBytes: number; // frozen weights and tables in the plan
  tiled: { ops: number; macs: number; untiledMacs: number };
  layers: readonly { layer: number; kind: string; inC: number; outC: number; kH: number; kW: number; name: string }[];
}

function describeScheme(s: SparseUpdateScheme, layers: ReportContext['layers']): string[] {
  const L = layers.length;
  const lines = [`  biases of the last ${s.biasLayers} layers${s.biasLayers ? ` (${Math.max(0, L - s.biasLayers)}-${L - 1})` : ''}; the classifier (layer ${L - 1}) always`];
  for (const w of s.weights) {
    const l = layers[w.layer];
    if (!l) continue;
    const n = w.channels ?? (w.ratio !== undefined ? Math.max(1, Math.floor(w.ratio * l.inC)) : l.inC);
    lines.push(`  weights of layer ${w.layer} (${l.kind} ${l.kH}x${l.kW}, ${l.inC} -> ${l.outC}, "${l.name}"): ` +
      (n === l.inC ? `all ${n} input channels` : `input channels 0-${n - 1} of ${l.inC}`));
  }
  return lines;
}

export function memoryReportText(plan: ArenaPlan, c: ReportContext): string {
  const r: MemoryReport = plan.report;
  const pct = (n: number) => `${((n / r.peakLiveBytes) * 100).toFixed(0)}%`;
  const spare = c.budget - c.planArenaBytes;
  const lines: string[] = [
    `xstrain compile: ${c.title}`,
    `scheme (${c.schemeOrigin}):`,
    ...describeScheme(c.scheme, c.layers),
    `optimizer: ${c.optimizer}; memory options: ${c.memoryOptions}` +
      (c.tiled.ops ? ` (${c.tiled.ops} tiled forward ops: ${fmt(c.tiled.macs)} MACs instead of ${fmt(c.tiled.untiledMacs)}, +${((c.tiled.macs / c.tiled.untiledMacs - 1) * 100).toFixed(0)}%)` : ''),
    '',
    `arena: ${B(c.planArenaBytes)} of the ${B(c.budget)} budget (${c.budgetSource})${spare >= 0 ? `: fits, ${B(spare)} to spare` : `: OVER by ${B(-spare)}`}`,
    `  training step ${B(r.arenaBytes)} as placed (at least ${B(r.peakLiveBytes)} live at once)` +
      (c.planArenaBytes > Math.ceil(r.arenaBytes / 16) * 16 ? `, + ${B(c.planArenaBytes - Math.ceil(r.arenaBytes / 16) * 16)} for inference-only tensors (the softmax output)` : ''),
  ];
  if (c.boardArenaBytes != null && c.boardArenaBytes < c.planArenaBytes) {
    lines.push(`  note: the board's arena is ${B(c.boardArenaBytes)}; this plan does not fit it`);
  }
  lines.push(
    `peak: ${B(r.peakLiveBytes)} live at step ${r.peakStep} of ${r.steps} (${r.peakPhase}): ${r.peakOp}`,
    '  by role:',
    ...Object.entries(r.peakByRole).sort(([, a], [, b]) => b! - a!).map(([role, bytes]) =>
      `    ${roleLabel(role as TensorRole).padEnd(18)} ${B(bytes!).padStart(11)}  ${pct(bytes!).padStart(4)}`),
    '  largest tensors:',
    ...r.peakTensors.slice(0, 10).map((t) => `    ${B(t.bytes).padStart(11)}  ${roleLabel(t.role, t.saved).padEnd(18)} ${t.name}`),
    'peak per phase:',
    ...(['forward', 'loss', 'backward', 'update'] as const).flatMap((p) => {
      const v = r.phasePeaks[p];
      return v ? [`  ${p.padEnd(9)} ${B(v.bytes).padStart(11)} at step ${v.step}: ${plan.graph.ops[v.step]!.name}`] : [];
    }),
    `persistent through the step (trained weights and biases, optimizer state, rng): ${B(r.persistentBytes)}`,
    `flash: the plan blob is ${B(c.blobBytes)}, of which ${B(c.flashBytes)} frozen weights and tables`,
    '',
    'what is modelled: one training step at batch 1 (forward, loss, pruned backward, updates fused where their',
    'gradients appear), every tensor a kernel reads or writes in the kernels\' own formats (int8 activations, 1-bit',
    'masks, int8 gradients with an int32 exponent, int32 bias gradients, kernel scratch), placed at fixed offsets;',
    'the inference op list reuses the same placement. Frozen weights and tables stay in flash. Not counted: the XS',
    'heap and stacks, sensor buffers and the rest of the firmware (the board\'s RAM must hold them beside the arena).',
  );
  return `${lines.join('\n')}\n`;
}

// One colour per role, the same in every chart: parameters blue, kept
// activations orange, forward values green, gradients red/purple.
const ROLE_COLOURS: [string, string][] = [
  ['weight', '#4c78a8'], ['bias', '#9ecae9'], ['optimizer state', '#1f3b73'], ['rng', '#bab0ac'],
  ['saved activation', '#f58518'], ['saved slice', '#ffbf79'], ['activation', '#54a24b'], ['input', '#88d27a'],
  ['label', '#b79a20'], ['mask', '#eeca3b'], ['gradient', '#e45756'], ['gradient exp', '#ff9d98'],
  ['weight gradient', '#b279a2'], ['bias gradient', '#d6a5c9'], ['scratch', '#9d755d'], ['metric', '#79706e'],
];

// x: schedule step (a tensor lives over [first, last + 1)), y: its bytes in
// the arena; rules at the arena's size and the budget.
export function arenaChartSpec(plan: ArenaPlan, o: { title: string; budget?: number }): TopLevelSpec {
  const r = plan.report;
  const rows = plan.tensors.map((t) => ({
    name: t.name, role: roleLabel(t.role, t.saved), bytes: t.bytes, first: t.first, end: t.last + 1, offset: t.offset, top: t.offset + t.bytes,
  }));
  // The higher line's label above it, the lower one's below.
  const lines: { y: number; what: string; dy: number }[] = [{ y: r.arenaBytes, what: `arena ${fmt(r.arenaBytes)} B`, dy: -5 }];
  if (o.budget !== undefined) {
    lines.push({ y: o.budget, what: `budget ${fmt(o.budget)} B`, dy: -5 });
    lines[o.budget >= r.arenaBytes ? 0 : 1]!.dy = 12;
  }
  const used = new Set(rows.map((t) => t.role));
  const colours = ROLE_COLOURS.filter(([role]) => used.has(role));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: o.title, subtitle: `peak ${fmt(r.peakLiveBytes)} B live at step ${r.peakStep} (${r.peakPhase}): ${r.peakOp}` },
    width: 900, height: 480,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'rect', stroke: 'white', strokeWidth: 0.3 },
        encoding: {
          x: { field: 'first', type: 'quantitative', title: `schedule step (0-${r.steps - 1}: forward, loss, backward with fused updates)`, scale: { domain: [0, r.steps] } },
          x2: { field: 'end' },
          y: { field: 'offset', type: 'quantitative', title: 'arena offset (bytes)' },
          y2: { field: 'top' },
          color: { field: 'role', type: 'nominal', title: 'role', scale: { domain: colours.map(([k]) => k), range: colours.map(([, c]) => c) } },
          tooltip: [{ field: 'name' }, { field: 'role' }, { field: 'bytes', type: 'quantitative' }, { field: 'offset', type: 'quantitative' },
            { field: 'first', title: 'first step' }, { field: 'end', title: 'after last step' }],
        },
      },
      {
        data: { values: lines },
        mark: { type: 'rule', strokeDash: [4, 3], color: 'black' },
        encoding: { y: { field: 'y', type: 'quantitative' } },
      },
      ...lines.map((l) => ({
        data: { values: [l] },
        mark: { type: 'text' as const, align: 'right' as const, dy: l.dy, x: 'width' as const },
        encoding: { y: { field: 'y', type: 'quantitative' as const }, text: { field: 'what' } },
      })),
    ],
  } as TopLevelSpec;
}
