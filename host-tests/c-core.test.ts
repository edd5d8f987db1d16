// The C core under AddressSanitizer and UndefinedBehaviorSanitizer: known
// answers, rejection of bad offsets/dims/alignment/aliasing, and a fuzz of
// every op over exactly-sized arenas (native/tests/test_core.c).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../src/node/addon.js';

describe('C core host tests', () => {
  it('pass under -fsanitize=address,undefined with -Wall -Wextra -Werror', () => {
    const out = join(repoRoot, 'out', 'ctest');
    mkdirSync(out, { recursive: true });
    const core = readdirSync(join(repoRoot, 'native', 'core')).filter((f) => f.endsWith('.c')).map((f) => join(repoRoot, 'native', 'core', f));
    const exe = join(out, 'test_core');
    execFileSync('gcc', [
      '-std=c99', '-O1', '-g', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-fsanitize=address,undefined',
      '-fno-sanitize-recover=all', '-o', exe, join(repoRoot, 'native', 'tests', 'test_core.c'), ...core,
    ]);
    const text = execFileSync(exe, ['200000'], { encoding: 'utf8' });
    expect(text).toMatch(/^\d+ passed, 0 failed$/m);
  }, 120_000);
});
