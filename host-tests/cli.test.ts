// `npx xstrain infer` as a developer runs it: one JSON line on success, one
// actionable line and a nonzero status on bad input.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../src/node/addon.js';

const cli = join(repoRoot, 'bin', 'xstrain.mjs');
const dir = mkdtempSync(join(tmpdir(), 'xstrain-cli-'));
const model = (m: string) => join(repoRoot, 'models', m);

function run(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('xstrain infer', () => {
  it('prints the int8 output of hello_world for x = π/2 (sin = 1)', () => {
    // x = 1.5708 -> q = round(x / 0.024480) - 128 = -64
    const input = join(dir, 'x.bin');
    writeFileSync(input, Uint8Array.of(-64 & 0xff));
    const out = execFileSync(process.execPath, [cli, 'infer', model('hello_world_int8.tflite'), '--input', input, '--target', 'node'],
      { encoding: 'utf8' });
    const line = JSON.parse(out.trim()) as { output: number[]; target: string };
    expect(line.target).toBe('node');
    expect(line.output).toHaveLength(1);
    const y = (line.output[0]! - 5) * 0.008291;
    expect(Math.abs(y - 1)).toBeLessThan(0.1);
  }, 60_000);

  it('an input of the wrong size says the size the model needs', () => {
    const input = join(dir, 'short.bin');
    writeFileSync(input, new Uint8Array(100));
    const r = run(['infer', model('person_detect.tflite'), '--input', input]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('input of "person_detect.tflite" is int8[1,96,96,1] = 9216 bytes, got 100 bytes');
  }, 60_000);

  it('a file that is not a model, a missing option and an unknown target are clear errors', () => {
    const junk = join(dir, 'junk.tflite');
    writeFileSync(junk, new Uint8Array(64).fill(7));
    const bad = run(['infer', junk, '--input', junk]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^xstrain: junk\.tflite: /);
    const noInput = run(['infer', model('hello_world_int8.tflite')]);
    expect(noInput.status).toBe(2);
    expect(noInput.stderr).toContain('infer needs --input FILE');
    const target = run(['infer', model('hello_world_int8.tflite'), '--input', junk, '--target', 'esp32']);
    expect(target.status).toBe(2);
    expect(target.stderr).toContain('unknown target "esp32": use one of node, xs, cortex-m4, rv32');
  }, 60_000);
});
