// Static placement of buffers by lifetime: two buffers share arena bytes only
// when their lifetimes do not overlap. Greedy by size (largest first, lowest
// offset that fits), as TFLite Micro's greedy planner does. Deterministic:
// ties break by buffer index, so every engine computes the same offsets.

export interface PlannedBuffer {
  bytes: number;
  first: number; // first step that uses it (inclusive)
  last: number; // last step that uses it (inclusive)
}

export interface Placement {
  offsets: number[];
  peak: number; // bytes of arena the placement needs
}

export function planLifetimes(buffers: readonly PlannedBuffer[], align = 16): Placement {
  const order = buffers.map((_, i) => i).sort((a, b) => buffers[b]!.bytes - buffers[a]!.bytes || a - b);
  const offsets = new Array<number>(buffers.length).fill(-1);
  const placed: number[] = [];
  let peak = 0;
  for (const i of order) {
    const b = buffers[i]!;
    // Intervals already taken during b's lifetime, by offset.
    const busy = placed
      .filter((j) => buffers[j]!.first <= b.last && b.first <= buffers[j]!.last)
      .map((j) => [offsets[j]!, offsets[j]! + buffers[j]!.bytes] as const)
      .sort((x, y) => x[0] - y[0]);
    let at = 0;
    for (const [s, e] of busy) {
      if (at + b.bytes <= s) break;
      at = Math.max(at, Math.ceil(e / align) * align);
    }
    offsets[i] = at;
    placed.push(i);
    peak = Math.max(peak, at + b.bytes);
  }
  return { offsets, peak };
}
