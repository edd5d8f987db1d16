// Marsaglia xorshift32 (13, 17, 5), the generator of native/core/xst_fixed.h.
// Integer-only, so Node and XS produce the same sequence.

export function xorshift32(state: number): number {
  let x = state >>> 0;
  x = (x ^ (x << 13)) >>> 0;
  x = (x ^ (x >>> 17)) >>> 0;
  x = (x ^ (x << 5)) >>> 0;
  return x;
}

export class Xorshift32 {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    this.s = xorshift32(this.s);
    return this.s;
  }
  // Uniform integer in [0, n) for n <= 2^16 (modulo bias below 2^-16).
  below(n: number): number {
    return this.next() % n;
  }
  // Uniform integer in [lo, hi].
  int(lo: number, hi: number): number {
    return lo + (this.next() % (hi - lo + 1));
  }
}

// Fisher-Yates shuffle of [0, n) driven by xorshift32.
export function shuffledIndices(n: number, seed: number): Uint32Array {
  const rng = new Xorshift32(seed);
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.next() % (i + 1);
    const t = idx[i]!;
    idx[i] = idx[j]!;
    idx[j] = t;
  }
  return idx;
}
