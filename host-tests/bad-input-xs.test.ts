// Bad input on the XS engine: the same TypeScript checks name the tensor and
// the sizes, and the xsmc glue turns a refusal of the C dispatcher into an
// Error; the engine keeps running (no crash).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../src/node/addon.js';

describe('bad input on XS', () => {
  it('is a thrown Error naming the tensor and sizes, or the C status', () => {
    const xs = join(repoRoot, 'out', 'xs', 'xst-xs');
    const check = join(repoRoot, 'out', 'ts', 'xs', 'bad-input-check.js');
    if (!existsSync(xs) || !existsSync(check)) expect.fail('XS host or compiled TS missing: run npm run setup');
    const lines = execFileSync(xs, [check], { encoding: 'utf8' }).trim().split('\n');
    expect(lines).toEqual([
      'shape: KernelArgumentError: fully_connected_s8_forward: weights tensor "layer1.weights" is int8[8x15] (120 bytes), expected int8[8x16] (128 bytes)',
      expect.stringMatching(/^bounds: \w*Error: xstrain op 8: tensor outside the arena$/),
      expect.stringMatching(/^args: \w*Error: xstrain op 8: wrong number of arguments$/),
      'done',
    ]);
  });
});
