// Runs the same kernel call on the C core (Node addon) and on the TypeScript
// reference, each on its own copy of one randomly filled arena.
import { ArenaLayout, type Tensor } from '../../src/core/arena.js';
import { Kernels } from '../../src/core/kernels.js';
import { ReferenceDispatch } from '../../src/core/reference/dispatch.js';
import { Xorshift32 } from '../../src/core/rng.js';
import { NodeDispatch } from '../../src/node/addon.js';

export class Pair {
  readonly layout: ArenaLayout;
  readonly c: Kernels;
  readonly ref: Kernels;
  readonly cBuf: ArrayBuffer;
  readonly refBuf: ArrayBuffer;

  constructor(readonly rng: Xorshift32, capacity = 1 << 16) {
    this.layout = new ArenaLayout(capacity);
    this.cBuf = new ArrayBuffer(capacity);
    this.refBuf = new ArrayBuffer(capacity);
    this.c = new Kernels(new NodeDispatch(this.cBuf));
    this.ref = new Kernels(new ReferenceDispatch(this.refBuf));
    // Random garbage everywhere: a kernel that reads what it should not, or
    // leaves an output unwritten, shows up as a difference.
    const b = new Uint8Array(this.cBuf);
    for (let i = 0; i < b.length; i++) b[i] = rng.next() & 0xff;
    new Uint8Array(this.refBuf).set(b);
  }

  alloc(name: string, dtype: 'int8' | 'uint8' | 'int16' | 'int32', shape: number[]): Tensor {
    return this.layout.alloc(name, dtype, shape);
  }

  set(t: Tensor, values: ArrayLike<number>): void {
    for (const k of [this.c, this.ref]) {
      if (t.dtype === 'int32') k.writeInt32(t, values);
      else if (t.dtype === 'int16') k.writeInt16(t, values);
      else k.write(t, Uint8Array.from(values, (v) => v & 0xff));
    }
  }

  both(f: (k: Kernels) => void): void {
    f(this.c);
    f(this.ref);
  }

  // Byte ranges where C and the reference differ, ignoring `except` tensors.
  differences(except: Tensor[] = []): string[] {
    const a = new Uint8Array(this.cBuf), b = new Uint8Array(this.refBuf);
    const out: string[] = [];
    for (const t of this.layout.tensors) {
      if (except.includes(t)) continue;
      for (let i = t.offset; i < t.offset + t.bytes; i++) {
        if (a[i] !== b[i]) {
          out.push(`${t.name}[${i - t.offset}] C=${a[i]} ref=${b[i]}`);
          break;
        }
      }
    }
    return out;
  }
}

export function randInt8(rng: Xorshift32, n: number, lo = -128, hi = 127): number[] {
  return Array.from({ length: n }, () => rng.int(lo, hi));
}
