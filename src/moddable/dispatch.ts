// Device adapter: the C core on the board's static arena. The arena is the
// .bss array of native/xs/xst_arena.c, sized by the manifest's
// defines.xstrain.arena_bytes for the board; the plan's frozen weights (its
// flash section) stay where the plan resource is, in flash: the plan runs in
// C from the resource (XsDispatch.bindPlan), and a read-only region given
// for per-op calls is a view of the resource, never a RAM copy.

import { FLASH_BASE } from '../core/kernels.js';
import { XsDispatch } from '../xs/dispatch.js';

// A host buffer over the static arena (typed arrays and the xsmc glue
// accept it as they accept an ArrayBuffer).
const xstArena = native('xs_xst_arena') as () => HostBuffer;

export class DeviceDispatch extends XsDispatch {
  // flash: the plan's flash section as a host buffer in flash (or null).
  constructor(flash: HostBuffer | null) {
    super(xstArena() as unknown as ArrayBuffer, flash as unknown as ArrayBuffer | null);
  }

  get arenaCapacity(): number {
    return this.bytes.length;
  }

  // Writes to the read-only region only confirm it: PlanRuntime.load writes
  // the plan's flash section there, and on the device that region already
  // is that section.
  override write(offset: number, bytes: Uint8Array): void {
    if (offset < FLASH_BASE) {
      super.write(offset, bytes);
      return;
    }
    const at = offset - FLASH_BASE, region = this.flashBytes;
    if (!region || at < 0 || at + bytes.length > region.length) {
      throw new RangeError(`device: bytes [${at}, ${at + bytes.length}) are outside the plan's flash section (${region ? region.length : 0} bytes)`);
    }
    for (let i = 0; i < bytes.length; i++) {
      if (region[at + i] !== bytes[i]) throw new Error(`device: the read-only region (the plan in flash) differs at byte ${at + i}: it cannot be written`);
    }
  }
}
