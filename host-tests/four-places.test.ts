// One workload, four places: the 200-step int8 MLP run on MNIST ends with the
// same parameter checksum in Node (C addon), on the XS engine (xsmc glue), on
// the Cortex-M4F image and on the RV32IMC image (both under QEMU).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../src/core/crc32.js';
import { Kernels } from '../src/core/kernels.js';
import { MlpTrainer, defaultMlpConfig, recordMlpTrace, trainOnline, type MlpConfig } from '../src/core/mlp.js';
import { shuffledIndices } from '../src/core/rng.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';
import { loadMnist, mnistDir } from '../src/node/mnist.js';
import { runTrace } from '../src/node/qemu.js';

const STEPS = 200;
const train = loadMnist('train');
const order = shuffledIndices(train.count, 1);

function nodeChecksum(): number {
  const m = new MlpTrainer(new Kernels(new NodeDispatch(new ArrayBuffer(128 * 1024))));
  m.init();
  trainOnline(m, train, order, 0, STEPS);
  return crc32(m.paramBytes());
}

// The checksum the XS host prints for the run (src/xs/main.ts check).
function xsChecksum(optimizer: 'sgd' | 'lqm'): number {
  const xs = join(repoRoot, 'out', 'xs', 'xst-xs');
  const main = join(repoRoot, 'out', 'ts', 'xs', 'main.js');
  if (!existsSync(xs) || !existsSync(main)) expect.fail('XS host or compiled TS missing: run npm run setup');
  const out = execFileSync(xs, [main, 'check', mnistDir, String(STEPS), optimizer], { encoding: 'utf8' });
  const m = /params-crc ([0-9a-f]{8})/.exec(out);
  expect(m, out).not.toBeNull();
  return parseInt(m![1]!, 16);
}

describe(`the ${STEPS}-step MLP run ends with the same weights everywhere`, () => {
  const expected = nodeChecksum();

  it('XS engine (compiled TypeScript on the project XS host)', () => {
    expect(xsChecksum('sgd')).toBe(expected);
  }, 60_000);

  // cortex-m4-portable: the same core without the DSP (SMLAD) paths.
  for (const target of ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const) {
    it(`${target} image under QEMU`, async () => {
      const { trace, params } = recordMlpTrace(train, order, STEPS);
      const r = await runTrace(target, trace);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(r.parsed.errors).toEqual([]);
      expect(r.parsed.calls.every((c) => c.status === 0)).toBe(true);
      expect(r.parsed.crcs).toEqual([{ offset: params.offset, nbytes: params.bytes, crc: expected }]);
    }, 300_000);
  }
});

// The same run trained with LQM (5-bit log-quantized momentum, QAS) instead of
// SGD: Node, XS, Cortex-M4F (DSP and portable) and RV32 end with the same weights.
describe(`the ${STEPS}-step MLP run with LQM ends with the same weights everywhere`, () => {
  const cfg: MlpConfig = { ...defaultMlpConfig, optimizer: 'lqm', lr: 2 ** -8 };
  const m = new MlpTrainer(new Kernels(new NodeDispatch(new ArrayBuffer(192 * 1024))), cfg);
  m.init();
  trainOnline(m, train, order, 0, STEPS);
  const expected = crc32(m.paramBytes());
  it('XS engine (compiled TypeScript on the project XS host)', () => {
    expect(xsChecksum('lqm')).toBe(expected);
  }, 60_000);
  for (const target of ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const) {
    it(`${target} image under QEMU`, async () => {
      const { trace, params } = recordMlpTrace(train, order, STEPS, cfg);
      const r = await runTrace(target, trace);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(r.parsed.errors).toEqual([]);
      expect(r.parsed.calls.every((c) => c.status === 0)).toBe(true);
      expect(r.parsed.crcs).toEqual([{ offset: params.offset, nbytes: params.bytes, crc: expected }]);
    }, 300_000);
  }
});

// The int16 master copy (op 26, one more byte per weight) with 64 hidden units,
// so that the arena (~136 KB) fits the images' 200 KB: the same weights and
// residuals on Node, M4 and RV32.
describe(`the ${STEPS}-step MLP run with LQM and the int16 master copy ends with the same weights on Node, M4 and RV32`, () => {
  const cfg: MlpConfig = { ...defaultMlpConfig, hidden: 64, optimizer: 'lqm', lr: 2 ** -8, lqmMaster: true };
  const m = new MlpTrainer(new Kernels(new NodeDispatch(new ArrayBuffer(256 * 1024))), cfg);
  m.init();
  trainOnline(m, train, order, 0, STEPS);
  const expected = crc32(m.paramBytes());
  const residual = m.t.fc1.lqmResidual!;
  const expectedResidual = crc32(m.k.dispatch.read(residual.offset, residual.bytes));
  for (const target of ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const) {
    it(`${target} image under QEMU`, async () => {
      const { trace, params } = recordMlpTrace(train, order, STEPS, cfg, [residual]);
      const r = await runTrace(target, trace);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(r.parsed.errors).toEqual([]);
      expect(r.parsed.calls.every((c) => c.status === 0)).toBe(true);
      expect(r.parsed.calls.some((c) => c.op === 26)).toBe(true);
      expect(r.parsed.crcs).toEqual([{ offset: params.offset, nbytes: params.bytes, crc: expected },
        { offset: residual.offset, nbytes: residual.bytes, crc: expectedResidual }]);
    }, 300_000);
  }
});
