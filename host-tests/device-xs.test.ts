// The device app (src/moddable/main.ts) on the real XS engine: compiled by
// tsc with tsconfig.device.json, the Moddable modules replaced by the
// stand-ins in host-tests/fixtures/device-xs (timer, flash, Resource,
// mc/config, LIS3DH, digital, serial), run by the project's XS host with the
// real C core, xsmc glue and static arena (native/xs/xst_arena.c). One run:
// boot onto erased flash, three windows of the LIS3DH, a button press, console
// lines, a checkpoint after two windows (TrainerService's checkpointEvery),
// with its progress line.

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import { compilePlan } from '../src/compiler/train/lower.js';

const root = join(import.meta.dirname, '..');
const dir = join(root, 'out', 'device-xs');
const fixtures = join(root, 'host-tests', 'fixtures', 'device-xs');
const stubs: Record<string, string> = {
  timer: 'timer', flash: 'flash', Resource: 'Resource', 'mc/config': 'config',
  'embedded:io/digital': 'digital', 'embedded:io/serial': 'serial', 'embedded:sensor/Accelerometer/LIS3DH': 'lis3dh',
};

describe('the device app on XS', () => {
  it('boots, samples, infers, learns from the button and the console, and checkpoints', () => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'js', 'stubs'), { recursive: true });
    // A plan whose input is 32x32x3 = 1024 accelerometer samples x 3 axes.
    const { plan, blob } = compilePlan(buildMobileNetV2({ width: 0.35, resolution: 32, classes: 2, seed: 1 }),
      { scheme: { biasLayers: 2, weights: [] }, reorder: true, lr: 2 ** -10, lrBias: 2 ** -10 });
    expect(plan.io.input.bytes).toBe(3 * 1024);
    writeFileSync(join(dir, 'plan.xstp'), blob);

    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      extends: '../../tsconfig.device.json',
      compilerOptions: { noEmit: false, outDir: 'js', rootDir: '../..' },
      include: ['../../types/moddable/*.d.ts', '../../src/moddable/**/*.ts', '../../src/core/**/*.ts', '../../src/xs/dispatch.ts'],
    }));
    const tsc = spawnSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' });
    expect(tsc.stdout + tsc.stderr).toBe('');
    for (const f of readdirSync(fixtures).filter((n) => n.endsWith('.js'))) {
      copyFileSync(join(fixtures, f), join(dir, 'js', f === 'run.js' ? f : join('stubs', f)));
    }
    const adapters = join(dir, 'js', 'src', 'moddable');
    for (const f of readdirSync(adapters)) {
      const path = join(adapters, f);
      writeFileSync(path, readFileSync(path, 'utf8').replace(/from '([^'.][^']*)'/g, (all, name: string) =>
        stubs[name] ? `from '../../stubs/${stubs[name]}.js'` : all));
    }

    const r = spawnSync(join(root, 'out', 'xs', 'xst-xs'), [join(dir, 'js', 'run.js'), join(dir, 'plan.xstp')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const said = r.stdout;
    expect(said).toContain(`xstrain: xs-host: plan ${plan.arenaBytes} B of the 262144 B arena, 2 classes`);
    expect(said).toContain("no checkpoint restored (the checkpoint slots are empty): starting from the plan's initial weights");
    // Timer.repeat at the 50 Hz period; the LIS3DH at 50 Hz (ODR code 0b0100), 4 g (code 1).
    expect(said).toContain('timer 1 every 20 ms; LIS3DH rate code 4 range code 1');
    expect(said).toContain('xstrain: window 1 trained on label 0 (button)');
    expect(said).toContain('xstrain: the button now labels windows 1');
    expect(said).toMatch(/xstrain: sensor ok; windows 1; training on; .*steps 1 \(self 0\); rejected 0; last prediction [01] \(p /);
    expect(said).toContain('xstrain: label 7 rejected: the head has 2 classes (labels 0 to 1)');
    expect(said).toContain('xstrain: window 2 trained on label 1 (console)');
    // TrainerService: the checkpoint at window 2 (before that window's console label), then progress.
    expect(said).toContain('xstrain: saved checkpoint generation 1 at step 2\n');
    expect(said).toMatch(new RegExp(`xstrain: step 2  running accuracy (0\\.0|100\\.0)%  loss \\d+\\.\\d{3}  arena ${plan.arenaBytes} B\n`));
    expect(said).toMatch(/samples 3072; flash erases 1 writes \d+/);
    // The console's replies: every message after it opened, CR LF ended.
    expect(said).toContain('serial:\nsampling the LIS3DH at 50 Hz');
    expect(said).toContain('label 7 rejected: the head has 2 classes (labels 0 to 1)\r\nsaved checkpoint generation 1 at step 2\r\nstep 2  running accuracy ');
    expect(said).toContain('window 2 trained on label 1 (console)\r\n');
  }, 120_000);
});
