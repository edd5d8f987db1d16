// Bad input on the XS engine: the same TypeScript checks name the tensor and
// the sizes, and the xsmc glue turns a refusal of the C dispatcher into an
// Error; the engine keeps running (no crash).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../src/node/addon.js';

describe('bad input on XS', () => {
  it('is a thrown Error naming the tensor and sizes, or the C status; a bound plan (ops run in C from the blob) checks its description and each op', () => {
    const xs = join(repoRoot, 'out', 'xs', 'xst-xs');
    const check = join(repoRoot, 'out', 'ts', 'xs', 'bad-input-check.js');
    if (!existsSync(xs) || !existsSync(check)) expect.fail('XS host or compiled TS missing: run npm run setup');
    const lines = execFileSync(xs, [check], { encoding: 'utf8' }).trim().split('\n');
    expect(lines).toEqual([
      'shape: KernelArgumentError: fully_connected_s8_forward: weights tensor "layer1.weights" is int8[8x15] (120 bytes), expected int8[8x16] (128 bytes)',
      expect.stringMatching(/^bounds: \w*Error: xstrain op 8: tensor outside the arena$/),
      expect.stringMatching(/^args: \w*Error: xstrain op 8: wrong number of arguments$/),
      'bind: status 0,-1,-1',
      'bound step: no error',
      'which: RangeError: xs_xst_plan_run: which must be 0 (TRAIN) or 1 (INFER)',
      'short desc: RangeError: xstrain plan: desc must have 12 elements',
      'other blob: RangeError: xs_xst_plan_run: desc does not describe this blob (bind the plan again)',
      'ops outside: RangeError: xs_xst_plan_run: desc does not describe this blob (bind the plan again)',
      'small arena: RangeError: xs_xst_plan_run: the arena is 1024 bytes, the plan needs 4096',
      expect.stringMatching(/^changed blob: PlanError: plan TRAIN op 0 \(\?\): tensor outside the arena; the blob changed after it was loaded \(plan: CRC mismatch/),
      'done',
    ]);
  });
});
