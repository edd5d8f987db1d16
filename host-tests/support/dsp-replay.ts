// The harness of the DSP-path tests: kernel calls go to the TypeScript
// reference and into one trace at the same time; the trace is then replayed
// on the Cortex-M4F DSP image and on the portable M4 image, and every
// tensor read back must equal the reference's bytes.
import { expect, it } from 'vitest';
import { dtypeBytes, type DType, type Tensor } from '../../src/core/arena.js';
import type { Dispatch } from '../../src/core/kernels.js';
import type { OpId } from '../../src/core/ops.js';
import type { ReferenceDispatch } from '../../src/core/reference/dispatch.js';
import type { TraceWriter } from '../../src/core/trace.js';
import { runTrace } from '../../src/node/qemu.js';

/** Forwards every call and write to the reference and to a trace. */
export class Tee implements Dispatch {
  readonly name = 'tee';
  constructor(readonly ref: ReferenceDispatch, readonly trace: TraceWriter) {}
  call(op: OpId, args: Int32Array): void {
    this.ref.call(op, args);
    this.trace.call(op, args);
  }
  write(offset: number, bytes: Uint8Array): void {
    this.ref.write(offset, bytes);
    this.trace.write(offset, bytes);
  }
  read(offset: number, length: number): Uint8Array {
    return this.ref.read(offset, length);
  }
}

export interface Expected {
  offset: number;
  bytes: Uint8Array;
  what: string;
}

/** One test per M4 image: the trace runs clean and every read matches. */
export function itReplaysOnM4Images(label: string, bytes: Uint8Array, calls: number, expected: Expected[]): void {
  for (const target of ['cortex-m4', 'cortex-m4-portable'] as const) {
    it(`${target}: ${label} bit-identical`, async () => {
      const r = await runTrace(target, bytes);
      expect(r.parsed.errors).toEqual([]);
      expect(r.exitCode).toBe(0);
      expect(r.parsed.calls).toHaveLength(calls);
      expect(r.parsed.reads).toHaveLength(expected.length);
      r.parsed.reads.forEach((got, j) => {
        const want = expected[j]!;
        expect(got.offset, want.what).toBe(want.offset);
        expect(Array.from(got.bytes), want.what).toEqual(Array.from(want.bytes));
      });
    }, 180_000);
  }
}

/** Packs tensors end to end from offset 0, each 4-aligned plus an optional
 * misalignment for int8 ones (the DSP paths load 4 int8 from any address). */
export class Placer {
  top = 0;
  place(name: string, dtype: DType, count: number, misalign = 0): Tensor {
    const al = dtypeBytes[dtype];
    const offset = Math.ceil(this.top / 4) * 4 + (al === 1 ? misalign : 0);
    const bytes = count * al;
    this.top = offset + bytes;
    return { name, dtype, shape: [count], offset, bytes };
  }
}
