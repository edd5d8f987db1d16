// One fixed arena: every tensor is a named byte range handed out once.

export type DType = 'int8' | 'uint8' | 'int16' | 'int32' | 'float32'; // float32: the fp32 optimizer baselines

export const dtypeBytes: Readonly<Record<DType, number>> = { int8: 1, uint8: 1, int16: 2, int32: 4, float32: 4 };

export interface Tensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly bytes: number;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// Sequential placement with alignment. The static planner of the compiler
// (lifetimes, reuse) comes later; this is the "sizes computed in one place,
// offsets handed out once" of llm.c.
export class ArenaLayout {
  readonly tensors: Tensor[] = [];
  private top = 0;

  // base: the offset of byte 0 (FLASH_BASE for a layout of the read-only
  // region); capacity counts bytes from there.
  constructor(readonly capacity: number, readonly base = 0) {}

  alloc(name: string, dtype: DType, shape: readonly number[]): Tensor {
    const align = Math.max(4, dtypeBytes[dtype]);
    const offset = Math.ceil(this.top / align) * align;
    const bytes = elementCount(shape) * dtypeBytes[dtype];
    if (offset + bytes > this.capacity) {
      throw new Error(
        `${this.base ? 'flash' : 'arena'} overflow: tensor "${name}" needs ${bytes} bytes at offset ${offset}, ` +
          `${this.base ? 'flash' : 'arena'} has ${this.capacity} bytes; enlarge it or shrink the model`,
      );
    }
    const t: Tensor = { name, dtype, shape: [...shape], offset: this.base + offset, bytes };
    this.tensors.push(t);
    this.top = offset + bytes;
    return t;
  }

  // A one-int32 cell (gradient exponent, label, RNG state).
  cell(name: string): Tensor {
    return this.alloc(name, 'int32', [1]);
  }

  get used(): number {
    return this.top;
  }
}

// Views of a tensor inside an in-memory arena.
export function view(buf: ArrayBuffer, t: Tensor): Int8Array | Uint8Array | Int16Array | Int32Array | Float32Array {
  const n = t.bytes / dtypeBytes[t.dtype];
  switch (t.dtype) {
    case 'int8':
      return new Int8Array(buf, t.offset, n);
    case 'uint8':
      return new Uint8Array(buf, t.offset, n);
    case 'int16':
      return new Int16Array(buf, t.offset, n);
    case 'int32':
      return new Int32Array(buf, t.offset, n);
    case 'float32':
      return new Float32Array(buf, t.offset, n);
  }
}
