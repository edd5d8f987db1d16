// XS adapter: the C core through the xsmc glue (native/xs/xst_xs.c).

import { BufferDispatch } from '../core/kernels.js';
import type { OpId } from '../core/ops.js';

const xstCall = native('xs_xst_call') as (
  op: number, args: Int32Array, arena: ArrayBuffer, flash?: ArrayBuffer) => void;
const xstCrc32 = native('xs_xst_crc32') as (arena: ArrayBuffer, offset: number, length: number) => number;
const xstPlanValidate = native('xs_xst_plan_validate') as (blob: Uint8Array, arenaCapacity: number) => [number, number, number];

export class XsDispatch extends BufferDispatch {
  readonly name = 'xs';

  call(op: OpId, args: Int32Array): void {
    if (this.flash) xstCall(op, args, this.arena, this.flash);
    else xstCall(op, args, this.arena);
  }

  crc32(offset: number, length: number): number {
    return xstCrc32(this.arena, offset, length);
  }

  validatePlan(blob: Uint8Array, arenaCapacity: number): readonly [number, number, number] {
    return xstPlanValidate(blob.byteOffset % 4 === 0 ? blob : blob.slice(), arenaCapacity);
  }
}
