// The training compiler's passes in order: training graph (head, loss,
// backward) -> pruneBackward -> memory plan; and the four memory figures of
// the Tiny Training Engine comparison for one model and scheme.

import type { Graph } from '../../core/graph.js';
import type { HeadOption } from './head.js';
import type { TrainableLayer } from './layers.js';
import { type ArenaPlan, type MemoryReport, type PlanOptions, planArena } from './plan.js';
import { assertNoDeadOps, pruneBackward } from './prune.js';
import { type LayerUpdate, type SparseUpdateScheme, fullUpdate, resolveScheme } from './scheme.js';
import { type TileOptions, tileForward } from './tile.js';
import { type Numeric, type Optimizer, type TrainGraph, buildTrainGraph } from './train-graph.js';

export interface CompileOptions extends PlanOptions {
  head?: HeadOption;
  scheme: SparseUpdateScheme | 'full';
  reorder: boolean;
  optimizer?: Optimizer;
  lqmBits?: number;
  numeric?: Numeric;
  // Row-tiled forward (tile.ts): runs of forward convolutions whose
  // intermediates no backward op reads become band-wise ops. Default off.
  tile?: TileOptions | boolean;
  sliceWeights?: boolean; // train-graph.ts TrainGraphOptions.sliceWeights
  rowScratch?: boolean; // train-graph.ts TrainGraphOptions.rowScratch
}

export interface CompiledTraining {
  graph: TrainGraph; // pruned
  plan: ArenaPlan;
}

export function schemeUpdates(scheme: SparseUpdateScheme | 'full'): (layers: readonly TrainableLayer[]) => LayerUpdate[] {
  return (layers) => (scheme === 'full' ? fullUpdate(layers) : resolveScheme(layers, scheme));
}

export function compileTraining(model: Graph, o: CompileOptions): CompiledTraining {
  const built = buildTrainGraph(model, {
    head: o.head, updates: schemeUpdates(o.scheme), reorder: o.reorder, optimizer: o.optimizer, lqmBits: o.lqmBits, numeric: o.numeric,
    sliceWeights: o.sliceWeights, rowScratch: o.rowScratch,
  });
  const pruned = pruneBackward(built);
  const graph = o.tile ? tileForward(pruned, o.tile === true ? { align: o.align } : { align: o.align, ...o.tile }) : pruned;
  assertNoDeadOps(graph);
  return { graph, plan: planArena(graph, { align: o.align }) };
}

export interface TrainingMemoryFigures {
  model: string;
  full: MemoryReport; // (a) int8, every weight and bias, no reordering
  sparse: MemoryReport; // (b) the scheme, pruned, no reordering
  sparseReordered: MemoryReport; // (c) the scheme, pruned, updates fused where gradients appear
  fp32: MemoryReport; // (d) fp32 full backprop as PyTorch holds it; compare its peakLiveBytes
}

export interface FigureOptions extends PlanOptions {
  head?: HeadOption;
  optimizer?: Optimizer;
}

// (a)-(c) are planned arenas (report.arenaBytes); (d) is what an allocator
// would hold at the step's peak (report.peakLiveBytes: PyTorch does not
// plan, it holds the live tensors).
export function trainingMemoryFigures(model: Graph, scheme: SparseUpdateScheme, o: FigureOptions = {}): TrainingMemoryFigures {
  const common = { head: o.head, optimizer: o.optimizer, align: o.align };
  return {
    model: model.name,
    full: compileTraining(model, { ...common, scheme: 'full', reorder: false }).plan.report,
    sparse: compileTraining(model, { ...common, scheme, reorder: false }).plan.report,
    sparseReordered: compileTraining(model, { ...common, scheme, reorder: true }).plan.report,
    fp32: compileTraining(model, { ...common, scheme: 'full', reorder: false, numeric: 'fp32', optimizer: 'sgd' }).plan.report,
  };
}
