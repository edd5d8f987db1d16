// The C core under AddressSanitizer and UndefinedBehaviorSanitizer: known
// answers, rejection of bad offsets/dims/alignment/aliasing, and a fuzz of
// every op over exactly-sized arenas (native/tests/test_core.c).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../src/node/addon.js';

const run = promisify(execFile); // asynchronous: a worker blocked for a minute loses vitest's RPC

describe('C core host tests', () => {
  it('pass under -fsanitize=address,undefined with -Wall -Wextra -Werror', async () => {
    const out = join(repoRoot, 'out', 'ctest');
    mkdirSync(out, { recursive: true });
    const core = readdirSync(join(repoRoot, 'native', 'core')).filter((f) => f.endsWith('.c')).map((f) => join(repoRoot, 'native', 'core', f));
    const exe = join(out, 'test_core');
    await run('gcc', [
      '-std=c99', '-O1', '-g', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-fsanitize=address,undefined',
      '-fno-sanitize-recover=all', '-o', exe, join(repoRoot, 'native', 'tests', 'test_core.c'), ...core,
    ]);
    const { stdout: text } = await run(exe, ['200000'], { encoding: 'utf8', maxBuffer: 1 << 24 });
    expect(text).toMatch(/^\d+ passed, 0 failed$/m);
  }, 120_000);
});
