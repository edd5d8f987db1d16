// One fp32 (tfjs) arm of the transfer benchmark, written to a JSON file
// { protocolHash, protocol, result } as it goes (an interrupted run keeps its
// curve so far; result.samples says how far it got). For the slow arm —
// task A, full fine-tune, about an hour on the pure-JS backend — whose result
// bench:transfer reuses while the protocol hash matches.
//   npx tsx bench/transfer/run-fp32.ts --task A --arm v [--out FILE] [--train N --test N] [--lr X] [--eval-every N] [--force]
// --train/--test shorten the run (a sanity check); the file then records
// them and its hash is not the protocol's.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { repoRoot } from '../../src/node/addon.js';
import { loadTaskA, loadTaskB } from './data.js';
import { FP32_LR, type Fp32Arm, fp32Protocol, fp32ProtocolHash, runFp32Arm, taskAModel, taskBInputReal } from './fp32.js';
import { pretrainedMnistCnn } from './pretrain.js';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

if (option('grid')) {
  // npx tsx bench/transfer/run-fp32.ts --grid v|vi [--lrs 1e-4,3e-4,1e-3]: task B's learning-rate grid (training data only).
  const { taskBLrGrid } = await import('./fp32.js');
  const a = option('grid') as Fp32Arm;
  const lrs = (option('lrs') ?? (a === 'v' ? '1e-4,3e-4,1e-3,3e-3' : '1e-3,3e-3,1e-2,3e-2')).split(',').map(Number);
  console.log(JSON.stringify(await taskBLrGrid(a, lrs, console.log)));
  process.exit(0);
}

const task = (option('task') ?? 'A') as 'A' | 'B';
const arm = (option('arm') ?? 'v') as Fp32Arm;
if (!['A', 'B'].includes(task) || !['v', 'vi'].includes(arm)) throw new Error('usage: --task A|B --arm v|vi');
const out = option('out') ?? join(repoRoot, 'bench', 'results', `transfer-fp32-${task}${arm === 'v' ? '' : '-vi'}.json`);
const train = option('train') ? Number(option('train')) : undefined;
const test = option('test') ? Number(option('test')) : undefined;
const evalEvery = option('eval-every') ? Number(option('eval-every')) : 250;
const lr = option('lr') ? Number(option('lr')) : FP32_LR[task][arm];

const t = task === 'A' ? loadTaskA({ train, test }) : loadTaskB({ train, test });
const model = task === 'A' ? taskAModel() : await pretrainedMnistCnn({ log: console.log });
const inputReal = task === 'A' ? (model as ReturnType<typeof taskAModel>).inputReal : taskBInputReal;
const protocol = { ...fp32Protocol(task, arm, model.modelSha256, lr, evalEvery), ...(train || test ? { shortened: { train: t.train.count, test: t.test.count } } : {}) };
const protocolHash = fp32ProtocolHash(protocol);

if (!process.argv.includes('--force') && existsSync(out)) {
  const prev = JSON.parse(readFileSync(out, 'utf8')) as { protocolHash?: string; complete?: boolean };
  if (prev.protocolHash === protocolHash && prev.complete) {
    console.log(`${out}: already holds this protocol's complete result (${protocolHash.slice(0, 12)}); --force to re-run`);
    process.exit(0);
  }
}
mkdirSync(dirname(out), { recursive: true });
const save = (result: object, complete: boolean) => {
  writeFileSync(`${out}.tmp`, JSON.stringify({ protocolHash, protocol, complete, updated: new Date().toISOString(), result }, null, 2) + '\n');
  renameSync(`${out}.tmp`, out);
};
console.log(`task ${task} arm ${arm}: ${t.train.count} training samples, ${t.test.count} test images, lr ${lr}, protocol ${protocolHash.slice(0, 12)} -> ${out}`);
const result = await runFp32Arm(t, model.graph, {
  arm, lr, evalEvery, inputReal, log: (l) => console.log(`${new Date().toISOString()} ${l}`),
  onProgress: (partial) => save(partial, false),
});
save(result, true);
console.log(`done: final accuracy ${(result.finalAccuracy * 100).toFixed(2)}%, ${result.hostMsPerStep.toFixed(1)} ms/step, tensor peak ${result.peakTrainingBytes} bytes`);
