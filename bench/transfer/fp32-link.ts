// Where the fp32 arms (tfjs, bench/transfer/fp32.ts and pretrain.ts on the
// fp32 branch) plug into npm run bench:transfer and its test: the one place
// that names their API. TODO(lead, when merging the fp32 branch): import
// fp32.ts and pretrain.ts statically here, make fp32Model and
// taskBFloatTflite return theirs, and drop the run-time import.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeTflite } from '../../src/compiler/tflite/write.js';
import { repoRoot } from '../../src/node/addon.js';
import type { TransferTask } from './data.js';
import { temporaryFloatDigitsCnn } from './int8.js';
import type { ArmResult } from './types.js';

export interface Fp32RunOptions {
  arm: 'v' | 'vi';
  every?: number; // evaluation interval in samples
  log?: (s: string) => void;
}

// What bench/transfer/fp32.ts is expected to export.
export interface Fp32Module {
  runFp32Arm(task: TransferTask, floatModel: unknown, o: Fp32RunOptions): Promise<ArmResult>;
  fp32ProtocolHash(task: TransferTask, arm: 'v' | 'vi'): string;
}

// The module, or why it is not there. Imported at run time so that this
// branch builds without it.
export async function loadFp32(): Promise<Fp32Module | string> {
  const path = join(repoRoot, 'bench', 'transfer', 'fp32.ts');
  if (!existsSync(path)) return 'bench/transfer/fp32.ts (the tfjs arms) is not in this tree yet';
  return (await import(pathToFileURL(path).href)) as Fp32Module;
}

// The float model an fp32 arm starts from: task A's person_detect (the
// file; the fp32 branch dequantises it and puts the new head of seed
// HEAD_SEED on it), task B's pretrained CNN (its float .tflite bytes).
export function fp32Model(task: 'A' | 'B', taskBFloat: Uint8Array): unknown {
  return task === 'A' ? join(repoRoot, 'models', 'person_detect.tflite') : taskBFloat;
}

// Task B's MNIST CNN pretrained in fp32 (pretrain.ts), as a float32
// .tflite. Until the fp32 branch is merged: a seeded random float CNN
// (int8.ts temporaryFloatDigitsCnn), so task B's figures are not the
// benchmark's.
export async function taskBFloatTflite(): Promise<{ bytes: Uint8Array; source: string; temporary: boolean }> {
  return { bytes: writeTflite(temporaryFloatDigitsCnn()), source: 'TEMPORARY seeded random float CNN (not pretrained)', temporary: true };
}
