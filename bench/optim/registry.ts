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
// host-tests/optim-engine.test.ts), except Adam: the C's square root is an
// integer one (the soft-float cores give the same bits), about 8x slower than
// V8's (Adam on 79,510 parameters: 10 ms a step in C, 1.3 ms in TypeScript).
// momentum-fp32 gains little: its velocities decay into float32 subnormals,
// slow in the C's float32 arithmetic on x86, not in V8's float64.
const native = baselineFactories(nodeOptimEngine);
export const mnistBaselines: Record<string, OptimizerFactory> = { ...native, 'adam-fp32': baselines['adam-fp32']! };

// Relative cost of a training step (ms on this machine, measured): the runs
// are started longest first, so the two workers finish together.
export const stepCost: Record<string, number> = {
  'lqm': 0.43, 'sgd-fp32': 0.41, 'momentum-fp32': 0.69, 'adam-fp32': 1.6, 'sgd-fx16': 0.91, 'momentum-fx16': 1.08,
};

// Grid centres, log2 of the learning rate; bench/optim.ts searches outward
// from each (gridSearch).
export const mnistCentres: Record<string, number> = {
  'lqm': -9,
  'sgd-fp32': -6,
  'momentum-fp32': -10,
  'adam-fp32': -10,
  'sgd-fx16': -7,
  'momentum-fx16': -10,
};

// The QAS ablation: the int8 MLP with LQM, with and without quantisation-aware
// scaling (without it the int8-domain gradient is s_W^2 smaller: the grid moves).
export const qasOptimizer = 'lqm';
export const qasCentres = { on: -9, off: 10 };
