// The benchmark-function part of bench:optim as its own process, so it shares
// the two workers with the MNIST runs instead of running before them:
//   tsx bench/optim/functions-job.ts
// Prints one JSON line: the rows of runFunctions (an array).
import { optimizerFactories } from './registry.js';
import { runFunctions } from './run-functions.js';

process.stdout.write(JSON.stringify(runFunctions(optimizerFactories)) + '\n');
