// What each arm of npm run bench:transfer reports (bench/results/transfer.json:
// tasks.A.arms.i ... tasks.B.arms.vi).

export type ArmId = 'i' | 'ii' | 'iii' | 'iv' | 'v' | 'vi';

export interface CurvePoint {
  samples: number; // training samples seen (0 = before adaptation)
  accuracy: number; // on the task's whole test set, 0-1
}

export interface ArmResult {
  arm: ArmId;
  label: string; // e.g. "xstrain int8, sparse, QAS + LQM"
  engine: 'xstrain' | 'tfjs';
  finalAccuracy: number; // after the last sample, on the whole test set
  accuracyBefore: number; // = curve[0].accuracy
  curve: CurvePoint[]; // every 250 samples (and the last)
  samples: number; // training samples (batch 1, one pass)
  peakTrainingBytes: number; // xstrain: the plan's arena; tfjs: see memory
  memory: Record<string, number | string>; // how peakTrainingBytes was made up
  stepInstructionsM4: number | null; // one training step on Cortex-M4F (QEMU -icount), xstrain arms
  hostMsPerStep: number; // wall ms of one training step on this machine (no evaluation in it)
  settings: Record<string, number | string | boolean>; // optimizer, lr, scheme, ...
}
