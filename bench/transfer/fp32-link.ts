// Where the fp32 arms (tfjs: bench/transfer/fp32.ts, pretrain.ts) plug into
// npm run bench:transfer and its test.
import { TASK_A, type TransferTask } from './data.js';
import { type CachedFp32Arm, readCachedFp32ArmAv, runFp32ArmFor } from './fp32.js';
import { pretrainedMnistCnn } from './pretrain.js';
import type { ArmResult } from './types.js';

export { FP32_A_V_FILE } from './fp32.js';

// Task B's MNIST CNN pre-trained in fp32 with tfjs (cached under
// out/transfer/ by its protocol hash), as the float32 .tflite the xstrain
// arms take through the float path.
export async function taskBFloatTflite(log?: (l: string) => void): Promise<{ bytes: Uint8Array; source: string }> {
  const p = await pretrainedMnistCnn({ log });
  return {
    bytes: p.tflite,
    source: `MNIST CNN pre-trained in fp32 with tfjs (bench/transfer/pretrain.ts: ${(100 * p.mnistTestAccuracy).toFixed(2)}% on MNIST test), ` +
      `float .tflite sha256 ${p.modelSha256.slice(0, 16)}`,
  };
}

// An fp32 arm on the task (its data, possibly shortened), at the protocol's
// learning rate.
export async function runFp32(taskId: 'A' | 'B', arm: 'v' | 'vi', task: TransferTask, log?: (l: string) => void): Promise<ArmResult> {
  return (await runFp32ArmFor(taskId, arm, { task, log })).result;
}

// Task A's arm (v) from bench/results/transfer-fp32-A.json: its result, or
// why there is none. A run still going (or stopped) gives its curve so far,
// marked partial in its settings.
export function cachedTaskAv(): { result: ArmResult; cache: CachedFp32Arm } | { missing: string } {
  const c = readCachedFp32ArmAv();
  const rerun = 'run `npx tsx bench/transfer/run-fp32.ts --task A --arm v` (about 1-2 hours) or `npm run bench:transfer -- --rerun-fp32`';
  if (!c) return { missing: `no cached run (bench/results/transfer-fp32-A.json): ${rerun}` };
  if (!c.matches) return { missing: `bench/results/transfer-fp32-A.json is for protocol ${c.protocolHash.slice(0, 12)}, this one is ${c.expectedHash.slice(0, 12)}: ${rerun}` };
  withIssuePeak(c.result);
  if (!c.complete) {
    const last = c.result.curve.at(-1)?.samples ?? 0;
    c.result.settings.partial = `the cached run has reached ${last} of ${TASK_A.train} samples: its final accuracy is the accuracy after ${last}`;
  }
  return { result: c.result, cache: c };
}

// Results recorded before peakTrainingBytes was the issue's measure held
// the tensor peak alone: recomputed from the parts (tensor peak + RSS
// growth). Returns r.
export function withIssuePeak(r: ArmResult): ArmResult {
  const m = r.memory;
  if (r.engine === 'tfjs' && typeof m.tensorPeakBytes === 'number' && typeof m.rssGrowthBytes === 'number') {
    r.peakTrainingBytes = m.tensorPeakBytes + Math.max(0, m.rssGrowthBytes);
    m.peakTrainingBytesIs = 'tensorPeakBytes + rssGrowthBytes (the issue\'s measure; the growth contains those tensors again)';
  }
  return r;
}
