// The generated TypeScript in src/compiler/tflite/generated/ is what
// scripts/gen-tflite-schema.sh makes from schema/tflite_subset.fbs: regenerate
// into a temporary folder and compare byte for byte. Needs flatc (Debian
// flatbuffers-compiler, installed by scripts/setup.sh, so CI runs it).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const committed = join(root, 'src/compiler/tflite/generated');
const haveFlatc = spawnSync('flatc', ['--version']).status === 0;

describe('generated TFLite schema code', () => {
  it.skipIf(!haveFlatc)('regenerating with scripts/gen-tflite-schema.sh gives the committed files', () => {
    const out = mkdtempSync(join(tmpdir(), 'xstrain-fbs-'));
    try {
      execFileSync('bash', [join(root, 'scripts/gen-tflite-schema.sh'), out], { stdio: 'pipe' });
      const names = readdirSync(out).sort();
      expect(names).toEqual(readdirSync(committed).sort());
      for (const n of names) {
        expect(readFileSync(join(out, n), 'utf8'), n).toBe(readFileSync(join(committed, n), 'utf8'));
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
