// XS adapter: the C core through the xsmc glue (native/xs/xst_xs.c).

import type { Dispatch } from '../core/kernels.js';
import type { OpId } from '../core/ops.js';

const xstCall = native('xs_xst_call') as (op: number, args: Int32Array, arena: ArrayBuffer) => void;
const xstCrc32 = native('xs_xst_crc32') as (arena: ArrayBuffer, offset: number, length: number) => number;

export class XsDispatch implements Dispatch {
  readonly name = 'xs';
  readonly bytes: Uint8Array;

  constructor(readonly arena: ArrayBuffer) {
    this.bytes = new Uint8Array(arena);
  }

  call(op: OpId, args: Int32Array): void {
    xstCall(op, args, this.arena);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.bytes.set(bytes, offset);
  }

  read(offset: number, length: number): Uint8Array {
    return this.bytes.slice(offset, offset + length);
  }

  crc32(offset: number, length: number): number {
    return xstCrc32(this.arena, offset, length);
  }
}
