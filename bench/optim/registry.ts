// Which optimizers bench:optim compares and where their learning-rate grids
// lie (the centre of each power-of-two grid is the one-pass optimum measured at:
// bench/results/baselines-mnist.json and lqm-variants.json).
import { baselineFactories, baselines, fx16WithRange } from '../../src/core/optim/baselines.js';
import { lqmVector } from '../../src/core/optim/lqm.js';
import type { OptimizerFactory } from '../../src/core/optim/optimizer.js';
import { nodeOptimEngine } from '../../src/node/optim-engine.js';

// On the 2-D functions the 16-bit baselines get a fixed range of +-16 (2^-11
// resolution, the resolution LQM's fixed point uses): their default range,
// 8x the initial values, is empty for a start at (0, 0). Their updates run
// in TypeScript: on a 2-vector one C call costs more than the update.
export const optimizerFactories: Record<string, OptimizerFactory> = {
  lqm: lqmVector(), ...baselines,
  'sgd-fx16': fx16WithRange('sgd-fx16', 16), 'momentum-fx16': fx16WithRange('momentum-fx16', 16),
};

export const mnistOptimizers = ['lqm', 'sgd-fp32', 'momentum-fp32', 'adam-fp32', 'sgd-fx16', 'momentum-fx16'];

// The float-MLP baselines of the MNIST runs update through the C ops
// (src/node/optim-engine.ts: the same bits as the TypeScript references,
// host-tests/optim-engine.test.ts; native/tests/test_core.c checks the fp32
// ops against plain float32 arithmetic, subnormals included). On x86 the C
// fp32 ops take the elements that may meet a float32 subnormal through
// double (native/core/optim_f32.c), and Adam's square root is the SSE2
// instruction: measured per MNIST step, Adam 0.95 ms (TypeScript 1.9),
// momentum 0.55 ms (TypeScript 0.85; float32-only C 2.0 once the
// velocities decay).
export const mnistBaselines: Record<string, OptimizerFactory> = baselineFactories(nodeOptimEngine);

// Relative cost of a training step (ms on this machine, measured): the runs
// are started longest first, so the two workers finish together.
export const stepCost: Record<string, number> = {
  'lqm': 0.45, 'sgd-fp32': 0.42, 'momentum-fp32': 0.55, 'adam-fp32': 0.95, 'sgd-fx16': 1.0, 'momentum-fx16': 1.1,
};

// Grid centres, log2 of the learning rate; bench/optim.ts searches outward
// from each (gridSearch) while the best rate is at an edge. The centres are
// the rates the full protocol picked on 2026-11-22 (bench/results/optim.json
// of 6940375, from centres one step away for four of them): three one-pass
// runs each when the pick is bracketed again.
export const mnistCentres: Record<string, number> = {
  'lqm': -8,
  'sgd-fp32': -6,
  'momentum-fp32': -9,
  'adam-fp32': -11,
  'sgd-fx16': -6,
  'momentum-fx16': -9,
};

// The QAS ablation: the int8 MLP with LQM, with and without quantisation-aware
// scaling (without it the int8-domain gradient is s_W^2 smaller: the grid moves).
export const qasOptimizer = 'lqm';
export const qasCentres = { on: -8, off: 11 }; // on = the comparison's LQM grid (shared runs)
