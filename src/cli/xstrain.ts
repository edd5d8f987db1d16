// The xstrain command line (host side).
//
//   xstrain infer MODEL.tflite --input FILE [--target node|xs|cortex-m4|rv32]
//     FILE holds the raw bytes of the input tensor (int8, row-major); prints
//     one JSON line {"output":[...int8 values...],"target":"..."}.
//   xstrain inspect MODEL.tflite
//     the imported graph: ops, shapes, MACs, constant bytes, arena needed.
//   xstrain compile MODEL (--board BOARD | --budget SIZE) [--scheme FILE | --finetune DIR [--probe-steps N]]
//       [--classes N] [--optimizer sgd|lqm] [--lr X] [--backbone-lr F] [--calibration DIR] [-o PLAN.xstp]
//     a training plan that fits the arena, and its memory report (text and
//     an SVG of the arena over the step); with --finetune the scheme is
//     searched by contribution on labelled samples (src/compiler/train/search.ts);
//     see compileHelp below.
//
// Errors (bad model, wrong input size, unknown option) print one line that
// says what to do, and exit with status 1 (2 for usage errors).

import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { buildMcunet5fps } from '../compiler/arch/mcunet.js';
import { buildMobileNetV2 } from '../compiler/arch/mobilenetv2.js';
import { importAnyTflite, importTflite, summarizeGraph } from '../compiler/tflite/import.js';
import { importModel } from '../compiler/import-model.js';
import { loadCalibrationDir } from '../node/calibration.js';
import { loadFinetuneDir } from '../node/finetune.js';
import { MEMORY_LEVELS, SchemeFitter } from '../compiler/train/budget.js';
import { type HeadOption, MAX_CLASSES, prepareHead } from '../compiler/train/head.js';
import { type TrainableLayer, trainableLayers } from '../compiler/train/layers.js';
import type { CompiledTraining } from '../compiler/train/compile.js';
import { lowerTraining } from '../compiler/train/lower.js';
import { type SearchResult, formatSearch, searchScheme, splitForSearch } from '../compiler/train/search.js';
import { arenaChartSpec, memoryReportText } from '../compiler/train/report.js';
import { type SparseUpdateScheme, checkScheme } from '../compiler/train/scheme.js';
import { tiledMacs } from '../compiler/train/tile.js';
import type { Optimizer } from '../compiler/train/train-graph.js';
import type { Graph } from '../core/graph.js';
import { type Plan, encodePlan } from '../core/plan-format.js';
import { ForwardRunner } from '../core/runner.js';
import { NodeDispatch, repoRoot } from '../node/addon.js';
import { infer, targets, type Target } from '../node/infer.js';
import { renderSvg } from '../node/plot.js';

// The scheme search's defaults in the CLI (the test repeats them).
export const DEFAULT_PROBE_STEPS = 100;
export const FINETUNE_SEED = 1; // the eval split and the probes' sample order

const usage = `usage:
  xstrain infer MODEL.tflite --input FILE [--target ${targets.join('|')}]
  xstrain inspect MODEL.tflite
  xstrain compile MODEL (--board BOARD | --budget SIZE) [--scheme FILE | --finetune DIR [--probe-steps N]]
                  [--classes N] [--optimizer sgd|lqm] [--lr X] [--backbone-lr F] [--calibration DIR] [-o PLAN.xstp]
                  (xstrain compile --help: details)`;

const compileHelp = `usage: xstrain compile MODEL (--board BOARD | --budget SIZE) [options]

Compiles one training step of MODEL (forward, loss, pruned backward, updates fused
where their gradients appear) into a plan blob that fits the arena, and writes a
memory report beside it: PLAN.memory.txt (also printed) and PLAN.memory.svg (the
arena over the step: one rectangle per tensor lifetime, coloured by role).

MODEL             a fully int8 .tflite file, or a builtin architecture with seeded
                  int8 weights (for planning and benchmarks, not accuracy):
                  mbv2-w<WIDTH>-<RESOLUTION> (MobileNetV2 as the Tiny Training
                  reference builds it, e.g. mbv2-w0.35-128), mcunet-5fps-<RESOLUTION>
--board BOARD     boards/BOARD.json (${boardNames().join(', ')}); the budget is its arenaBytes
--budget SIZE     the arena budget instead: bytes, or with k/m (1k = 1024 bytes): 120k, 1.5m
--scheme FILE     the sparse-update scheme, JSON:
                    {"biasLayers": 26, "weights": [{"layer": 48}, {"layer": 45, "ratio": 0.5},
                     {"layer": 42, "channels": 8}]}
                  layers are the convolutions (depthwise too) and fully-connected
                  layers in forward order, 0-based; the classifier (the last) always
                  updates; "note" may hold a comment. Without --scheme and without
                  --finetune a scheme is chosen greedily by bytes: from the classifier
                  backwards, each layer's bias, then its weights at the largest ratio
                  of 1, 1/2, 1/4, 1/8 that fits, until a bias does not fit. It fills
                  the budget but does not know what an update is worth to accuracy.
--finetune DIR    labelled fine-tune samples, to choose the scheme by contribution
                  (accuracy gain per byte, the analysis of Lin et al. 2022) instead:
                  DIR holds one sub-directory per class, named by its label (0, 1, ...)
                  or by class names (labelled 0, 1, ... in sorted order), each with
                  samples in the --calibration formats below (real values, quantised
                  with the model's input scale). A quarter of each class (at least one
                  sample) is held out, seeded; the rest trains short probes: the
                  classifier alone and each option alone (the last k layers' biases;
                  one layer's weights at ratio 1/4, 1/2, 1), then the budgeted
                  selection of the most eval accuracy gain, verified by the planner
                  and probed together. The search table is printed and the scheme
                  written to PLAN.scheme.json (pass it as --scheme to reuse it).
                  Every class needs at least 2 samples; a few dozen give a less noisy
                  search. Needs the Node addon (npm run build:addon).
--probe-steps N   training steps of each probe (default ${DEFAULT_PROBE_STEPS}): more steps measure
                  gains with less noise and take longer (most of a search of a small
                  model is compiling its options: about a minute for mbv2-w0.35-32)
--classes N       a new classifier of N classes (1-${MAX_CLASSES}) on the model's features
                  (builtins: the number of classes they are built with, default 10)
--optimizer O     sgd (default) or lqm (log-quantised momentum) for the weights
--lr X            learning rate of weights and biases (default 2^-10 = 0.0009765625)
--backbone-lr F   the layers before the classifier learn at lr x F (default 1);
                  a new head on pre-trained layers: e.g. 0.015625 (2^-6)
--calibration DIR calibration samples to quantise a float32 model: .npy files
                  (float32/float64, one sample or a batch) or raw .bin/.raw float32
                  samples of the input's size (src/node/calibration.ts)
-o PLAN.xstp      the plan (default: next to a .tflite, MODEL.xstp; a builtin in the
                  current directory)

Memory options are used only as far as the budget needs them, cheapest in
compute first: reordered updates with trained weight slices, then one-row
input-gradient scratch, then a row-tiled forward. A scheme over the budget is
an error that says by how much, what occupies the peak, and a scheme that fits.`;

class UsageError extends Error {}

function parseOptions(argv: string[], allowed: string[], aliases: Record<string, string> = {}): { positional: string[]; options: Map<string, string> } {
  const positional: string[] = [];
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (aliases[a] !== undefined) {
      const value = argv[++i];
      if (value === undefined) throw new UsageError(`option ${a} needs a value`);
      options.set(aliases[a], value);
    } else if (a.startsWith('--')) {
      const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
      if (!allowed.includes(name)) throw new UsageError(`unknown option --${name}`);
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`option --${name} needs a value`);
      options.set(name, value);
    } else positional.push(a);
  }
  return { positional, options };
}

function readInput(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

async function cmdInfer(argv: string[]): Promise<number> {
  const { positional, options } = parseOptions(argv, ['input', 'target']);
  if (positional.length !== 1) throw new UsageError('infer takes one MODEL.tflite');
  const input = options.get('input');
  if (!input) throw new UsageError('infer needs --input FILE (the raw int8 bytes of the input tensor)');
  const target = (options.get('target') ?? 'node') as Target;
  if (!targets.includes(target)) throw new UsageError(`unknown target "${target}": use one of ${targets.join(', ')}`);
  const model = positional[0]!;
  const graph = importTflite(readInput(model, 'model'), basename(model));
  const { output } = await infer(graph, readInput(input, 'input'), target);
  process.stdout.write(JSON.stringify({ output: Array.from(output), target }) + '\n');
  return 0;
}

function cmdInspect(argv: string[]): number {
  const { positional } = parseOptions(argv, []);
  if (positional.length !== 1) throw new UsageError('inspect takes one MODEL.tflite');
  const model = positional[0]!;
  const graph = importTflite(readInput(model, 'model'), basename(model));
  const runner = new ForwardRunner(graph);
  process.stdout.write(JSON.stringify({ ...summarizeGraph(graph), arenaBytes: runner.arenaBytes, flashBytes: runner.flashBytes }, null, 2) + '\n');
  return 0;
}

// ---- compile ----------------------------------------------------------------------

function boardNames(): string[] {
  try {
    return readdirSync(join(repoRoot, 'boards')).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
  } catch {
    return [];
  }
}

interface Board {
  name: string;
  arenaBytes: number;
}

function readBoard(name: string): Board {
  const known = boardNames();
  if (!known.includes(name)) throw new UsageError(`unknown board "${name}": use one of ${known.join(', ')} (boards/*.json)`);
  const path = join(repoRoot, 'boards', `${name}.json`);
  const b = JSON.parse(readFileSync(path, 'utf8')) as Partial<Board>;
  if (!Number.isInteger(b.arenaBytes) || b.arenaBytes! <= 0) throw new Error(`${path}: arenaBytes must be a positive integer`);
  return { name: b.name ?? name, arenaBytes: b.arenaBytes! };
}

// "131072", "120k", "1.5m" (k = 1024 bytes, m = 1024 k), optional trailing "b".
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmM]?)[bB]?$/.exec(text.trim());
  const scale = m ? { '': 1, k: 1024, m: 1024 * 1024 }[m[2]!.toLowerCase() as '' | 'k' | 'm'] : 0;
  const n = m ? Math.floor(Number(m[1]) * scale) : NaN;
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--budget ${text}: give bytes, or a size with k or m (1k = 1024 bytes), e.g. 120k or 1.5m`);
  return n;
}

const BUILTINS = 'mbv2-w<WIDTH>-<RESOLUTION> (e.g. mbv2-w0.35-128) or mcunet-5fps-<RESOLUTION>';

// A builtin architecture by name, seeded int8 weights (seed 1).
function builtinModel(name: string, classes: number): Graph | null {
  const mbv2 = /^mbv2-w(\d+(?:\.\d+)?)-(\d+)$/.exec(name);
  if (mbv2) return buildMobileNetV2({ width: Number(mbv2[1]), resolution: Number(mbv2[2]), classes, seed: 1 });
  const mcunet = /^mcunet-5fps-(\d+)$/.exec(name);
  if (mcunet) return buildMcunet5fps({ resolution: Number(mcunet[1]), classes, seed: 1 });
  return null;
}

// The int8 graph of a .tflite: an int8 model as it is; a float32 model
// quantised from the calibration samples in DIR (src/compiler/import-model.ts,
// samples read by src/node/calibration.ts).
function loadTflite(path: string, calibration: string | undefined): Graph {
  const bytes = readInput(path, 'model');
  const name = basename(path);
  const { graph, precision } = importAnyTflite(bytes, name);
  if (precision === 'int8') {
    if (calibration !== undefined) throw new UsageError(`--calibration ${calibration}: ${name} is already int8; calibration samples quantise a float32 model`);
    return graph;
  }
  if (calibration === undefined) return importModel(bytes, name).graph; // the error says what to give
  const input = graph.tensors[graph.inputs[0]!]!;
  return importModel(bytes, name, { calibration: loadCalibrationDir(calibration, input) }).graph;
}

const SCHEME_KEYS = ['biasLayers', 'weights', 'classifier', 'note'];
const WEIGHT_KEYS = ['layer', 'ratio', 'channels'];

// A scheme file: JSON, only the known keys, then every problem checkScheme
// finds against the model's layers; all of them in one error.
function readScheme(path: string, layers: readonly TrainableLayer[]): SparseUpdateScheme {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`scheme ${path}: ${(e as NodeJS.ErrnoException).code ? `cannot read it: ${(e as Error).message}` : `not JSON: ${(e as Error).message}`}`);
  }
  const example = '{"biasLayers": 10, "weights": [{"layer": 26, "ratio": 0.5}]}';
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`scheme ${path}: must be a JSON object like ${example}`);
  const o = raw as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(o)) if (!SCHEME_KEYS.includes(k)) problems.push(`unknown key "${k}" (a scheme has ${SCHEME_KEYS.join(', ')})`);
  if (o.biasLayers === undefined) problems.push(`biasLayers is missing: the number of last layers whose biases update (0 to ${layers.length})`);
  if (o.weights === undefined) problems.push('weights is missing: a list of { "layer": N, "ratio": R } (may be [])');
  if (Array.isArray(o.weights)) {
    o.weights.forEach((w, i) => {
      if (typeof w !== 'object' || w === null) problems.push(`weights[${i}] must be an object { "layer": N, "ratio"?: R, "channels"?: C }`);
      else for (const k of Object.keys(w)) if (!WEIGHT_KEYS.includes(k)) problems.push(`weights[${i}] has unknown key "${k}" (use layer, ratio or channels)`);
    });
  }
  if (o.biasLayers !== undefined && o.weights !== undefined) problems.push(...checkScheme(layers, o as unknown as SparseUpdateScheme));
  if (problems.length) throw new Error(`scheme ${path}: ${problems.length} problem${problems.length > 1 ? 's' : ''}:\n  - ${problems.join('\n  - ')}`);
  return { biasLayers: o.biasLayers as number, weights: o.weights as SparseUpdateScheme['weights'] };
}

// Lowering fails when the scheme needs a kernel that does not exist yet;
// say which layers, in the CLI's terms (it always reorders and slices).
function lowerOrExplain(graph: Graph, compiled: CompiledTraining, lr: number, backboneLrFactor: number): Plan {
  const modelled = compiled.graph.ops.filter((op) => op.modelled);
  if (modelled.length) {
    const layers = [...new Set(modelled.flatMap((op) => (op.layer === null ? [] : [op.layer])))].sort((a, b) => a - b);
    const describe = (l: number) => `${l} (${compiled.graph.layers[l]!.kind} ${compiled.graph.layers[l]!.kH}x${compiled.graph.layers[l]!.kW})`;
    throw new Error(`the scheme needs ${[...new Set(modelled.map((op) => op.kernel))].join(', ')}, which ${modelled.length > 1 ? 'do' : 'does'} not exist yet, ` +
      `to update the weights of layer${layers.length > 1 ? 's' : ''} ${layers.map(describe).join(', ')} where their gradients appear; ` +
      `remove ${layers.length > 1 ? 'them' : 'it'} from "weights" (biases can still update there; fully-connected and pointwise 1x1 layers have their kernels)`);
  }
  return lowerTraining(graph, compiled, { lr, lrBias: lr, backboneLrFactor });
}

async function cmdCompile(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${compileHelp}\n`);
    return 0;
  }
  const { positional, options } = parseOptions(argv,
    ['board', 'budget', 'scheme', 'finetune', 'probe-steps', 'classes', 'optimizer', 'lr', 'backbone-lr', 'calibration', 'out'], { '-o': 'out' });
  if (positional.length !== 1) throw new UsageError(`compile takes one MODEL (a .tflite file or a builtin: ${BUILTINS})`);
  const boardName = options.get('board'), budgetText = options.get('budget');
  if (boardName === undefined && budgetText === undefined) throw new UsageError('compile needs --board BOARD or --budget SIZE (the arena the plan must fit)');
  const board = boardName === undefined ? null : readBoard(boardName);
  const budget = budgetText === undefined ? board!.arenaBytes : parseSize(budgetText);
  const budgetSource = budgetText !== undefined ? `--budget ${budgetText}` : `board ${boardName}, ${board!.name}`;
  const optimizer = (options.get('optimizer') ?? 'sgd') as Optimizer;
  if (optimizer !== 'sgd' && optimizer !== 'lqm') throw new UsageError(`unknown optimizer "${optimizer}": use sgd or lqm`);
  const lr = Number(options.get('lr') ?? 2 ** -10);
  if (!(lr > 0 && Number.isFinite(lr))) throw new UsageError(`--lr ${options.get('lr')}: give a positive number, e.g. 0.001`);
  const backboneLrFactor = Number(options.get('backbone-lr') ?? 1);
  if (!(backboneLrFactor > 0 && Number.isFinite(backboneLrFactor))) {
    throw new UsageError(`--backbone-lr ${options.get('backbone-lr')}: give a positive factor, e.g. 0.015625 (2^-6)`);
  }
  const finetune = options.get('finetune');
  if (finetune !== undefined && options.has('scheme')) {
    throw new UsageError('--finetune DIR searches for a scheme and --scheme FILE gives one: use one of them');
  }
  if (options.has('probe-steps') && finetune === undefined) throw new UsageError('--probe-steps applies to the scheme search: give --finetune DIR too');
  const probeSteps = Number(options.get('probe-steps') ?? DEFAULT_PROBE_STEPS);
  if (!Number.isInteger(probeSteps) || probeSteps < 1) throw new UsageError(`--probe-steps ${options.get('probe-steps')}: give a positive integer, e.g. ${DEFAULT_PROBE_STEPS}`);
  let classes: number | undefined;
  if (options.has('classes')) {
    classes = Number(options.get('classes'));
    if (!Number.isInteger(classes) || classes < 1 || classes > MAX_CLASSES) {
      throw new UsageError(`--classes ${options.get('classes')}: give an integer from 1 to ${MAX_CLASSES} (the softmax cross-entropy kernel's range)`);
    }
  }

  // The model and its head.
  const modelArg = positional[0]!;
  const isFile = modelArg.endsWith('.tflite') || existsSync(modelArg);
  let graph: Graph, head: HeadOption = 'keep', title: string, outDefault: string;
  if (isFile) {
    graph = loadTflite(modelArg, options.get('calibration'));
    if (classes !== undefined) head = { classes };
    title = `${basename(modelArg)}`;
    outDefault = join(dirname(modelArg), `${basename(modelArg, extname(modelArg))}.xstp`);
  } else {
    if (options.has('calibration')) throw new UsageError('--calibration applies to a float32 .tflite; a builtin architecture is built int8');
    const built = builtinModel(modelArg, classes ?? 10);
    if (!built) throw new UsageError(`"${modelArg}" is neither a file nor a builtin architecture (${BUILTINS})`);
    graph = built;
    title = `${modelArg} (builtin, seeded int8 weights)`;
    outDefault = `${modelArg}.xstp`;
  }
  const trainGraph = prepareHead(graph, head);
  title += `, ${trainGraph.classes} classes${trainGraph.replaced ? ' (new classifier)' : ''}`;
  const layers = trainableLayers(trainGraph.graph);
  const schemePath = options.get('scheme');
  const given = schemePath === undefined ? null : readScheme(schemePath, layers);

  // Scheme, memory options, plan.
  const fitter = new SchemeFitter(graph, { budget, budgetSource, head, optimizer });
  let scheme: SparseUpdateScheme, schemeOrigin: string, searched: SearchResult | null = null;
  if (given) {
    [scheme, schemeOrigin] = [given, `from ${schemePath}`];
  } else if (finetune !== undefined) {
    const input = trainGraph.graph.tensors[trainGraph.graph.inputs[0]!]!;
    const set = loadFinetuneDir(finetune, input, trainGraph.classes);
    const data = splitForSearch(set.samples, FINETUNE_SEED);
    process.stdout.write(`fine-tune samples from ${finetune}: ${set.samples.length} in ${set.classes.length} classes ` +
      `(${set.classes.map((c) => `${c.label}${c.name === String(c.label) ? '' : ` "${c.name}"`}: ${c.samples}`).join(', ')}); ` +
      `probes train ${probeSteps} steps on ${data.train.length}, scored on ${data.eval.length}` +
      (set.clamped ? `; ${set.clamped} input values were outside the int8 input's range and saturated (are the samples normalised as the model expects?)` : '') +
      '\nsearching a scheme by contribution: each option compiled and probed...\n');
    searched = searchScheme(graph, data, budget, {
      compile: { head, optimizer, ...MEMORY_LEVELS[MEMORY_LEVELS.length - 1]!.options, lr, lrBias: lr, backboneLrFactor },
      dispatch: (arenaBytes, flashBytes) => new NodeDispatch(new ArrayBuffer(arenaBytes), new ArrayBuffer(flashBytes)),
      steps: probeSteps,
      seed: FINETUNE_SEED,
    });
    process.stdout.write(`${formatSearch(searched)}\n\n`);
    scheme = searched.scheme;
    schemeOrigin = `searched by contribution on ${set.samples.length} fine-tune samples (${data.train.length} probe training, ${data.eval.length} eval): ` +
      `expected gain ${(100 * searched.expectedGain).toFixed(1)}% over the classifier alone`;
  } else {
    scheme = fitter.choose();
    schemeOrigin = 'chosen greedily by bytes for the budget, not by what an update is worth; --finetune DIR searches by contribution';
    process.stdout.write('no --scheme: the scheme is chosen greedily by bytes (it fills the budget without knowing what an update is worth); ' +
      'give --finetune DIR of labelled samples to choose it by contribution (accuracy gain per byte)\n');
  }
  const fitted = fitter.fit(scheme);
  const plan = lowerOrExplain(graph, fitted.compiled, lr, backboneLrFactor);
  if (plan.arenaBytes > budget) throw fitter.overBudget(scheme);
  const blob = encodePlan(plan);

  // Outputs.
  const out = options.get('out') ?? outDefault;
  const stem = out.endsWith('.xstp') ? out.slice(0, -5) : out;
  const text = memoryReportText(fitted.compiled.plan, {
    title, scheme, schemeOrigin,
    optimizer, memoryOptions: fitted.level.name, planArenaBytes: plan.arenaBytes, budget, budgetSource,
    boardArenaBytes: budgetText !== undefined && board ? board.arenaBytes : null,
    blobBytes: blob.length, flashBytes: plan.flash.length, tiled: tiledMacs(fitted.compiled.graph), layers,
  });
  const svg = await renderSvg(arenaChartSpec(fitted.compiled.plan, { title: `${title}: arena over one training step`, budget }));
  const write = (path: string, data: string | Uint8Array) => {
    try {
      writeFileSync(path, data);
    } catch (e) {
      throw new Error(`cannot write ${path}: ${(e as Error).message}`);
    }
  };
  write(out, blob);
  write(`${stem}.memory.txt`, text);
  write(`${stem}.memory.svg`, svg);
  if (searched) {
    const note = `searched by xstrain compile --finetune ${finetune} for a ${budget} B budget (${budgetSource}); ${searched.bytes} B of arena with every memory option, ` +
      `expected gain ${(100 * searched.expectedGain).toFixed(1)}% on ${searched.evalSamples} eval samples`;
    write(`${stem}.scheme.json`, `${JSON.stringify({ ...scheme, note })}\n`);
  }
  process.stdout.write(`${text}\nwrote ${out} (${blob.length} bytes), ${stem}.memory.txt, ${stem}.memory.svg` +
    `${searched ? `, ${stem}.scheme.json (the searched scheme: pass it as --scheme to compile it again without searching)` : ''}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const [cmd, ...rest] = argv;
    if (cmd === 'infer') return await cmdInfer(rest);
    if (cmd === 'inspect') return cmdInspect(rest);
    if (cmd === 'compile') return await cmdCompile(rest);
    if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
      process.stdout.write(usage + '\n');
      return 0;
    }
    throw new UsageError(cmd ? `unknown command "${cmd}"` : 'no command');
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`xstrain: ${e.message}\n${usage}\n`);
      return 2;
    }
    process.stderr.write(`xstrain: ${(e as Error).message}\n`);
    return 1;
  }
}
