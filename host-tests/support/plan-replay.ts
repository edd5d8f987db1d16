// What a bare-metal image must print after replaying a plan trace
// (recordPlanTrace: the plan, a training step per sample, an inference, the
// CRC of the trainable regions): plan accepted, every step OK, the CRC and
// the inference output of the Node run.
import { expect } from 'vitest';
import type { runTrace } from '../../src/node/qemu.js';

type Replay = Awaited<ReturnType<typeof runTrace>>;

export function expectPlanReplay(r: Replay, arenaBytes: number, samples: number,
  node: { crc: number; output: number[] }): void {
  expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  expect(r.parsed.errors).toEqual([]);
  expect(r.parsed.plans).toEqual([{ status: 0, section: -1, index: -1, arenaBytes }]);
  expect(r.parsed.steps.map((s) => [s.which, s.status])).toEqual([...Array.from({ length: samples }, () => [0, 0]), [1, 0]]);
  expect(r.parsed.planCrcs).toEqual([node.crc]);
  expect(Array.from(new Int8Array(r.parsed.reads[0]!.bytes.buffer))).toEqual(node.output);
}
