// XS adapter: the C core through the xsmc glue (native/xs/xst_xs.c).

import { BufferDispatch, type PlanBinding } from '../core/kernels.js';
import type { OpId } from '../core/ops.js';

const xstCall = native('xs_xst_call') as (
  op: number, args: Int32Array, arena: ArrayBuffer, flash?: ArrayBuffer) => void;
const xstCrc32 = native('xs_xst_crc32') as (arena: ArrayBuffer, offset: number, length: number) => number;
const xstPlanValidate = native('xs_xst_plan_validate') as (blob: Uint8Array, arenaCapacity: number) => [number, number, number];
const xstPlanBind = native('xs_xst_plan_bind') as (blob: Uint8Array, arenaCapacity: number, desc: Int32Array) => [number, number, number];
const xstPlanRun = native('xs_xst_plan_run') as (desc: Int32Array, blob: Uint8Array, which: number, arena: ArrayBuffer) => number;

// The words of a bound plan's description (native/xs/xst_xs.c): where its
// ops and flash section are in the blob; the last one is the status of a
// failed run.
const PLAN_DESC_WORDS = 12;

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

  // The ops run in C from the blob (xst_plan_run): no decoded op list in
  // the heap, and the flash section is read where the blob is (on a device,
  // the plan resource in flash).
  bindPlan(blob: Uint8Array, arenaCapacity: number): PlanBinding {
    const bytes = blob.byteOffset % 4 === 0 ? blob : blob.slice();
    const desc = new Int32Array(PLAN_DESC_WORDS);
    const status = xstPlanBind(bytes, arenaCapacity, desc);
    return {
      status,
      run: (which) => {
        const failed = xstPlanRun(desc, bytes, which, this.arena);
        return { failed, status: failed < 0 ? 0 : desc[PLAN_DESC_WORDS - 1]! };
      },
    };
  }
}
