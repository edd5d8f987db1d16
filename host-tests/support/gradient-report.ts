// Agreement measures between a kernel's gradient and a float64 reference,
// and the per-family record under out/gradient-format/ that the kernel note
// quotes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../src/node/addon.js';

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  if (aa === 0 && bb === 0) return 1;
  return ab / Math.sqrt(aa * bb);
}

// ||a - b|| / ||b||
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  if (n === 0) return d === 0 ? 0 : Infinity;
  return Math.sqrt(d / n);
}

export class GradientRecord {
  cases = 0;
  worstCosine = 1;
  worstRelErr = 0;
  private sumRelErr = 0;

  constructor(readonly family: string, readonly kernel: string) {}

  add(kernelGrad: ArrayLike<number>, reference: ArrayLike<number>): { cos: number; rel: number } {
    const cos = cosine(kernelGrad, reference), rel = relErr(kernelGrad, reference);
    this.cases++;
    this.worstCosine = Math.min(this.worstCosine, cos);
    this.worstRelErr = Math.max(this.worstRelErr, rel);
    this.sumRelErr += rel;
    return { cos, rel };
  }

  write(): void {
    const dir = join(repoRoot, 'out', 'gradient-format');
    mkdirSync(dir, { recursive: true });
    const { kernel, cases, worstCosine, worstRelErr } = this;
    writeFileSync(join(dir, `${this.family}.json`),
      JSON.stringify({ kernel, cases, worstCosine, worstRelErr, meanRelErr: cases ? this.sumRelErr / cases : 0 }, null, 2) + '\n');
  }
}
