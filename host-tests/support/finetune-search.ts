// The fine-tune set of the `xstrain compile --finetune` test (cli.test.ts):
// MNIST digits 5-9 as labels 0-4, and the independent scheme search on it.
// Run as a script (node --import tsx host-tests/support/finetune-search.ts)
// it prints the search as JSON: the test runs it in a child process beside
// the CLI, because a search blocks its process for tens of seconds and
// vitest's worker RPC times out when the worker's event loop is blocked.
import { fileURLToPath } from 'node:url';
import { buildMobileNetV2 } from '../../src/compiler/arch/mobilenetv2.js';
import { type LabelledSample, formatSearch, searchScheme, splitForSearch } from '../../src/compiler/train/search.js';
import { NodeDispatch } from '../../src/node/addon.js';
import { digitIndices, loadMnist, mnistRgb, quantizeImage } from '../../src/node/mnist.js';

export const FT = { digits: [5, 6, 7, 8, 9], perClass: 20, pickSeed: 11, budget: 24 * 1024, steps: 40 } as const;

// Each picked image: its real values (what the CLI reads from a .bin file),
// its label and its position (the file-name order of the test's files).
export function finetuneImages(): { values: Float32Array; label: number; k: number }[] {
  const mnist = loadMnist('train');
  return digitIndices(mnist, FT.digits, FT.digits.length * FT.perClass, FT.pickSeed)
    .map((i, k) => ({ values: mnistRgb(mnist, i), label: (FT.digits as readonly number[]).indexOf(mnist.labels[i]!), k }));
}

// The samples as the CLI must see them: by label, then by file name; int8
// by the builtin networks' input quantisation (scale 1/128, zero point 0).
export function finetuneSamples(): LabelledSample[] {
  return finetuneImages().sort((a, b) => a.label - b.label || a.k - b.k)
    .map((s) => ({ input: quantizeImage(s.values), label: s.label }));
}

// searchScheme with the options the CLI documents: split and sample order
// seed 1, every memory option, lr 2^-10 for weights and biases, SGD.
export function expectedSearch() {
  const model = buildMobileNetV2({ width: 0.35, resolution: 32, classes: FT.digits.length, seed: 1 });
  const data = splitForSearch(finetuneSamples(), 1);
  const r = searchScheme(model, data, FT.budget, {
    compile: { head: 'keep', optimizer: 'sgd', reorder: true, sliceWeights: true, rowScratch: true, tile: true, lr: 2 ** -10, lrBias: 2 ** -10 },
    dispatch: (arena, flash) => new NodeDispatch(new ArrayBuffer(arena), new ArrayBuffer(flash)),
    steps: FT.steps,
    seed: 1,
  });
  return { scheme: r.scheme, text: formatSearch(r), train: data.train.length, eval: data.eval.length, input: model.tensors[model.inputs[0]!]!.quant };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(JSON.stringify(expectedSearch()));
