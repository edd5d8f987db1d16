// Fuzzed plan blobs: seeded mutations of valid blobs (the compiler's plans
// for micro_speech and a MobileNetV2) through both validators.
//  - the TypeScript decoder throws only PlanErrors and accepts whatever the
//    C accepts (it checks the same structure, not the op bindings);
//  - 10,000 mutations through the C validator built with ASan/UBSan
//    (native/tests/test_plan.c): each is rejected, or its training step and
//    inference run within bounds in an arena of exactly its size.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import { importTflite } from '../src/compiler/tflite/import.js';
import { compilePlan } from '../src/compiler/train/lower.js';
import { PlanError, decodePlan, resealPlan } from '../src/core/plan-format.js';
import { Xorshift32 } from '../src/core/rng.js';
import { repoRoot, validatePlanC } from '../src/node/addon.js';

const LR = 2 ** -10;
const out = join(repoRoot, 'out', 'plan-test');
mkdirSync(out, { recursive: true });

const microSpeech = () => compilePlan(
  importTflite(new Uint8Array(readFileSync(join(repoRoot, 'models', 'micro_speech_quantized.tflite'))), 'micro_speech_quantized'),
  { scheme: { biasLayers: 2, weights: [] }, reorder: true, lr: LR, lrBias: LR });
const mobileNet = () => compilePlan(buildMobileNetV2({ width: 0.35, resolution: 32, classes: 2, seed: 1 }),
  { scheme: { biasLayers: 8, weights: [{ layer: 50 }, { layer: 48 }] }, reorder: true, lr: LR, lrBias: LR });

describe('fuzzed plan blobs', () => {
  // Every mutation the C accepts, the TypeScript decoder accepts too (it
  // checks the same structure, not the op bindings), and it never throws
  // anything but a PlanError.
  it('the TypeScript decoder: PlanError or a plan, and never stricter than the C', () => {
    const { plan, blob } = microSpeech();
    const rng = new Xorshift32(5);
    let cAccepted = 0;
    for (let m = 0; m < 2000; m++) {
      const b = m % 4 === 0 ? blob.slice(0, rng.below(blob.length)) : blob.slice();
      if (m % 4) {
        const v = new DataView(b.buffer);
        const at = rng.below(m % 2 ? 400 : b.length / 4) * 4;
        if (at + 4 <= b.length) v.setUint32(at, [0, 1, 0xffffffff, plan.arenaBytes, v.getUint32(at, true) + 4][rng.below(5)]!, true);
        resealPlan(b);
      }
      let ts = true;
      try {
        decodePlan(b, plan.arenaBytes);
      } catch (e) {
        expect(e).toBeInstanceOf(PlanError);
        ts = false;
      }
      const [st] = validatePlanC(b, plan.arenaBytes);
      if (st === 0) {
        cAccepted++;
        expect(ts, `mutation ${m}: C accepts, TypeScript rejects`).toBe(true);
      }
    }
    expect(cAccepted).toBeGreaterThan(0);
  });

  // Asynchronous child processes: the fuzz runs for a minute or more on a
  // loaded machine, and a test worker blocked that long loses vitest's RPC.
  it('10,000 seeded mutations through the C validator under ASan/UBSan: each rejected, or run within bounds', async () => {
    const run = promisify(execFile);
    const dir = join(repoRoot, 'out', 'ctest');
    mkdirSync(dir, { recursive: true });
    const core = readdirSync(join(repoRoot, 'native', 'core')).filter((f) => f.endsWith('.c')).map((f) => join(repoRoot, 'native', 'core', f));
    const exe = join(dir, 'test_plan');
    await run('gcc', [
      '-std=c99', '-O1', '-g', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-fsanitize=address,undefined',
      '-fno-sanitize-recover=all', '-o', exe, join(repoRoot, 'native', 'tests', 'test_plan.c'), ...core,
    ]);
    // micro_speech (conv, FC, loss, fused FC SGD, biases): 10,000; the
    // MobileNetV2 plan (depthwise, add, pool, grad sum too): 500.
    for (const [compile, n] of [[microSpeech, 10_000], [mobileNet, 500]] as const) {
      const path = join(out, `fuzz-${n}.xstp`);
      writeFileSync(path, compile().blob);
      const { stdout: text } = await run(exe, [path, String(n), '12345'], { encoding: 'utf8', maxBuffer: 1 << 24 });
      const m = /^(\d+) mutations: (\d+) accepted and run \((\d+) without a kernel status\), (\d+) rejected$/m.exec(text);
      expect(m, text).not.toBeNull();
      expect(Number(m![1])).toBe(n);
      expect(Number(m![2]) + Number(m![4])).toBe(n);
      expect(Number(m![4]), text).toBeGreaterThan(n / 2); // most mutations are caught
      expect(text).not.toMatch(/FAIL/);
      // every kind of structural check fired
      if (n === 10_000) for (const st of [5, 11, 12, 13, 14, 15]) expect(text, `status ${st}`).toMatch(new RegExp(`^status ${st} `, 'm'));
    }
  }, 300_000);
});
