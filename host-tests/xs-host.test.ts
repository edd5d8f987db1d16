// The XS host for Linux (out/xs/xst-xs, built by `npm run build:xs` from
// native/xs/build.sh) runs ES modules on the real XS engine. These tests run
// the hand-written fixtures in host-tests/fixtures/xs and check its
// contract: module loading, async/await, trace, native(), the xsmc glue over
// the C core, and exit statuses.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const binary = path.join(root, 'out', 'xs', 'xst-xs');
const fixtures = path.join(root, 'host-tests', 'fixtures', 'xs');

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runXs(fixture: string, ...args: string[]): Run {
  if (!existsSync(binary)) {
    throw new Error(`${path.relative(root, binary)} is missing: run \`npm run build:xs\` first`);
  }
  const result = spawnSync(binary, [path.join(fixtures, fixture), ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (result.error) throw result.error;
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

describe('XS host (out/xs/xst-xs)', () => {
  it('runs an ES module that imports another, awaits, traces and calls a native', () => {
    const run = runXs('main.js', 'first', 'second arg');
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe(
      'xs-host fixture\n' +
        'args:2:first,second arg\n' +
        'crc32(123456789)=cbf43926\n' +
        'await:ab\n' +
        'done\n',
    );
    expect(run.signal).toBeNull();
    expect(run.status).toBe(0);
  });

  it('exits 1 with the message on stderr when an error is thrown', () => {
    const run = runXs('throws.js');
    expect(run.signal).toBeNull();
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('before\n');
    expect(run.stderr).toMatch(/^Error: fixture failure: expected by the test\n/);
    expect(run.stderr).toContain(' at fail ');
  });

  it('throws an Error naming an unknown native', () => {
    const run = runXs('bad-native.js');
    expect(run.stdout).toBe(
      'Error native("xs_no_such_native"): no such native function in this host (xst-xs)\n',
    );
    // uncaught: exit 1, the message on stderr
    expect(run.signal).toBeNull();
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^Error: native\("xs_no_such_native_uncaught"\)/);
  });

  it('passes Int32Array args (with a byteOffset) and the arena to the C core, and turns a bounds error into an Error', () => {
    const run = runXs('arena.js');
    expect(run.stderr).toBe('');
    expect(run.signal).toBeNull();
    expect(run.status).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    // mask 0b10100101 keeps gradients 0, 2, 5 and 7
    expect(lines[0]).toBe('grad:1,0,3,0,0,6,0,8');
    expect(lines.slice(1)).toHaveLength(3);
    for (const [i, label] of ['n past the arena', 'grad past the arena', 'empty arena'].entries()) {
      expect(lines[1 + i]).toMatch(new RegExp(`^${label}: Error RangeError: xstrain op 8: \\S`));
    }
  });
});
